"""A small log-mel CNN that tells drum classes apart: the judge's ears.

Trained on the training kits only (`train_classifier`), it gives the quality judge two things:
class predictions (`predict_proba`, for class fidelity) and penultimate features (`embed`, the
space where Fréchet and kernel distances are measured). Saved like model checkpoints: plain
tensors and a config dict, loaded with `weights_only=True`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from drumdiff.model.core.checkpoint import load_plain, save_payload_atomic
from drumdiff.model.errors import CheckpointError, DrumDiffError
from drumdiff.model.judge.features import log_mel

FORMAT = "drumdiff-classifier"
FORMAT_VERSION = 1


class ClassifierError(CheckpointError):
    """A classifier file is missing, foreign, unsafe or does not fit the audio given."""


@dataclass(frozen=True)
class ClassifierConfig:
    """Shape of the classifier and of the audio it accepts."""

    classes: tuple[str, ...]
    sample_rate: int = 44100
    length: int = 32768  # inputs are padded or cut to this many samples (onset-aligned clips)
    n_mels: int = 64
    widths: tuple[int, ...] = (16, 32, 64, 128)  # channels per conv block (each halves F and T)
    embed_dim: int = 64  # the penultimate layer: what `embed` returns
    dropout: float = 0.3


class DrumClassifier(nn.Module):
    """log-mel (B, 1, n_mels, frames) -> conv blocks -> pool over time -> embedding -> logits."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        self.norm = nn.BatchNorm2d(1)  # learns the dB offset/scale instead of a hand-set one
        blocks: list[nn.Module] = []
        cin = 1
        for width in config.widths:
            blocks += [
                nn.Conv2d(cin, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
            cin = width
        self.blocks = nn.Sequential(*blocks)
        freq = config.n_mels
        for _ in config.widths:
            freq = math.ceil(freq / 2)
        # Pool over time only: where energy sits in frequency is most of what a drum class is.
        self.project = nn.Linear(cin * freq * 2, config.embed_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.embed_dim, len(config.classes))

    def features(self, spec: Tensor) -> Tensor:
        """spec: (B, n_mels, frames) dB -> embedding (B, embed_dim)."""
        h = self.blocks(self.norm(spec[:, None]))  # (B, C, F', T')
        pooled = torch.cat([h.mean(dim=-1), h.amax(dim=-1)], dim=1).flatten(1)  # (B, 2*C*F')
        return F.relu(self.project(pooled))

    def forward(self, spec: Tensor) -> Tensor:
        return self.head(self.dropout(self.features(spec)))


def _fit_length(x: Tensor, length: int) -> Tensor:
    """Pad with silence or cut the end so every clip has `length` samples; x: (N, T)."""
    if x.shape[-1] >= length:
        return x[..., :length]
    return F.pad(x, (0, length - x.shape[-1]))


@dataclass
class DrumClassifierModel:
    """A trained classifier ready for inference, with what is known about its training."""

    net: DrumClassifier
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> ClassifierConfig:
        return self.net.config

    @property
    def classes(self) -> tuple[str, ...]:
        return self.net.config.classes

    def _spectra(self, audio: np.ndarray | Tensor, sample_rate: int) -> Tensor:
        if sample_rate != self.config.sample_rate:
            raise ClassifierError(
                f"the classifier was trained at {self.config.sample_rate} Hz, got audio at "
                f"{sample_rate} Hz"
            )
        x = torch.as_tensor(np.asarray(audio) if not isinstance(audio, Tensor) else audio).float()
        if x.ndim == 3:
            x = x.mean(dim=1)
        return log_mel(_fit_length(x, self.config.length), sample_rate, n_mels=self.config.n_mels)

    @torch.inference_mode()
    def _run(
        self, audio: np.ndarray | Tensor, sample_rate: int, batch: int, head: bool
    ) -> np.ndarray:
        self.net.eval()
        outs = []
        for start in range(0, len(audio), batch):
            spec = self._spectra(audio[start : start + batch], sample_rate)
            feats = self.net.features(spec)
            outs.append((self.net.head(feats).softmax(-1) if head else feats).numpy())
        if not outs:
            width = len(self.classes) if head else self.config.embed_dim
            return np.zeros((0, width), np.float32)
        return np.concatenate(outs)

    def embed(self, audio: np.ndarray | Tensor, sample_rate: int, *, batch: int = 64) -> np.ndarray:
        """Penultimate features, shape (N, embed_dim), of audio (N, C, T) or (N, T)."""
        return self._run(audio, sample_rate, batch, head=False)

    def predict_proba(
        self, audio: np.ndarray | Tensor, sample_rate: int, *, batch: int = 64
    ) -> np.ndarray:
        """Class probabilities, shape (N, len(classes))."""
        return self._run(audio, sample_rate, batch, head=True)

    def save(self, path: str | Path) -> Path:
        """Write atomically: plain tensors, the config as a dict, metrics as plain data."""
        config = asdict(self.config)
        payload = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()},
            "state": {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()},
            "metrics": self.metrics,
        }
        return save_payload_atomic(path, payload)


def load_classifier(path: str | Path) -> DrumClassifierModel:
    """Rebuild a saved classifier; refuses files holding anything but tensors and plain data."""
    path = Path(path)
    if not path.is_file():
        raise ClassifierError(
            f"classifier {path} does not exist; train one with `drumdiff eval --train-classifier "
            "PATH --data DATASET`"
        )
    payload = load_plain(path, what="classifier", error=ClassifierError)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ClassifierError(f"{path} is not a drumdiff classifier (no '{FORMAT}' marker)")
    if payload.get("format_version") != FORMAT_VERSION:
        raise ClassifierError(
            f"{path} has classifier format version {payload.get('format_version')!r}"
        )
    try:
        raw = dict(payload["config"])
        for key in ("classes", "widths"):
            raw[key] = tuple(raw[key])
        config = ClassifierConfig(**raw)
        net = DrumClassifier(config)
        net.load_state_dict(payload["state"])
    except (KeyError, TypeError, RuntimeError) as err:
        raise ClassifierError(
            f"{path}: config or weights are not valid ({str(err).splitlines()[0][:120]})"
        ) from None
    return DrumClassifierModel(net.eval(), dict(payload.get("metrics") or {}))


# --- training --------------------------------------------------------------------------------


def _augment(x: Tensor, gen: torch.Generator) -> Tensor:
    """Light, label-preserving changes, x: (B, T) -> (B, T): gain, a late start, a small
    speed change (pitch), and a faint noise floor (so a hiss tail alone does not decide)."""
    b, length = x.shape
    gain = 10 ** (-12 * torch.rand(b, 1, generator=gen) / 20)
    out = []
    for i in range(b):
        item = x[i]
        rate = float(2 ** ((torch.rand(1, generator=gen).item() * 2 - 1) / 12))  # +-1 semitone
        if abs(rate - 1) > 1e-3:
            new = max(16, int(round(length / rate)))
            item = F.interpolate(item[None, None], size=new, mode="linear", align_corners=False)[
                0, 0
            ]
            item = _fit_length(item[None], length)[0]
        delay = int(torch.randint(0, max(1, length // 32), (1,), generator=gen))
        if delay:
            item = F.pad(item, (delay, 0))[:length]
        out.append(item)
    y = torch.stack(out) * gain
    noise_db = -80 + 30 * torch.rand(b, 1, generator=gen)
    return y + torch.randn(y.shape, generator=gen) * 10 ** (noise_db / 20)


def accuracy_report(
    proba: np.ndarray, labels: np.ndarray, classes: Sequence[str]
) -> dict[str, Any]:
    """Overall and per-class accuracy and the confusion matrix (rows: true, columns: predicted)."""
    pred = proba.argmax(axis=1) if len(proba) else np.zeros(0, np.int64)
    k = len(classes)
    confusion = np.zeros((k, k), dtype=np.int64)
    for t, p in zip(labels, pred):
        confusion[int(t), int(p)] += 1
    per_class = {
        c: (float(confusion[i, i] / confusion[i].sum()) if confusion[i].sum() else None)
        for i, c in enumerate(classes)
    }
    return {
        "accuracy": float((pred == labels).mean()) if len(labels) else None,
        "count": int(len(labels)),
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }


def train_classifier_on_arrays(
    audio: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    sample_rate: int,
    *,
    epochs: int = 30,
    batch_size: int = 32,
    lr: float = 2e-3,
    seed: int = 0,
    augment: bool = True,
    config: ClassifierConfig | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> DrumClassifierModel:
    """Train on in-memory clips (N, C, T) or (N, T) with integer labels (N,)."""
    if len(audio) != len(labels) or len(audio) == 0:
        raise ValueError(
            f"need matching, non-empty audio and labels, got {len(audio)} and {len(labels)}"
        )
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.as_tensor(np.asarray(audio, dtype=np.float32))
    if x.ndim == 3:
        x = x.mean(dim=1)
    cfg = config or ClassifierConfig(
        classes=tuple(classes), sample_rate=sample_rate, length=x.shape[-1]
    )
    x = _fit_length(x, cfg.length)
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    net = DrumClassifier(cfg)
    counts = torch.bincount(y, minlength=len(cfg.classes)).float()
    # Inverse-sqrt class weights: claps are rare in every kit, and a judge blind to them is useless.
    weight = torch.where(counts > 0, counts.clamp_min(1).rsqrt(), torch.zeros_like(counts))
    weight = weight / weight[counts > 0].mean()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-3)
    steps_per_epoch = math.ceil(len(x) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=epochs * steps_per_epoch
    )
    model = DrumClassifierModel(net)
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            if len(idx) < 2:  # BatchNorm needs two items
                continue
            batch = _augment(x[idx], gen) if augment else x[idx]
            spec = log_mel(batch, cfg.sample_rate, n_mels=cfg.n_mels)
            loss = F.cross_entropy(net(spec), y[idx], weight=weight, label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        if progress is not None:
            progress(epoch + 1, epochs, total / len(x))
    net.eval()
    model.metrics["train"] = accuracy_report(
        model.predict_proba(x, cfg.sample_rate), y.numpy(), cfg.classes
    )
    model.metrics["training"] = {
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "augment": augment,
        "items": int(len(x)),
    }
    return model


def train_classifier(
    dataset_dir: str | Path,
    classes: Sequence[str],
    *,
    epochs: int = 30,
    batch_size: int = 32,
    lr: float = 2e-3,
    seed: int = 0,
    progress: Callable[[int, int, float], None] | None = None,
) -> DrumClassifierModel:
    """Train on the dataset's train split; report accuracy on its validation and test kits."""
    from drumdiff.model.data.dataset import DrumDataset  # the daemon never needs dataset code

    train = DrumDataset(dataset_dir, classes, splits=("train",))
    if len(train) == 0:
        raise DrumDiffError(f"{dataset_dir} has no training clips for classes {list(classes)}")
    audio = np.stack([train.clip(i) for i in range(len(train))])
    model = train_classifier_on_arrays(
        audio,
        np.asarray(train.labels),
        classes,
        train.info.sample_rate,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        progress=progress,
    )
    for split in ("validation", "test"):
        held = DrumDataset(dataset_dir, classes, splits=(split,))
        if len(held):
            clips = np.stack([held.clip(i) for i in range(len(held))])
            report = accuracy_report(
                model.predict_proba(clips, held.info.sample_rate), np.asarray(held.labels), classes
            )
            report["kits"] = sorted({str(r["kit"]) for r in held.rows})
            model.metrics[split] = report
    model.metrics["dataset"] = str(Path(dataset_dir).resolve())
    return model
