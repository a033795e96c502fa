"""DrumAudio: an immutable value type whose transforms return new objects."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from drumdiff_testkit import make_hit

from drumdiff.model.audio import DrumAudio, apply_fade_out, peak_safe
from drumdiff.model.errors import AudioError, DrumDiffError


def _audio(channels: int = 1, frames: int = 4410, rate: int = 44100, **kw: object) -> DrumAudio:
    return DrumAudio(make_hit(frames, rate, channels, **kw), rate)  # type: ignore[arg-type]


def test_value_type_basics() -> None:
    a = _audio(2, 22050)
    assert a.channels == 2 and a.frames == 22050 and a.duration_s == pytest.approx(0.5)
    assert 0 < a.peak < 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.sample_rate = 1  # type: ignore[misc]
    with pytest.raises(ValueError, match="channels, frames"):
        DrumAudio(np.zeros(10, np.float32), 44100)
    with pytest.raises(ValueError, match="sample rate must be positive"):
        DrumAudio(np.zeros((1, 10), np.float32), 0)


def test_silence() -> None:
    s = DrumAudio.silence(100, 48000, channels=2)
    assert s.samples.shape == (2, 100) and s.samples.dtype == np.float32 and s.peak == 0.0


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
def test_from_file_round_trip(write_audio: Callable[..., Path], subtype: str) -> None:
    x = make_hit(2000, 44100, 2)
    a = DrumAudio.from_file(write_audio("s.wav", x, 44100, subtype))
    assert a.samples.shape == (2, 2000) and a.samples.dtype == np.float32 and a.sample_rate == 44100
    np.testing.assert_allclose(a.samples, x, atol=1e-4)
    path = a.save(Path(write_audio().parent) / "again.wav", subtype="FLOAT")
    np.testing.assert_array_equal(DrumAudio.from_file(path).samples, a.samples)


def test_from_file_errors(tmp_path: Path, write_audio: Callable[..., Path]) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all")
    with pytest.raises(AudioError, match="unreadable"):
        DrumAudio.from_file(junk)
    with pytest.raises(AudioError, match="unreadable"):
        DrumAudio.from_file(tmp_path / "absent.wav")
    with pytest.raises(AudioError, match="empty"):
        DrumAudio.from_file(write_audio("empty.wav", np.zeros((1, 0), np.float32)))
    long = write_audio("long.wav", np.zeros((1, 44100 * 3), np.float32))
    with pytest.raises(AudioError, match="too long"):
        DrumAudio.from_file(long, max_seconds=2.0)
    assert DrumAudio.from_file(long, max_seconds=5.0).frames == 44100 * 3
    nan = np.zeros((1, 10), np.float32)
    nan[0, 3] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        DrumAudio.from_file(write_audio("nan.wav", nan, subtype="FLOAT"))
    assert issubclass(AudioError, DrumDiffError)


def test_resampled_keeps_duration_and_pitch() -> None:
    a = DrumAudio(
        (0.5 * np.sin(2 * np.pi * 1000 * np.arange(48000) / 48000))[None].astype(np.float32), 48000
    )
    b = a.resampled(44100)
    assert b is not a and a.sample_rate == 48000 and a.frames == 48000  # original untouched
    assert b.sample_rate == 44100 and b.samples.dtype == np.float32
    assert abs(b.frames - 44100) <= 1
    spectrum = np.abs(np.fft.rfft(b.samples[0, 1000:-1000]))
    freq = np.argmax(spectrum) * 44100 / (b.frames - 2000)
    assert freq == pytest.approx(1000, abs=2)
    assert b.peak == pytest.approx(0.5, abs=0.01)
    assert a.resampled(48000) is a


def test_with_channels() -> None:
    st = DrumAudio(np.array([[1.0, 0.0], [0.0, 1.0]], np.float32), 44100)
    mono = st.with_channels(1)
    np.testing.assert_array_equal(mono.samples, [[0.5, 0.5]])
    assert mono.samples.dtype == np.float32
    dup = mono.with_channels(2)
    np.testing.assert_array_equal(dup.samples, [[0.5, 0.5], [0.5, 0.5]])
    assert st.with_channels(2) is st
    quad = DrumAudio(np.arange(8, dtype=np.float32).reshape(4, 2), 44100)
    np.testing.assert_array_equal(quad.with_channels(2).samples, [[0, 1], [2, 3]])


def test_onset_trimmed_drops_leading_silence() -> None:
    a = _audio(delay=1000)
    b = a.onset_trimmed(-40.0)
    assert b.frames == a.frames - 1000
    assert a.frames == 4410  # unchanged
    assert b.onset_trimmed(-40.0).frames == b.frames
    c = a.onset_trimmed(-40.0, pre_roll=100)
    assert c.frames == b.frames + 100
    silent = DrumAudio.silence(100, 44100)
    assert silent.onset_trimmed() is silent


def test_onset_threshold_is_relative_to_peak() -> None:
    x = np.zeros((1, 100), np.float32)
    x[0, 10] = 0.001  # -60 dB re peak: below a -40 dB threshold
    x[0, 20] = 0.1  # -20 dB
    x[0, 50] = 1.0
    a = DrumAudio(x, 44100)
    assert a.onset_trimmed(-40.0).frames == 80
    assert a.onset_trimmed(-70.0).frames == 90


def test_fixed_length_pads_and_cuts_with_fade() -> None:
    a = _audio(frames=1000)
    longer = a.fixed_length(1500)
    assert longer.frames == 1500
    np.testing.assert_array_equal(longer.samples[:, :1000], a.samples)
    assert not longer.samples[:, 1000:].any()
    cut = DrumAudio(np.ones((2, 1000), np.float32), 44100).fixed_length(600, fade_out=100)
    assert cut.frames == 600
    np.testing.assert_array_equal(cut.samples[:, :500], 1.0)
    assert cut.samples[0, -1] == pytest.approx(0.0, abs=1e-6)
    assert np.all(np.diff(cut.samples[0, 500:]) <= 1e-7)  # the fade only goes down
    no_fade = DrumAudio(np.ones((1, 1000), np.float32), 44100).fixed_length(600)
    assert no_fade.samples[0, -1] == 1.0
    padded = DrumAudio(np.ones((1, 10), np.float32), 44100).fixed_length(20, fade_out=5)
    assert padded.samples[0, 9] == 1.0  # padding is not a cut: no fade


def test_peak_normalized() -> None:
    a = _audio()
    b = a.peak_normalized(0.95)
    assert b.peak == pytest.approx(0.95, rel=1e-6)
    assert b.samples.dtype == np.float32
    np.testing.assert_allclose(b.samples / b.peak, a.samples / a.peak, rtol=1e-5, atol=1e-7)
    silent = DrumAudio.silence(10, 44100)
    assert silent.peak_normalized() is silent


def test_apply_fade_out_in_place() -> None:
    x = np.ones((2, 10), np.float32)
    apply_fade_out(x, 4)
    np.testing.assert_array_equal(x[:, :6], 1.0)
    assert x[0, 6] == pytest.approx(1.0) and x[0, 9] == pytest.approx(0.0, abs=1e-7)
    y = np.ones((1, 3), np.float32)
    apply_fade_out(y, 10)  # longer than the clip: fades the whole clip
    assert y[0, 0] == pytest.approx(1.0) and y[0, -1] == pytest.approx(0.0, abs=1e-7)
    z = np.ones((1, 3), np.float32)
    apply_fade_out(z, 0)
    np.testing.assert_array_equal(z, 1.0)


def test_peak_safe_never_clips_and_never_boosts() -> None:
    loud = np.array([[2.0, -4.0, 1.0]], np.float32)
    out = peak_safe(loud)
    assert np.abs(out).max() == pytest.approx(0.999)
    np.testing.assert_allclose(out / out[0, 0], loud / loud[0, 0])
    quiet = np.array([[0.1, -0.2]], np.float32)
    np.testing.assert_array_equal(peak_safe(quiet), quiet)
    assert peak_safe(np.zeros((1, 0), np.float32)).shape == (1, 0)
