"""Checkpoints that rebuild their own model: weights + EMA + config + format version.

Saved with `torch.save` of plain containers and tensors only, loaded with
`torch.load(weights_only=True)`, so a file carrying a pickled object is refused, never run.
"""

from __future__ import annotations

import copy
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from drumdiff.model.config import (
    MEASURED_TABLES,
    Config,
    SamplingConfig,
    config_from_dict,
    to_dict,
)
from drumdiff.model.core.denoiser import Denoiser, StudentDenoiser
from drumdiff.model.core.sampling import DISTILLED
from drumdiff.model.core.unet import DrumUNet1d
from drumdiff.model.errors import CheckpointError, ConfigError, DrumDiffError
from drumdiff.model.files import atomic_open

FORMAT = "drumdiff-checkpoint"
#: Version 2 keeps the measured tables (MEASURED_TABLES) beside the config; 1 had them inside.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
ZIP_MAGIC = b"PK\x03\x04"
# Tensors kept in fp32 when a model is exported in fp16: the random Fourier frequencies reach
# ~50, so fp16 rounding would shift the noise-level features by up to ~0.1 rad.
KEEP_FP32 = ("fourier.weight",)


@dataclass(frozen=True)
class DistilledModel:
    """A few-step student of the model: its own network, with the teacher's guidance baked in.

    It renders by DDIM through exactly `levels` (decreasing, ending in 0), one conditional
    network pass per step; `teacher` records the sampling settings it learned to imitate. Its
    denoiser is a `StudentDenoiser` when it learned onset skips.
    """

    denoiser: Denoiser
    levels: tuple[float, ...]
    teacher: dict[str, Any]

    @property
    def steps(self) -> int:
        return len(self.levels) - 1


@dataclass(frozen=True)
class LoadedModel:
    """A model rebuilt from a checkpoint, ready to sample."""

    denoiser: Denoiser
    config: Config
    step: int
    path: Path | None
    distilled: DistilledModel | None = None

    @property
    def classes(self) -> tuple[str, ...]:
        return self.config.model.classes

    @property
    def sample_rate(self) -> int:
        return self.config.model.sample_rate


def build_model(config: Config) -> Denoiser:
    """A fresh, randomly initialised model for `config`."""
    return Denoiser(DrumUNet1d(config.model))


def save_checkpoint(
    path: str | Path,
    config: Config,
    *,
    model_state: dict[str, Tensor] | None,
    ema_state: dict[str, Tensor] | None,
    step: int = 0,
    extra: dict[str, Any] | None = None,
    half: bool = False,
    distilled: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (temporary name, fsync, rename).

    `distilled` is a few-step student to ship beside the weights: {"weights": state dict,
    "levels": [...], "teacher": {...}} and optionally its onset skips, "skips" and "skip_block"
    (see `DistilledModel`, `StudentDenoiser`); its weights are cast like the rest.
    """
    if model_state is None and ema_state is None:
        raise ValueError("a checkpoint needs model or EMA weights")
    if config.sampling.sampler == DISTILLED and distilled is None:
        # Its every default render would fail; a config derived from a student's checkpoint
        # wants `full_model_config` first.
        raise CheckpointError(
            f"{path}: sampling.sampler={DISTILLED} needs a distilled student in the checkpoint"
        )

    def cast(state: dict[str, Tensor] | None) -> dict[str, Tensor] | None:
        if state is None:
            return None
        return {
            k: (
                v.detach().half()
                if half and v.is_floating_point() and not k.endswith(KEEP_FP32)
                else v.detach()
            )
            .cpu()
            .contiguous()
            for k, v in state.items()
        }

    config_dict, tables = split_tables(to_dict(config))
    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": config_dict,
        "tables": tables,
        "step": int(step),
        "model": cast(model_state),
        "ema": cast(ema_state),
    }
    if distilled is not None:
        payload["distilled"] = {
            "weights": cast(distilled["weights"]),
            "levels": [float(v) for v in distilled["levels"]],
            "teacher": dict(distilled.get("teacher", {})),
        }
        if distilled.get("skips") is not None:
            # Kept in fp32: a few thousand factors, each multiplying a whole state.
            payload["distilled"]["skips"] = distilled["skips"].detach().float().cpu().contiguous()
            payload["distilled"]["skip_block"] = int(distilled["skip_block"])
    if extra:
        payload.update(extra)
    return save_payload_atomic(path, payload)


def split_tables(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A config dict without its measured tables, and the tables ("section.key": float64
    tensor, or a list of them for per-class tables); float64 keeps every value exact."""
    config = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    tables: dict[str, Any] = {}
    for section, key in MEASURED_TABLES:
        if key not in config.get(section, {}):
            continue
        value = config[section].pop(key)
        if value and isinstance(value[0], (list, tuple)):
            tables[f"{section}.{key}"] = [torch.tensor(row, dtype=torch.float64) for row in value]
        else:
            tables[f"{section}.{key}"] = torch.tensor(list(value), dtype=torch.float64)
    return config, tables


def join_tables(config: dict[str, Any], tables: dict[str, Any]) -> dict[str, Any]:
    """The config dict with the tables `split_tables` took out put back as lists."""
    config = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    for name, value in tables.items():
        section, key = name.split(".", 1)
        if isinstance(value, Tensor):
            config.setdefault(section, {})[key] = value.tolist()
        else:
            config.setdefault(section, {})[key] = [row.tolist() for row in value]
    return config


def save_payload_atomic(path: str | Path, payload: dict[str, Any]) -> Path:
    """`torch.save` to a hidden temporary name, fsync, rename: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as fh:
        torch.save(payload, fh)
    return path


def load_plain(
    path: str | Path,
    *,
    what: str,
    error: type[DrumDiffError],
    map_location: str | torch.device = "cpu",
) -> Any:
    """`torch.load` of a file that may hold only tensors and plain data, never pickled objects.

    A missing, empty, foreign, truncated or unsafe file raises `error` with one line naming
    `what` it was meant to be; nothing in the file runs.
    """
    path = Path(path)
    if not path.exists():
        raise error(f"{what} {path} does not exist")
    if path.is_dir():
        raise error(f"{what} {path} is a folder, not a file")
    if path.stat().st_size == 0:
        raise error(f"{what} {path} is empty")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != ZIP_MAGIC:  # torch.save writes a zip; anything else is foreign (or legacy)
        raise error(
            f"{what} {path} is not a PyTorch zip file (starts with {magic!r}); "
            f"not a drumdiff {what}"
        )
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unpickling refused"
        raise error(
            f"{what} {path} holds objects other than tensors and plain data; refused "
            f"without running it ({first[:160]})"
        ) from None
    except (RuntimeError, zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise error(f"{what} {path} is truncated or not a PyTorch file ({first[:160]})") from None


def read_checkpoint(
    path: str | Path, *, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """The raw payload of a drumdiff checkpoint, validated; one-line errors otherwise."""
    path = Path(path)
    payload = load_plain(path, what="checkpoint", error=CheckpointError, map_location=map_location)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a drumdiff checkpoint (no '{FORMAT}' marker)")
    version = payload.get("format_version")
    if version not in READABLE_VERSIONS:
        raise CheckpointError(
            f"{path} has checkpoint format version {version!r}; this drumdiff reads "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    tables = payload.pop("tables", None)
    if isinstance(tables, dict) and isinstance(payload.get("config"), dict):
        payload["config"] = join_tables(payload["config"], tables)
    return payload


def full_model_config(payload: dict[str, Any]) -> dict[str, Any]:
    """A payload's config (a copy) with the sampling its full model renders with.

    Where the default sampler is the distilled student, that is the teacher's plan the student
    learned (sampler, schedule, steps, guidance) and the default eta: what a new checkpoint of
    the full model's weights alone (a fine-tune) must carry, since it has no student.
    """
    config = copy.deepcopy(payload["config"])
    sampling = config.get("sampling", {})
    if sampling.get("sampler") != DISTILLED:
        return config
    sampling.update(teacher_sampling((payload.get("distilled") or {}).get("teacher") or {}))
    sampling["eta"] = SamplingConfig().eta
    return config


def teacher_sampling(teacher: dict[str, Any]) -> dict[str, Any]:
    """The sampler, schedule, steps and guidance a student imitates, from its `teacher` record
    (`DistilledModel.teacher`); the sampling defaults where the record lacks one."""
    defaults = SamplingConfig()
    return {
        "sampler": str(teacher.get("sampler", defaults.sampler)),
        "schedule": str(teacher.get("schedule", defaults.schedule)),
        "steps": int(teacher.get("steps", defaults.steps)),
        "guidance": float(teacher.get("guidance", defaults.guidance)),
    }


def load_checkpoint(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    use_ema: bool = True,
) -> LoadedModel:
    """Rebuild the model a checkpoint describes; EMA weights by default (what ships)."""
    payload = read_checkpoint(path)
    try:
        config = config_from_dict(payload["config"])
    except (ConfigError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path}: its config is not valid: {err}") from None
    state = payload.get("ema") if use_ema else None
    if state is None:
        state = payload.get("model")
    if state is None:
        raise CheckpointError(f"{path} holds no weights")
    denoiser = _rebuild(path, config, state).to(device)
    distilled = _distilled_from(path, config, payload.get("distilled"))
    if distilled is not None:
        distilled.denoiser.to(device)
    return LoadedModel(denoiser, config, int(payload.get("step", 0)), Path(path), distilled)


def _rebuild(path: str | Path, config: Config, state: Any, what: str = "weights") -> Denoiser:
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: its {what} are not a mapping of names to tensors")
    denoiser = build_model(config)
    try:
        denoiser.net.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise CheckpointError(f"{path}: {what} do not match its config ({first[:160]})") from None
    return denoiser.eval()


def _distilled_from(path: str | Path, config: Config, entry: Any) -> DistilledModel | None:
    if entry is None:
        return None
    if not isinstance(entry, dict) or "weights" not in entry or "levels" not in entry:
        raise CheckpointError(
            f"{path}: its distilled model is malformed (needs weights and levels)"
        )
    levels = tuple(float(v) for v in entry["levels"])
    if len(levels) < 2 or levels[-1] != 0.0 or any(b >= a for a, b in zip(levels, levels[1:])):
        raise CheckpointError(f"{path}: its distilled levels {levels} are not decreasing to 0")
    denoiser = _rebuild(path, config, entry["weights"], "distilled weights")
    if entry.get("skips") is not None:
        skips, block = entry["skips"], entry.get("skip_block")
        if not isinstance(skips, Tensor) or not isinstance(block, int):
            raise CheckpointError(f"{path}: its distilled skips are malformed")
        try:
            denoiser = StudentDenoiser(denoiser.net, levels, skips, block).eval()
        except ValueError as err:
            raise CheckpointError(f"{path}: its distilled skips do not fit: {err}") from None
    teacher = entry.get("teacher", {})
    return DistilledModel(denoiser, levels, dict(teacher) if isinstance(teacher, dict) else {})


def model_from_config(
    config: Config, *, device: str | torch.device = "cpu", seed: int = 0
) -> LoadedModel:
    """A random-weight model for a config (tests and benchmarks)."""
    torch.manual_seed(seed)
    denoiser = build_model(config).eval().to(device)
    return LoadedModel(denoiser, config, 0, None)
