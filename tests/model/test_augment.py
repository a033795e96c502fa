"""Seeded augmentations (paper section 6.3): shape kept, deterministic, exact or bounded."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from _audio_fixtures import tone

from drumdiff.model.config import AugmentConfig
from drumdiff.model.data.augment import augment, gain, phase_flip, repitch_in_place, saturate


@pytest.fixture
def clip() -> np.ndarray:
    """A normalised stereo-free clip (1, 2048) with a peak of 0.95."""
    x = tone(200, frames=2048, decay_s=0.02)
    return (x * (0.95 / np.abs(x).max())).astype(np.float32)


ALWAYS = AugmentConfig(phase_flip_p=1.0, pitch_p=1.0, saturation_p=1.0, gain_p=1.0)


def test_phase_flip_is_exact(clip: np.ndarray) -> None:
    out = phase_flip(clip)
    assert out.shape == clip.shape
    np.testing.assert_array_equal(out, -clip)
    np.testing.assert_array_equal(phase_flip(out), clip)


@pytest.mark.parametrize("semitones", [-1.0, -0.3, 0.0, 0.5, 1.0])
def test_pitch_shift_keeps_shape(clip: np.ndarray, semitones: float) -> None:
    out = repitch_in_place(clip, semitones)
    assert out.shape == clip.shape and out.dtype == np.float32
    assert np.isfinite(out).all()
    if semitones == 0:
        np.testing.assert_array_equal(out, clip)


def test_pitch_shift_moves_the_pitch(clip: np.ndarray) -> None:
    x = tone(1000, frames=2048, decay_s=10.0)
    up = repitch_in_place(x, 12.0)  # an octave up: twice the zero crossings over the same samples
    crossings = lambda a: int(np.count_nonzero(np.diff(np.signbit(a[0, :900]))))  # noqa: E731
    assert crossings(up) == pytest.approx(2 * crossings(x), rel=0.05)
    # Up is also shorter (a sampler played faster): the end is padded with silence.
    assert np.abs(repitch_in_place(clip, 1.0)[0, -50:]).max() <= np.abs(clip[0, -60:]).max()


def test_pitch_shift_on_stereo() -> None:
    x = tone(300, frames=2048, channels=2)
    out = repitch_in_place(x, -0.7)
    assert out.shape == (2, 2048)
    assert not np.allclose(out[0], out[1])


@pytest.mark.parametrize("drive", [1.0, 2.0, 3.0, 10.0])
def test_saturation_is_bounded_and_odd(clip: np.ndarray, drive: float) -> None:
    out = saturate(clip, drive)
    assert out.shape == clip.shape
    assert np.abs(out).max() <= 1.0 + 1e-6  # a +-1 input maps to +-1, never beyond
    np.testing.assert_allclose(saturate(-clip, drive), -out, atol=1e-7)
    loud = saturate(np.linspace(-4, 4, 101, dtype=np.float32)[None], drive)
    assert np.abs(loud).max() <= 1.0 / np.tanh(drive) + 1e-6
    assert np.all(np.diff(loud[0]) >= 0)  # monotonic: shape kept, no fold-over


def test_gain(clip: np.ndarray) -> None:
    np.testing.assert_allclose(gain(clip, -6.0), clip * 10 ** (-6 / 20), rtol=1e-6)
    assert gain(clip, 0.0).shape == clip.shape


def test_augment_is_deterministic_under_a_seed(clip: np.ndarray) -> None:
    cfg = AugmentConfig()
    a = [augment(clip, cfg, np.random.default_rng([0, s])) for s in range(20)]
    b = [augment(clip, cfg, np.random.default_rng([0, s])) for s in range(20)]
    for x, y in zip(a, b):
        assert x.shape == clip.shape and x.dtype == np.float32
        np.testing.assert_array_equal(x, y)
    # Different seeds give different clips (the default probabilities fire often enough).
    assert len({x.tobytes() for x in a}) > 10


def test_augment_everything_on_keeps_shape_and_bounds(clip: np.ndarray) -> None:
    for s in range(10):
        out = augment(clip, ALWAYS, np.random.default_rng(s))
        assert out.shape == clip.shape
        assert np.isfinite(out).all()
        assert np.abs(out).max() <= 1.0 + 1e-6  # saturation then gain <= 0 dB


def test_augment_off_is_identity(clip: np.ndarray) -> None:
    off = AugmentConfig(phase_flip_p=0.0, pitch_p=0.0, saturation_p=0.0, gain_p=0.0)
    np.testing.assert_array_equal(augment(clip, off, np.random.default_rng(3)), clip)


def test_augment_draws_do_not_depend_on_probabilities(clip: np.ndarray) -> None:
    # Switching only the phase flip on changes nothing but the sign: other draws are the same.
    base = AugmentConfig(phase_flip_p=0.0, pitch_p=0.0, saturation_p=0.0, gain_p=1.0)
    flip = dataclasses.replace(base, phase_flip_p=1.0)
    np.testing.assert_array_equal(
        augment(clip, flip, np.random.default_rng(7)),
        -augment(clip, base, np.random.default_rng(7)),
    )
