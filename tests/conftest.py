"""Shared fixtures: the tiny config, tiny random models, temporary audio.

Everything here is generic so other test modules (server, data, training) can use it.
Keep fixtures cheap: the whole suite must run on two busy CPU cores in seconds.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# pytest puts tests/ on sys.path, where tests/model/ (no __init__.py) would make `model` a
# namespace package unless the repository root is on sys.path too (it is under
# `python -m pytest`, not under a bare `pytest`); with it there the real package wins.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.append(_ROOT)

# Must happen before torch spins up its thread pool (tests share a small, busy machine).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from model.checkpoint import LoadedModel, build_model  # noqa: E402
from model.config import Config, load_config  # noqa: E402
from model.denoiser import Denoiser  # noqa: E402

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"
TINY_CONFIG = CONFIGS / "tiny-test.yaml"
MODEL_SECTIONS = frozenset({"name", "model", "diffusion", "sampling", "data", "train"})


def is_model_config(data: object) -> bool:
    """A YAML mapping is a model config when its top-level keys are Config sections."""
    return (
        isinstance(data, dict)
        and bool(data)
        and set(data) <= MODEL_SECTIONS
        and bool(set(data) & {"model", "diffusion", "train"})
    )


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


@pytest.fixture(scope="session")
def tiny_config() -> Config:
    """configs/tiny-test.yaml as a Config."""
    return load_config(TINY_CONFIG)


@pytest.fixture
def tiny_denoiser(tiny_config: Config) -> Denoiser:
    """A tiny model with random, non-zero weights (outputs depend on input, t and class)."""
    torch.manual_seed(0)
    denoiser = build_model(tiny_config)
    randomize(denoiser.net, seed=1)
    return denoiser.eval()


@pytest.fixture
def tiny_model(tiny_denoiser: Denoiser, tiny_config: Config) -> LoadedModel:
    """`tiny_denoiser` wrapped as a LoadedModel (what render and the server take)."""
    return LoadedModel(tiny_denoiser, tiny_config, 0, None)


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


@pytest.fixture
def write_audio(tmp_path: Path) -> Callable[..., Path]:
    """write_audio(name, samples (C, T) = a synthetic hit, sample_rate=44100, subtype=PCM_24)."""

    def write(
        name: str = "hit.wav",
        samples: np.ndarray | None = None,
        sample_rate: int = 44100,
        subtype: str = "PCM_24",
    ) -> Path:
        if samples is None:
            samples = make_hit(sample_rate=sample_rate)
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), np.asarray(samples).T, sample_rate, subtype=subtype)
        return path

    return write
