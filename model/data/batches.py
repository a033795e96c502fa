"""Training batches as audio: clips read and augmented, optionally ahead of time in worker
processes.

A batch is a pure function of (dataset, indices, seed, key), so workers can build the next
batches while the current one trains without changing a single sample: a run with
`train.num_workers > 0` sees exactly the data of one without, and resumes the same way.
"""

from __future__ import annotations

import copy
import multiprocessing
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

import numpy as np

from drumdiff.model.config import AugmentConfig
from drumdiff.model.data.augment import augment
from drumdiff.model.data.dataset import DrumDataset
from drumdiff.model.errors import DrumDiffError


def augmented_clips(
    dataset: DrumDataset,
    indices: Sequence[int] | np.ndarray,
    augment_cfg: AugmentConfig | None,
    *,
    seed: int,
    key: int,
) -> np.ndarray:
    """Clips (B, C, T) float32 for `indices`; augmented with rng (seed, key, index) unless None."""
    clips = []
    for i in indices:
        clip = dataset.clip(int(i))
        if augment_cfg is not None:
            clip = augment(clip, augment_cfg, np.random.default_rng([seed, key, int(i)]))
        clips.append(clip)
    return np.stack(clips)


class IndexStream(Protocol):
    def next(self) -> np.ndarray: ...


# One dataset per worker process, opened once by the pool's initializer.
_worker_state: dict[str, Any] = {}


def _open_worker(
    folder: str,
    classes: tuple[str, ...],
    splits: tuple[str, ...],
    augment_cfg: AugmentConfig,
    seed: int,
) -> None:
    _worker_state.update(
        dataset=DrumDataset(folder, classes, splits=splits), augment=augment_cfg, seed=seed
    )


def _build(indices: np.ndarray, key: int) -> np.ndarray:
    s = _worker_state
    return augmented_clips(s["dataset"], indices, s["augment"], seed=s["seed"], key=key)


class BatchPrefetcher:
    """Builds the next `depth` augmented training batches in `workers` processes.

    It walks a private copy of the index stream, so it must be consumed in order: `take` checks
    that the batch it hands out is the one the trainer asked for and fails loudly otherwise.
    """

    def __init__(
        self,
        dataset: DrumDataset,
        stream: IndexStream,
        augment_cfg: AugmentConfig,
        *,
        seed: int,
        first_key: int,
        workers: int,
        depth: int | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.ahead = copy.deepcopy(stream)
        self.next_key = first_key
        self.depth = depth or 2 * workers
        self.pending: deque[tuple[np.ndarray, int, Future[np.ndarray]]] = deque()
        # spawn, not fork: the trainer may already hold CUDA or OpenMP state a fork would copy.
        self.pool = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_open_worker,
            initargs=(str(dataset.folder), dataset.classes, dataset.splits, augment_cfg, seed),
        )

    def _fill(self) -> None:
        while len(self.pending) < self.depth:
            indices = self.ahead.next()
            self.pending.append(
                (indices, self.next_key, self.pool.submit(_build, indices, self.next_key))
            )
            self.next_key += 1

    def take(self, indices: np.ndarray, key: int) -> np.ndarray:
        try:
            self._fill()
            want, want_key, future = self.pending.popleft()
            if want_key != key or not np.array_equal(want, indices):
                raise DrumDiffError(
                    f"batch prefetch out of step: expected key {want_key}, asked for {key}"
                )
            self._fill()
            return future.result()
        except BrokenProcessPool as err:
            raise DrumDiffError(
                "a batch loader process died (out of memory, or killed); resume the run, with "
                "fewer "
                "train.num_workers if it happens again"
            ) from err

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.pending.clear()
