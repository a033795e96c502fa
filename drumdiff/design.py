"""Sound design from a checkpoint: variations, interpolation, inpainting, class morphing and
checkpoint scrubbing, written as WAV files with every parameter in their INFO metadata."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drumdiff.common import (
    HelpFormatter,
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
from drumdiff.model.render.design_defaults import DESIGN_DEFAULTS

# The operations load torch; only their type names are needed here, so `drumdiff design --help`
# answers without it. Each function imports what it runs.
if TYPE_CHECKING:
    import numpy as np

    from drumdiff.model.audio import DrumAudio
    from drumdiff.model.core.checkpoint import LoadedModel
    from drumdiff.model.render.sound_design import ClassRef


def _common(p: argparse.ArgumentParser, *, seeded: bool = True, model_flags: bool = True) -> None:
    if model_flags:
        p.add_argument(
            "--checkpoint", default=None, help="checkpoint file (default: the shipped model)"
        )
        p.add_argument(
            "--config", default=None, help="use a random-weight model of this config instead"
        )
    if seeded:
        p.add_argument("-n", "--count", type=int, default=4, help="how many hits")
        add_seed_option(p)
    add_sampling_options(p)
    p.add_argument(
        "--pitch", type=float, default=0.0, help="repitch the result by this many semitones"
    )
    p.add_argument(
        "--root-note",
        type=int,
        default=DEFAULT_ROOT_NOTE,
        help="MIDI note the unpitched hit sounds at; every file's smpl chunk gets it plus --pitch",
    )
    add_output_options(p)


def _class_option(p: argparse.ArgumentParser, default: str = "none") -> None:
    p.add_argument(
        "--class", dest="drum_class", default=None, help=f"class condition (default: {default})"
    )


def _vary_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="WAV (or any libsndfile format) to vary")
    p.add_argument("--level", type=float, default=DESIGN_DEFAULTS.level, help="noise level 0..1")
    _class_option(p)
    _common(p)


def _interpolate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", help="first hit")
    p.add_argument("b", help="second hit")
    p.add_argument(
        "-n",
        "--count",
        type=int,
        default=DESIGN_DEFAULTS.interpolate_count,
        help="hits, endpoints included",
    )
    p.add_argument("--class-a", default=None, help="class of the first hit (default: none)")
    p.add_argument("--class-b", default=None, help="class of the second hit (default: none)")
    p.add_argument(
        "--refine",
        type=int,
        default=DESIGN_DEFAULTS.refine,
        help="fixed-point refinements per inversion step",
    )
    _common(p, seeded=False)


def _inpaint_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="hit to inpaint")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--range", nargs=2, type=float, metavar=("START", "END"), help="seconds to regenerate"
    )
    where.add_argument(
        "--keep-attack", type=float, metavar="SECONDS", help="keep the first SECONDS, new tail"
    )
    where.add_argument(
        "--keep-tail", type=float, metavar="SECONDS", help="keep from SECONDS on, new attack"
    )
    p.add_argument(
        "--seam-ms",
        type=float,
        default=DESIGN_DEFAULTS.seam_ms,
        help="crossfade into the new part",
    )
    _class_option(p)
    _common(p)


def _morph_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mix",
        action="append",
        required=True,
        metavar="CLASS=WEIGHT",
        help="a class and its weight; repeat for a blend, whose weights are divided by their sum "
        "(kick=3 --mix tom=1 is 0.75/0.25); `none` is the unconditional share",
    )
    _common(p)


def _scrub_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder (holding checkpoints/step-*.pt)")
    pick = p.add_mutually_exclusive_group()
    pick.add_argument("--step", type=int, default=None, help="nearest checkpoint to this step")
    pick.add_argument("--fraction", type=float, default=None, help="0 = first kept, 1 = newest")
    p.add_argument("--list", action="store_true", help="list the checkpoints and exit")
    p.add_argument(
        "--class", dest="drum_class", default=None, help="class (default: unconditional)"
    )
    _common(p, model_flags=False)


#: Each operation's sub-command: its one-line help, its description and its own arguments.
_OP_PARSERS: dict[str, tuple[str, str, Callable[[argparse.ArgumentParser], None]]] = {
    "vary": (
        "variations of a hit",
        "Noise a hit to a level (0 = same, 1 = new sound) and denoise.",
        _vary_args,
    ),
    "interpolate": (
        "hits between two hits",
        "Invert both hits (DDIM backwards), slerp the latents, sample back.",
        _interpolate_args,
    ),
    "inpaint": (
        "regenerate part of a hit",
        "Regenerate a time range (or extend: keep the attack or the tail).",
        _inpaint_args,
    ),
    "morph": (
        "render from a blend of classes",
        "Blend class conditions, e.g. --mix kick=0.5 --mix tom=0.5.",
        _morph_args,
    ),
    "scrub": (
        "render with an earlier checkpoint of a run",
        "Pick a checkpoint of a run folder by step or fraction of training.",
        _scrub_args,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    p = parser(__doc__, "design")
    sub = p.add_subparsers(dest="op", required=True, metavar="OP")
    for name, (summary, description, add_arguments) in _OP_PARSERS.items():
        op = sub.add_parser(
            name, help=summary, formatter_class=HelpFormatter, description=description
        )
        add_arguments(op)
    return p


def _load(path: str) -> DrumAudio:
    """An input hit, or a one-line error naming the file (libsndfile alone says "System error")."""
    from drumdiff.model.audio import DrumAudio
    from drumdiff.model.errors import DrumDiffError

    file = Path(path)
    if not file.exists():
        raise DrumDiffError(f"input file {path} does not exist")
    if not file.is_file():
        raise DrumDiffError(f"input {path} is not a file")
    try:
        return DrumAudio.from_file(file)
    except (RuntimeError, OSError) as err:  # soundfile's LibsndfileError is a RuntimeError
        raise DrumDiffError(f"cannot read {path} as audio: {err}") from None


def _mix(model: LoadedModel, items: list[str]) -> dict[ClassRef, float]:
    from drumdiff.model.errors import DrumDiffError

    weights: dict[ClassRef, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise DrumDiffError(f"--mix takes CLASS=WEIGHT, got {item!r}")
        try:
            weight = float(value)
        except ValueError:
            raise DrumDiffError(f"--mix weight of {name!r} is not a number: {value!r}") from None
        key = None if name in ("none", "null") else name
        weights[key] = weights.get(key, 0.0) + weight
    if len(weights) == 1:
        ((only, weight),) = weights.items()
        label = only or "none"
        if weight != 1.0:
            # Weights are divided by their sum, so one class alone is always all of it: a lone
            # kick=0.3 would silently be a plain kick.
            raise DrumDiffError(
                f"--mix {label}={weight:g} alone is {label}=1 (weights are divided by their "
                f"sum); blend it with another class, e.g. --mix {label}={weight:g} --mix "
                f"none={1 - weight:g}"
            )
    return weights


class _Writer:
    """Writes hits with their parameters (JSON in ICMT) and the pitched root note."""

    def __init__(self, model: LoadedModel, args: argparse.Namespace, source: str) -> None:
        from drumdiff.model.render.sound_design import pitched_root_note

        self.model, self.args, self.source = model, args, source
        self.root = pitched_root_note(
            args.pitch, args.root_note
        )  # refuses a note out of range before rendering
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.written: list[Path] = []

    def __call__(self, name: str, hit: np.ndarray, params: dict[str, Any]) -> None:
        from drumdiff.model import __version__
        from drumdiff.model.render.sound_design import pitch_shift
        from drumdiff.model.wav import write_wav_atomic

        args = self.args
        root = self.root
        if args.pitch:
            hit = pitch_shift(hit, self.model.sample_rate, args.pitch)
        params = {**params, "pitch": args.pitch, "model": self.source, "step": self.model.step}
        path = unused_path(self.out, name)
        write_wav_atomic(
            path,
            hit,
            self.model.sample_rate,
            subtype=args.format,
            root_note=root,
            info={
                "software": f"drumdiff {__version__}",
                "comment": json.dumps(params),
                "title": path.stem,
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
        )
        self.written.append(path)


def _vary(model: LoadedModel, args: argparse.Namespace, write: _Writer) -> None:
    from drumdiff.model.render.sound_design import variation

    settings, seeds = settings_from_args(model, args), seeds_from_args(args)
    audio = variation(
        model, _load(args.input), args.level, seeds, settings, drum_class=args.drum_class
    )
    stem = Path(args.input).stem
    for seed, hit in zip(seeds, audio):
        write(
            f"{stem}_vary{args.level:g}_seed{seed}",
            hit,
            {
                "op": "vary",
                "input": str(args.input),
                "level": args.level,
                "seed": seed,
                "class": args.drum_class,
                **settings.describe(),
            },
        )


def _interpolate(model: LoadedModel, args: argparse.Namespace, write: _Writer) -> None:
    import numpy as np

    from drumdiff.model.render.sound_design import interpolate

    settings = settings_from_args(model, args)
    steps = args.steps or DESIGN_DEFAULTS.interpolate_steps  # inversion steps, as the daemon
    guidance = DESIGN_DEFAULTS.interpolate_guidance if args.guidance is None else args.guidance
    audio = interpolate(
        model,
        _load(args.a),
        _load(args.b),
        args.count,
        steps,
        class_a=args.class_a,
        class_b=args.class_b,
        guidance=guidance,
        schedule=settings.schedule,
        refine=args.refine,
        length=settings.length,
    )
    fractions = np.linspace(0.0, 1.0, args.count)
    stem = f"{Path(args.a).stem}_to_{Path(args.b).stem}"
    for i, (w, hit) in enumerate(zip(fractions, audio)):
        write(
            f"{stem}_{i:02d}",
            hit,
            {
                "op": "interpolate",
                "a": str(args.a),
                "b": str(args.b),
                "index": i,
                "fraction": float(w),
                "class_a": args.class_a,
                "class_b": args.class_b,
                "refine": args.refine,
                "steps": steps,
                "sampler": "ddim",
                "schedule": settings.schedule,
                "guidance": guidance,
                "length": settings.length,
            },
        )


def _inpaint(model: LoadedModel, args: argparse.Namespace, write: _Writer) -> None:
    from drumdiff.model.errors import DrumDiffError
    from drumdiff.model.render.sound_design import extend, inpaint

    settings, seeds = settings_from_args(model, args), seeds_from_args(args)
    source = _load(args.input)
    sr = model.sample_rate
    length_s = (settings.length or model.config.model.length) / sr
    if args.range is not None:
        start_s, end_s = args.range
        if not 0 <= start_s < end_s:
            raise DrumDiffError(
                f"--range END ({end_s:g} s) must be after START ({start_s:g} s), and START at "
                "least 0"
            )
        if start_s >= length_s:
            raise DrumDiffError(
                f"--range START ({start_s:g} s) is past the end of the {length_s:.3f} s hit"
            )
    else:
        split_s = args.keep_attack if args.keep_attack is not None else args.keep_tail
        if not 0 < split_s < length_s:
            raise DrumDiffError(
                f"the split point must lie inside the {length_s:.3f} s hit, got {split_s:g} s"
            )
    seam = int(round(args.seam_ms * 1e-3 * sr))
    params: dict[str, Any] = {
        "op": "inpaint",
        "input": str(args.input),
        "class": args.drum_class,
        "seam_ms": args.seam_ms,
        **settings.describe(),
    }
    if args.range is not None:
        start, end = (int(round(v * sr)) for v in args.range)
        audio = inpaint(
            model,
            source,
            seeds,
            settings,
            regenerate=(start, end),
            drum_class=args.drum_class,
            seam=seam,
        )
        params["range_s"], tag = list(args.range), f"inpaint{args.range[0]:g}-{args.range[1]:g}"
    else:
        keep = "attack" if args.keep_attack is not None else "tail"
        split_s = args.keep_attack if args.keep_attack is not None else args.keep_tail
        audio = extend(
            model,
            source,
            seeds,
            settings,
            keep=keep,
            split=int(round(split_s * sr)),
            drum_class=args.drum_class,
            seam=seam,
        )
        params.update(keep=keep, split_s=split_s)
        tag = f"keep{keep}{split_s:g}"
    stem = Path(args.input).stem
    for seed, hit in zip(seeds, audio):
        write(f"{stem}_{tag}_seed{seed}", hit, {**params, "seed": seed})


def _morph(model: LoadedModel, args: argparse.Namespace, write: _Writer) -> None:
    from drumdiff.model.render.sound_design import morph

    settings, seeds = settings_from_args(model, args), seeds_from_args(args)
    weights = _mix(model, args.mix)
    audio = morph(model, weights, seeds, settings)
    total = sum(weights.values())
    mix = {str(k or "none"): v / total for k, v in weights.items()}
    if total > 0 and abs(total - 1.0) > 1e-9:
        print(
            "morph: weights divided by their sum: "
            + ", ".join(f"{k}={v:.3g}" for k, v in mix.items()),
            file=sys.stderr,
        )
    tag = "+".join(f"{k}{v:.2f}" for k, v in mix.items())
    for seed, hit in zip(seeds, audio):
        write(
            f"morph_{tag}_seed{seed}",
            hit,
            {"op": "morph", "mix": mix, "seed": seed, **settings.describe()},
        )


OPS: dict[str, Callable[[LoadedModel, argparse.Namespace, _Writer], None]] = {
    "vary": _vary,
    "interpolate": _interpolate,
    "inpaint": _inpaint,
    "morph": _morph,
}


def _scrub(args: argparse.Namespace, device: Any) -> tuple[LoadedModel, list[Path]] | None:
    from drumdiff.model.render.generate import render
    from drumdiff.model.render.sound_design import ModelCache, list_checkpoints, pick_checkpoint

    entries = list_checkpoints(args.run)
    if args.list or (args.step is None and args.fraction is None):
        for e in entries:
            print(f"{e.step:>9}  {e.path}")
        return None
    entry = pick_checkpoint(entries, step=args.step, fraction=args.fraction)
    model = ModelCache(1, device=device).get(entry.path)
    settings, seeds = settings_from_args(model, args), seeds_from_args(args)
    write = _Writer(model, args, str(entry.path))
    audio = render(model, seeds, settings, classes=[args.drum_class] * len(seeds))
    label = args.drum_class or "any"
    for seed, hit in zip(seeds, audio):
        write(
            f"{label}_step{model.step}_seed{seed}",
            hit,
            {
                "op": "scrub",
                "run": str(args.run),
                "picked_step": model.step,
                "asked_step": args.step,
                "asked_fraction": args.fraction,
                "class": args.drum_class,
                "seed": seed,
                **settings.describe(),
            },
        )
    return model, write.written


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from drumdiff.model.errors import DrumDiffError

    try:
        device = pick_device(args.device)
        if args.op == "scrub":
            done = _scrub(args, device)
            if done is None:
                return 0
            model, written = done
        else:
            model = resolve_model(args.checkpoint, args.config, device)
            write = _Writer(model, args, str(model.path) if model.path else f"random:{args.config}")
            count = getattr(args, "count", 1)
            print(f"{args.op}: {count} hit(s) on {device} ...", file=sys.stderr, flush=True)
            OPS[args.op](model, args, write)
            written = write.written
    except (DrumDiffError, ValueError) as err:
        return fail(str(err))
    for path in written:
        print(path.resolve())
    print(f"{args.op}: wrote {len(written)} file(s) into {Path(args.out).resolve()}", flush=True)
    return 0
