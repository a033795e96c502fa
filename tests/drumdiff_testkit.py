"""Helpers shared by the tests, importable by a unique name (`from drumdiff_testkit import ...`).

`from conftest import ...` is ambiguous once tests/server/conftest.py exists: whichever conftest
pytest loaded last owns the module name `conftest`. tests/conftest.py re-exports these names.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import yaml

from drumdiff.bench import is_model_config

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"
TINY_CONFIG = CONFIGS / "tiny-test.yaml"


def model_config_paths() -> list[Path]:
    """Every model config under configs/ (server and other non-model YAML skipped)."""
    paths = sorted(CONFIGS.rglob("*.yaml")) + sorted(CONFIGS.rglob("*.yml"))
    return [p for p in paths if is_model_config(yaml.safe_load(p.read_text()))]


def randomize(module: torch.nn.Module, seed: int = 0, std: float = 0.2) -> torch.nn.Module:
    """Overwrite every parameter with seeded noise.

    A freshly built U-Net zero-initialises its output layers, so it predicts v = 0 for every
    input and class: comparisons between two outputs of such a model prove nothing. Tests that
    compare outputs use this instead.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=gen) * std)
    return module


def make_hit(
    frames: int = 4410,
    sample_rate: int = 44100,
    channels: int = 1,
    *,
    freq: float = 110.0,
    decay_s: float = 0.05,
    delay: int = 0,
    seed: int = 0,
) -> np.ndarray:
    """A synthetic drum-like hit: decaying sine plus a noise burst, float32 (C, T), peak 0.8."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames - delay) / sample_rate
    env = np.exp(-t / decay_s)
    body = 0.6 * np.sin(2 * np.pi * freq * t) * env + 0.3 * rng.standard_normal(t.size) * env**4
    body *= 0.8 / max(float(np.abs(body).max()), 1e-12)
    hit = np.concatenate([np.zeros(delay), body]).astype(np.float32)
    return np.stack([hit * (1.0 - 0.1 * c) for c in range(channels)])


def serve_command(*args: str) -> list[str]:
    """`drumdiff serve` as a subprocess command line, on torch (no runtime export per daemon)."""
    return [sys.executable, "-m", "drumdiff", "serve", "--set", "engine.runtime=torch", *args]
