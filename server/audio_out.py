"""Optional playback of every hit through sounddevice (PortAudio), polyphonic.

The worker thread prepares each hit once (gain applied, laid out as (frames, channels) float32)
and appends it to a deque; `deque.append`/`popleft` are atomic under the GIL, so the PortAudio
callback takes new voices without a lock the worker could hold. The callback then only adds
slices of those preloaded buffers into the output in place: no numpy allocation, no locks, no
I/O. Beyond `voices` hits, the oldest voice is stolen.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from typing import Any

import numpy as np

from drumdiff.server.config import AudioOutConfig

log = logging.getLogger("drumdiff.server.audio_out")


class Mixer:
    """The voice mixer, free of PortAudio so it can be tested (and benchmarked) directly."""

    def __init__(self, channels: int, voices: int) -> None:
        self.channels = channels
        self._incoming: deque[np.ndarray] = deque()
        self._buffers: list[np.ndarray | None] = [None] * voices
        self._positions = [0] * voices
        self._ages = [0] * voices
        self._clock = 0
        self.started_voices = 0  # written only by the callback; read for stats

    def prepare(self, samples: np.ndarray, gain: float = 1.0) -> np.ndarray:
        """(C, T) float -> (T, channels) float32 with gain; mono goes to every channel."""
        mono_or_multi = np.asarray(samples, dtype=np.float32)
        if mono_or_multi.shape[0] == 1:
            out = np.repeat(mono_or_multi.T, self.channels, axis=1)
        else:
            out = np.zeros((mono_or_multi.shape[1], self.channels), dtype=np.float32)
            n = min(self.channels, mono_or_multi.shape[0])
            out[:, :n] = mono_or_multi[:n].T
        if gain != 1.0:
            out *= np.float32(gain)
        return np.ascontiguousarray(out)

    def play(self, prepared: np.ndarray) -> None:
        """Queue a prepared buffer; the next callback starts it."""
        self._incoming.append(prepared)

    def mix(self, out: np.ndarray) -> None:
        """Fill `out` (frames, channels) with the sum of the active voices (callback thread)."""
        out.fill(0.0)
        buffers, positions = self._buffers, self._positions
        while self._incoming:
            queued = self._incoming.popleft()
            slot = self._free_slot()
            buffers[slot] = queued
            positions[slot] = 0
            self._clock += 1
            self._ages[slot] = self._clock
            self.started_voices += 1
        frames = out.shape[0]
        for i, buf in enumerate(buffers):
            if buf is None:
                continue
            pos = positions[i]
            n = min(frames, buf.shape[0] - pos)
            out[:n] += buf[pos : pos + n]
            pos += n
            if pos >= buf.shape[0]:
                buffers[i] = None
            positions[i] = pos

    def _free_slot(self) -> int:
        oldest, oldest_age = 0, None
        for i, buf in enumerate(self._buffers):
            if buf is None:
                return i
            if oldest_age is None or self._ages[i] < oldest_age:
                oldest, oldest_age = i, self._ages[i]
        return oldest

    @property
    def active(self) -> int:
        return sum(b is not None for b in self._buffers) + len(self._incoming)


class AudioOut:
    """An always-running PortAudio output stream that plays what `play` hands it."""

    def __init__(self, config: AudioOutConfig, sample_rate: int) -> None:
        self.config = config
        self.sample_rate = sample_rate
        self.mixer = Mixer(config.channels, config.voices)
        self._stream: Any = None
        self.underflows = 0

    def start(self) -> bool:
        """Open the device; False (after one log line) when it cannot be opened."""
        os.environ.setdefault("JACK_NO_START_SERVER", "1")
        try:
            import sounddevice as sd

            self._stream = sd.OutputStream(
                samplerate=self.sample_rate,
                channels=self.config.channels,
                dtype="float32",
                device=self.config.device,
                blocksize=self.config.blocksize,
                latency=self.config.latency,
                callback=self._callback,
            )
            self._stream.start()
        except Exception as err:  # OSError (no PortAudio), sd.PortAudioError (no device)
            self._stream = None
            log.warning("audio output unavailable (%s: %s)", type(err).__name__, err)
            return False
        log.info(
            "audio out on %r: %d channels at %d Hz, latency %.1f ms",
            self.config.device if self.config.device is not None else "default",
            self.config.channels,
            self.sample_rate,
            1e3 * float(self._stream.latency),
        )
        return True

    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status:
            self.underflows += 1
        self.mixer.mix(outdata)

    def play(self, samples: np.ndarray, gain: float = 1.0) -> None:
        if self._stream is None:
            return
        self.mixer.play(self.mixer.prepare(samples, gain))

    def close(self) -> None:
        if self._stream is not None:
            try:
                self._stream.stop()
                self._stream.close()
            except Exception as err:
                log.debug("closing audio out: %s", err)
            self._stream = None
