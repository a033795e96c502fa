"""Seeded on-the-fly augmentations of training clips (paper section 6.3).

Each transform takes a clip (C, T) and a numpy Generator and returns a new clip of the same shape.
"""

from __future__ import annotations

import numpy as np

from drumdiff.model.config import AugmentConfig


def phase_flip(clip: np.ndarray) -> np.ndarray:
    return -clip


def repitch_in_place(clip: np.ndarray, semitones: float) -> np.ndarray:
    """Resampling-based shift (pitch and length change together, like a sampler), re-cut to T."""
    if semitones == 0:
        return clip.copy()
    import soxr

    ratio = 2.0 ** (semitones / 12.0)
    length = clip.shape[-1]
    # Reading the clip `ratio` times faster raises the pitch: resample from rate*ratio to rate.
    shifted = soxr.resample(clip.T, 1000.0 * ratio, 1000.0, quality="HQ").T
    out = np.zeros_like(clip)
    n = min(length, shifted.shape[-1])
    out[:, :n] = shifted[:, :n]
    return out


def saturate(clip: np.ndarray, drive: float) -> np.ndarray:
    """Soft clipping, tanh(drive * x) / tanh(drive): bounded by 1, keeps the peak at +-1 input."""
    return (np.tanh(drive * clip) / np.tanh(drive)).astype(np.float32)


def gain(clip: np.ndarray, db: float) -> np.ndarray:
    return (clip * 10 ** (db / 20)).astype(np.float32)


def augment(clip: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Apply each augmentation with its probability; deterministic for a given rng state.

    Every random number is drawn whether or not its transform fires, so one transform's
    probability does not change another's draws.
    """
    draws = rng.random(4)
    semis = rng.uniform(-cfg.pitch_semitones, cfg.pitch_semitones)
    drive = rng.uniform(*cfg.saturation_drive)
    db = rng.uniform(*cfg.gain_db)
    out = clip.astype(np.float32, copy=True)
    if draws[0] < cfg.pitch_p:
        out = repitch_in_place(out, semis)
    if draws[1] < cfg.saturation_p:
        out = saturate(out, drive)
    if draws[2] < cfg.gain_p:
        out = gain(out, db)
    if draws[3] < cfg.phase_flip_p:
        out = phase_flip(out)
    return out
