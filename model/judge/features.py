"""Fixed audio features for the quality judge: log-mel, MFCC statistics and producer descriptors.

Nothing here is trained. The same log-mel front end feeds the drum classifier, the hand-made
feature space, and the copy detector, so one definition of "the spectrogram" serves them all.
Audio arrays are float32 (N, C, T) or (N, T); channels are averaged to mono for spectra.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor

N_FFT = 1024
HOP = 256
N_MELS = 64
FLOOR_DB = -100.0  # spectra and levels are clamped here so silence has a finite value


def _as_mono(audio: np.ndarray | Tensor) -> Tensor:
    """(N, C, T) or (N, T) -> float32 tensor (N, T)."""
    x = torch.as_tensor(np.asarray(audio) if not isinstance(audio, Tensor) else audio)
    x = x.float()
    if x.ndim == 3:
        x = x.mean(dim=1)
    if x.ndim != 2:
        raise ValueError(f"audio must be (N, C, T) or (N, T), got shape {tuple(x.shape)}")
    return x


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@functools.lru_cache(maxsize=16)
def mel_filterbank(
    sample_rate: int, n_fft: int = N_FFT, n_mels: int = N_MELS, fmin: float = 20.0
) -> Tensor:
    """Triangular HTK-mel filters, shape (n_mels, n_fft // 2 + 1), each summing to one."""
    bins = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(sample_rate / 2), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (bins[None] - lower) / np.maximum(centre - lower, 1e-9)
    down = (upper - bins[None]) / np.maximum(upper - centre, 1e-9)
    fb = np.maximum(0.0, np.minimum(up, down))
    # Low filters can be narrower than one FFT bin; give them their nearest bin so none is empty.
    for i in range(n_mels):
        if fb[i].sum() == 0:
            fb[i, int(np.argmin(np.abs(bins - centre[i, 0])))] = 1.0
    fb /= fb.sum(axis=1, keepdims=True)
    return torch.from_numpy(fb.astype(np.float32))


def power_spectrogram(audio: np.ndarray | Tensor, n_fft: int = N_FFT, hop: int = HOP) -> Tensor:
    """|STFT|^2 scaled so a full-scale sine peaks near 0 dB; shape (N, n_fft//2+1, frames)."""
    x = _as_mono(audio)
    if x.shape[-1] < n_fft:  # short clips (tests) still give at least one frame
        x = torch.nn.functional.pad(x, (0, n_fft - x.shape[-1]))
    window = torch.hann_window(n_fft)
    spec = torch.stft(
        x, n_fft, hop, window=window, center=True, pad_mode="constant", return_complex=True
    )
    return spec.abs().square() / (window.sum() / 2) ** 2


def log_mel(
    audio: np.ndarray | Tensor,
    sample_rate: int,
    *,
    n_mels: int = N_MELS,
    n_fft: int = N_FFT,
    hop: int = HOP,
) -> Tensor:
    """Log-mel spectrogram in dB (clamped at FLOOR_DB), shape (N, n_mels, frames)."""
    power = power_spectrogram(audio, n_fft, hop)
    mel = torch.einsum("mf,nft->nmt", mel_filterbank(sample_rate, n_fft, n_mels), power)
    return (10.0 * torch.log10(mel.clamp_min(1e-12))).clamp_min(FLOOR_DB)


@functools.lru_cache(maxsize=8)
def _dct_matrix(n_in: int, n_out: int) -> Tensor:
    """Orthonormal DCT-II rows (n_out, n_in), as used for MFCCs."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None]
    m = np.cos(math.pi / n_in * (n + 0.5) * k) * math.sqrt(2.0 / n_in)
    m[0] /= math.sqrt(2.0)
    return torch.from_numpy(m.astype(np.float32))


def handcrafted_features(
    audio: np.ndarray | Tensor, sample_rate: int, *, segments: int = 16
) -> np.ndarray:
    """A fixed, training-free feature vector per hit, shape (N, 106) float64.

    32-band log-mel mean and std over time (timbre and its movement), MFCC 1-13 mean and std
    (spectral shape, level-free), and the log energy of `segments` equal time slices (the
    envelope: onset-aligned one-shots differ from stationary noise here first).
    """
    lm = log_mel(audio, sample_rate, n_mels=32)  # (N, 32, F)
    mfcc = torch.einsum("km,nmt->nkt", _dct_matrix(32, 14)[1:], lm)  # (N, 13, F)
    x = _as_mono(audio)
    usable = x.shape[-1] - x.shape[-1] % segments
    slices = x[:, :usable].reshape(x.shape[0], segments, -1)  # (N, segments, T/segments)
    energy = 10.0 * torch.log10(slices.square().mean(-1).clamp_min(1e-10))
    parts = [lm.mean(-1), lm.std(-1), mfcc.mean(-1), mfcc.std(-1), energy.clamp_min(FLOOR_DB)]
    return torch.cat(parts, dim=1).double().numpy()


def copy_vectors(audio: np.ndarray | Tensor, sample_rate: int) -> np.ndarray:
    """Unit vectors for the copy detector: log-mel relative to its own maximum, centred.

    The 80 dB floor is relative and the mean is removed, so a gained copy of a clip maps to the
    same vector as the clip itself: cosine similarity 1 means "this is that training hit".
    """
    lm = log_mel(audio, sample_rate)  # (N, M, F)
    top = lm.amax(dim=(1, 2), keepdim=True)
    rel = torch.maximum(lm, top - 80.0).flatten(1).double()
    rel = rel - rel.mean(dim=1, keepdim=True)
    rel = rel / rel.norm(dim=1, keepdim=True).clamp_min(1e-9)
    return rel.float().numpy()


# --- descriptors producers hear --------------------------------------------------------------

#: name -> (unit, how generated is compared with real: "ratio" of medians or "delta" in dB)
DESCRIPTORS: dict[str, tuple[str, str]] = {
    "peak": ("linear", "ratio"),  # absolute sample peak
    "attack_s": ("s", "ratio"),  # envelope 10% -> 90% of its maximum
    "decay_s": ("s", "ratio"),  # envelope maximum -> last time it is within 30 dB of it
    "decay20_s": ("s", "ratio"),  # the same within 20 dB: how long the body rings
    "centroid_hz": ("Hz", "ratio"),  # power-weighted over the whole clip
    "start_level": ("share", "delta"),  # |first sample| / peak: ~1 is a click at the start
    "pre_onset_db": ("dBFS", "delta"),  # RMS before the onset; NaN when the onset is at the start
    "tail_db": ("dBFS", "delta"),  # RMS over 80-95% of the clip (after decay, before the end fade)
    "dc_db": ("dBFS", "delta"),  # |mean sample|
    "clipped": (
        "share",
        "delta",
    ),  # 1 when some channel holds a flat top of >= 3 samples at its peak
}

ENV_FRAME = 64
ENV_HOP = 16
DECAY_DB = 30.0
BODY_DB = 20.0
ONSET_DB = 30.0  # the onset is where the envelope first comes within this of its maximum


def _db(x: np.ndarray) -> np.ndarray:
    return np.maximum(20.0 * np.log10(np.maximum(x, 1e-10)), FLOOR_DB)


def _flat_top(channel: np.ndarray, run: int = 3) -> bool:
    """True when `run` consecutive samples sit at the channel's absolute peak (hard clipping,
    even after a later gain change; a sampled sine never repeats its peak value exactly)."""
    mag = np.abs(channel)
    peak = mag.max()
    if peak <= 0:
        return False
    at_peak = mag >= peak * (1 - 1e-6)
    if at_peak.sum() < run:
        return False
    counts = np.convolve(at_peak.astype(np.int32), np.ones(run, dtype=np.int32), mode="valid")
    return bool((counts >= run).any())


def descriptors(audio: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
    """Per-hit producer descriptors (see DESCRIPTORS), each an array of shape (N,)."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2:
        audio = audio[:, None]
    n, _, length = audio.shape
    mono = audio.mean(axis=1)
    out = {name: np.full(n, np.nan) for name in DESCRIPTORS}
    power = power_spectrogram(audio).numpy()  # (N, bins, F)
    freqs = np.linspace(0.0, sample_rate / 2, power.shape[1])
    for i in range(n):
        x = mono[i].astype(np.float64)
        out["peak"][i] = float(np.abs(audio[i]).max())
        if out["peak"][i] > 0:
            out["start_level"][i] = float(np.abs(audio[i][:, 0]).max() / out["peak"][i])
        frames = max(1, (length - ENV_FRAME) // ENV_HOP + 1)
        idx = np.arange(frames)[:, None] * ENV_HOP + np.arange(min(ENV_FRAME, length))[None]
        env = np.sqrt(np.square(x[idx]).mean(axis=1))  # (frames,) RMS envelope
        top = env.max()
        if top <= 0:
            continue
        k_peak = int(np.argmax(env))
        k10 = int(np.argmax(env >= 0.1 * top))
        k90 = int(np.argmax(env >= 0.9 * top))
        out["attack_s"][i] = max(0, k90 - k10) * ENV_HOP / sample_rate
        within = np.nonzero(env >= top * 10 ** (-DECAY_DB / 20))[0]
        out["decay_s"][i] = (within[-1] - k_peak) * ENV_HOP / sample_rate
        body = np.nonzero(env >= top * 10 ** (-BODY_DB / 20))[0]
        out["decay20_s"][i] = (body[-1] - k_peak) * ENV_HOP / sample_rate
        onset = int(np.argmax(env >= top * 10 ** (-ONSET_DB / 20))) * ENV_HOP
        if onset >= sample_rate // 1000:  # at least 1 ms of pre-onset audio to measure
            out["pre_onset_db"][i] = _db(np.sqrt(np.square(x[:onset]).mean()))
        tail = x[int(0.8 * length) : max(int(0.95 * length), int(0.8 * length) + 1)]
        out["tail_db"][i] = _db(np.sqrt(np.square(tail).mean()))
        out["dc_db"][i] = _db(np.abs(audio[i].mean(axis=-1)).max())
        p = power[i].sum(axis=-1)
        out["centroid_hz"][i] = float((freqs * p).sum() / max(p.sum(), 1e-20))
        out["clipped"][i] = float(any(_flat_top(ch) for ch in audio[i]))
    return out
