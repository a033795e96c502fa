"""The model space: the fixed, exactly invertible linear map between audio and what the network
diffuses, measured on the training data.

Diffusion noise is white and steady; drums are neither (most energy below 1 kHz, loud for a few
milliseconds). Audio is whitened in frequency by the training clips' amplitude spectrum, then
flattened in time by their RMS envelope, then scaled, so the network's residual errors come back
shaped like drums instead of as hiss or a noise bed. With per-class spaces each class has its own
spectrum and envelope, and a blend of classes uses their weighted geometric mean. Measured here
(`measure_space`), stored in the config (a checkpoint keeps the tables beside it), applied here
(`audio_to_model`, `model_to_audio`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import ParamSpec, TypeVar

import numpy as np
import torch
from torch import Tensor

from drumdiff.model.config import DiffusionConfig

P = ParamSpec("P")
R = TypeVar("R")


def _normal_tensors(fn: Callable[P, R]) -> Callable[P, R]:
    """Cached gains are built as normal tensors even when first asked for under
    `torch.inference_mode`, so a later autograd pass (the critic's) can use them."""

    @functools.wraps(fn)
    def build(*args: P.args, **kwargs: P.kwargs) -> R:
        with torch.inference_mode(False):
            return fn(*args, **kwargs)

    return build


@functools.lru_cache(maxsize=16)
@_normal_tensors
def envelope_gain(cfg: DiffusionConfig, length: int) -> Tensor:
    """Per-sample gain (length,) from audio to model space: data_scale / envelope.

    The envelope is linear between block centres and held flat before the first and after the
    last (so longer renders reuse the end of the clip's envelope).
    """
    if not cfg.envelope:
        return torch.full((length,), float(cfg.data_scale))
    env = np.maximum(np.asarray(cfg.envelope, dtype=np.float64), cfg.envelope_floor)
    centres = (np.arange(len(env)) + 0.5) * cfg.envelope_block
    curve = np.interp(np.arange(length) + 0.5, centres, env)
    return torch.from_numpy(cfg.data_scale / curve).float()


@functools.lru_cache(maxsize=16)
@_normal_tensors
def spectrum_gain(cfg: DiffusionConfig, length: int) -> Tensor:
    """Per-rfft-bin gain (length // 2 + 1,) that whitens audio: 1 / measured amplitude."""
    bins = length // 2 + 1
    if not cfg.spectrum:
        return torch.ones(bins)
    amp = np.asarray(cfg.spectrum, dtype=np.float64)
    amp = np.maximum(amp, amp.max() * 10 ** (cfg.spectrum_floor_db / 20))
    grid = np.linspace(0.0, 1.0, len(amp))
    return torch.from_numpy(1.0 / np.interp(np.linspace(0.0, 1.0, bins), grid, amp)).float()


def _filter(x: Tensor, gain: Tensor) -> Tensor:
    """Zero-phase filtering over the whole clip (circular, so exactly invertible)."""
    spec = torch.fft.rfft(x.float(), dim=-1) * gain.to(x.device)
    return torch.fft.irfft(spec, n=x.shape[-1], dim=-1).to(x.dtype)


@functools.lru_cache(maxsize=16)
@_normal_tensors
def _class_log_gains(cfg: DiffusionConfig, length: int, device: str) -> tuple[Tensor, Tensor]:
    """Log spectrum gains (K, bins) and log envelope gains (K, length) of every class's space.

    Cached per device: a training step on a GPU blends them there instead of on the CPU.
    """
    spectra = torch.stack(
        [spectrum_gain(replace(cfg, spectrum=s), length) for s in cfg.class_spectra]
    )
    envelopes = torch.stack(
        [envelope_gain(replace(cfg, envelope=e), length) for e in cfg.class_envelopes]
    )
    return spectra.log().to(device), envelopes.log().to(device)


def uses_class_spaces(cfg: DiffusionConfig) -> bool:
    return cfg.class_spaces and bool(cfg.class_spectra) and bool(cfg.class_envelopes)


def space_gains(
    cfg: DiffusionConfig,
    length: int,
    weights: Tensor | None = None,
    device: torch.device | str = "cpu",
) -> tuple[Tensor | None, Tensor]:
    """(spectrum gain or None, envelope gain) from audio to model space.

    Global: shapes (bins,) and (length,), on the CPU. With per-class spaces and class `weights`
    (B, K + 1; the last column is the null class): (B, 1, bins) and (B, 1, length) on `device`,
    each item's space the weighted geometric mean of its classes' spaces, or the global one when
    it has no class weight.
    """
    spectrum = spectrum_gain(cfg, length) if cfg.spectrum or uses_class_spaces(cfg) else None
    envelope = envelope_gain(cfg, length)
    if weights is None or not uses_class_spaces(cfg):
        return spectrum, envelope
    assert spectrum is not None
    log_spectra, log_envelopes = _class_log_gains(cfg, length, str(device))
    w = (
        weights[:, : len(cfg.class_spectra)]
        .detach()
        .to(log_spectra.device, torch.float32)
        .clamp_min(0)
    )
    total = w.sum(dim=1, keepdim=True)
    conditional = total > 0
    w = w / total.clamp_min(1e-12)
    spectra = torch.where(conditional, torch.exp(w @ log_spectra), spectrum.to(w.device)[None])
    envelopes = torch.where(conditional, torch.exp(w @ log_envelopes), envelope.to(w.device)[None])
    return spectra[:, None], envelopes[:, None]


def audio_to_model(audio: Tensor, cfg: DiffusionConfig, weights: Tensor | None = None) -> Tensor:
    """Audio (..., T) at clip level -> the space the network diffuses in.

    Whitened in frequency by the measured spectrum, then flattened in time by the measured
    envelope, then scaled: both are fixed, exactly invertible linear maps. With per-class spaces
    (`cfg.class_spaces`), `weights` (B, K + 1) picks each item's space (see `space_gains`).
    """
    spectrum, envelope = space_gains(cfg, audio.shape[-1], weights, audio.device)
    x = audio if spectrum is None else _filter(audio, spectrum)
    return x * envelope.to(x.device, x.dtype)


def model_to_audio(x: Tensor, cfg: DiffusionConfig, weights: Tensor | None = None) -> Tensor:
    """Inverse of `audio_to_model` (with the same `weights`)."""
    spectrum, envelope = space_gains(cfg, x.shape[-1], weights, x.device)
    audio = x / envelope.to(x.device, x.dtype)
    return audio if spectrum is None else _filter(audio, 1.0 / spectrum)


def one_hot_weights(class_ids: Tensor, num_classes: int) -> Tensor:
    """(B,) class ids (num_classes = the null class) -> (B, num_classes + 1) weights."""
    return torch.nn.functional.one_hot(class_ids.long().cpu(), num_classes + 1).float()


def measure_spectrum(clips: Iterable[np.ndarray], bands: int) -> tuple[float, ...]:
    """Mean amplitude spectrum of clips (C, T), in `bands` bands evenly spaced 0..Nyquist.

    Scaled so that white noise of unit variance measures 1 in every band.
    """
    total: np.ndarray | None = None
    count = 0
    length = 0
    for clip in clips:
        clip = np.asarray(clip, dtype=np.float64)
        length = clip.shape[-1]
        power = (np.abs(np.fft.rfft(clip, axis=-1)) ** 2 / length).mean(axis=0)
        total = power if total is None else total + power
        count += 1
    if total is None:
        raise ValueError("no clips to measure a spectrum from")
    mean = total / count
    edges = np.linspace(0, len(mean), bands + 1).round().astype(int)
    centres = np.linspace(0.0, 1.0, bands)
    band_power = np.array([mean[a : max(b, a + 1)].mean() for a, b in zip(edges[:-1], edges[1:])])
    # Re-sample band means onto evenly spaced points (band k sits at k / (bands - 1) of Nyquist).
    positions = (edges[:-1] + np.maximum(edges[1:] - 1, edges[:-1])) / 2 / max(1, len(mean) - 1)
    amp = np.sqrt(np.interp(centres, positions, band_power))
    return tuple(float(f"{v:.5g}") for v in amp)


def measure_envelope(clips: Iterable[np.ndarray] | np.ndarray, block: int) -> tuple[float, ...]:
    """RMS over clips (N, C, T) per block of `block` samples, rounded for a readable config."""
    total: np.ndarray | None = None
    count = 0
    for clip in clips:
        frames = clip.shape[-1] // block
        power = np.asarray(clip, dtype=np.float64)[..., : frames * block] ** 2
        power = power.reshape(-1, frames, block).mean(axis=(0, 2))
        total = power if total is None else total + power
        count += 1
    if total is None or count == 0:
        raise ValueError("no clips to measure an envelope from")
    return tuple(float(f"{v:.5g}") for v in np.sqrt(total / count))


def space_weights(
    num_classes: int, *, class_ids: Tensor | None = None, class_weights: Tensor | None = None
) -> Tensor | None:
    """What picks each item's space: its class blend (B, K + 1) when given, else its class id
    one-hot; None without either (the global space)."""
    if class_weights is not None:
        return class_weights
    if class_ids is not None:
        return one_hot_weights(class_ids, num_classes)
    return None


def measure_space_envelope(clips: Iterable[np.ndarray], cfg: DiffusionConfig) -> tuple[float, ...]:
    """The envelope of clips whitened by `cfg`'s spectrum, the order `audio_to_model` applies."""
    plain = replace(cfg, envelope=(), data_scale=1.0)
    whitened = (audio_to_model(torch.from_numpy(np.asarray(c)), plain).numpy() for c in clips)
    return measure_envelope(whitened, cfg.envelope_block)


def measure_space(
    clips: Sequence[np.ndarray], cfg: DiffusionConfig
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(spectrum, envelope) of one space from clips (C, T), read twice."""
    spectrum = measure_spectrum(clips, cfg.spectrum_bands)
    return spectrum, measure_space_envelope(clips, replace(cfg, spectrum=spectrum))
