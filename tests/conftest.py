"""Shared fixtures: the tiny config, tiny random models, temporary audio.

Everything here is generic so other test modules (server, data, training) can use it.
Keep fixtures cheap: the whole suite must run on two busy CPU cores in seconds.
"""

from __future__ import annotations

import os
from pathlib import Path

# Must happen before torch spins up its thread pool (tests share a small, busy machine).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

# Helpers live in a module with a unique name; re-exported here for `from conftest import ...`.
from drumdiff_testkit import (  # noqa: E402,F401
    CONFIGS,
    REPO,
    TINY_CONFIG,
    is_model_config,
    make_hit,
    model_config_paths,
    randomize,
)

from drumdiff.model.config import Config, load_config  # noqa: E402
from drumdiff.model.core.checkpoint import LoadedModel, build_model  # noqa: E402
from drumdiff.model.core.denoiser import Denoiser  # noqa: E402

torch.set_num_threads(1)


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
