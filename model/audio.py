"""Audio as a small immutable value type, plus the few signal operations drumdiff needs."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from drumdiff.model.errors import AudioError

#: Extensions libsndfile reads that `prepare` scans for.
AUDIO_EXTENSIONS = (".wav", ".wave", ".aif", ".aiff", ".aifc", ".flac", ".ogg", ".oga", ".mp3")


@dataclass(frozen=True)
class DrumAudio:
    """samples: float32 array of shape (C, T); sample_rate in Hz. Methods return new objects."""

    samples: np.ndarray
    sample_rate: int

    def __post_init__(self) -> None:
        if self.samples.ndim != 2:
            raise ValueError(f"samples must be (channels, frames), got shape {self.samples.shape}")
        if self.sample_rate <= 0:
            raise ValueError(f"sample rate must be positive, got {self.sample_rate}")

    # -- constructors -------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path, *, max_seconds: float | None = None) -> DrumAudio:
        """Read any file libsndfile can; typed errors for unreadable or unusable audio."""
        path = Path(path)
        try:
            info = sf.info(str(path))
        except (RuntimeError, sf.LibsndfileError, OSError) as err:
            raise AudioError(f"unreadable: {str(err).splitlines()[0][:120]}") from None
        if info.samplerate <= 0:
            raise AudioError("zero sample rate")
        if info.frames <= 0:
            raise AudioError("empty")
        if max_seconds is not None and info.frames > max_seconds * info.samplerate:
            raise AudioError(
                f"too long ({info.frames / info.samplerate:.1f} s > {max_seconds:g} s)"
            )
        try:
            data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        except (RuntimeError, sf.LibsndfileError, OSError) as err:
            raise AudioError(f"unreadable: {str(err).splitlines()[0][:120]}") from None
        if data.size == 0:
            raise AudioError("empty")
        if not np.isfinite(data).all():
            raise AudioError("contains NaN or Inf")
        return cls(np.ascontiguousarray(data.T), int(rate))

    @classmethod
    def silence(cls, frames: int, sample_rate: int, channels: int = 1) -> DrumAudio:
        return cls(np.zeros((channels, frames), np.float32), sample_rate)

    # -- properties ---------------------------------------------------------------------------
    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def frames(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate

    @property
    def peak(self) -> float:
        return float(np.abs(self.samples).max()) if self.samples.size else 0.0

    # -- transforms ---------------------------------------------------------------------------
    def resampled(self, sample_rate: int) -> DrumAudio:
        """High-quality resampling (soxr VHQ)."""
        if sample_rate == self.sample_rate:
            return self
        import soxr

        out = soxr.resample(self.samples.T, self.sample_rate, sample_rate, quality="VHQ")
        return DrumAudio(np.ascontiguousarray(out.T, dtype=np.float32), sample_rate)

    def with_channels(self, channels: int) -> DrumAudio:
        """Mono by averaging, stereo by duplicating mono (or keeping the first two)."""
        if channels == self.channels:
            return self
        if channels == 1:
            return DrumAudio(self.samples.mean(axis=0, keepdims=True), self.sample_rate)
        if self.channels == 1:
            return DrumAudio(np.repeat(self.samples, channels, axis=0), self.sample_rate)
        return DrumAudio(self.samples[:channels].copy(), self.sample_rate)

    def onset_trimmed(self, threshold_db: float = -40.0, pre_roll: int = 0) -> DrumAudio:
        """Drop leading silence: start at the first frame above `threshold_db` re the peak."""
        env = np.abs(self.samples).max(axis=0)
        peak = float(env.max()) if env.size else 0.0
        if peak <= 0:
            return self
        above = np.flatnonzero(env >= peak * 10 ** (threshold_db / 20))
        start = max(0, int(above[0]) - pre_roll)
        return DrumAudio(self.samples[:, start:].copy(), self.sample_rate)

    def fixed_length(self, frames: int, fade_out: int = 0) -> DrumAudio:
        """Cut or zero-pad to `frames`; a cut end gets a raised-cosine fade of `fade_out` frames."""
        out = np.zeros((self.channels, frames), np.float32)
        n = min(frames, self.frames)
        out[:, :n] = self.samples[:, :n]
        if self.frames > frames and fade_out > 0:
            apply_fade_out(out, fade_out)
        return DrumAudio(out, self.sample_rate)

    def peak_normalized(self, peak: float = 0.95) -> DrumAudio:
        if self.peak <= 0:
            return self
        return DrumAudio(normalise_peak(self.samples, peak), self.sample_rate)

    def save(self, path: str | Path, subtype: str = "PCM_24") -> Path:
        path = Path(path)
        sf.write(str(path), self.samples.T, self.sample_rate, subtype=subtype)
        return path


def apply_fade_out(samples: np.ndarray, frames: int) -> None:
    """In-place raised-cosine fade over the last `frames` frames of (C, T) samples."""
    frames = min(frames, samples.shape[-1])
    if frames <= 0:
        return
    ramp = 0.5 * (1 + np.cos(np.linspace(0, math.pi, frames, dtype=np.float32)))
    samples[..., -frames:] *= ramp


def apply_fade_in(samples: np.ndarray, frames: int) -> None:
    """In-place raised-cosine fade over the first `frames` frames of (C, T) samples."""
    frames = min(frames, samples.shape[-1])
    if frames <= 0:
        return
    ramp = 0.5 * (1 - np.cos(np.linspace(0, math.pi, frames, dtype=np.float32)))
    samples[..., :frames] *= ramp


def normalise_peak(samples: np.ndarray, peak: float) -> np.ndarray:
    """Scale to `peak` (silence stays silent)."""
    top = float(np.abs(samples).max()) if samples.size else 0.0
    if top <= 0:
        return samples.astype(np.float32, copy=False)
    return (samples * (peak / top)).astype(np.float32)


def peak_safe(samples: np.ndarray, ceiling: float = 0.999) -> np.ndarray:
    """Scale down only if the peak exceeds `ceiling` (never clip, never boost)."""
    peak = float(np.abs(samples).max()) if samples.size else 0.0
    if peak > ceiling:
        return (samples * (ceiling / peak)).astype(np.float32)
    return samples.astype(np.float32, copy=False)
