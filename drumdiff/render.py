"""Render drum one-shots from a checkpoint (or a random-weight config) into WAV files."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import cast

from drumdiff.common import fail, parser, pick_device, resolve_model, unused_path

#: The `smpl` root note of a CLI render: middle C, where a sampler plays a sample unpitched.
ROOT_NOTE = 60
WAV_FORMATS = ("PCM_16", "PCM_24", "FLOAT")  # model.wav.SUBTYPES, checked against it in main()


def build_parser() -> argparse.ArgumentParser:
    p = parser(__doc__, "render")
    p.add_argument("checkpoint", nargs="?", help="checkpoint file (default: the shipped model)")
    p.add_argument("--config", help="render from a random-weight model of this config instead")
    p.add_argument(
        "--class", dest="drum_class", default=None, help="drum class (default: unconditional)"
    )
    p.add_argument("-n", "--count", type=int, default=1, help="how many hits")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    p.add_argument(
        "--sampler",
        default=None,
        help="sampler, e.g. dpmpp-2m, ddim, heun (default: the model's; an unknown name lists "
        "them)",
    )
    p.add_argument(
        "--schedule", default=None, help="noise schedule, karras or linear (default: the model's)"
    )
    p.add_argument(
        "--guidance",
        type=float,
        default=None,
        help="classifier-free guidance scale (default: the model's)",
    )
    p.add_argument(
        "--eta", type=float, default=None, help="DDIM stochasticity (default: the model's)"
    )
    p.add_argument(
        "--seed", type=int, default=None, help="first seed; hit i uses seed+i (default: random)"
    )
    p.add_argument(
        "--length", type=float, default=None, help="seconds (default: the model's length)"
    )
    p.add_argument(
        "--batch-size", type=int, default=8, help="hits rendered together (memory against speed)"
    )
    p.add_argument("--format", choices=WAV_FORMATS, default="PCM_24", help="WAV sample format")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument(
        "--out", default="renders", help="output folder (existing files are never overwritten)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.count < 1:
        return fail("-n must be at least 1")
    if args.steps is not None and args.steps < 1:
        return fail("--steps must be at least 1")
    if args.batch_size < 1:
        return fail("--batch-size must be at least 1")
    # Imported here: they load torch, which `drumdiff render --help` does not need.
    import numpy as np
    from tqdm import tqdm

    from drumdiff.model import __version__
    from drumdiff.model.core.sampling import SAMPLERS, SCHEDULES
    from drumdiff.model.errors import DrumDiffError
    from drumdiff.model.render.generate import render, settings_for, valid_length
    from drumdiff.model.wav import SUBTYPES, write_wav_atomic

    assert set(WAV_FORMATS) == set(SUBTYPES)
    if args.sampler is not None and args.sampler not in SAMPLERS:
        return fail(f"unknown sampler {args.sampler!r}; expected one of {sorted(SAMPLERS)}")
    if args.schedule is not None and args.schedule not in SCHEDULES:
        return fail(f"unknown schedule {args.schedule!r}; expected one of {sorted(SCHEDULES)}")
    try:
        device = pick_device(args.device)
        model = resolve_model(args.checkpoint, args.config, device)
        length = None
        if args.length is not None:
            length = int(round(args.length * model.sample_rate))
            valid_length(model, length)  # refuses lengths that round to nothing
        settings = settings_for(
            model,
            steps=args.steps,
            sampler=args.sampler,
            schedule=args.schedule,
            guidance=args.guidance,
            eta=args.eta,
            length=length,
        )
        if args.drum_class is not None and args.drum_class not in model.classes:
            return fail(f"unknown class {args.drum_class!r}; expected one of {list(model.classes)}")
        base_seed = (
            args.seed
            if args.seed is not None
            else int(cast(int, np.random.SeedSequence().entropy) % 2**31)
        )
        seeds = [base_seed + i for i in range(args.count)]
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        label = args.drum_class or "any"
        source = str(model.path) if model.path else f"random:{args.config}"
        written: list[Path] = []
        started = time.perf_counter()
        # On a terminal the bar always shows (a few slow CPU hits are when one waits for it).
        with tqdm(
            total=args.count * settings.steps, unit="step", file=sys.stderr, disable=None
        ) as bar:
            for first in range(0, args.count, args.batch_size):
                batch = seeds[first : first + args.batch_size]

                def advance(i: int, n: int, k: int = len(batch)) -> None:  # k: this batch's size
                    bar.update(k)

                audio = render(
                    model,
                    batch,
                    settings,
                    classes=[args.drum_class] * len(batch),
                    progress=advance,
                )
                for seed, hit in zip(batch, audio):
                    params = {
                        "class": label,
                        "seed": seed,
                        "steps": settings.steps,
                        "sampler": settings.sampler,
                        "schedule": settings.schedule,
                        "guidance": settings.guidance,
                        "model": source,
                    }
                    path = unused_path(
                        out, f"{label}_seed{seed}_{settings.sampler}{settings.steps}"
                    )
                    write_wav_atomic(
                        path,
                        hit,
                        model.sample_rate,
                        subtype=args.format,
                        root_note=ROOT_NOTE,
                        info={
                            "software": f"drumdiff {__version__}",
                            "comment": json.dumps(params),
                            "title": path.stem,
                            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        },
                    )
                    written.append(path)
        elapsed = time.perf_counter() - started
    except (DrumDiffError, ValueError) as err:
        return fail(str(err))
    for path in written:
        print(path.resolve())
    print(
        f"rendered {len(written)} hit(s) of {settings.length or model.config.model.length} samples "
        "at "
        f"{model.sample_rate} Hz in {elapsed:.2f} s ({settings.sampler}, {settings.steps} steps) "
        f"into {out.resolve()}",
        flush=True,
    )
    return 0
