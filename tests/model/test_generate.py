"""render(): seeds in, finished float32 audio out; batches equal singles."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from drumdiff.model.config import FinishConfig
from drumdiff.model.core.checkpoint import LoadedModel
from drumdiff.model.core.sampling import SCHEDULED
from drumdiff.model.render.generate import (
    FADE_OUT_S,
    RenderSettings,
    class_index,
    render,
    settings_for,
    valid_length,
)


def _settings(model: LoadedModel, **kw: object) -> RenderSettings:
    return settings_for(model, **{"steps": 3, **kw})


def test_settings_come_from_the_config(tiny_model: LoadedModel) -> None:
    s = settings_for(tiny_model)
    cfg = tiny_model.config.sampling
    assert (s.steps, s.sampler, s.schedule, s.guidance, s.eta) == (
        cfg.steps,
        cfg.sampler,
        cfg.schedule,
        cfg.guidance,
        cfg.eta,
    )
    assert s.length is None
    s2 = settings_for(tiny_model, steps=9, sampler="heun", guidance=None)
    assert s2.steps == 9 and s2.sampler == "heun" and s2.guidance == cfg.guidance


@pytest.mark.parametrize("name", SCHEDULED)
def test_render_shape_dtype_and_peak(tiny_model: LoadedModel, name: str) -> None:
    audio = render(tiny_model, [1, 2], _settings(tiny_model, sampler=name), classes=["kick", None])
    assert audio.shape == (2, 1, tiny_model.config.model.length)
    assert audio.dtype == np.float32
    assert np.isfinite(audio).all()
    assert np.abs(audio).max() <= 0.999 + 1e-6
    assert np.abs(audio).max() > 0


def test_render_ends_with_a_fade(tiny_model: LoadedModel) -> None:
    audio = render(tiny_model, [3], _settings(tiny_model), classes=["snare"])
    fade = int(FADE_OUT_S * tiny_model.sample_rate)
    assert audio[0, 0, -1] == pytest.approx(0.0, abs=1e-6)
    assert np.abs(audio[0, 0, -fade // 8 :]).max() < np.abs(audio[0, 0, :-fade]).max()


@pytest.mark.parametrize("name", SCHEDULED)
def test_render_batch_equals_singles(tiny_model: LoadedModel, name: str) -> None:
    seeds, classes = [10, 11, 12, 13], ["kick", "snare", None, "kick"]
    settings = _settings(tiny_model, sampler=name)
    batch = render(tiny_model, seeds, settings, classes=classes)
    singles = np.concatenate(
        [render(tiny_model, [s], settings, classes=[c]) for s, c in zip(seeds, classes)]
    )
    np.testing.assert_allclose(batch, singles, rtol=1e-3, atol=1e-4)


def test_render_is_reproducible_and_seed_dependent(tiny_model: LoadedModel) -> None:
    s = _settings(tiny_model, sampler="ddpm")
    a = render(tiny_model, [5], s, classes=["kick"])
    b = render(tiny_model, [5], s, classes=["kick"])
    c = render(tiny_model, [6], s, classes=["kick"])
    d = render(tiny_model, [5], s, classes=["snare"])
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c) and not np.allclose(a, d)


def test_render_does_not_touch_the_global_rng(tiny_model: LoadedModel) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    render(tiny_model, [1], _settings(tiny_model, sampler="ddpm"))
    assert torch.equal(torch.rand(3), expected)


def test_one_hot_class_weights_render_like_the_class(tiny_model: LoadedModel) -> None:
    s = _settings(tiny_model)
    n = len(tiny_model.classes) + 1
    weights = np.zeros((2, n), np.float32)
    weights[0, 1] = 1.0
    weights[1, n - 1] = 1.0
    by_weights = render(tiny_model, [4, 5], s, class_weights=weights)
    by_name = render(tiny_model, [4, 5], s, classes=["snare", None])
    np.testing.assert_allclose(by_weights, by_name, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="class_weights must have shape"):
        render(tiny_model, [4], s, class_weights=weights)


@pytest.mark.parametrize("length", [2048, 1000, 2049, 4096, 5000, 1])
def test_render_any_length(tiny_model: LoadedModel, length: int) -> None:
    audio = render(tiny_model, [1], _settings(tiny_model, length=length), classes=["kick"])
    assert audio.shape == (1, 1, length)
    assert np.isfinite(audio).all()


def test_a_cut_render_is_the_start_of_the_full_one(tiny_model: LoadedModel) -> None:
    """Asking for fewer samples than the network's length cuts (and fades) the same render."""
    full = render(tiny_model, [2], _settings(tiny_model, length=2048), classes=["kick"])
    cut = render(tiny_model, [2], _settings(tiny_model, length=2040), classes=["kick"])
    head = 2040 - int(FADE_OUT_S * tiny_model.sample_rate)
    a, b = cut[..., :head].ravel(), full[..., :head].ravel()
    k = float(a @ b / (b @ b))  # peak_safe may scale each render by its own factor
    assert k > 0
    np.testing.assert_allclose(a, k * b, rtol=1e-4, atol=1e-5)


def test_valid_length(tiny_model: LoadedModel) -> None:
    assert valid_length(tiny_model, None) == 2048
    assert valid_length(tiny_model, 1) == 32
    assert valid_length(tiny_model, 32) == 32
    assert valid_length(tiny_model, 33) == 64
    for bad in (0, -5):
        with pytest.raises(ValueError, match="length must be positive"):
            valid_length(tiny_model, bad)


def test_class_index(tiny_model: LoadedModel) -> None:
    assert class_index(tiny_model, "kick") == 0
    assert class_index(tiny_model, "clap") == 3
    assert class_index(tiny_model, None) == 4
    assert class_index(tiny_model, 2) == 2
    with pytest.raises(ValueError, match="unknown class 'cowbell'"):
        class_index(tiny_model, "cowbell")
    with pytest.raises(ValueError, match="out of range"):
        class_index(tiny_model, 5)


def test_render_argument_errors(tiny_model: LoadedModel) -> None:
    s = _settings(tiny_model)
    with pytest.raises(ValueError, match="no seeds"):
        render(tiny_model, [], s)
    with pytest.raises(ValueError, match="2 classes for 1 seeds"):
        render(tiny_model, [1], s, classes=["kick", "snare"])
    with pytest.raises(ValueError, match="unknown sampler"):
        render(tiny_model, [1], dataclasses.replace(s, sampler="nope"))


def test_progress_reports_every_step(tiny_model: LoadedModel) -> None:
    calls: list[tuple[int, int]] = []
    render(
        tiny_model, [1], _settings(tiny_model, steps=4), progress=lambda i, n: calls.append((i, n))
    )
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_render_undoes_the_model_space(tiny_model: LoadedModel) -> None:
    """Training maps clips into model space (data_scale / envelope); renders map back."""

    def with_diffusion(**changes: object) -> LoadedModel:
        # Finishing off (no DC blocker, no normalisation): the raw scale must show through.
        raw = FinishConfig(peak=0.0, dc_cutoff_hz=0.0, learn_envelopes=False)
        cfg = dataclasses.replace(
            tiny_model.config,
            diffusion=dataclasses.replace(tiny_model.config.diffusion, **changes),
            finish=raw,
        )
        return LoadedModel(tiny_model.denoiser, cfg, 0, None)

    s = _settings(tiny_model, sampler="ddim")
    a = render(with_diffusion(data_scale=4.0, envelope=()), [1], s, classes=["kick"])
    b = render(with_diffusion(data_scale=8.0, envelope=()), [1], s, classes=["kick"])
    c = render(with_diffusion(data_scale=4.0, envelope=(0.5, 0.5)), [1], s, classes=["kick"])
    assert np.abs(a).max() < 0.99  # else peak_safe would rescale and hide the scale
    np.testing.assert_allclose(b, a / 2, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(c, a / 2, rtol=1e-5, atol=1e-7)
