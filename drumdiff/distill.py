"""Distil a model into a few-step student (guidance baked in): `--sampler distilled` renders with
it.

First renders the teacher's trajectories from many seeds (stored in RUN/trajectories, resumable),
then trains the student on them: checkpoints in RUN/last.pt (resume: run it again with the same
--run; the run's own settings, RUN/settings.json, carry on, and --set changes only what it names)
and RUN/checkpoints/step-N.pt (fp16, teacher and student together: judge one with `drumdiff eval
step-N.pt --data DATA --sampler distilled --steps 4`, ship one with `drumdiff export step-N.pt
--out model.pt --set sampling.sampler=distilled --set sampling.steps=4`).
--set distill.KEY=VALUE changes the settings (distill.steps=4, distill.trajectories=4096,
distill.lr=1e-4, distill.keep=[0,4,6,8,12] for the student's levels as indices of the teacher's
schedule, distill.rollout=0.5 for the share of segments started from the student's own state,
distill.onset_weight=10 to weigh each hit's first 20 ms (distill.onset_s) that much more in the
regression, distill.adversarial=0.05 with distill.real_data=DATA for a critic that compares the
student's finished hits with DATA's real train hits of the same class, distill.spectral=0.1
for a phase-blind log-spectral distance between the student's own finished hit and the
teacher's, through its last distill.spectral_steps steps, distill.onset_skip_s=0.06 for
learned onset skips over each hit's first 60 ms, which keep the white noise there as the ODE does
instead of shrinking it, distill.finished_target=true to learn the teacher's hits as render
finishing leaves them, so the student ends its hits itself; see model/train/distill.py).
A teacher whose default sampler is its own student (the shipped model) teaches that student
(progressive distillation) unless distill.teacher_sampler=dpmpp-2m and distill.teacher_steps=12
name the full model's plan. The
stored trajectories depend on the teacher alone: a second run with other student settings can
reuse the first's (--trajectories-from RUN; the run remembers it when it resumes).
"""

from __future__ import annotations

import sys
from pathlib import Path

from drumdiff.common import fail, parser, pick_device
from drumdiff.model import DEFAULT_MODEL
from drumdiff.model.errors import DrumDiffError


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__, "distill")
    p.add_argument("teacher", nargs="?", help="the model to distil (default: the shipped model)")
    p.add_argument("--run", help="run folder (default: RUNS/distill_STEPSstep_NAME)")
    p.add_argument("--runs", default="runs", help="where run folders go")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="distill.* setting"
    )
    p.add_argument("--minutes", type=float, help="stop after this many minutes of student training")
    p.add_argument("--stop-at", type=int, metavar="STEP", help="stop at this student step")
    p.add_argument(
        "--trajectories-only",
        action="store_true",
        help="render the teacher's trajectories, then stop",
    )
    p.add_argument(
        "--trajectories-from",
        metavar="RUN",
        help="use the stored teacher trajectories of another run of the same teacher",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    distiller = None
    try:
        from drumdiff.model.core.checkpoint import load_checkpoint
        from drumdiff.model.train.distill import (
            Distiller,
            run_settings,
            settings_from_overrides,
        )

        teacher_path = Path(args.teacher) if args.teacher else DEFAULT_MODEL
        run_dir = (
            Path(args.run)
            if args.run
            else Path(args.runs)
            / f"distill_{settings_from_overrides(args.set).steps}step_{teacher_path.stem}"
        )
        settings, changed = run_settings(run_dir, args.set)
        for key, (stored, new) in changed.items():
            print(f"distill.{key}: {stored!r} (the run's) -> {new!r}", flush=True)
        teacher = load_checkpoint(teacher_path, device=pick_device(args.device))
        shared = Path(args.trajectories_from) / "trajectories" if args.trajectories_from else None
        if shared is not None and not (shared / "trajectories.json").exists():
            raise DrumDiffError(f"--trajectories-from: {shared} holds no stored trajectories")
        distiller = Distiller(teacher, settings, run_dir, trajectories=shared)
        distiller.resume()
        print(
            f"run folder: {run_dir.resolve()}; student: {settings.steps} steps at levels "
            f"{', '.join(f'{t:.3f}' for t in distiller.levels)}",
            flush=True,
        )
        distiller.prepare(progress=not args.no_progress)
        if args.trajectories_only:
            return 0
        stop_after = args.minutes * 60 if args.minutes is not None else None
        loss = distiller.fit(
            stop_at=args.stop_at, stop_after_s=stop_after, progress=not args.no_progress
        )
    except DrumDiffError as err:
        return fail(str(err))
    except KeyboardInterrupt:
        if distiller is not None and distiller.data is not None and distiller.step > 0:
            distiller.save()
            print(
                f"interrupted; saved step {distiller.step}; run the same command to resume",
                file=sys.stderr,
            )
        else:
            print("interrupted; run the same command to resume", file=sys.stderr)
        return 130
    print(
        f"stopped at step {distiller.step}, loss {loss:.5f}; checkpoints in "
        f"{run_dir / 'checkpoints'}"
    )
    return 0
