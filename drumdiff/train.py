"""Train (or fine-tune, or resume) a drumdiff model on a prepared dataset."""

from __future__ import annotations

import sys
from pathlib import Path

from drumdiff.common import fail, parser, pick_device
from drumdiff.model.config import load_config
from drumdiff.model.errors import DrumDiffError


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__, "train")
    p.add_argument("config", nargs="?", help="training config YAML (not needed with --resume)")
    p.add_argument("--data", required=True, help="dataset folder from `drumdiff prepare`")
    p.add_argument("--resume", metavar="RUN", help="continue the run in this folder")
    p.add_argument(
        "--init", metavar="CHECKPOINT", help="start from these weights (fresh optimizer)"
    )
    p.add_argument("--runs", default="runs", help="folder that holds run folders")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config override"
    )
    p.add_argument("--stop-at", type=int, help="stop at this step (resume later to go on)")
    p.add_argument(
        "--minutes", type=float, help="stop after this many minutes (checkpointed; resume later)"
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    args = p.parse_args(argv)
    if args.minutes is not None and args.minutes <= 0:
        return fail(f"--minutes must be positive, got {args.minutes}")
    from drumdiff.model.train.trainer import Trainer, run_name

    try:
        if args.resume:
            run_dir = Path(args.resume)
            resolved = run_dir / "config.resolved.yaml"
            if not resolved.exists():
                return fail(f"{run_dir} is not a run folder (no config.resolved.yaml)")
            if args.config:
                return fail("give either a config or --resume RUN, not both")
            config = load_config(resolved, args.set)
        else:
            if not args.config:
                return fail("a config is required unless --resume is given")
            config = load_config(args.config, args.set)
            run_dir = Path(args.runs) / run_name(config)
        trainer = Trainer(
            config, args.data, run_dir, device=pick_device(args.device), init_checkpoint=args.init
        )
        if not trainer.resume() and args.resume:
            print(f"no checkpoint in {run_dir} yet; starting at step 0", file=sys.stderr)
        trainer.write_run_files()
        if trainer.dist.main:
            counts = trainer.train_set.class_counts()
            print(f"run folder: {run_dir.resolve()}", flush=True)
            print(
                f"training on {len(trainer.train_set)} clips {counts}; validation "
                f"{len(trainer.val_set)}",
                flush=True,
            )
            sampling = "class-balanced draws" if config.train.balance_classes else "shuffled epochs"
            print(
                f"batch {trainer.batch_size} x {trainer.accumulation} accumulation x "
                f"{trainer.dist.world} process(es) on {trainer.device}; {sampling}",
                flush=True,
            )
        stop_after = args.minutes * 60 if args.minutes is not None else None
        state = trainer.fit(
            stop_at=args.stop_at, stop_after_s=stop_after, progress=not args.no_progress
        )
    except DrumDiffError as err:
        return fail(str(err))
    except KeyboardInterrupt:
        print("interrupted; resume with --resume", file=sys.stderr)
        return 130
    if trainer.dist.main:
        print(
            f"stopped at step {state.step}, loss {state.loss:.4f}; checkpoints in "
            f"{run_dir / 'checkpoints'}"
        )
    return 0
