"""The training loop: AdamW, warm-up, clipping, EMA, checkpoints, exact resume, fine-tuning, DDP.

Data order and augmentation are functions of (seed, epoch, position), both saved in every
checkpoint, so a run killed at any moment resumes from its last checkpoint with the same data
order, optimizer, EMA and step count as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import Tensor, nn

from drumdiff.model.config import ADDED_DEFAULTS, Config, DiffusionConfig, to_dict
from drumdiff.model.core.checkpoint import build_model, read_checkpoint, save_checkpoint
from drumdiff.model.core.loss import configured_frequency_weights, v_loss
from drumdiff.model.core.space import (
    audio_to_model,
    measure_space,
    measure_space_envelope,
    measure_spectrum,
    space_weights,
)
from drumdiff.model.core.unet import DrumUNet1d
from drumdiff.model.data.batches import BatchPrefetcher, augmented_clips
from drumdiff.model.data.dataset import DrumDataset
from drumdiff.model.errors import CheckpointError, DrumDiffError
from drumdiff.model.render.finish import measure_class_envelopes
from drumdiff.model.train.runlog import RunLog


def run_name(config: Config) -> str:
    """`{name}_{sha1(resolved config)[:8]}`: the same config always names the same run.

    Fields added since the first runs are hashed only when they differ from their defaults,
    so upgrading drumdiff does not rename (and so restart) a run that is under way.
    """
    data = to_dict(config)
    # Render-time finishing changes no training step, so it never renames a run.
    del data["finish"]
    for (section, key), default in ADDED_DEFAULTS.items():
        if data[section].get(key) == default:
            del data[section][key]
    digest = hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:8]
    return f"{config.name}_{digest}"


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> DistInfo:
    """Join a torchrun job when its environment says so (gloo on CPU, NCCL on GPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    return DistInfo(dist.get_rank(), dist.get_world_size())


M = TypeVar("M", bound=nn.Module)


class EMA(Generic[M]):
    """Exponential moving average of weights; with warm-up the decay grows as 1 - 1/(step/10+1)...

    so that early in training the average follows the model closely instead of remembering the
    random initialisation.
    """

    def __init__(self, model: M, decay: float, warmup: bool) -> None:
        self.model: M = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.warmup = warmup

    def rate(self, step: int) -> float:
        if not self.warmup:
            return self.decay
        return min(self.decay, 1 - 1 / (step / 10 + 1))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = self.rate(step)
        for ema_p, p in zip(self.model.parameters(), model.parameters()):
            ema_p.lerp_(p.detach(), 1 - d)
        for ema_b, b in zip(self.model.buffers(), model.buffers()):
            ema_b.copy_(b)


def lr_at(step: int, base: float, warmup: int) -> float:
    """Linear warm-up, then constant (diffusion models keep improving at a constant rate)."""
    if warmup <= 0:
        return base
    return base * min(1.0, (step + 1) / warmup)


class BatchStream:
    """Seeded epochs of shuffled indices; `position` inside the epoch is the resume point."""

    def __init__(self, size: int, batch: int, seed: int, dist_info: DistInfo) -> None:
        if size < batch * dist_info.world:
            raise DrumDiffError(
                f"the training split has {size} clips, fewer than one batch of {batch} x "
                f"{dist_info.world} processes"
            )
        self.size, self.batch, self.seed, self.dist = size, batch, seed, dist_info
        self.epoch, self.position = 0, 0

    def _order(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.size)

    def next(self) -> np.ndarray:
        global_batch = self.batch * self.dist.world
        if self.position + global_batch > self.size:
            self.epoch, self.position = self.epoch + 1, 0
        chunk = self._order()[self.position : self.position + global_batch]
        self.position += global_batch
        return chunk[self.dist.rank :: self.dist.world]

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load(self, state: dict[str, Any]) -> None:
        if state.get("balanced"):
            raise DrumDiffError(
                "this checkpoint was trained with class-balanced draws; resume it with "
                "train.balance_classes=true (or start a new run)"
            )
        self._load(state)

    def _load(self, state: dict[str, Any]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


class BalancedBatchStream(BatchStream):
    """Batches drawn with replacement, each item with probability 1 / (its class's count).

    Every class is then equally likely in every draw. Draw n is a pure function of
    (seed, n), so `position` (the number of batches drawn) is the whole resume state.
    """

    def __init__(
        self, labels: list[int] | np.ndarray, batch: int, seed: int, dist_info: DistInfo
    ) -> None:
        super().__init__(len(labels), batch, seed, dist_info)
        labels = np.asarray(labels, dtype=np.int64)
        counts = np.bincount(labels)
        weights = 1.0 / counts[labels]
        self.p = weights / weights.sum()

    def next(self) -> np.ndarray:
        global_batch = self.batch * self.dist.world
        # A separate stream tag (0xBA1) keeps these draws apart from the epoch permutations.
        rng = np.random.default_rng([self.seed, 0xBA1, self.position])
        chunk = rng.choice(self.size, size=global_batch, replace=True, p=self.p)
        self.position += 1
        self.epoch = self.position * global_batch // self.size
        return chunk[self.dist.rank :: self.dist.world]

    def state(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "position": self.position, "balanced": True}

    def load(self, state: dict[str, Any]) -> None:
        if not state.get("balanced"):
            raise DrumDiffError(
                "this checkpoint was trained with shuffled epochs; resume it with "
                "train.balance_classes=false (or start a new run)"
            )
        self._load(state)


def plan_batch(
    target: int,
    world: int,
    *,
    start: int,
    limit: int,
    fits: Callable[[int], bool] | None = None,
) -> tuple[int, int]:
    """(micro-batch per process, accumulation steps) for an effective batch of about `target`.

    With `fits` (a real training step at a batch size, True when it fits in memory), tries
    1, 2, 4, ... up to the per-process target and `limit`, keeps the largest that fits, then
    accumulates. Without it (CPU), `start` is the micro-batch. The micro-batch is then evened
    out so micro * accumulation * world is the smallest product >= target.
    """
    if target < 1 or world < 1 or limit < 1:
        raise ValueError(f"target ({target}), world ({world}) and limit ({limit}) must be >= 1")
    per_process = -(-target // world)
    cap = min(per_process, limit)
    if fits is None:
        micro = max(1, min(start, cap))
    else:
        micro, size = 0, 1
        while size <= cap:
            if not fits(size):
                break
            micro, size = size, size * 2
        else:
            if micro < cap and fits(cap):
                micro = cap
        if micro == 0:
            raise DrumDiffError("not even a batch of 1 fits in the device's memory")
    accumulation = -(-per_process // micro)
    micro = -(-per_process // accumulation)
    return micro, accumulation


def load_batch(
    dataset: DrumDataset,
    indices: np.ndarray,
    config: Config,
    *,
    step: int,
    train: bool,
    device: torch.device | None = None,
) -> tuple[Tensor, Tensor]:
    """Model-space clips and labels for `indices`; training batches are augmented (seeded by
    step)."""
    augment_cfg = config.data.augment if train else None
    audio = augmented_clips(dataset, indices, augment_cfg, seed=config.train.seed, key=step)
    return to_model_batch(audio, dataset, indices, config, device)


def to_model_batch(
    audio: np.ndarray,
    dataset: DrumDataset,
    indices: np.ndarray,
    config: Config,
    device: torch.device | None,
) -> tuple[Tensor, Tensor]:
    y = torch.tensor([dataset.labels[int(i)] for i in indices], dtype=torch.long)
    # Each clip goes into its own class's space (when the config has per-class spaces), also
    # when condition dropout later hides its class from the network.
    weights = space_weights(len(config.model.classes), class_ids=y)
    # Moved first, then whitened: on a GPU the FFTs of a large batch would otherwise bound the step.
    x = audio_to_model(torch.from_numpy(audio).to(device or "cpu"), config.diffusion, weights)
    return x, y


def measure_model_space(config: Config, dataset: DrumDataset) -> Config:
    """Fill in the spectrum and envelope of the model space from the train split, if asked.

    Measured once and written into the config, so checkpoints carry them and a resumed run
    (which reads config.resolved.yaml) keeps exactly the same model space. The envelope is
    measured on whitened clips, the order `audio_to_model` applies them in.
    """
    diffusion = config.diffusion
    clips = lambda: (dataset.clip(i) for i in range(len(dataset)))  # noqa: E731
    if diffusion.learn_spectrum and not diffusion.spectrum:
        diffusion = replace(diffusion, spectrum=measure_spectrum(clips(), diffusion.spectrum_bands))
    if diffusion.learn_envelope and not diffusion.envelope:
        diffusion = replace(diffusion, envelope=measure_space_envelope(clips(), diffusion))
    if diffusion.class_spaces and not (diffusion.class_spectra and diffusion.class_envelopes):
        diffusion = _measure_class_spaces(diffusion, dataset, len(config.model.classes))
    return measure_finish(replace(config, diffusion=diffusion), dataset)


def _measure_class_spaces(
    diffusion: DiffusionConfig, dataset: DrumDataset, num_classes: int
) -> DiffusionConfig:
    """Spectrum and envelope of each class's training clips; a class without clips gets the global
    space."""
    if not diffusion.spectrum or not diffusion.envelope:
        raise DrumDiffError(
            "diffusion.class_spaces needs the global spectrum and envelope (learn_spectrum, "
            "learn_envelope)"
        )
    spectra, envelopes = [], []
    for cid in range(num_classes):
        members = [i for i in range(len(dataset)) if dataset.labels[i] == cid]
        if not members:
            spectra.append(diffusion.spectrum)
            envelopes.append(diffusion.envelope)
            continue
        spectrum, envelope = measure_space([dataset.clip(i) for i in members], diffusion)
        spectra.append(spectrum)
        envelopes.append(envelope)
    return replace(diffusion, class_spectra=tuple(spectra), class_envelopes=tuple(envelopes))


def measure_finish(config: Config, dataset: DrumDataset) -> Config:
    """Fill in the per-class envelope limits of render finishing from `dataset`, if asked."""
    finish = config.finish
    if not finish.learn_envelopes or finish.class_envelopes:
        return config
    envelopes = measure_class_envelopes(
        ((dataset.clip(i), dataset.labels[i]) for i in range(len(dataset))),
        len(config.model.classes),
        finish.envelope_block,
        finish.percentiles_for(config.model.classes),
    )
    return replace(config, finish=replace(finish, class_envelopes=envelopes))


def adapt_state_for_classes(
    state: dict[str, Tensor], old_classes: tuple[str, ...], new_classes: tuple[str, ...]
) -> dict[str, Tensor]:
    """Map a class-embedding table to a new class list by name (transfer learning).

    Known classes keep their rows, the null class keeps its row, new classes start at the mean
    of the old class rows (a neutral "some drum" starting point) plus small noise.
    """
    key = "class_embed.weight"
    if key not in state or old_classes == new_classes:
        return state
    old = state[key]
    mean = old[: len(old_classes)].mean(dim=0)
    gen = torch.Generator().manual_seed(0)
    rows = []
    for name in new_classes:
        if name in old_classes:
            rows.append(old[old_classes.index(name)])
        else:
            rows.append(mean + 0.01 * torch.randn(mean.shape, generator=gen).to(mean.dtype))
    rows.append(old[len(old_classes)])  # null class
    out = dict(state)
    out[key] = torch.stack(rows)
    return out


@dataclass
class TrainState:
    step: int
    loss: float


class Trainer:
    """Owns one run folder. `fit()` trains until `train.max_steps` or `stop_at`."""

    def __init__(
        self,
        config: Config,
        dataset_dir: str | Path,
        run_dir: str | Path,
        *,
        device: torch.device | None = None,
        init_checkpoint: str | Path | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.config = config
        self.dist = init_distributed()
        if device is None:
            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if device.type == "cuda" and device.index is None:
            # One GPU per process: torchrun's LOCAL_RANK picks it (a bare "cuda" would put
            # every process of a node on GPU 0).
            local = int(os.environ.get("LOCAL_RANK", self.dist.rank))
            device = torch.device("cuda", local % torch.cuda.device_count())
        if device.type == "cuda":
            torch.cuda.set_device(device)
            # Clip shapes never change within a run, so cuDNN's per-shape autotuning pays off.
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
        self.device = device
        self.run_dir = Path(run_dir)
        self.log = log if self.dist.main else (lambda _msg: None)
        self.train_set = DrumDataset(dataset_dir, config.model.classes, splits=("train",))
        self.train_set.check_compatible(config.model)
        self.val_set = DrumDataset(dataset_dir, config.model.classes, splits=("validation",))
        config = measure_model_space(config, self.train_set)
        self.config = config
        torch.manual_seed(config.train.seed)
        self.denoiser = build_model(config).to(device)
        self.net: DrumUNet1d = self.denoiser.net
        if init_checkpoint is not None:
            self._init_from(init_checkpoint)
        self.ema = EMA(self.net, config.train.ema_decay, config.train.ema_warmup)
        self.optimizer = torch.optim.AdamW(
            self.net.parameters(),
            lr=config.train.lr,
            betas=config.train.betas,
            weight_decay=config.train.weight_decay,
        )
        self.batch_size, self.accumulation = config.train.batch_size, config.train.grad_accumulation
        if config.train.auto_batch:
            # Before DDP wraps the network: the probe's backward passes must not fire its hooks.
            self.batch_size, self.accumulation = self._auto_batch()
        self.model: nn.Module = self.net
        if self.dist.world > 1:
            self.model = nn.parallel.DistributedDataParallel(
                self.net, device_ids=[device.index] if device.type == "cuda" else None
            )
        self.stream = self._make_stream()
        # fp16 needs loss scaling or small gradients underflow; disabled it is a no-op.
        self.scaler = torch.amp.GradScaler(
            "cuda", enabled=device.type == "cuda" and config.train.precision == "fp16"
        )
        self.step = 0
        self.prefetcher: BatchPrefetcher | None = None
        self.run_log: RunLog | None = None  # open while fit() runs, on the main process

    # -- set-up ---------------------------------------------------------------------------
    def _make_stream(self) -> BatchStream:
        cfg = self.config.train
        if cfg.balance_classes:
            return BalancedBatchStream(self.train_set.labels, self.batch_size, cfg.seed, self.dist)
        return BatchStream(len(self.train_set), self.batch_size, cfg.seed, self.dist)

    def _auto_batch(self) -> tuple[int, int]:
        """The micro-batch and accumulation for `train.auto_batch` (see `plan_batch`)."""
        cfg = self.config.train
        target = cfg.target_batch or cfg.batch_size * cfg.grad_accumulation
        limit = max(1, len(self.train_set) // self.dist.world)
        fits = self._fits if self.device.type == "cuda" else None
        micro, _ = plan_batch(target, self.dist.world, start=cfg.batch_size, limit=limit, fits=fits)
        if self.dist.world > 1:
            # Every rank must step with the same sizes; the smallest GPU decides.
            agreed = torch.tensor([micro], device=self.device)
            dist.all_reduce(agreed, op=dist.ReduceOp.MIN)
            micro = int(agreed.item())
        micro, accumulation = plan_batch(target, self.dist.world, start=micro, limit=limit)
        self.log(
            f"auto batch: {micro} per step x {accumulation} accumulation x {self.dist.world} "
            f"process(es) = {micro * accumulation * self.dist.world} (target {target})"
        )
        return micro, accumulation

    def _fits(self, size: int, headroom: float = 0.85) -> bool:
        """One forward and backward pass at batch `size` on the GPU; True if it fits.

        Peak memory must stay under `headroom` of the card, leaving room for the optimizer's
        state (two more copies of the weights), validation and allocator fragmentation. Inputs
        come from a private CPU generator, so the probe leaves every training RNG untouched.
        """
        cfg = self.config.model
        total = torch.cuda.get_device_properties(self.device).total_memory
        gen = torch.Generator().manual_seed(size)
        try:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            x = torch.randn((size, cfg.audio_channels, cfg.length), generator=gen).to(self.device)
            y = torch.zeros(size, dtype=torch.long, device=self.device)
            with self._autocast():
                loss = v_loss(self.net, x, y, condition_dropout=0.0, generator=gen)
            loss.backward()
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) <= headroom * total
        except torch.cuda.OutOfMemoryError:
            return False
        finally:
            self.net.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()

    def _init_from(self, path: str | Path) -> None:
        payload = read_checkpoint(path)
        state = payload.get("ema") or payload.get("model")
        if state is None:
            raise DrumDiffError(f"{path} holds no weights to start from")
        old_classes = tuple(payload["config"]["model"]["classes"])
        state = adapt_state_for_classes(
            {k: v.float() for k, v in state.items()}, old_classes, self.config.model.classes
        )
        # Checked before loading: load_state_dict raises a bare RuntimeError on a shape
        # mismatch even with strict=False.
        own = self.net.state_dict()
        shape_errors = [k for k in state if k in own and state[k].shape != own[k].shape]
        if shape_errors:
            key = shape_errors[0]
            raise DrumDiffError(
                f"{path}: weights do not fit this config ({key}: {tuple(state[key].shape)} in the "
                f"checkpoint, {tuple(own[key].shape)} here); --init needs the same network sizes"
            )
        missing, unexpected = self.net.load_state_dict(state, strict=False)
        self.log(
            f"initialised from {path} (classes {list(old_classes)} -> "
            f"{list(self.config.model.classes)}; "
            f"{len(missing)} new and {len(unexpected)} dropped tensors)"
        )

    def write_run_files(self) -> None:
        if not self.dist.main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.resolved.yaml").write_text(
            yaml.safe_dump(to_dict(self.config), sort_keys=False)
        )

    def _newest_checkpoint(self) -> tuple[Path, dict[str, Any]] | None:
        """The readable checkpoint with the highest step among `last.pt` and `checkpoints/`.

        `last.pt` is written first and is normally the newest, but a run killed between the
        two writes, or a damaged `last.pt`, must not cost more than the steps since the last
        good checkpoint.
        """
        candidates = [self.run_dir / "last.pt", *(self.run_dir / "checkpoints").glob("step-*.pt")]
        best: tuple[Path, dict[str, Any]] | None = None
        for path in candidates:
            if not path.exists():
                continue
            try:
                payload = read_checkpoint(path, map_location=self.device)
            except CheckpointError as err:
                self.log(f"skipping {path}: {err}")
                continue
            if "optimizer" not in payload or "data" not in payload:
                continue  # a shipped or exported file, not a training state
            if best is None or int(payload["step"]) > int(best[1]["step"]):
                best = (path, payload)
        return best

    def resume(self) -> bool:
        """Continue from the newest checkpoint in the run folder; False when there is none."""
        found = self._newest_checkpoint()
        if found is None:
            return False
        self.close_loader()  # its look-ahead follows the old data position
        last, payload = found
        self.net.load_state_dict(payload["model"])
        self.ema.model.load_state_dict(payload["ema"])
        self.optimizer.load_state_dict(payload["optimizer"])
        batch = payload.get("batch")
        if self.config.train.auto_batch and batch:
            # Keep the sizes the run started with: same steps, same data per step.
            self.batch_size, self.accumulation = int(batch["size"]), int(batch["accumulation"])
            self.stream = self._make_stream()
        self.stream.load(payload["data"])
        if payload.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(payload["scaler"])
        self.step = int(payload["step"])
        self.log(
            f"resumed {self.run_dir} at step {self.step}"
            + ("" if last.name == "last.pt" else f" ({last.name})")
        )
        return True

    def close_loader(self) -> None:
        if self.prefetcher is not None:
            self.prefetcher.close()
            self.prefetcher = None

    def save(self) -> None:
        if not self.dist.main:
            return
        extra: dict[str, Any] = {
            "optimizer": self.optimizer.state_dict(),
            "data": self.stream.state(),
            "batch": {"size": self.batch_size, "accumulation": self.accumulation},
        }
        if self.scaler.is_enabled():
            extra["scaler"] = self.scaler.state_dict()
        # last.pt first: a kill between the two writes then leaves it the newest state.
        for path in (
            self.run_dir / "last.pt",
            self.run_dir / "checkpoints" / f"step-{self.step:07d}.pt",
        ):
            save_checkpoint(
                path,
                self.config,
                model_state=self.net.state_dict(),
                ema_state=self.ema.model.state_dict(),
                step=self.step,
                extra=extra,
            )

    # -- loop -----------------------------------------------------------------------------
    def train_step(self) -> float:
        cfg = self.config.train
        self.model.train()
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(self.step, cfg.lr, cfg.warmup_steps)
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        accumulation = self.accumulation
        for micro in range(accumulation):
            key = self.step * accumulation + micro
            if self.prefetcher is None and cfg.num_workers > 0:
                self.prefetcher = BatchPrefetcher(
                    self.train_set,
                    self.stream,
                    self.config.data.augment,
                    seed=cfg.seed,
                    first_key=key,
                    workers=cfg.num_workers,
                )
            indices = self.stream.next()
            if self.prefetcher is not None:
                audio = self.prefetcher.take(indices, key)
                x, y = to_model_batch(audio, self.train_set, indices, self.config, self.device)
            else:
                x, y = load_batch(
                    self.train_set, indices, self.config, step=key, train=True, device=self.device
                )
            y = y.to(self.device)
            # Noise is drawn where the step runs: on a GPU, CPU draws for a large batch would
            # bound the step. (A CPU run keeps its CPU generator, so its resumes stay exact.)
            gen = torch.Generator(self.device).manual_seed(
                cfg.seed * 1_000_003 + self.step * 1009 + micro * 31 + self.dist.rank
            )
            # DDP averages gradients across processes on every backward; between micro-steps
            # that is wasted traffic, so only the last one synchronises.
            sync = self.dist.world == 1 or micro == accumulation - 1
            no_sync = contextlib.nullcontext() if sync else self.model.no_sync()  # type: ignore[operator]
            with no_sync, self._autocast():
                loss = v_loss(
                    self.model,  # type: ignore[arg-type]
                    x,
                    y,
                    condition_dropout=self.config.diffusion.condition_dropout,
                    weighting=self.config.diffusion.loss_weighting,
                    frequency_weighting=configured_frequency_weights(self.config, x.shape[-1]),
                    generator=gen,
                    null_class=self.net.null_class,
                )
                self.scaler.scale(loss / accumulation).backward()
            total += float(loss.detach()) / accumulation
        self.scaler.unscale_(self.optimizer)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg.grad_clip))
        # With fp16 loss scaling an overflowing step is normal: the scaler skips it and lowers
        # the scale. Anywhere else a non-finite loss or gradient means the run has diverged.
        scaled_overflow = self.scaler.is_enabled() and math.isfinite(total)
        if not math.isfinite(total) or (not math.isfinite(grad_norm) and not scaled_overflow):
            raise DrumDiffError(
                f"training diverged at step {self.step} (loss {total}, grad norm {grad_norm})"
            )
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        self.ema.update(self.net, self.step)
        self.last_grad_norm = grad_norm
        return total

    def _autocast(self) -> Any:
        precision = self.config.train.precision
        if self.device.type != "cuda" or precision == "fp32":
            return torch.autocast("cpu", enabled=False)
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast("cuda", dtype=dtype)

    @torch.no_grad()
    def validate(self, batches: int = 4) -> float | None:
        """EMA model's v-loss on the validation kits with fixed noise (comparable across steps)."""
        if len(self.val_set) == 0:
            return None
        size = min(len(self.val_set), self.config.train.batch_size)
        losses = []
        for b in range(batches):
            indices = np.random.default_rng([99, b]).choice(len(self.val_set), size, replace=False)
            x, y = load_batch(
                self.val_set, indices, self.config, step=0, train=False, device=self.device
            )
            # CPU draws here keep validation noise identical on every device.
            gen = torch.Generator().manual_seed(1234 + b)
            loss = v_loss(
                self.ema.model, x, y.to(self.device), condition_dropout=0.0, generator=gen
            )
            losses.append(float(loss))
        return float(np.mean(losses))

    def _log_metrics(self, row: dict[str, Any]) -> None:
        if self.run_log is not None:
            self.run_log.row(row)

    def _demo(self) -> None:
        """A few renders per class into TensorBoard (see RunLog.demo)."""
        if self.run_log is None:
            return
        from drumdiff.model.core.checkpoint import LoadedModel
        from drumdiff.model.core.denoiser import Denoiser

        self.run_log.demo(LoadedModel(Denoiser(self.ema.model), self.config, self.step, None))

    def fit(
        self,
        *,
        stop_at: int | None = None,
        stop_after_s: float | None = None,
        progress: bool = True,
        on_step: Callable[[int, float], bool] | None = None,
    ) -> TrainState:
        """Train to `stop_at` (or max_steps), or until `stop_after_s` seconds have passed.

        `on_step(step, loss)` runs after every step; returning True stops the run there (as a
        time limit does). Either way the last step is checkpointed, so a later resume goes on
        from exactly there.
        """
        cfg = self.config.train
        target = min(cfg.max_steps, stop_at) if stop_at is not None else cfg.max_steps
        if stop_after_s is not None and self.dist.world > 1:
            raise DrumDiffError(
                "a time limit needs one process (ranks would stop at different steps); use stop_at"
            )
        deadline = time.monotonic() + stop_after_s if stop_after_s is not None else None
        try:
            return self._fit(target, deadline, progress, on_step)
        finally:
            self.close_loader()

    def _fit(
        self,
        target: int,
        deadline: float | None,
        progress: bool,
        on_step: Callable[[int, float], bool] | None = None,
    ) -> TrainState:
        cfg = self.config.train
        if self.dist.main:
            self.run_log = RunLog(self.run_dir, log=self.log).open()
        bar = None
        if progress and self.dist.main:
            from tqdm import tqdm

            bar = tqdm(total=target, initial=self.step, unit="step", dynamic_ncols=True)
        loss = float("nan")
        window: list[float] = []
        started, clips = time.perf_counter(), 0
        while self.step < target:
            loss = self.train_step()
            window.append(loss)
            clips += self.batch_size * self.accumulation * self.dist.world
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")
            if cfg.log_every and self.step % cfg.log_every == 0:
                elapsed = time.perf_counter() - started
                self._log_metrics(
                    {
                        "step": self.step,
                        "loss": float(np.mean(window)),
                        "lr": self.optimizer.param_groups[0]["lr"],
                        "grad_norm": self.last_grad_norm,
                        "clips_per_s": clips / elapsed if elapsed > 0 else 0.0,
                        "time": time.time(),
                    }
                )
                window, started, clips = [], time.perf_counter(), 0
            if cfg.validate_every and self.step % cfg.validate_every == 0:
                val = self.validate()
                if val is not None:
                    self._log_metrics({"step": self.step, "val_loss": val})
            if cfg.demo_every and self.step % cfg.demo_every == 0 and self.dist.main:
                self._demo()
            out_of_time = deadline is not None and time.monotonic() >= deadline
            asked_to_stop = on_step is not None and bool(on_step(self.step, loss))
            if (
                (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0)
                or self.step == target
                or out_of_time
                or asked_to_stop
            ):
                self.save()
            if out_of_time:
                self.log(f"time limit reached at step {self.step}")
                break
            if asked_to_stop:
                break
        if bar is not None:
            bar.close()
        if self.run_log is not None:
            self.run_log.close()
            self.run_log = None
        return TrainState(self.step, loss)
