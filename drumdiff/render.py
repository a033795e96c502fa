"""Render drum one-shots from a checkpoint (or a random-weight config) into WAV files."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from drumdiff.common import (
    add_output_options,
    add_sampling_options,
    add_seed_option,
    fail,
    parser,
    pick_device,
    resolve_model,
    seeds_from_args,
    settings_from_args,
    unused_path,
)
from drumdiff.model.labels import DEFAULT_ROOT_NOTE


def build_parser() -> argparse.ArgumentParser:
    p = parser(__doc__, "render")
    p.add_argument("checkpoint", nargs="?", help="checkpoint file (default: the shipped model)")
    p.add_argument("--config", help="render from a random-weight model of this config instead")
    p.add_argument(
        "--class", dest="drum_class", default=None, help="drum class (default: unconditional)"
    )
    p.add_argument("-n", "--count", type=int, default=1, help="how many hits")
    add_sampling_options(p)
    add_seed_option(p)
    p.add_argument(
        "--batch-size", type=int, default=8, help="hits rendered together (memory against speed)"
    )
    add_output_options(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.batch_size < 1:
        return fail("--batch-size must be at least 1")
    # Imported here: they load torch, which `drumdiff render --help` does not need.
    from tqdm import tqdm

    from drumdiff.model import __version__
    from drumdiff.model.errors import DrumDiffError
    from drumdiff.model.render.generate import render
    from drumdiff.model.wav import write_wav_atomic

    if args.checkpoint and not Path(args.checkpoint).exists():
        from drumdiff.model.config import DRUM_CLASSES

        if args.checkpoint in DRUM_CLASSES:
            return fail(
                f"{args.checkpoint!r} is a drum class, not a checkpoint: "
                f"drumdiff render --class {args.checkpoint}"
            )
    try:
        seeds = seeds_from_args(args)
        device = pick_device(args.device)
        model = resolve_model(args.checkpoint, args.config, device)
        settings = settings_from_args(model, args)
        if args.drum_class is not None and args.drum_class not in model.classes:
            return fail(f"unknown class {args.drum_class!r}; expected one of {list(model.classes)}")
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
                        **settings.describe(args.drum_class),
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
                        root_note=DEFAULT_ROOT_NOTE,
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
