"""Helpers shared by the command-line entry points.

Nothing here imports torch at module level: every command's `--help` must answer without
loading it (about 2 s here); the helpers that need it import it when called.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from drumdiff.model import DEFAULT_MODEL

if TYPE_CHECKING:
    import torch

    from drumdiff.model.core.checkpoint import LoadedModel

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
