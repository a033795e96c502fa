"""A run's metrics: one JSON line per row in RUN/metrics.jsonl, and the same scalars in
TensorBoard when it is installed (the optional `train` extra); training never needs it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


class RunLog:
    """Open while a run trains (`with RunLog(...) as log`); `row` appends and plots one row."""

    def __init__(
        self, run_dir: Path, *, prefix: str = "", log: Callable[[str], None] = print
    ) -> None:
        self.path = run_dir / "metrics.jsonl"
        self.tensorboard_dir = run_dir / "tensorboard"
        self.prefix = prefix  # TensorBoard tag prefix, e.g. "distill/"
        self.writer: Any = None
        self._log = log

    def open(self) -> RunLog:
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.tensorboard_dir))
        except ImportError:
            self._log("tensorboard is not installed; logging to metrics.jsonl only")
        return self

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def __enter__(self) -> RunLog:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def row(self, row: dict[str, Any]) -> None:
        # The run folder may not exist yet (nothing else has written into it).
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
        if self.writer is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.writer.add_scalar(f"{self.prefix}{key}", value, row["step"])
