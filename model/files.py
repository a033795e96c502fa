"""Atomic file writes: a hidden temporary name beside the target, fsync, then one rename.

A reader (a sampler watching a folder, a resumed run) sees either no file or the whole file,
never a half-written one. Temporary names are `.<name>.part-<pid>`, so a folder's owner can tell
the leftovers of a writer that died (`temporary_target`) from files that are being written.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.part-(?P<pid>\d+)$")


def temporary_path(path: str | Path) -> Path:
    """The hidden name `path` is written under by this process before its rename."""
    path = Path(path)
    return path.with_name(f".{path.name}.part-{os.getpid()}")


def temporary_target(name: str) -> tuple[str, int] | None:
    """(target name, writer pid) when `name` is one of these temporary names, else None."""
    match = _TEMPORARY.match(name)
    return (match["name"], int(match["pid"])) if match else None


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield the temporary path to write; rename it to `path` on success, remove it on error.

    For writers that need a file name rather than a handle (memory-mapped arrays); the caller
    flushes what it wrote before the block ends.
    """
    path = Path(path)
    tmp = temporary_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_open(path: str | Path, mode: str = "wb", *, fsync: bool = True) -> Iterator[IO[Any]]:
    """Open a temporary file for writing; on success flush, fsync and rename it to `path`."""
    if not mode.startswith("w"):
        raise ValueError(f"atomic_open writes whole files; mode {mode!r} is not a write mode")
    with atomic_path(path) as tmp, open(tmp, mode) as fh:
        yield fh
        fh.flush()
        if fsync:
            os.fsync(fh.fileno())


def write_bytes_atomic(path: str | Path, data: bytes, *, fsync: bool = True) -> Path:
    """Write `data` to `path` atomically."""
    with atomic_open(path, "wb", fsync=fsync) as fh:
        fh.write(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str, *, fsync: bool = True) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_open(path, "w", fsync=fsync) as fh:
        fh.write(text)
    return Path(path)
