"""The pool of pre-rendered hits per class, and each class's last hit (for repeats).

Thread-safe: transport threads take hits while the engine's worker adds them. The lock is never
held during inference; which classes to refill and what counts as stale is decided here, when to
render and how is the engine's.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from drumdiff.model.render.generate import RenderSettings


@dataclass(frozen=True)
class Pooled:
    """A hit ready to serve: its seed and the settings it was rendered with."""

    seed: int
    settings: RenderSettings
    audio: np.ndarray


class HitPool:
    """Up to `size` hits per class, served first in, first out."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._hits: dict[str, deque[Pooled]] = {}
        self._last: dict[str, Pooled] = {}
        self._lock = threading.Lock()

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {name: len(entries) for name, entries in self._hits.items()}

    def fill(self, classes: Sequence[str]) -> float:
        """Ready hits over the capacity for `classes`, 0..1 (1 when there is no pool)."""
        capacity = self.size * len(classes)
        if capacity == 0:
            return 1.0
        counts = self.counts()
        return sum(min(counts.get(c, 0), self.size) for c in classes) / capacity

    def ready(self, drum_class: str) -> tuple[Pooled, ...]:
        """The hits of `drum_class` waiting, oldest first."""
        with self._lock:
            return tuple(self._hits.get(drum_class, ()))

    def take(self, drum_class: str, settings: RenderSettings) -> Pooled | None:
        """The oldest pooled hit of `drum_class` rendered with `settings` (others are dropped)."""
        with self._lock:
            entries = self._hits.get(drum_class)
            while entries:
                entry = entries.popleft()
                if entry.settings == settings:
                    return entry
        return None

    def add(self, hits: Sequence[tuple[str, Pooled]]) -> None:
        with self._lock:
            for name, entry in hits:
                self._hits.setdefault(name, deque()).append(entry)

    def last(self, drum_class: str) -> Pooled | None:
        with self._lock:
            return self._last.get(drum_class)

    def remember(self, drum_class: str, entry: Pooled) -> None:
        """Keep `entry` as the class's last hit, the one a repeat serves again."""
        with self._lock:
            self._last[drum_class] = entry

    def keep_only(self, settings: RenderSettings) -> None:
        """Drop pooled hits rendered with other settings (the defaults changed)."""
        with self._lock:
            for entries in self._hits.values():
                keep = [e for e in entries if e.settings == settings]
                entries.clear()
                entries.extend(keep)

    def clear(self) -> None:
        with self._lock:
            self._hits.clear()
            self._last.clear()

    def refill_plan(self, classes: Sequence[str], batch: int) -> list[str]:
        """Classes for the next refill batch of up to `batch` renders: round-robin over the
        classes below the pool size, emptiest first, never past the size."""
        if self.size == 0:
            return []
        counts = self.counts()
        short = [(counts.get(c, 0), c) for c in classes if counts.get(c, 0) < self.size]
        wanted = [c for _, c in sorted(short, key=lambda x: x[0])]
        names: list[str] = []
        while len(names) < batch:
            progressed = False
            for name in wanted:
                if counts.get(name, 0) + names.count(name) < self.size and len(names) < batch:
                    names.append(name)
                    progressed = True
            if not progressed:
                break
        return names
