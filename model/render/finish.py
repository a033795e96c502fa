"""The last steps of every render, after the sampler: a class envelope limit, patch-grid
suppression, DC blocking, a tail gate, the end fade and peak normalisation.

The envelope limit is the one that needs a word. A diffusion model's residual errors come back
shaped like its model space, whose envelope is the average of all training clips: a kick whose
own tail has died out still carries a faint, cymbal-long bed of noise. Each class's loudest
plausible envelope is measured on the training clips (a percentile, 75th by default, of block
RMS relative to the clip's peak), and any render is turned down wherever it is louder than its class
ever is
there. It only ever attenuates, and a render inside the bound passes unchanged.
"""

from __future__ import annotations

import functools
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
    clips: Iterable[tuple[np.ndarray, int]],
    num_classes: int,
    block: int,
    percentile: float | Sequence[float],
) -> tuple[tuple[float, ...], ...]:
    """Per class, the `percentile` (one for all, or one per class id) of block RMS in dB relative
    to each clip's peak.

    `clips` yields (clip (C, T), class id). A class with no clips gets () (no limit).
    """
    if isinstance(percentile, (int, float)):
        percentiles = [float(percentile)] * num_classes
    else:
        percentiles = [float(p) for p in percentile]
    if len(percentiles) != num_classes:
        raise ValueError(f"{len(percentiles)} percentiles for {num_classes} classes")
    per_class: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
    for clip, cid in clips:
        peak = float(np.abs(clip).max())
        if peak <= 0:
            continue
        per_class[cid].append(block_rms_db(clip / peak, block))
    out: list[tuple[float, ...]] = []
    for curves, share in zip(per_class, percentiles):
        if not curves:
            out.append(())
            continue
        bound = np.percentile(np.stack(curves), share, axis=0)
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


def _fast_length(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n: FFT sizes that numpy transforms quickly."""
    best = 1 << int(np.ceil(np.log2(max(n, 1))))
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            size = p35 << max(0, int(np.ceil(np.log2(n / p35))))
            best = min(best, size)
            p35 *= 3
        p5 *= 5
    return best


class _Convolver:
    """Centred convolutions of (..., length) signals with fixed odd-length kernels through one
    FFT size, the kernels' spectra computed once."""

    def __init__(self, length: int, kernels: dict[str, np.ndarray]) -> None:
        self.length = length
        self.size = _fast_length(length + max(len(k) for k in kernels.values()) - 1)
        self.spectra = {name: np.fft.rfft(k, n=self.size) for name, k in kernels.items()}
        self.offsets = {name: (len(k) - 1) // 2 for name, k in kernels.items()}

    def __call__(self, signal: np.ndarray, kernel: str) -> np.ndarray:
        spectrum = np.fft.rfft(signal, n=self.size, axis=-1) * self.spectra[kernel]
        start = self.offsets[kernel]
        return np.fft.irfft(spectrum, n=self.size, axis=-1)[..., start : start + self.length]


@functools.lru_cache(maxsize=8)
def _grid_filters(
    length: int, period: int, window: int, smooth: int, block: int
) -> tuple[_Convolver, np.ndarray, np.ndarray]:
    """The kernels of `suppress_patch_grid`, the comb's coverage of each sample (the sum of its
    weights that fall inside the audio) and, per sample, the share of broadband power the comb
    passes there."""
    # A mean over exactly one period has zeros at every multiple of the patch rate; for an even
    # period, half-weighted end taps keep the kernel odd (centred) with the same zeros.
    one_period = np.ones(period + 1 - period % 2)
    if period % 2 == 0:
        one_period[[0, -1]] = 0.5
    one_period /= period
    window += 1 - window % 2  # odd, so that the middle tap is the moment itself
    hann = np.hanning(window + 2)[1:-1]
    comb = np.zeros((window - 1) * period + 1)
    comb[::period] = hann
    # Leave the moment itself out: what repeats is then measured on the other periods alone, so
    # broadband sound is uncorrelated with it and only a real repetition correlates.
    comb[(window - 1) // 2 * period] = 0.0

    def smoothing(size: int) -> np.ndarray:
        kernel = np.hanning(size + 1 - size % 2)
        return kernel / kernel.sum()

    kernels = {"period": one_period, "comb": comb, "comb_squared": np.square(comb)}
    convolve = _Convolver(
        length, {**kernels, "level": smoothing(block), "local": smoothing(smooth)}
    )
    # Near the ends the comb reaches past the audio: average over the periods that are there.
    # Fewer periods there pass a larger share of broadband power (up to twice it at the ends).
    coverage = convolve(np.ones(length), "comb")
    return convolve, coverage, convolve(np.ones(length), "comb_squared") / np.square(coverage)


def suppress_patch_grid(
    audio: np.ndarray, period: int, window: int, smooth: int, threshold: float, block: int = 256
) -> np.ndarray:
    """Remove the part of `audio` (C, T) that repeats every `period` samples, where it is there.

    A patched network's output patches do not join seamlessly: renders carry a buzz at
    sample_rate / period and its multiples, strongest in quiet bodies and tails (in the shipped
    model's "other" hits the lines stand 20-30 dB over their neighbourhood there).

    The audio above its low band (less its mean over one period, which keeps everything near DC,
    a kick's body included) is divided by its own level (RMS over `block` samples), so a loud
    attack weighs no more than a quiet tail. What repeats near each moment is the Hann-weighted
    mean of the samples whole periods away over `window` periods, the moment itself left out (its
    lines are a few Hz wide), less its own mean over one period. It is subtracted, at the audio's
    level, with its local least-squares weight in the audio (over `smooth` samples), less a
    margin of `threshold` times what broadband sound shares with it by chance (the comb's noise
    bandwidth, sum w^2 / (sum w)^2 of the weights that fall inside the audio), clipped to [0, 1].
    Sound that does not repeat (noise, transients, a pattern found elsewhere in the render but
    not here) is uncorrelated with it and passes untouched, as do tones away from the lines.
    """
    x = np.asarray(audio, dtype=np.float64)
    length = x.shape[-1]
    if period < 2 or window < 3 or length < 2 * period:
        return audio
    convolve, coverage, share = _grid_filters(length, period, window, smooth, block)
    above_low = x - convolve(x, "period")
    level = np.sqrt(convolve(np.square(above_low).sum(axis=0), "level").clip(0))
    level = np.maximum(level, 1e-4 * level.max() + 1e-30)
    unit = above_low / level
    repeating = convolve(unit, "comb") / coverage
    repeating -= convolve(repeating, "period")
    # The local least-squares weight of the repeating part in the audio, less a margin of
    # `threshold` times what broadband sound would put there by chance.
    shared_power = convolve((unit * repeating).sum(axis=0), "local")
    repeating_power = convolve(np.square(repeating).sum(axis=0), "local")
    broadband_power = convolve(np.square(unit).sum(axis=0), "local")
    excess = shared_power - threshold * share * broadband_power
    gain = np.clip(excess / np.maximum(repeating_power, 1e-30), 0.0, 1.0)
    return (x - gain * level * repeating).astype(np.float32)


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


def finish_patch_grid(
    audio: np.ndarray, cfg: FinishConfig, sample_rate: int, patch: int
) -> np.ndarray:
    """`suppress_patch_grid` with the config's settings, for a network with `patch`-sample
    patches (none for 0 or 1, or when `cfg.grid_threshold` is 0)."""
    if patch <= 1 or cfg.grid_threshold <= 0:
        return audio
    window = max(3, int(round(cfg.grid_window_s * sample_rate / patch)))
    smooth = max(1, int(round(cfg.grid_smooth_s * sample_rate)))
    return suppress_patch_grid(audio, patch, window, smooth, cfg.grid_threshold)


def finish_render(
    audio: np.ndarray,
    cfg: FinishConfig,
    sample_rate: int,
    bound: Sequence[float] | None,
    fade: int,
    patch: int = 0,
    keep: int | None = None,
) -> np.ndarray:
    """Patch-grid suppression (for a network with `patch`-sample patches), then the first `keep`
    samples (all: None) get the envelope limit (when there is a bound), DC blocker, fade-in, tail
    gate, end fade, then the peak (C, T).

    The suppression looks ~90 ms either way, so it runs on the network's whole output before the
    cut: a shorter render is then the start of the longer one.
    """
    audio = finish_patch_grid(audio, cfg, sample_rate, patch)[..., :keep]
    if bound:
        audio = limit_to_envelope(audio, bound, cfg.envelope_block, cfg.envelope_margin_db)
    audio = np.array(dc_block(audio, sample_rate, cfg.dc_cutoff_hz), dtype=np.float32)
    apply_fade_in(audio, int(round(cfg.fade_in_s * sample_rate)))
    audio = gate_tail(
        audio, sample_rate, cfg.tail_gate_db, cfg.tail_gate_block, cfg.tail_gate_release_s
    )
    apply_fade_out(audio, fade)
    return normalise_peak(audio, cfg.peak) if cfg.peak > 0 else peak_safe(audio)
