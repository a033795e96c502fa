"""Render a whole drum kit (GM drum map, round robins, velocity layers, ringing cymbals) and write
it for samplers: SFZ, Hydrogen (.h2drumkit) and Decent Sampler (.dspreset), plus kit.json.

`drumdiff kit --out DIR` renders a new kit; `drumdiff kit --from DIR/kit.json --out DIR2`
re-renders a recorded kit byte for byte (with the same model).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

from tqdm import tqdm

from drumdiff.common import (
    add_sampling_options,
    fail,
    parser,
    pick_device,
    resolve_model,
    settings_from_args,
)
from drumdiff.model.errors import DrumDiffError
from drumdiff.model.render.kit import (
    DEFAULT_NOTES,
    FORMATS,
    KitError,
    load_kit_json,
    model_source,
    plan_kit,
    render_kit,
    write_kit,
)
from drumdiff.model.wav import SUBTYPES


def _formats(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    bad = [n for n in names if n not in FORMATS]
    if not names or bad:
        raise argparse.ArgumentTypeError(
            f"formats must be a comma list of {','.join(FORMATS)}; got {text!r}"
        )
    return names


def _notes(text: str) -> list[int]:
    notes: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                notes += list(range(lo, hi + 1))
            elif part:
                notes.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"notes must look like 36-59 or 36,38,42; got {text!r}"
            ) from None
    if not notes:
        raise argparse.ArgumentTypeError("no notes given")
    return notes


def build_parser() -> argparse.ArgumentParser:
    p = parser(__doc__, "kit")
    p.add_argument(
        "checkpoint", nargs="?", help="checkpoint file (default: the shipped model, or kit.json's)"
    )
    p.add_argument("--config", help="use a random-weight model of this config instead (tests)")
    p.add_argument("--out", required=True, help="kit folder to write")
    p.add_argument(
        "--from", dest="from_json", help="re-render the kit a kit.json records (its options win)"
    )
    p.add_argument("--name", default="drumdiff", help="kit name (file and folder names)")
    p.add_argument("--classes", nargs="+", default=None, help="only pads of these GM classes")
    p.add_argument(
        "--notes",
        type=_notes,
        default=list(DEFAULT_NOTES),
        help="MIDI notes of the pads, e.g. 36-59 or 36,38,42",
    )
    p.add_argument(
        "--round-robin", type=int, default=4, help="variations per pad (different seeds)"
    )
    p.add_argument(
        "--velocity-layers", type=int, default=3, help="velocity layers per pad (gain-made)"
    )
    p.add_argument(
        "--layer-span", type=float, default=12.0, help="dB between the softest and loudest layer"
    )
    p.add_argument(
        "--length-cymbals", type=float, default=2.5, help="seconds of crash, ride and open hat"
    )
    p.add_argument("--seed", type=int, default=0, help="kit seed (each pad's seeds derive from it)")
    p.add_argument(
        "--format", type=_formats, default=list(FORMATS), help=f"comma list of {','.join(FORMATS)}"
    )
    add_sampling_options(p)
    p.add_argument("--sample-format", choices=SUBTYPES, default="PCM_24", help="WAV sample format")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        # Files of an earlier kit left beside a new one would look like part of it.
        return fail(f"{out} exists and is not an empty folder; give a new --out")
    try:
        device = pick_device(args.device)
        if args.from_json:
            plan = load_kit_json(args.from_json)
            checkpoint, config = args.checkpoint, args.config
            recorded = plan.model
            if checkpoint is None and config is None:
                checkpoint = recorded.get("checkpoint")
                config = recorded.get("config")
            model = resolve_model(
                checkpoint, config, device, seed=int(recorded.get("random_weights_seed", 0))
            )
            digest = recorded.get("sha256")
            if (
                digest
                and model.path is not None
                and hashlib.sha256(Path(model.path).read_bytes()).hexdigest() != digest
            ):
                print(
                    "drumdiff: warning: this checkpoint differs from the one kit.json records; "
                    "the kit will not be the same",
                    flush=True,
                )
        else:
            model = resolve_model(args.checkpoint, args.config, device)
            settings = settings_from_args(model, args)
            plan = plan_kit(
                model,
                name=args.name,
                notes=args.notes,
                classes=args.classes,
                round_robin=args.round_robin,
                velocity_layers_count=args.velocity_layers,
                layer_span_db=args.layer_span,
                length_cymbals_s=args.length_cymbals,
                seed=args.seed,
                settings=settings,
                formats=args.format,
                subtype=args.sample_format,
                model_source=model_source(model, config=args.config),
            )
        for note, why in plan.skipped:
            print(f"drumdiff: skipping note {note}: {why}", flush=True)
        started = time.perf_counter()
        with tqdm(unit="hit", desc="kit") as bar:

            def progress(done: int, total: int, what: str) -> None:
                bar.total = total
                bar.set_postfix_str(what, refresh=False)
                bar.update(done - bar.n)

            kit = render_kit(model, plan, batch_size=args.batch_size, progress=progress)
        written = write_kit(kit, out, sample_rate=model.sample_rate)
        elapsed = time.perf_counter() - started
    except KitError as err:
        return fail(str(err))
    except (DrumDiffError, ValueError, OSError) as err:
        return fail(str(err))
    hits = sum(len(p.hits) for p in plan.pads)
    for role, path in written.items():
        print(f"{role}: {path.resolve()}")
    print(
        f"kit {plan.name!r}: {len(plan.pads)} pads x {plan.round_robin} round robins x "
        f"{len(plan.layers)} velocity layers ({plan.layer_method}), {hits} samples, in "
        f"{elapsed:.1f} s "
        f"into {out.resolve()}",
        flush=True,
    )
    print(
        json.dumps({"pads": [p.note for p in plan.pads], "skipped": [n for n, _ in plan.skipped]})
    )
    return 0
