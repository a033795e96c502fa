"""The watched folder: every hit becomes a new WAV file, published atomically.

A DAW may still hold an earlier file open (Windows refuses to replace it), so files are never
overwritten: each name carries class, note, velocity, seed and time plus a counter. Each file is
written to a hidden temporary name in the same folder, flushed and fsynced, then renamed
(`model.wav.write_wav_atomic`), so a watcher sees either no file or the whole file. The `done`
reply is sent only after the rename; the folder entry is fsynced right after it (for power-cut
durability), off the trigger-to-done path. Names are built from
the model's class names and numbers only, never from request strings.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from drumdiff.model.files import temporary_target
from drumdiff.model.wav import write_wav_atomic
from drumdiff.server.config import WriterConfig

log = logging.getLogger("drumdiff.server.writer")

#: Names the daemon writes; retention only ever deletes files matching this.
HIT_NAME = re.compile(r"^[a-z0-9_]+_n(\d{3}|xxx)_v\d{3}_s\d+_\d{8}-\d{6}-\d{3}_\d+\.wav$")
_UNSAFE = re.compile(r"[^a-z0-9_]+")


@dataclass(frozen=True)
class WriteJob:
    """One hit to publish: samples already at their final gain."""

    samples: np.ndarray  # (C, T) float32
    sample_rate: int
    drum_class: str
    note: int | None
    velocity: int
    seed: int
    params: Mapping[str, Any] = field(default_factory=dict)  # recorded in LIST/INFO ICMT as JSON
    root_note: int | None = None  # the `smpl` root note; None = `note`


@dataclass(frozen=True)
class Published:
    path: Path  # absolute
    frames: int
    seconds: float  # time spent writing


def hit_name(job: WriteJob, when: datetime, counter: int) -> str:
    """`kick_n036_v100_s12345_20260101-120000-123_7.wav`: sortable, unique, safe."""
    label = _UNSAFE.sub("_", job.drum_class.lower()).strip("_")[:32] or "hit"
    note = f"{job.note:03d}" if job.note is not None else "xxx"
    stamp = when.strftime("%Y%m%d-%H%M%S-") + f"{when.microsecond // 1000:03d}"
    return f"{label}_n{note}_v{job.velocity:03d}_s{job.seed}_{stamp}_{counter}.wav"


class HitWriter:
    """One writer thread; `submit` queues a job and `then(result)` runs after the rename."""

    def __init__(self, config: WriterConfig, *, software: str) -> None:
        self.config = config
        self.folder = Path(config.folder).expanduser().resolve()
        self.software = software
        self._queue: queue.Queue[
            tuple[WriteJob, Callable[[Published | Exception], None]] | None
        ] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._counter = 0
        self._kept: deque[Path] = deque()
        self.writable = True  # what start() found

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.writable = _can_write(self.folder)
        if not self.writable:
            # Not fatal: permissions can be fixed (or a drive remounted) while the daemon runs.
            log.warning(
                "the watched folder %s is not writable: every hit will fail with render_error "
                "until it is",
                self.folder,
            )
        self._remove_stale_partials()
        if self.config.keep:
            existing = [p for p in self.folder.iterdir() if HIT_NAME.match(p.name)]
            existing.sort(key=lambda p: (p.stat().st_mtime, p.name))
            self._kept.extend(existing)
            self._apply_retention()
        self._thread = threading.Thread(target=self._work, name="drumdiff-writer", daemon=True)
        self._thread.start()

    def submit(self, job: WriteJob, then: Callable[[Published | Exception], None]) -> None:
        self._queue.put((job, then))

    def stop(self, timeout: float = 30.0) -> None:
        """Write everything queued so far, then stop."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("writer did not finish within %.0f s", timeout)
        self._thread = None

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            job, then = item
            try:
                result: Published | Exception = self.write(job)
            except Exception as err:  # disk full, permissions: answer the request, keep serving
                log.error("writing a %s hit failed: %s", job.drum_class, err)
                result = err
            try:
                then(result)
            except Exception:
                log.exception("after-write callback failed")
            if isinstance(result, Published) and self._queue.empty():
                # The rename is visible at once; syncing the folder entry only makes it survive
                # a power cut. Done after `done` (and once per burst) because it is the slow
                # tail of a write here (p99 ~4 ms of the ~5 ms trigger-to-done budget).
                self._sync_folder()

    def write(self, job: WriteJob) -> Published:
        """Publish one hit now (on the calling thread)."""
        started = time.perf_counter()
        if not self.folder.is_dir():
            # Deleted while serving (a user tidying up): make it again, but only the folder
            # itself. A missing parent (an unmounted drive) or a file in its place stays an
            # error that the request's `fail` reports; the next hit tries again.
            self.folder.mkdir()
            log.warning("the watched folder %s was gone; made it again", self.folder)
        now = datetime.now(timezone.utc)
        while True:
            self._counter += 1
            path = self.folder / hit_name(job, now, self._counter)
            if not path.exists():
                break
        info = {
            "software": self.software,
            "title": path.stem,
            "date": now.isoformat(timespec="milliseconds"),
            "comment": json.dumps(
                {
                    "class": job.drum_class,
                    "note": job.note,
                    "velocity": job.velocity,
                    "seed": job.seed,
                    **job.params,
                },
                sort_keys=True,
            ),
        }
        write_wav_atomic(
            path,
            job.samples,
            job.sample_rate,
            subtype=self.config.subtype,
            info=info,
            root_note=job.note if job.root_note is None else job.root_note,
        )
        if self.config.keep:
            self._kept.append(path)
            self._apply_retention()
        return Published(path, int(job.samples.shape[-1]), time.perf_counter() - started)

    def _sync_folder(self) -> None:
        try:
            _fsync_dir(self.folder)
        except OSError as err:
            log.warning("could not sync the watched folder %s: %s", self.folder, err)

    def _remove_stale_partials(self) -> None:
        """Delete hidden temporaries that a killed daemon left (never another live writer's)."""
        if os.name != "posix":  # os.kill(pid, 0) is no liveness probe on Windows
            return
        for entry in self.folder.iterdir():
            partial = temporary_target(entry.name)
            if partial is None or not HIT_NAME.match(partial[0]):
                continue
            pid = partial[1]
            # Our own pid counts as stale: nothing has been written yet (a restarted container
            # often gets the pid its killed predecessor had).
            if pid != os.getpid() and _alive(pid):
                continue
            try:
                entry.unlink()
                log.info("removed %s, left by a daemon that was killed while writing", entry.name)
            except OSError as err:
                log.debug("cannot remove %s: %s", entry.name, err)

    def _apply_retention(self) -> None:
        while len(self._kept) > self.config.keep:
            old = self._kept[0]
            try:
                old.unlink(missing_ok=True)
            except OSError as err:  # e.g. a DAW on Windows holds it: try again after the next hit
                log.debug("retention: cannot delete %s yet: %s", old, err)
                return
            self._kept.popleft()


def _can_write(folder: Path) -> bool:
    """Whether a file can be created in `folder`, tried for real: permission bits say nothing
    about a read-only mount, and nothing at all to root."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".drumdiff-probe-"):
            return True
    except OSError:
        return False


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable; not possible (nor needed) on Windows."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
