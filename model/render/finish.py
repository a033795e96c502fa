"""The last steps of every render, after the sampler: a class envelope limit, DC blocking, a tail
gate, the end fade and peak normalisation.

The envelope limit is the one that needs a word. A diffusion model's residual errors come back
shaped like its model space, whose envelope is the average of all training clips: a kick whose
own tail has died out still carries a faint, cymbal-long bed of noise. Each class's loudest
plausible envelope is measured on the training clips (a percentile, 75th by default, of block
RMS relative to the clip's peak), and any render is turned down wherever it is louder than its class
ever is
there. It only ever attenuates, and a render inside the bound passes unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from drumdiff.model.audio import apply_fade_in, apply_fade_out, normalise_peak, peak_safe
from drumdiff.model.config import FinishConfig

FLOOR_DB = -120.0


def instantaneous_power(audio: np.ndarray) -> np.ndarray:
    """|x + iH{x}|^2 / 2 along the last axis: the analytic signal's power, which averages to x^2.

    Unlike x^2 it does not swing with a tone's cycles, so a 50 Hz kick measured in 3 ms blocks
    has a steady level (and the limit never flattens single wave crests). Zero-padded to twice
    the length, so the end does not wrap onto the start.
    """
    x = np.asarray(audio, dtype=np.float64)
    length = x.shape[-1]
    n = 1 << int(np.ceil(np.log2(max(2 * length, 2))))
    spectrum = np.fft.fft(x, n=n, axis=-1)
    weights = np.zeros(n)
    weights[0] = weights[n // 2] = 1.0
    weights[1 : n // 2] = 2.0
    analytic = np.fft.ifft(spectrum * weights, axis=-1)[..., :length]
    return np.square(np.abs(analytic)) / 2


def block_rms_db(audio: np.ndarray, block: int) -> np.ndarray:
    """RMS level in dB per block of `block` samples over all channels, (..., C, T) -> (..., T //
    block),
    from the analytic signal's power (see `instantaneous_power`)."""
    frames = audio.shape[-1] // block
    power = instantaneous_power(audio)[..., : frames * block]
    power = power.reshape(*power.shape[:-1], frames, block).mean(axis=(-3, -1))
    return 10.0 * np.log10(np.maximum(power, 10 ** (FLOOR_DB / 10)))


def measure_class_envelopes(
    clips: Iterable[tuple[np.ndarray, int]], num_classes: int, block: int, percentile: float
) -> tuple[tuple[float, ...], ...]:
    """Per class, the `percentile` of block RMS in dB relative to each clip's peak.

    `clips` yields (clip (C, T), class id). A class with no clips gets () (no limit).
    """
    per_class: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
    for clip, cid in clips:
        peak = float(np.abs(clip).max())
        if peak <= 0:
            continue
        per_class[cid].append(block_rms_db(clip / peak, block))
    out: list[tuple[float, ...]] = []
    for curves in per_class:
        if not curves:
            out.append(())
            continue
        bound = np.percentile(np.stack(curves), percentile, axis=0)
        out.append(tuple(float(f"{v:.4g}") for v in bound))
    return tuple(out)


def limit_to_envelope(
    audio: np.ndarray, bound_db: Sequence[float], block: int, margin_db: float
) -> np.ndarray:
    """Turn `audio` (C, T) down wherever its block RMS (relative to its peak) exceeds the bound.

    Gains are computed per block, interpolated between block centres (so there are no steps), and
    never exceed 1. Blocks past the end of the bound reuse its last value.
    """
    peak = float(np.abs(audio).max())
    if peak <= 0 or not bound_db:
        return audio
    length = audio.shape[-1]
    level = block_rms_db(audio / peak, block)
    bound = np.asarray(bound_db, dtype=np.float64)
    if len(bound) < len(level):
        bound = np.concatenate([bound, np.full(len(level) - len(bound), bound[-1])])
    gain_db = np.minimum(0.0, bound[: len(level)] + margin_db - level)
    if not np.any(gain_db < 0):
        return audio
    centres = (np.arange(len(level)) + 0.5) * block
    gain = 10 ** (np.interp(np.arange(length) + 0.5, centres, gain_db) / 20)
    return (audio * gain).astype(np.float32)


def dc_block(audio: np.ndarray, sample_rate: int, cutoff_hz: float) -> np.ndarray:
    """One-pole DC blocker, y[n] = x[n] - x[n-1] + r * y[n-1] (x[-1] = y[-1] = 0), on the last axis.

    Run as a linear convolution of the first difference with r**k, truncated where r**k < 1e-7,
    through the FFT: the same result as the recursion, without a Python loop per sample.
    """
    if cutoff_hz <= 0:
        return audio
    length = audio.shape[-1]
    r = float(np.exp(-2 * np.pi * cutoff_hz / sample_rate))
    taps = min(length, int(np.ceil(np.log(1e-7) / np.log(r))) + 1)
    diff = np.diff(np.asarray(audio, dtype=np.float64), axis=-1, prepend=0.0)
    n = 1 << int(np.ceil(np.log2(length + taps - 1)))
    spec = np.fft.rfft(diff, n=n, axis=-1) * np.fft.rfft(r ** np.arange(taps), n=n)
    return np.fft.irfft(spec, n=n, axis=-1)[..., :length].astype(np.float32)


def gate_tail(
    audio: np.ndarray, sample_rate: int, threshold_db: float, block: int, release_s: float
) -> np.ndarray:
    """Fade `audio` (C, T) to silence after its last block louder than `threshold_db` re its peak.

    The fade (raised cosine, `release_s`) starts at the end of that block, so only audio already
    below the threshold is touched. A render loud to its end, or a threshold >= 0, passes unchanged.
    """
    peak = float(np.abs(audio).max())
    if threshold_db >= 0 or peak <= 0:
        return audio
    level = block_rms_db(audio / peak, block)
    loud = np.nonzero(level > threshold_db)[0]
    if len(loud) == 0 or loud[-1] == len(level) - 1:  # loud to the end (or too short to judge)
        return audio
    end = (int(loud[-1]) + 1) * block
    length = audio.shape[-1]
    release = max(1, min(int(release_s * sample_rate), length - end))
    gain = np.zeros(length, dtype=np.float64)
    gain[:end] = 1.0
    gain[end : end + release] = 0.5 * (1 + np.cos(np.pi * (np.arange(release) + 1) / release))
    return (audio * gain).astype(np.float32)


def envelope_bound(cfg: FinishConfig, weights: Sequence[float]) -> tuple[float, ...] | None:
    """The limit for a render conditioned on class `weights` (one per class, then the null class).

    A blend of classes may be as loud as the loudest of them at every moment; any weight on the
    null (unconditional) class, or a class never measured, means no limit.
    """
    envelopes = cfg.class_envelopes
    if not envelopes or len(weights) != len(envelopes) + 1 or weights[-1] > 0:
        return None
    chosen = [envelopes[c] for c, w in enumerate(weights[:-1]) if w > 0]
    if not chosen or any(not e for e in chosen):
        return None
    if len(chosen) == 1:
        return chosen[0]
    size = min(len(e) for e in chosen)
    return tuple(float(v) for v in np.max([e[:size] for e in chosen], axis=0))


def finish_render(
    audio: np.ndarray, cfg: FinishConfig, sample_rate: int, bound: Sequence[float] | None, fade: int
) -> np.ndarray:
    """Envelope limit (when there is a bound), DC blocker, fade-in, tail gate, end fade, then the
    peak (C, T)."""
    if bound:
        audio = limit_to_envelope(audio, bound, cfg.envelope_block, cfg.envelope_margin_db)
    audio = np.array(dc_block(audio, sample_rate, cfg.dc_cutoff_hz), dtype=np.float32)
    apply_fade_in(audio, int(round(cfg.fade_in_s * sample_rate)))
    audio = gate_tail(
        audio, sample_rate, cfg.tail_gate_db, cfg.tail_gate_block, cfg.tail_gate_release_s
    )
    apply_fade_out(audio, fade)
    return normalise_peak(audio, cfg.peak) if cfg.peak > 0 else peak_safe(audio)
