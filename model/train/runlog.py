"""A run's metrics: one JSON line per row in RUN/metrics.jsonl, and the same scalars in
TensorBoard when it is installed (the optional `train` extra); training never needs it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from drumdiff.model.core.checkpoint import LoadedModel


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

    def demo(self, model: LoadedModel) -> None:
        """Two renders per class as audio, and the first one's spectrogram as an image."""
        if self.writer is None:
            return
        import torch

        from drumdiff.model.render.generate import render, settings_for

        settings = settings_for(model)
        for cid, name in enumerate(model.classes):
            audio = render(model, [cid, cid + 100], settings, classes=[name, name])
            for k, hit in enumerate(audio):
                self.writer.add_audio(
                    f"demo/{name}_{k}", torch.from_numpy(hit[0]), model.step, model.sample_rate
                )
            spec = torch.stft(
                torch.from_numpy(audio[0, 0]),
                1024,
                256,
                window=torch.hann_window(1024),
                return_complex=True,
            )
            image = (20 * spec.abs().clamp_min(1e-5).log10()).flip(0)
            image = ((image + 100) / 100).clamp(0, 1)[None]
            self.writer.add_image(f"spectrogram/{name}", image, model.step)
