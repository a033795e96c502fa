"""The hand-written RIFF/WAVE writer: libsndfile reads it back, metadata survives."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from drumdiff.model.wav import (
    SUBTYPES,
    read_chunks,
    read_info,
    read_root_note,
    wav_bytes,
    write_wav,
    write_wav_atomic,
)

# Largest error after a write/read round trip: half a step of the writer's scale plus the
# difference between its scale (2^(n-1) - 1) and libsndfile's (2^(n-1)).
TOLERANCE = {"PCM_16": 1.5 / 32767, "PCM_24": 1.5 / 8388607, "FLOAT": 0.0}


def _signal(channels: int, frames: int = 1000) -> np.ndarray:
    rng = np.random.default_rng(channels)
    x = rng.uniform(-1, 1, size=(channels, frames)).astype(np.float32)
    x[0, :6] = [0.0, 1.0, -1.0, 0.5, -0.5, 1e-7]  # full scale and tiny values
    return x


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("subtype", SUBTYPES)
def test_soundfile_reads_back_the_samples(tmp_path: Path, subtype: str, channels: int) -> None:
    x = _signal(channels)
    path = write_wav(tmp_path / "a.wav", x, 44100, subtype=subtype)
    info = sf.info(str(path))
    assert info.samplerate == 44100
    assert info.channels == channels
    assert info.frames == x.shape[1]
    assert info.subtype == subtype
    assert info.format == "WAV"
    data, rate = sf.read(str(path), dtype="float64", always_2d=True)
    assert rate == 44100
    np.testing.assert_allclose(data.T, x.astype(np.float64), rtol=0, atol=TOLERANCE[subtype])


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24"])
def test_integer_codes_are_exact(tmp_path: Path, subtype: str) -> None:
    bits = 16 if subtype == "PCM_16" else 24
    scale = 2 ** (bits - 1) - 1
    x = np.array([[0.0, 1.0, -1.0, 0.5, -0.5, 3 / scale, -3 / scale]], np.float32)
    path = write_wav(tmp_path / "c.wav", x, 48000, subtype=subtype)
    ints, _ = sf.read(str(path), dtype="int32", always_2d=True)
    shift = 32 - bits  # libsndfile left-aligns integer samples in int32
    codes = ints[:, 0] >> shift
    assert codes.tolist() == [0, scale, -scale, round(0.5 * scale), -round(0.5 * scale), 3, -3]


@pytest.mark.parametrize("subtype", SUBTYPES)
def test_values_beyond_full_scale_are_clipped_not_wrapped(tmp_path: Path, subtype: str) -> None:
    x = np.array([[1.5, -2.0, 0.25]], np.float32)
    data, _ = sf.read(str(write_wav(tmp_path / "o.wav", x, 44100, subtype=subtype)), always_2d=True)
    assert data[0, 0] > 0.99 and data[1, 0] < -0.99
    assert abs(data[2, 0] - 0.25) < 1e-3


def test_odd_sizes_are_padded_and_the_riff_size_is_right(tmp_path: Path) -> None:
    x = np.zeros((1, 3), np.float32)  # 9 data bytes at 24 bit: an odd chunk
    path = write_wav(tmp_path / "odd.wav", x, 44100, subtype="PCM_24", info={"title": "ab"})
    raw = path.read_bytes()
    assert struct.unpack("<I", raw[4:8])[0] == len(raw) - 8
    assert len(raw) % 2 == 0
    chunks = read_chunks(path)
    assert len(chunks["data"]) == 9
    assert sf.info(str(path)).frames == 3


def test_float_files_carry_a_fact_chunk(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "f.wav", np.zeros((2, 10), np.float32), 44100, subtype="FLOAT")
    chunks = read_chunks(path)
    assert struct.unpack("<I", chunks["fact"])[0] == 10
    tag, channels, rate, byte_rate, block, bits = struct.unpack("<HHIIHH", chunks["fmt "][:16])
    assert (tag, channels, rate, byte_rate, block, bits) == (3, 2, 44100, 44100 * 8, 8, 32)


def test_info_and_smpl_chunks_read_back(tmp_path: Path) -> None:
    info = {
        "software": "drumdiff 0.1.0",
        "comment": '{"seed": 7, "class": "kick"}',
        "title": "kick_seed7",
        "date": "2025-01-01T00:00:00+00:00",
        "genre": "drums",
        "artist": "ümlaut",  # non-ASCII survives as UTF-8
        "keywords": "odd",  # odd length: padded
    }
    path = write_wav(tmp_path / "m.wav", _signal(1, 64), 44100, info=info, root_note=36)
    got = read_info(path)
    assert got == {
        "ISFT": info["software"],
        "ICMT": info["comment"],
        "INAM": info["title"],
        "ICRD": info["date"],
        "IGNR": info["genre"],
        "IART": info["artist"],
        "IKEY": info["keywords"],
    }
    assert read_root_note(path) == 36
    smpl = read_chunks(path)["smpl"]
    assert len(smpl) == 36
    assert struct.unpack("<I", smpl[8:12])[0] == round(1e9 / 44100)  # sample period in ns
    # libsndfile still reads the audio, and sees the same title
    assert sf.info(str(path)).frames == 64
    with sf.SoundFile(str(path)) as fh:
        assert fh.title == "kick_seed7"


def test_no_metadata_no_chunks(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "plain.wav", _signal(1, 8), 44100)
    assert set(read_chunks(path)) == {"fmt ", "data"}
    assert read_info(path) == {} and read_root_note(path) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"subtype": "PCM_8"}, "unknown WAV subtype"),
        ({"info": {"producer": "x"}}, "unknown INFO key"),
        ({"root_note": 128}, "MIDI note 0..127"),
        ({"root_note": -1}, "MIDI note 0..127"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        wav_bytes(np.zeros((1, 4), np.float32), 44100, **kwargs)  # type: ignore[arg-type]


def test_samples_must_be_channels_by_frames() -> None:
    with pytest.raises(ValueError, match="channels, frames"):
        wav_bytes(np.zeros(4, np.float32), 44100)


def test_atomic_write_leaves_only_the_file(tmp_path: Path) -> None:
    path = write_wav_atomic(tmp_path / "hit.wav", _signal(1, 32), 44100, subtype="FLOAT")
    assert os.listdir(tmp_path) == ["hit.wav"]
    assert path.read_bytes() == wav_bytes(_signal(1, 32), 44100, subtype="FLOAT")


def test_atomic_write_cleans_up_on_failure(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_wav_atomic(tmp_path / "bad.wav", _signal(1, 8), 44100, subtype="PCM_8")
    assert os.listdir(tmp_path) == []


def test_read_chunks_refuses_non_wav(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    path.write_bytes(b"RIFX0000WAVE")
    with pytest.raises(ValueError, match="not a RIFF/WAVE"):
        read_chunks(path)
