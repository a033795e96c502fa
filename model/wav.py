"""WAV files with the metadata a sampler wants: LIST/INFO text and the `smpl` root note.

libsndfile (through soundfile) does not expose the `smpl` chunk, so drumdiff writes the RIFF
container itself: PCM 16/24-bit or 32-bit float, `fmt `, optional `fact`, `data`, `LIST`/`INFO`
and `smpl`. Files open in every DAW and in libsndfile, Max `buffer~` and Pd `soundfiler`.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

import numpy as np

from drumdiff.model.files import write_bytes_atomic

SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")

# INFO ids by meaning (RIFF INFO list, Microsoft/IBM 1991 spec).
INFO_KEYS = {
    "software": b"ISFT",
    "comment": b"ICMT",
    "title": b"INAM",
    "date": b"ICRD",
    "genre": b"IGNR",
    "artist": b"IART",
    "keywords": b"IKEY",
}


def _pad(data: bytes) -> bytes:
    return data + (b"\0" if len(data) % 2 else b"")


def _chunk(ident: bytes, body: bytes) -> bytes:
    return ident + struct.pack("<I", len(body)) + _pad(body)


def _encode(samples: np.ndarray, subtype: str) -> tuple[bytes, int, int]:
    """(C, T) float -> (interleaved bytes, format tag, bits per sample)."""
    interleaved = np.ascontiguousarray(np.clip(samples, -1.0, 1.0).T)
    if subtype == "FLOAT":
        return interleaved.astype("<f4").tobytes(), 3, 32
    if subtype == "PCM_16":
        ints = np.round(interleaved * 32767.0).astype("<i2")
        return ints.tobytes(), 1, 16
    if subtype == "PCM_24":
        ints = np.round(interleaved * 8388607.0).astype("<i4")
        raw = ints.reshape(-1, 1).view(np.uint8)[:, :3]  # little-endian: low 3 bytes
        return raw.tobytes(), 1, 24
    raise ValueError(f"unknown WAV subtype {subtype!r}; expected one of {list(SUBTYPES)}")


def wav_bytes(
    samples: np.ndarray,
    sample_rate: int,
    *,
    subtype: str = "PCM_24",
    info: Mapping[str, str] | None = None,
    root_note: int | None = None,
) -> bytes:
    """The complete bytes of a WAV file for float samples (C, T) in [-1, 1]."""
    if samples.ndim != 2:
        raise ValueError(f"samples must be (channels, frames), got shape {samples.shape}")
    channels, frames = samples.shape
    data, tag, bits = _encode(samples.astype(np.float32, copy=False), subtype)
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, sample_rate, sample_rate * block, block, bits)
    chunks = [_chunk(b"fmt ", fmt)]
    if tag == 3:
        chunks.append(_chunk(b"fact", struct.pack("<I", frames)))
    chunks.append(_chunk(b"data", data))
    if info:
        entries = b""
        for key, value in info.items():
            ident = INFO_KEYS.get(key)
            if ident is None:
                raise ValueError(f"unknown INFO key {key!r}; expected one of {sorted(INFO_KEYS)}")
            text = value.encode("utf-8", "replace").replace(b"\0", b"") + b"\0"
            entries += _chunk(ident, text)
        chunks.append(_chunk(b"LIST", b"INFO" + entries))
    if root_note is not None:
        if not 0 <= root_note <= 127:
            raise ValueError(f"root note must be a MIDI note 0..127, got {root_note}")
        period_ns = round(1e9 / sample_rate)
        smpl = struct.pack("<9I", 0, 0, period_ns, root_note, 0, 0, 0, 0, 0)
        chunks.append(_chunk(b"smpl", smpl))
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def write_wav(
    path: str | Path,
    samples: np.ndarray,
    sample_rate: int,
    *,
    subtype: str = "PCM_24",
    info: Mapping[str, str] | None = None,
    root_note: int | None = None,
    fsync: bool = True,
) -> Path:
    """Write a WAV file at `path` (not atomically; see `write_wav_atomic`)."""
    path = Path(path)
    blob = wav_bytes(samples, sample_rate, subtype=subtype, info=info, root_note=root_note)
    with open(path, "wb") as fh:
        _write_all(fh, blob, fsync)
    return path


def _write_all(fh: BinaryIO, blob: bytes, fsync: bool) -> None:
    fh.write(blob)
    fh.flush()
    if fsync:
        os.fsync(fh.fileno())


def write_wav_atomic(
    path: str | Path,
    samples: np.ndarray,
    sample_rate: int,
    *,
    subtype: str = "PCM_24",
    info: Mapping[str, str] | None = None,
    root_note: int | None = None,
) -> Path:
    """Write to a hidden temporary name in the same folder, fsync, then rename into place.

    A reader polling the folder sees either no file or the whole file, never a partial one.
    """
    blob = wav_bytes(samples, sample_rate, subtype=subtype, info=info, root_note=root_note)
    return write_bytes_atomic(path, blob)


def read_chunks(path: str | Path) -> dict[str, bytes]:
    """The top-level RIFF chunks of a WAV file by id (LIST chunks keyed 'LIST')."""
    raw = Path(path).read_bytes()
    if raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise ValueError(f"{path} is not a RIFF/WAVE file")
    chunks: dict[str, bytes] = {}
    pos = 12
    while pos + 8 <= len(raw):
        ident = raw[pos : pos + 4].decode("latin-1")
        size = struct.unpack("<I", raw[pos + 4 : pos + 8])[0]
        chunks[ident] = raw[pos + 8 : pos + 8 + size]
        pos += 8 + size + (size % 2)
    return chunks


def read_info(path: str | Path) -> dict[str, str]:
    """LIST/INFO entries of a WAV file, keyed by their four-letter ids."""
    body = read_chunks(path).get("LIST", b"")
    if body[:4] != b"INFO":
        return {}
    out: dict[str, str] = {}
    pos = 4
    while pos + 8 <= len(body):
        ident = body[pos : pos + 4].decode("latin-1")
        size = struct.unpack("<I", body[pos + 4 : pos + 8])[0]
        out[ident] = body[pos + 8 : pos + 8 + size].rstrip(b"\0").decode("utf-8", "replace")
        pos += 8 + size + (size % 2)
    return out


def read_root_note(path: str | Path) -> int | None:
    body = read_chunks(path).get("smpl")
    if body is None or len(body) < 16:
        return None
    return int(struct.unpack("<I", body[12:16])[0])
