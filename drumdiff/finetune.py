"""Fine-tune the shipped model (or --init CHECKPOINT) on a folder of your own one-shots.

Prepares the folder (labels from names or folders, bad files reported and skipped, duplicates
dropped), holds out a share of each class's files for judging, trains with settings chosen for
small data, judges along the way (distance of a few renders to the held-out hits, copies of your
hits), keeps a checkpoint at every judge point, and ends with DIR/model.pt (fp16, for
`drumdiff serve --checkpoint DIR/model.pt`), DIR/MODEL_CARD.md and DIR/report.html.

Ctrl-C stops cleanly with a checkpoint; `drumdiff finetune --resume DIR` goes on.
--set KEY=VALUE changes the training config (train.lr=5e-5, data.augment.pitch_p=0) or this
command's own settings (finetune.holdout=0.3, finetune.judge_every_s=120,
finetune.report_per_class=16).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from drumdiff.common import fail, parser, pick_device
from drumdiff.model import DEFAULT_MODEL
from drumdiff.model.errors import DrumDiffError

if TYPE_CHECKING:
    # Only for the hints: the trainer (and torch) loads when a job starts, not with the CLI.
    from drumdiff.model.train.finetune import FineTune, Outcome


def build_parser():  # type: ignore[no-untyped-def]
    p = parser(__doc__, "finetune")
    p.add_argument(
        "folder",
        nargs="?",
        help="folder of one-shots (WAV, AIFF, FLAC, OGG, MP3), searched recursively",
    )
    p.add_argument(
        "--minutes",
        type=float,
        help="training time (default 10; with --resume: more minutes, "
        "default the rest of the first budget)",
    )
    p.add_argument(
        "--stop-at", type=int, metavar="STEP", help="stop at this training step instead of by time"
    )
    p.add_argument("--name", help="model name (default: the folder's name)")
    p.add_argument(
        "--classes-from",
        default="names",
        metavar="names|folders|CLASS",
        help="labels from file and instrument names, from folder names, or one CLASS for every "
        "file",
    )
    p.add_argument(
        "--out",
        help="job folder (default: runs/finetune_NAME, inside the daemon's default model folders)",
    )
    p.add_argument(
        "--init", metavar="CHECKPOINT", help="start from this model instead of the shipped one"
    )
    p.add_argument("--resume", metavar="DIR", help="go on with the fine-tune in DIR")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config or finetune.* override",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--no-report", action="store_true", help="train only; no export, card or report")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


class ProgressBar:
    """One tqdm bar over the time budget (or the steps), with the latest judge figure."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def __call__(self, info: Any) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        by_time = info.budget_s is not None
        if self.bar is None:
            total = info.budget_s if by_time else info.stop_at
            fmt = (
                "{desc} {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s, {remaining} left{postfix}"
                if by_time
                else "{desc} {percentage:3.0f}%|{bar}| step {n_fmt}/{total_fmt}, {remaining} "
                "left{postfix}"
            )
            # `initial` is where a resumed job starts, so the time left is estimated from this
            # session's pace.
            initial = min(info.trained_s, info.budget_s) if by_time else info.step
            self.bar = tqdm(
                total=total,
                initial=initial,
                desc="finetune",
                bar_format=fmt,
                dynamic_ncols=True,
                file=sys.stderr,
            )
        self.bar.n = min(info.trained_s, info.budget_s) if by_time else info.step
        post = [f"step {info.step}"] if by_time else []
        if info.loss == info.loss:  # not NaN
            post.append(f"loss {info.loss:.3f}")
        if info.judge is not None and info.judge.get("mean_db") is not None:
            base = info.base_judge.get("mean_db") if info.base_judge else None
            post.append(
                f"held-out {info.judge['mean_db']:.2f} dB"
                + (f" (base {base:.2f})" if base is not None else "")
            )
        if info.judge is not None:
            post.append(f"copies {info.judge['copies']}")
        if info.phase != "train":
            post.append(
                {"judge": "judging...", "report": "writing the report..."}.get(
                    info.phase, info.phase
                )
            )
        self.bar.set_postfix_str(", ".join(post), refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _argument_error(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments before anything loads, or None."""
    if args.minutes is not None and args.minutes <= 0:
        return f"--minutes must be positive, got {args.minutes}"
    if args.stop_at is not None and args.stop_at < 1:
        return f"--stop-at must be at least 1, got {args.stop_at}"
    if args.resume and (
        args.folder
        or args.init
        or args.name
        or args.out
        or args.set
        or args.classes_from != "names"
    ):
        return (
            "--resume DIR goes on with DIR's own folder and settings; give only --minutes or "
            "--stop-at with it"
        )
    if not args.resume and not args.folder:
        return "give a FOLDER of one-shots, or --resume DIR"
    return None


def _print_prepared(job: FineTune, out: Path) -> None:
    """What preparing the folder kept, skipped and added, so a bad file is seen before training."""
    data = job.state["data"]
    print(f"job folder: {out.resolve()}", flush=True)
    print(f"kept {data['kept']} hits; rejected: {data['per_reason'] or 'none'}", flush=True)
    for item in data["rejected"]:
        # Duplicates are counted above; listing each would drown the real problems.
        if item.get("reason") != "duplicate":
            print(
                f"  skipped {item['source']}: {item.get('detail') or item['reason']}",
                flush=True,
            )
    per = ", ".join(f"{c} {v['train']}+{v['validation']}" for c, v in data["per_class"].items())
    print(f"per class (train+held out): {per}", flush=True)
    if job.state["new_classes"]:
        print(
            f"classes the base model lacks, added: {', '.join(job.state['new_classes'])}",
            flush=True,
        )


def _open_job(args: argparse.Namespace, argv: list[str] | None) -> FineTune | int:
    """Resume the job in --resume DIR or start one on FOLDER; an exit code when that fails."""
    from tqdm import tqdm

    from drumdiff.model.train.finetune import FineTune, class_slug

    device = pick_device(args.device)
    command = ["drumdiff", "finetune", *(argv if argv is not None else sys.argv[2:])]
    try:
        if args.resume:
            job = FineTune.resume(args.resume, device=device)
            print(f"resuming {Path(args.resume).resolve()} at step {job.state['step']}", flush=True)
            return job
        base = Path(args.init) if args.init else DEFAULT_MODEL
        if not base.exists():
            return fail(f"the base model {base} does not exist")
        name = class_slug(args.name or Path(args.folder).resolve().name)
        # Under runs/ the daemon's `load` finds it too (server config model_folders).
        out = Path(args.out) if args.out else Path("runs") / f"finetune_{name}"
        job = FineTune.start(
            args.folder,
            out,
            base,
            name=name,
            classes_from=args.classes_from,
            overrides=args.set,
            device=device,
            command=command,
            progress=lambda items: tqdm(items, desc="preparing", unit="file", file=sys.stderr),
        )
        _print_prepared(job, out)
    except (DrumDiffError, ValueError) as err:
        return fail(str(err))
    return job


def _train(job: FineTune, args: argparse.Namespace) -> Outcome | int:
    """Run the job with a progress bar; the first Ctrl-C asks it to stop at a checkpoint."""
    interrupted = False

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupted
        interrupted = True
        # A second Ctrl-C stops at once (losing only the steps since the last checkpoint).
        signal.signal(signal.SIGINT, signal.default_int_handler)

    bar = ProgressBar(not args.no_progress)
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        return job.run(
            minutes=args.minutes,
            stop_at=args.stop_at,
            should_stop=lambda: interrupted,
            on_progress=bar,
            report=not args.no_report,
        )
    except DrumDiffError as err:
        bar.close()
        return fail(str(err))
    except KeyboardInterrupt:
        bar.close()
        print(
            f"\ninterrupted; the last checkpoint is kept: drumdiff finetune --resume {job.out}",
            file=sys.stderr,
        )
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)
        bar.close()


def _print_result(outcome: Outcome) -> None:
    """The headline figures from report.json and where the model, card and report are."""
    import json

    report = json.loads(outcome.files["report_json"].read_text())
    b, t = report["results"]["base"], report["results"]["fine-tuned"]

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    print(
        f"distance to held-out hits: base {fmt(b['mean_db'])} dB -> fine-tuned "
        f"{fmt(t['mean_db'])} dB; "
        f"copies {b['copies']} -> {t['copies']} of {t['renders']}"
    )
    start = report["copying_starts"]
    if start:
        print(f"copying starts at step {start['step']} ({start['checkpoint']})")
    print(f"model:  {outcome.files['model'].resolve()}")
    print(f"card:   {outcome.files['card'].resolve()}")
    print(f"report: {outcome.files['report'].resolve()}")
    print(f"serve:  drumdiff serve --checkpoint {outcome.files['model']}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    error = _argument_error(args)
    if error is not None:
        return fail(error)
    job = _open_job(args, argv)
    if isinstance(job, int):
        return job
    outcome = _train(job, args)
    if isinstance(outcome, int):
        return outcome
    minutes = outcome.trained_s / 60
    if outcome.status == "stopped":
        print(
            f"stopped at step {outcome.step} ({minutes:.1f} min); go on with: drumdiff finetune "
            f"--resume {job.out}",
            file=sys.stderr,
        )
        return 130
    print(f"trained to step {outcome.step} ({minutes:.1f} min)")
    if outcome.status == "done":
        _print_result(outcome)
    return 0
