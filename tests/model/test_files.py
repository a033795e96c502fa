"""Atomic writes: whole file or none, temporaries recognisable, nothing left behind on error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from drumdiff.model.files import (
    atomic_open,
    temporary_path,
    temporary_target,
    write_bytes_atomic,
    write_text_atomic,
)


def test_writes_replace_whole_files(tmp_path: Path) -> None:
    target = tmp_path / "hit.wav"
    write_bytes_atomic(target, b"first")
    write_bytes_atomic(target, b"second")
    assert target.read_bytes() == b"second"
    write_text_atomic(tmp_path / "a.json", "{}\n")
    assert (tmp_path / "a.json").read_text() == "{}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "hit.wav"]


def test_an_error_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "last.pt"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_open(target) as fh:
        fh.write(b"half")
        raise RuntimeError("disk gone")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_temporary_names_say_whose_they_are(tmp_path: Path) -> None:
    tmp = temporary_path(tmp_path / "kick_36.wav")
    assert tmp.parent == tmp_path and tmp.name.startswith(".")
    assert temporary_target(tmp.name) == ("kick_36.wav", os.getpid())
    assert temporary_target("kick_36.wav") is None
    assert temporary_target(".kick_36.wav.part-x") is None


def test_only_write_modes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="write mode"), atomic_open(tmp_path / "x", "rb"):
        pass
