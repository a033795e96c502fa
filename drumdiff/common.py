"""Helpers shared by the command-line entry points.

Nothing here imports torch at module level: every command's `--help` must answer without
loading it (about 2 s here); the helpers that need it import it when called.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, cast

from drumdiff.model import DEFAULT_MODEL
from drumdiff.model.wav import SUBTYPES

if TYPE_CHECKING:
    import torch

    from drumdiff.model.core.checkpoint import LoadedModel
    from drumdiff.model.render.generate import RenderSettings

REPO = Path(__file__).resolve().parent.parent


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" only where the help does not already say what the default is,
    and never for a default of None or False (an option that is simply not given)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "default" in text.lower()
            or action.default is None
            or action.default is False
            or action.default == argparse.SUPPRESS
        ):
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return text + " (default: %(default)s)"
        return text


def parser(description: str | None, prog: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog=f"drumdiff {prog}",
        description=description,
        formatter_class=HelpFormatter,
    )


def add_sampling_options(p: argparse.ArgumentParser) -> None:
    """--steps, --sampler, --schedule, --guidance, --eta: each defaults to the model's own."""
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
        "--eta",
        type=float,
        default=None,
        help="stochasticity of the ddim and distilled samplers (default: the model's)",
    )


def add_seed_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--seed", type=int, default=None, help="first seed; hit i uses seed+i (default: random)"
    )


def add_output_options(p: argparse.ArgumentParser) -> None:
    """--length, --format, --device, --out of commands that write hits as WAV files."""
    p.add_argument(
        "--length", type=float, default=None, help="seconds (default: the model's length)"
    )
    p.add_argument("--format", choices=SUBTYPES, default="PCM_24", help="WAV sample format")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument(
        "--out", default="renders", help="output folder (existing files are never overwritten)"
    )


def seeds_from_args(args: argparse.Namespace) -> list[int]:
    """-n seeds from --seed on (a random first seed when none is given)."""
    import numpy as np

    from drumdiff.model.errors import DrumDiffError

    if args.count < 1:
        raise DrumDiffError("-n must be at least 1")
    first = (
        args.seed
        if args.seed is not None
        else int(cast(int, np.random.SeedSequence().entropy) % 2**31)
    )
    return [first + i for i in range(args.count)]


def settings_from_args(model: LoadedModel, args: argparse.Namespace) -> RenderSettings:
    """The model's render settings with the sampling options and --length given, checked."""
    from drumdiff.model.core.sampling import SAMPLERS, SCHEDULES
    from drumdiff.model.errors import DrumDiffError
    from drumdiff.model.render.generate import settings_for

    if args.steps is not None and args.steps < 1:
        raise DrumDiffError("--steps must be at least 1")
    if args.sampler is not None and args.sampler not in SAMPLERS:
        raise DrumDiffError(f"unknown sampler {args.sampler!r}; expected one of {sorted(SAMPLERS)}")
    if args.schedule is not None and args.schedule not in SCHEDULES:
        raise DrumDiffError(
            f"unknown schedule {args.schedule!r}; expected one of {sorted(SCHEDULES)}"
        )
    length = None
    if getattr(args, "length", None) is not None:
        if not args.length > 0:
            raise DrumDiffError("--length must be positive")
        length = max(1, int(round(args.length * model.sample_rate)))
    return settings_for(
        model,
        steps=args.steps,
        sampler=args.sampler,
        schedule=args.schedule,
        guidance=args.guidance,
        eta=args.eta,
        length=length,
    )


def pick_device(name: str = "auto") -> torch.device:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_model(
    checkpoint: str | None, config: str | None, device: torch.device, *, seed: int = 0
) -> LoadedModel:
    """A checkpoint, a random-weight model from a config, or the shipped default model."""
    from drumdiff.model.config import load_config
    from drumdiff.model.core.checkpoint import load_checkpoint, model_from_config
    from drumdiff.model.errors import DrumDiffError

    if checkpoint and config:
        raise DrumDiffError("give a checkpoint or --config, not both")
    if config:
        return model_from_config(load_config(config), device=device, seed=seed)
    path = Path(checkpoint) if checkpoint else DEFAULT_MODEL
    if not checkpoint and not path.exists():
        raise DrumDiffError(
            f"no checkpoint given and the default model {path} is missing; "
            "pass a checkpoint path or --config for a random-weight model"
        )
    return load_checkpoint(path, device=device)


def unused_path(folder: Path, stem: str, suffix: str = ".wav") -> Path:
    """`folder/stem.wav`, or `stem-2.wav`, `stem-3.wav`... if taken: files are never overwritten
    (a sampler or DAW may hold the earlier one, and it may have been made with other settings)."""
    path = folder / f"{stem}{suffix}"
    n = 2
    while path.exists():
        path = folder / f"{stem}-{n}{suffix}"
        n += 1
    return path


def fail(message: str) -> int:
    print(f"drumdiff: error: {message}", file=sys.stderr)
    return 1
