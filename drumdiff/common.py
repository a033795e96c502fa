"""Helpers shared by the command-line entry points."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from model.checkpoint import LoadedModel, load_checkpoint, model_from_config
from model.config import load_config
from model.errors import DrumDiffError

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CHECKPOINT = REPO / "model" / "weights" / "default.pt"


def parser(description: str | None, prog: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog=f"drumdiff {prog}",
        description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_model(
    checkpoint: str | None, config: str | None, device: torch.device, *, seed: int = 0
) -> LoadedModel:
    """A checkpoint, a random-weight model from a config, or the shipped default model."""
    if checkpoint and config:
        raise DrumDiffError("give a checkpoint or --config, not both")
    if config:
        return model_from_config(load_config(config), device=device, seed=seed)
    path = Path(checkpoint) if checkpoint else DEFAULT_CHECKPOINT
    if not checkpoint and not path.exists():
        raise DrumDiffError(
            f"no checkpoint given and the default model {path} is missing; "
            "pass a checkpoint path or --config for a random-weight model"
        )
    return load_checkpoint(path, device=device)


def fail(message: str) -> int:
    print(f"drumdiff: error: {message}", file=sys.stderr)
    return 1
