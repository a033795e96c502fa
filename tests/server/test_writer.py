"""The watched folder: unique names, metadata, retention, and atomic publishing."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from drumdiff.model.wav import read_info, read_root_note
from drumdiff.server.config import WriterConfig
from drumdiff.server.writer import HIT_NAME, HitWriter, Published, WriteJob, hit_name


def job(
    seed: int = 1, frames: int = 2048, drum_class: str = "kick", note: int | None = 36
) -> WriteJob:
    rng = np.random.default_rng(seed)
    samples = (rng.uniform(-0.5, 0.5, (1, frames))).astype(np.float32)
    return WriteJob(samples, 44100, drum_class, note, 100, seed, {"steps": 4})


def test_name_tells_class_note_velocity_seed_time() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)
    name = hit_name(job(seed=42), when, 7)
    assert name == "kick_n036_v100_s42_20260102-030405-678_7.wav"
    assert HIT_NAME.match(name)
    # a hostile class name from a checkpoint cannot leave the folder
    assert "/" not in hit_name(job(drum_class="../../etc/x"), when, 1)
    assert hit_name(job(note=None), when, 1).startswith("kick_nxxx_")


def test_every_hit_is_a_new_file_with_metadata(tmp_path: Path) -> None:
    writer = HitWriter(
        WriterConfig(folder=str(tmp_path), subtype="FLOAT"), software="drumdiff test"
    )
    writer.start()
    try:
        first = writer.write(job(seed=5))
        second = writer.write(job(seed=5))  # same everything, same millisecond possibly
    finally:
        writer.stop()
    assert first.path != second.path and first.path.is_absolute()
    data, sr = sf.read(first.path, dtype="float32", always_2d=True)
    assert sr == 44100 and data.shape == (2048, 1)
    np.testing.assert_array_equal(data[:, 0], job(seed=5).samples[0])
    info = read_info(first.path)
    assert info["ISFT"] == "drumdiff test"
    assert json.loads(info["ICMT"])["seed"] == 5
    assert read_root_note(first.path) == 36
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_retention_keeps_the_newest_n(tmp_path: Path) -> None:
    (tmp_path / "mine.wav").write_bytes(b"not ours")  # never touched: not a daemon name
    writer = HitWriter(WriterConfig(folder=str(tmp_path), keep=3), software="t")
    writer.start()
    try:
        paths = [writer.write(job(seed=i)).path for i in range(6)]
    finally:
        writer.stop()
    remaining = sorted(p for p in tmp_path.iterdir() if HIT_NAME.match(p.name))
    assert remaining == sorted(paths[-3:])
    assert (tmp_path / "mine.wav").exists()


def test_queued_writes_call_back_after_the_rename(tmp_path: Path) -> None:
    writer = HitWriter(WriterConfig(folder=str(tmp_path)), software="t")
    writer.start()
    seen: list[bool] = []
    done = threading.Event()

    def then(result: Published | Exception) -> None:
        assert isinstance(result, Published)
        seen.append(result.path.exists())
        if len(seen) == 5:
            done.set()

    for i in range(5):
        writer.submit(job(seed=i), then)
    writer.stop()  # drains the queue first
    assert done.is_set() and seen == [True] * 5


def test_a_polling_watcher_never_sees_a_partial_wav(tmp_path: Path) -> None:
    """Read every visible WAV as soon as it appears while large files are being written."""
    frames = 44100 * 4  # 4 s float: 700 kB per file, so writes take long enough to race
    writer = HitWriter(WriterConfig(folder=str(tmp_path), subtype="FLOAT"), software="t")
    writer.start()
    stop = threading.Event()
    problems: list[str] = []
    checked: set[str] = set()

    def watch() -> None:
        while not stop.is_set() or len(checked) < 8:
            for entry in tmp_path.iterdir():
                if entry.name.startswith(".") or entry.name in checked:
                    continue  # hidden temporaries are invisible to a watcher by convention
                try:
                    data, _ = sf.read(entry, dtype="float32")
                except Exception as err:  # a partial file fails to parse or is short
                    problems.append(f"{entry.name}: {err}")
                    continue
                if len(data) != frames:
                    problems.append(f"{entry.name}: {len(data)} frames")
                checked.add(entry.name)

    watcher = threading.Thread(target=watch)
    watcher.start()
    for i in range(8):
        writer.submit(job(seed=i, frames=frames), lambda r: None)
    writer.stop()
    stop.set()
    watcher.join(30.0)
    assert not problems
    assert len(checked) == 8


def test_a_folder_that_cannot_be_written_is_reported_at_start(caplog: Any) -> None:
    import logging

    writer = HitWriter(
        WriterConfig(folder="/proc"), software="test"
    )  # no file can be made there, not even by root
    with caplog.at_level(logging.WARNING, logger="drumdiff.server.writer"):
        writer.start()
    try:
        assert not writer.writable
        assert any("is not writable" in r.getMessage() for r in caplog.records)
    finally:
        writer.stop()
