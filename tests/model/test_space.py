"""The model space measured in one place: what it measures makes its clips white and level."""

from __future__ import annotations

import numpy as np
import torch

from drumdiff.model.config import DiffusionConfig
from drumdiff.model.core.space import audio_to_model, measure_space, space_weights


def _decaying_low_noise(seed: int, length: int = 4096) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = np.cumsum(rng.standard_normal(length)) * 0.01  # brown: most energy low
    envelope = np.exp(-np.arange(length) / 800.0)
    return (noise * envelope)[None].astype(np.float32)


def test_measured_space_flattens_its_clips_in_time_and_frequency() -> None:
    clips = [_decaying_low_noise(s) for s in range(24)]
    cfg = DiffusionConfig(spectrum_bands=65, envelope_block=512, envelope_floor=1e-6)
    spectrum, envelope = measure_space(clips, cfg)
    assert envelope[0] > 10 * envelope[-1]  # the clips decay...
    space = DiffusionConfig(
        spectrum=spectrum,
        envelope=envelope,
        spectrum_bands=65,
        envelope_block=512,
        envelope_floor=1e-6,
    )
    x = audio_to_model(torch.from_numpy(np.stack(clips)), space).numpy()
    block_rms = np.sqrt((x[..., : 8 * 512].reshape(len(clips), 8, 512) ** 2).mean(axis=(0, 2)))
    assert block_rms.max() / block_rms.min() < 1.5  # ...and in the model space they do not
    power = (np.abs(np.fft.rfft(x[:, 0], axis=-1)) ** 2).mean(axis=0)
    low, high = power[1:200].mean(), power[1200:1800].mean()
    assert 0.3 < low / high < 3  # and they are white


def test_space_weights_prefer_the_blend_then_the_class() -> None:
    blend = torch.tensor([[0.5, 0.5, 0.0]])
    assert space_weights(2, class_ids=torch.tensor([1]), class_weights=blend) is blend
    one_hot = space_weights(2, class_ids=torch.tensor([1]))
    assert one_hot is not None and one_hot.tolist() == [[0.0, 1.0, 0.0]]
    assert space_weights(2) is None
