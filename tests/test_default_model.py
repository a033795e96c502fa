"""The shipped default model: small, fp16, EMA-only, rebuilds itself and renders."""

from __future__ import annotations

import numpy as np
import pytest

from drumdiff.model import DEFAULT_MODEL
from drumdiff.model.core.checkpoint import load_checkpoint, read_checkpoint
from drumdiff.model.render.generate import render, settings_for

pytestmark = pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason="no default model shipped")


def test_default_model_is_a_small_fp16_ema_export() -> None:
    assert DEFAULT_MODEL.stat().st_size <= 40 * 2**20
    payload = read_checkpoint(DEFAULT_MODEL)
    assert payload["model"] is None and payload["ema"]
    halves = [
        v
        for k, v in payload["ema"].items()
        if v.is_floating_point() and not k.endswith("fourier.weight")
    ]
    assert halves and all(str(v.dtype) == "torch.float16" for v in halves)
    cfg = payload["config"]
    assert cfg["model"]["sample_rate"] == 44100
    assert cfg["model"]["length"] / cfg["model"]["sample_rate"] >= 0.74
    assert {"kick", "snare", "clap", "closed_hat"} <= set(cfg["model"]["classes"])
    assert cfg["diffusion"]["spectrum"] and cfg["diffusion"]["envelope"]  # measured model space


def test_default_model_renders_a_finite_peak_safe_hit() -> None:
    model = load_checkpoint(DEFAULT_MODEL)
    hit = render(model, [3], settings_for(model, steps=2), classes=["kick"])
    assert hit.shape == (1, model.config.model.audio_channels, model.config.model.length)
    assert np.isfinite(hit).all() and 0 < np.abs(hit).max() <= 1.0
