"""Fine-tune a trained model on a folder of one's own one-shots: prepare, hold out, train, judge,
export.

One folder (DIR) holds the whole job, so it can be stopped and resumed at any point:

- `finetune.json`: what was asked (folder, base model, labels, settings) and where the run stands;
- `data/`: the prepared folder (`model.data.prepare_dataset`); held-out hits are its validation
split;
- `last.pt`, `checkpoints/step-*.pt`, `metrics.jsonl`, `config.resolved.yaml`: the training run
  (`model.train.Trainer`); a checkpoint is kept at every judge point, so `design scrub DIR` and
  the daemon's `scrub` can go back to an earlier, less copied state;
- `judge.jsonl`: the cheap judge at every kept checkpoint (distance to the held-out hits, copies);
- at the end `model.pt` (fp16 EMA weights, what ships), `MODEL_CARD.md`, `report.json`,
  `report.html` (and `audio/`).

The judge here works on the user's own hits: a user's folder is usually one kit, so hits are held
out by file (per class), not by kit. Distances are log-mel distances in dB between a render and
its nearest held-out hit of the same class (and back), beside the same distance from each held-out
hit to the nearest of the user's training hits (the floor: how close the user's own hits are to
each other). A render is flagged as a copy when it is closer to a training hit (log-mel cosine)
than any held-out hit is, the rule of `model.evaluate`.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drumdiff.model import DEFAULT_CLASSIFIER
from drumdiff.model.config import Config, apply_override, config_from_dict, from_dict, to_dict
from drumdiff.model.core.checkpoint import (
    LoadedModel,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from drumdiff.model.core.denoiser import Denoiser
from drumdiff.model.core.space import measure_space
from drumdiff.model.data.dataset import DrumDataset, SourceItem, prepare_dataset
from drumdiff.model.errors import ConfigError, DrumDiffError
from drumdiff.model.files import write_text_atomic
from drumdiff.model.judge.evaluate import HitSet, json_safe, nearest_train
from drumdiff.model.judge.features import copy_vectors, log_mel
from drumdiff.model.labels import label_from_name
from drumdiff.model.render.finish import measure_class_envelopes
from drumdiff.model.train.finetune_report import MIN_FILES_TO_HOLD_OUT, model_card, report_html

STATE_FILE = "finetune.json"
JUDGE_FILE = "judge.jsonl"
STATE_VERSION = 1
#: Copy threshold when no hit could be held out (nothing to measure the real closeness by).
FALLBACK_COPY_THRESHOLD = 0.98
#: Level floor of the log-mel distance, relative to each clip's own maximum (as the copy detector).
MEL_RANGE_DB = 80.0

#: Training settings for small data, applied over the base model's config and under --set.
SMALL_DATA: tuple[str, ...] = (
    # A third of what the shipped model was trained with: a few dozen hits are learnt, and then
    # copied, within a few hundred steps at the base rate.
    "train.lr=1e-4",
    "train.warmup_steps=50",
    # An average over ~200 steps: a CPU fine-tune is a few hundred to a few thousand steps, and
    # the base's 0.999 would still mostly be the base model at the end of a short run.
    "train.ema_decay=0.995",
    "train.ema_warmup=true",
    # Rare classes of a user's folder (one clap among forty hats) are seen as often as common ones.
    "train.balance_classes=true",
    # Checkpoints are written at every judge point instead, so each has its figures.
    "train.checkpoint_every=0",
    "train.validate_every=50",
    "train.log_every=10",
    "train.demo_every=0",
    "train.max_steps=100000000",
    "train.auto_batch=false",
    # Few hits: a little more augmentation than the base's, so the model sees variants, not copies.
    "data.augment.pitch_p=0.5",
    "data.augment.gain_p=0.5",
)


@dataclass(frozen=True)
class FinetuneSettings:
    """What the fine-tune command decides besides the training config (`--set
    finetune.KEY=VALUE`)."""

    holdout: float = (
        0.2  # share of each class's files held out for judging (classes with >= 3 files)
    )
    holdout_seed: int = 0
    judge_every_s: float = (
        0.0  # seconds of training between cheap judges; 0 = a quarter of the budget, >= 60
    )
    judge_every_steps: int = 0  # > 0: judge every this many steps instead of by time
    judge_per_class: int = 2  # renders per class for the cheap judge
    report_per_class: int = 8  # renders per class for the final report (base and fine-tuned)
    render_steps: int = 0  # sampler steps for judging; 0 = the model's default
    seed: int = 0  # render i of every class uses seed + i, at every judge point
    audio_per_class: int = 2  # renders per class written as WAV for the report

    def __post_init__(self) -> None:
        if not 0.0 <= self.holdout < 1.0:
            raise ValueError(f"finetune.holdout must be in [0, 1), got {self.holdout}")
        if self.judge_per_class < 1 or self.report_per_class < 1:
            raise ValueError(
                "finetune.judge_per_class and finetune.report_per_class must be at least 1"
            )
        if self.judge_every_s < 0 or self.judge_every_steps < 0 or self.render_steps < 0:
            raise ValueError(
                "finetune.judge_every_s, judge_every_steps and render_steps must be >= 0"
            )


def settings_from_overrides(overrides: Sequence[str]) -> FinetuneSettings:
    """FinetuneSettings from `finetune.KEY=VALUE` strings (unknown keys and wrong types are
    errors)."""
    data: dict[str, Any] = {}
    for override in overrides:
        apply_override(data, override)
    try:
        return from_dict(FinetuneSettings, data.get("finetune", {}), "finetune")
    except ConfigError as err:
        raise DrumDiffError(str(err)) from None


# --- labels and the held-out share -----------------------------------------------------------


def class_slug(name: str) -> str:
    """A class name as drumdiff spells them: lower case, words joined by '_'."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if not slug:
        raise DrumDiffError(f"{name!r} is not usable as a class name (it needs letters or digits)")
    return slug


def label_for(row: dict[str, Any], mode: str, root: Path) -> str:
    """The class of one prepared row under `--classes-from` `mode`.

    "names": what prepare found (instrument, file and folder names; "other" when nothing matched);
    "folders": the file's own folder: a known class when its name says one ("Kicks" -> kick),
    else the folder's name becomes a class ("Laser Zaps" -> laser_zaps); files directly in the
    root keep their name's label; anything else: that one class for every file.
    """
    if mode == "names":
        return str(row["label"])
    if mode == "folders":
        parent = Path(str(row["source"])).parent
        if parent == root:
            return str(row["label"])
        known = label_from_name(parent.name)
        return known if known != "other" else class_slug(parent.name)
    return class_slug(mode)


def hold_out(rows: Sequence[dict[str, Any]], share: float, seed: int) -> set[int]:
    """Row ids held out for judging: `share` of each class's files, chosen with a seeded shuffle.

    Classes with fewer than MIN_FILES_TO_HOLD_OUT files keep all of them for training, and every
    class keeps at least one.
    """
    by_class: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_class.setdefault(str(row["label"]), []).append(row)
    held: set[int] = set()
    for k, label in enumerate(sorted(by_class)):
        members = sorted(by_class[label], key=lambda r: str(r["source"]))
        n = len(members)
        if share <= 0 or n < MIN_FILES_TO_HOLD_OUT:
            continue
        count = min(n - 1, max(1, round(share * n)))
        order = np.random.default_rng([seed, k]).permutation(n)[:count]
        held.update(int(members[int(i)]["id"]) for i in order)
    return held


@dataclass
class FolderSummary:
    """What `prepare_folder` made of the user's folder."""

    kept: int
    classes: tuple[str, ...]  # the labels found, sorted
    per_class: dict[str, dict[str, int]]  # label -> {"train": n, "validation": n}
    rejected: list[dict[str, str]]
    per_reason: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def prepare_folder(
    folder: str | Path,
    out: str | Path,
    config: Config,
    *,
    classes_from: str = "names",
    holdout: float = 0.2,
    seed: int = 0,
    progress: Callable[[Iterable[SourceItem]], Iterable[SourceItem]] | None = None,
) -> FolderSummary:
    """Prepare `folder` into dataset `out` with prepare's rules, then label and hold out by file.

    Bad files are reported and skipped, duplicates dropped (`prepare_dataset`); the labels are
    then set by `classes_from` (see `label_for`) and `holdout` of each class goes to the
    validation split (the judge's held-out hits), the rest to train.
    """
    root = Path(folder).resolve()
    if not root.is_dir():
        raise DrumDiffError(f"{folder} is not a folder")
    out = Path(out)
    report = prepare_dataset([root], out, config.model, config.data, progress=progress)
    index = out / "index.jsonl"
    rows = [json.loads(line) for line in index.read_text().splitlines() if line]
    for row in rows:
        row["label"] = label_for(row, classes_from, root)
    held = hold_out(rows, holdout, seed)
    per_class: dict[str, dict[str, int]] = {}
    for row in rows:
        row["split"] = "validation" if int(row["id"]) in held else "train"
        counts = per_class.setdefault(str(row["label"]), {"train": 0, "validation": 0})
        counts[row["split"]] += 1
    write_text_atomic(index, "".join(json.dumps(r) + "\n" for r in rows))
    # Keep prepare's report truthful about the splits and labels this command chose.
    summary = report.to_json()
    summary["per_class"] = dict(sorted(Counter(str(r["label"]) for r in rows).items()))
    summary["per_split"] = dict(Counter(str(r["split"]) for r in rows))
    summary["holdout"] = {
        "by": "file",
        "share": holdout,
        "seed": seed,
        "classes_from": classes_from,
    }
    (out / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    return FolderSummary(
        kept=len(rows),
        classes=tuple(sorted(per_class)),
        per_class=dict(sorted(per_class.items())),
        rejected=list(report.rejected),
        per_reason=dict(sorted(report.per_reason.items())),
    )


# --- the fine-tuning config ------------------------------------------------------------------


def class_list(base: Sequence[str], found: Iterable[str]) -> tuple[str, ...]:
    """The base model's classes, then the classes of the folder it lacks (sorted)."""
    base = tuple(base)
    return base + tuple(sorted(set(found) - set(base)))


def finetune_config(
    base: dict[str, Any],
    classes: Sequence[str],
    train_set: DrumDataset,
    *,
    name: str,
    overrides: Sequence[str] = (),
) -> Config:
    """The base checkpoint's config with SMALL_DATA, then `overrides`, and the new class list.

    The base model's measured model spaces are kept for its classes (its weights were trained in
    them); a class it lacks gets one measured on the folder's hits. Render finishing's class
    envelopes are measured on the folder's hits for every class it has (renders should end
    like the user's hits), and kept from the base for the others.
    """
    data = copy.deepcopy(base)
    for override in (*SMALL_DATA, *overrides):
        apply_override(data, override)
    base_classes = tuple(base["model"]["classes"])
    data["model"]["classes"] = list(classes)
    data["name"] = name
    try:
        config = config_from_dict(data)
    except ConfigError as err:
        raise DrumDiffError(f"fine-tuning config: {err}") from None
    if train_set.classes != config.model.classes:
        raise DrumDiffError("internal: the training set was read with another class list")
    members = [
        [i for i in range(len(train_set)) if train_set.labels[i] == c] for c in range(len(classes))
    ]
    diffusion = config.diffusion
    if diffusion.class_spaces and diffusion.class_spectra and diffusion.class_envelopes:
        if len(diffusion.class_spectra) != len(base_classes):
            raise DrumDiffError("the base model's class spaces do not match its class list")
        spectra, envelopes = [], []
        for cid, cname in enumerate(classes):
            if cname in base_classes:
                b = base_classes.index(cname)
                spectra.append(diffusion.class_spectra[b])
                envelopes.append(diffusion.class_envelopes[b])
            elif members[cid]:
                clips = [train_set.clip(i) for i in members[cid]]
                spectrum, envelope = measure_space(clips, diffusion)
                spectra.append(spectrum)
                envelopes.append(envelope)
            else:
                spectra.append(diffusion.spectrum)
                envelopes.append(diffusion.envelope)
        diffusion = replace(
            diffusion, class_spectra=tuple(spectra), class_envelopes=tuple(envelopes)
        )
    finish = config.finish
    if finish.learn_envelopes:
        own_envelopes = measure_class_envelopes(
            ((train_set.clip(i), train_set.labels[i]) for i in range(len(train_set))),
            len(classes),
            finish.envelope_block,
            finish.envelope_percentile,
        )
        kept = list(own_envelopes)
        for cid, cname in enumerate(classes):
            if (
                not kept[cid]
                and cname in base_classes
                and len(finish.class_envelopes) == len(base_classes)
            ):
                kept[cid] = finish.class_envelopes[base_classes.index(cname)]
        finish = replace(finish, class_envelopes=tuple(kept))
    return replace(config, diffusion=diffusion, finish=finish)


# --- the judge on held-out hits --------------------------------------------------------------


def mel_profiles(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Log-mel in dB relative to each hit's maximum, floored MEL_RANGE_DB below it; (N, M * F)."""
    lm = log_mel(audio, sample_rate)  # (N, M, F)
    top = lm.amax(dim=(1, 2), keepdim=True)
    return (torch.maximum(lm, top - MEL_RANGE_DB) - top).flatten(1).double().numpy()


def mel_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """RMS dB difference between every profile of a (N, D) and of b (M, D); shape (N, M)."""
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T
    return np.sqrt(np.clip(sq, 0, None) / a.shape[1])


def nearest_distance(renders: np.ndarray, real: np.ndarray) -> float | None:
    """Symmetric mean nearest-neighbour log-mel distance (dB) between two sets of profiles.

    Half is how far each render is from the closest real hit (are renders like some real hit?),
    half how far each real hit is from the closest render (are all real hits covered?).
    """
    if len(renders) == 0 or len(real) == 0:
        return None
    d = mel_distances(renders, real)
    return float((d.min(axis=1).mean() + d.min(axis=0).mean()) / 2)


def render_for_judge(
    model: LoadedModel,
    classes: Sequence[str],
    per_class: int,
    steps: int,
    *,
    seed: int = 0,
    ask: dict[str, str | None] | None = None,
    only: Sequence[str] | None = None,
    batch_size: int = 16,
) -> HitSet:
    """`per_class` renders of each class (seeds seed..seed+n-1), labelled with `classes` ids.

    `only` limits the renders to those classes (the ones the folder has). `ask` maps a class to
    the one the model is asked for (None = unconditional): a base model that lacks a class of
    the folder renders a stand-in instead.
    """
    from drumdiff.model.render.generate import render, settings_for

    settings = settings_for(model, steps=steps or None)
    names: list[str | None] = []
    labels: list[int] = []
    seeds: list[int] = []
    for cid, name in enumerate(classes):
        if only is not None and name not in only:
            continue
        asked = (ask or {}).get(name, name)
        for i in range(per_class):
            names.append(asked)
            labels.append(cid)
            seeds.append(seed + i)
    chunks = [
        render(model, seeds[s : s + batch_size], settings, classes=names[s : s + batch_size])
        for s in range(0, len(seeds), batch_size)
    ]
    return HitSet(
        np.concatenate(chunks),
        np.asarray(labels, dtype=np.int64),
        tuple(classes),
        seeds=tuple(seeds),
    )


class HeldOutJudge:
    """Distances of renders to the held-out hits, per class, and the copy check against training
    hits."""

    def __init__(self, dataset_dir: str | Path, classes: Sequence[str]) -> None:
        self.classes = tuple(classes)
        train = DrumDataset(dataset_dir, self.classes, splits=("train",))
        held = DrumDataset(dataset_dir, self.classes, splits=("validation",))
        self.sample_rate = train.info.sample_rate
        self.train_audio = _stack(train)
        self.train_labels = np.asarray(train.labels, dtype=np.int64)
        self.train_ids = [int(i) for i in train.indices]
        self.train_sources = [str(r["source"]) for r in train.rows]
        self.held_audio = _stack(held)
        self.held_labels = np.asarray(held.labels, dtype=np.int64)
        self.train_copy = copy_vectors(self.train_audio, self.sample_rate)
        self.train_mel = mel_profiles(self.train_audio, self.sample_rate)
        self.held_mel = (
            mel_profiles(self.held_audio, self.sample_rate) if len(held) else np.zeros((0, 1))
        )
        if len(held):
            sims, nearest = nearest_train(
                copy_vectors(self.held_audio, self.sample_rate), self.train_copy
            )
            top = int(sims.argmax())
            self.copy_threshold = float(sims.max())
            self.copy_threshold_from = {
                "held_out": str(held.rows[top]["source"]),
                "train": self.train_sources[int(nearest[top])],
            }
        else:
            self.copy_threshold = FALLBACK_COPY_THRESHOLD
            self.copy_threshold_from = {"fixed": "no held-out hits"}
        #: The classes the folder has hits of: the ones rendered for judging.
        self.present = tuple(
            c
            for i, c in enumerate(self.classes)
            if (self.held_labels == i).any() or (self.train_labels == i).any()
        )
        #: The classes that have held-out hits: the ones distances are measured for.
        self.judged = tuple(c for i, c in enumerate(self.classes) if (self.held_labels == i).any())
        self.floor = {
            c: nearest_distance(
                self.held_mel[self.held_labels == i], self.train_mel[self.train_labels == i]
            )
            for i, c in enumerate(self.classes)
            if c in self.judged
        }

    def measure(self, hits: HitSet) -> dict[str, Any]:
        """Per-class distance (dB) to the held-out hits, its mean over classes, and the copies."""
        if hits.classes != self.classes:
            raise DrumDiffError(
                f"renders are labelled with {hits.classes}, the judge with {self.classes}"
            )
        profiles = mel_profiles(hits.audio, self.sample_rate)
        per_class: dict[str, float | None] = {}
        for i, c in enumerate(self.classes):
            if c in self.judged:
                per_class[c] = nearest_distance(
                    profiles[hits.labels == i], self.held_mel[self.held_labels == i]
                )
        values = [v for v in per_class.values() if v is not None]
        sims, nearest = nearest_train(copy_vectors(hits.audio, self.sample_rate), self.train_copy)
        copies = [
            {
                "class": self.classes[int(hits.labels[k])],
                "seed": hits.seeds[k] if hits.seeds else None,
                "similarity": float(sims[k]),
                "train": self.train_sources[int(nearest[k])],
            }
            for k in np.nonzero(sims > self.copy_threshold)[0]
        ]
        return {
            "mean_db": float(np.mean(values)) if values else None,
            "per_class_db": per_class,
            "copies": len(copies),
            "copy_list": copies,
            "max_similarity": float(sims.max()) if len(sims) else None,
            "renders": len(hits.labels),
        }


def _stack(ds: DrumDataset) -> np.ndarray:
    if len(ds) == 0:
        return np.zeros((0, ds.info.audio_channels, ds.info.length), np.float32)
    return np.stack([ds.clip(i) for i in range(len(ds))])


# --- the job ---------------------------------------------------------------------------------


@dataclass
class Progress:
    """What the progress display shows, after every step and around each judge."""

    step: int
    loss: float
    trained_s: float  # seconds trained in this job so far (all sessions)
    budget_s: float | None  # the job's time budget, None when it stops at a step
    stop_at: int | None
    phase: str  # "train", "judge", "report"
    judge: dict[str, Any] | None = None  # the latest cheap judge
    base_judge: dict[str, Any] | None = None  # the cheap judge at step 0


@dataclass
class Outcome:
    """How `FineTune.run` ended."""

    status: str  # "done" (report written) or "stopped" (interrupted, resumable)
    step: int
    trained_s: float
    out: Path
    files: dict[str, Path] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class FineTune:
    """One fine-tuning job in one folder: create it with `start`, continue it with `resume`."""

    def __init__(
        self,
        out: Path,
        state: dict[str, Any],
        *,
        device: torch.device | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.out = Path(out)
        self.state = state
        self.settings = from_dict(FinetuneSettings, state["settings"], "finetune")
        self.device = device or torch.device("cpu")
        self.log = log

    # -- creating and reopening --------------------------------------------------------------
    @classmethod
    def start(
        cls,
        folder: str | Path,
        out: str | Path,
        base: str | Path,
        *,
        name: str | None = None,
        classes_from: str = "names",
        overrides: Sequence[str] = (),
        device: torch.device | None = None,
        log: Callable[[str], None] = print,
        progress: Callable[[Iterable[SourceItem]], Iterable[SourceItem]] | None = None,
        command: Sequence[str] = (),
    ) -> FineTune:
        """Prepare the folder into `out`, choose the classes and the config; nothing trained yet.

        `overrides` are `section.key=value` for the training config and `finetune.key=value` for
        FinetuneSettings.
        """
        out = Path(out)
        if (out / STATE_FILE).exists():
            raise DrumDiffError(
                f"{out} already holds a fine-tune; go on with --resume {out} or pick another --out"
            )
        if out.exists() and any(out.iterdir()):
            raise DrumDiffError(f"{out} exists and is not empty; pick another --out")
        own = [o for o in overrides if o.strip().startswith("finetune.")]
        rest = [o for o in overrides if not o.strip().startswith("finetune.")]
        settings = settings_from_overrides(own)
        payload = read_checkpoint(base)
        base_config = payload["config"]
        try:
            prep_config = config_from_dict(copy.deepcopy(base_config))
        except ConfigError as err:
            raise DrumDiffError(f"{base}: its config is not valid: {err}") from None
        probe = copy.deepcopy(base_config)
        try:
            # Checked before preparing, so a mistyped --set costs nothing and leaves nothing behind.
            for override in (*SMALL_DATA, *rest):
                apply_override(probe, override)
            config_from_dict(probe)
        except ConfigError as err:
            raise DrumDiffError(f"--set: {err}") from None
        name = class_slug(name or Path(folder).resolve().name)
        made = not out.exists()
        try:
            return cls._prepare(
                folder,
                out,
                base,
                payload,
                prep_config,
                settings,
                rest,
                name=name,
                classes_from=classes_from,
                overrides=overrides,
                device=device,
                log=log,
                progress=progress,
                command=command,
            )
        except BaseException:
            # A folder this call made and could not finish would block the same command next time.
            if made:
                shutil.rmtree(out, ignore_errors=True)
            raise

    @classmethod
    def _prepare(
        cls,
        folder: str | Path,
        out: Path,
        base: str | Path,
        payload: dict[str, Any],
        prep_config: Config,
        settings: FinetuneSettings,
        rest: list[str],
        *,
        name: str,
        classes_from: str,
        overrides: Sequence[str],
        device: torch.device | None,
        log: Callable[[str], None],
        progress: Callable[[Iterable[SourceItem]], Iterable[SourceItem]] | None,
        command: Sequence[str],
    ) -> FineTune:
        base_config = payload["config"]
        log(f"preparing {folder}")
        summary = prepare_folder(
            folder,
            out / "data",
            prep_config,
            classes_from=classes_from,
            holdout=settings.holdout,
            seed=settings.holdout_seed,
            progress=progress,
        )
        base_classes = tuple(base_config["model"]["classes"])
        classes = class_list(base_classes, summary.classes)
        new = [c for c in classes if c not in base_classes]
        train_set = DrumDataset(out / "data", classes, splits=("train",))
        if len(train_set) == 0:
            raise DrumDiffError(
                f"no usable training hits in {folder}; see {out / 'data' / 'report.json'}"
            )
        batch_set = any(o.strip().startswith("train.batch_size=") for o in rest)
        if not batch_set:
            # Balanced draws go with replacement, but a batch larger than the folder is pointless.
            size = min(int(base_config["train"].get("batch_size", 16)), len(train_set))
            rest = [f"train.batch_size={size}", *rest]
        config = finetune_config(base_config, classes, train_set, name=name, overrides=rest)
        state = {
            "version": STATE_VERSION,
            "created": _now(),
            "command": list(command),
            "folder": str(Path(folder).resolve()),
            "base": str(Path(base).resolve()),
            "base_step": int(payload.get("step", 0)),
            "name": name,
            "classes_from": classes_from,
            "classes": list(classes),
            "new_classes": new,
            "data": summary.to_json(),
            "settings": asdict(settings),
            "overrides": list(overrides),
            "config": to_dict(config),
            "budget_s": 0.0,
            "trained_s": 0.0,
            "judge_s": 0.0,
            "step": 0,
            "status": "prepared",
            "sessions": [],
        }
        job = cls(out, state, device=device, log=log)
        job.save_state()
        return job

    @classmethod
    def resume(
        cls,
        out: str | Path,
        *,
        device: torch.device | None = None,
        log: Callable[[str], None] = print,
    ) -> FineTune:
        """Reopen the job in `out`."""
        out = Path(out)
        path = out / STATE_FILE
        if not path.exists():
            raise DrumDiffError(f"{out} is not a fine-tune folder (no {STATE_FILE})")
        try:
            state = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise DrumDiffError(f"{path} is damaged ({err})") from None
        if state.get("version") != STATE_VERSION:
            raise DrumDiffError(
                f"{path} has version {state.get('version')!r}; this drumdiff reads {STATE_VERSION}"
            )
        return cls(out, state, device=device, log=log)

    def save_state(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.out / STATE_FILE, json.dumps(self.state, indent=2) + "\n")

    @property
    def config(self) -> Config:
        return config_from_dict(self.state["config"])

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.state["classes"])

    def timeline(self) -> list[dict[str, Any]]:
        """Every cheap judge so far, by step (the last one of a step wins)."""
        path = self.out / JUDGE_FILE
        if not path.exists():
            return []
        rows: dict[int, dict[str, Any]] = {}
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows[int(row["step"])] = row
        return [rows[k] for k in sorted(rows)]

    # -- training ----------------------------------------------------------------------------
    def run(
        self,
        *,
        minutes: float | None = None,
        stop_at: int | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        on_progress: Callable[[Progress], None] | None = None,
        report: bool = True,
    ) -> Outcome:
        """Train for `minutes` more (or to step `stop_at`), judging along the way; then report.

        With neither, a fresh job trains 10 minutes and a resumed one the rest of its budget.
        `should_stop()` is asked after every step: True checkpoints and returns "stopped".
        """
        from drumdiff.model.train.trainer import Trainer

        if minutes is not None and minutes <= 0:
            raise DrumDiffError(f"minutes must be positive, got {minutes}")
        if stop_at is not None and stop_at < 1:
            raise DrumDiffError(f"stop_at must be at least 1, got {stop_at}")
        state = self.state
        if minutes is not None:
            state["budget_s"] = float(state["trained_s"]) + minutes * 60
        elif stop_at is None and not state["budget_s"]:
            state["budget_s"] = float(state["trained_s"]) + 600.0
        budget = float(state["budget_s"]) if (minutes is not None or stop_at is None) else None
        config = self.config
        trainer = Trainer(
            config,
            self.out / "data",
            self.out,
            device=self.device,
            init_checkpoint=None if (self.out / "last.pt").exists() else state["base"],
            log=self.log,
        )
        resumed = trainer.resume()
        trainer.write_run_files()
        # The trainer fills in whatever the base model had not measured (model space, finishing).
        state["config"] = to_dict(trainer.config)
        judge = HeldOutJudge(self.out / "data", self.classes)
        state["copy_threshold"] = judge.copy_threshold
        state["copy_threshold_from"] = judge.copy_threshold_from
        state["floor_db"] = judge.floor
        state["status"] = "training"
        session = {"started": _now(), "from_step": trainer.step, "resumed": resumed}
        state["sessions"].append(session)
        self.save_state()
        settings = self.settings
        steps = settings.render_steps or config.sampling.steps
        timeline = self.timeline()
        base_row = timeline[0] if timeline and timeline[0]["step"] == 0 else None
        latest = timeline[-1] if timeline else None
        trained_before = float(state["trained_s"])
        started = time.monotonic()
        judge_every_s = settings.judge_every_s or max(60.0, ((budget or 0.0) - trained_before) / 4)
        judge_every_steps = settings.judge_every_steps
        if budget is None and not judge_every_steps:
            judge_every_steps = max(1, ((stop_at or 1) - trainer.step) // 4)
        last_judged_s = trained_before
        stopped = False

        def trained_s() -> float:
            return trained_before + (time.monotonic() - started)

        def cheap_judge(step: int) -> dict[str, Any]:
            t0 = time.monotonic()
            loaded = LoadedModel(Denoiser(trainer.ema.model), trainer.config, step, None)  # type: ignore[arg-type]
            hits = render_for_judge(
                loaded,
                self.classes,
                settings.judge_per_class,
                steps,
                seed=settings.seed,
                only=judge.present,
            )
            row = {
                "step": step,
                "trained_s": round(trained_s(), 1),
                "time": _now(),
                "checkpoint": f"checkpoints/step-{step:07d}.pt",
                **judge.measure(hits),
            }
            state["judge_s"] = float(state["judge_s"]) + time.monotonic() - t0
            with open(self.out / JUDGE_FILE, "a") as fh:
                fh.write(json.dumps(row) + "\n")
            return row

        def show(step: int, loss: float, phase: str) -> None:
            if on_progress is not None:
                on_progress(
                    Progress(step, loss, trained_s(), budget, stop_at, phase, latest, base_row)
                )

        def checkpoint_and_judge(step: int, loss: float) -> None:
            nonlocal latest, base_row, last_judged_s
            show(step, loss, "judge")
            trainer.save()
            latest = cheap_judge(step)
            if step == 0:
                base_row = latest
            last_judged_s = trained_s()
            state["step"], state["trained_s"] = step, trained_s()
            self.save_state()

        if base_row is None and trainer.step == 0:
            checkpoint_and_judge(0, float("nan"))

        def on_step(step: int, loss: float) -> bool:
            nonlocal stopped
            if should_stop():
                stopped = True
                return True
            out_of_time = budget is not None and trained_s() >= budget
            due = (judge_every_steps and step % judge_every_steps == 0) or (
                not judge_every_steps and trained_s() - last_judged_s >= judge_every_s
            )
            if due and not out_of_time and step != stop_at:
                checkpoint_and_judge(step, loss)
                if should_stop():
                    stopped = True
                    return True
            show(step, loss, "train")
            return out_of_time

        done_already = (budget is not None and trained_s() >= budget) or (
            stop_at is not None and trainer.step >= stop_at
        )
        loss = float("nan")
        if not done_already:
            result = trainer.fit(stop_at=stop_at, progress=False, on_step=on_step)
            loss = result.loss
        step = trainer.step
        state["step"], state["trained_s"] = step, trained_s()
        session.update(
            {"ended": _now(), "to_step": step, "seconds": round(time.monotonic() - started, 1)}
        )
        if stopped:
            state["status"] = "stopped"
            self.save_state()
            return Outcome("stopped", step, float(state["trained_s"]), self.out)
        if not self.timeline() or self.timeline()[-1]["step"] != step:
            checkpoint_and_judge(step, loss)
        state["status"] = "trained"
        self.save_state()
        if not report:
            return Outcome("trained", step, float(state["trained_s"]), self.out)
        show(step, loss, "report")
        files = self.finish(judge)
        state["status"] = "done"
        state["finished"] = _now()
        self.save_state()
        return Outcome("done", step, float(state["trained_s"]), self.out, files)

    # -- the end: export, judge base and fine-tuned, card, report -----------------------------
    def export(self) -> Path:
        """DIR/model.pt: the EMA weights of the newest checkpoint in fp16, with their config."""
        payload = read_checkpoint(self.out / "last.pt")
        config = config_from_dict(payload["config"])
        return save_checkpoint(
            self.out / "model.pt",
            config,
            model_state=None,
            ema_state=payload["ema"],
            step=int(payload["step"]),
            half=True,
        )

    def finish(self, judge: HeldOutJudge | None = None) -> dict[str, Path]:
        """Export, then judge the base and the exported model on the held-out hits and write the
        card and the report."""
        judge = judge or HeldOutJudge(self.out / "data", self.classes)
        model_path = self.export()
        settings = self.settings
        tuned = load_checkpoint(model_path, device=self.device)
        base = load_checkpoint(self.state["base"], device=self.device)
        steps = settings.render_steps or tuned.config.sampling.steps
        base_steps = settings.render_steps or base.config.sampling.steps
        stand_in = "other" if "other" in base.classes else None
        ask = {c: (c if c in base.classes else stand_in) for c in self.classes}
        t0 = time.monotonic()
        base_hits = self._base_renders(base, ask, base_steps, judge.present)
        tuned_hits = render_for_judge(
            tuned,
            self.classes,
            settings.report_per_class,
            steps,
            seed=settings.seed,
            only=judge.present,
        )
        render_s = time.monotonic() - t0
        results = {"base": judge.measure(base_hits), "fine-tuned": judge.measure(tuned_hits)}
        full = self._full_judge(judge, {"base": base_hits, "fine-tuned": tuned_hits})
        timeline = self.timeline()
        first_copy = next((row for row in timeline if row["copies"] > 0), None)
        report = {
            "created": _now(),
            "command": self.state.get("command"),
            "folder": self.state["folder"],
            "base": {
                "path": self.state["base"],
                "step": self.state["base_step"],
                "render_steps": base_steps,
                "stand_in_for_new_classes": stand_in,
            },
            "model": {"path": str(model_path.resolve()), "step": tuned.step, "render_steps": steps},
            "classes": list(self.classes),
            "new_classes": self.state["new_classes"],
            "data": self.state["data"],
            "training": {
                "steps": tuned.step,
                "trained_s": round(float(self.state["trained_s"]), 1),
                "judge_s": round(float(self.state["judge_s"]), 1),
                "sessions": self.state["sessions"],
                "overrides": self.state["overrides"],
                "settings": self.state["settings"],
                "train": self.state["config"]["train"],
                "augment": self.state["config"]["data"]["augment"],
            },
            "judge": {
                "renders_per_class": settings.report_per_class,
                "seeds": [settings.seed, settings.seed + settings.report_per_class - 1],
                "render_s": round(render_s, 1),
                "copy_threshold": judge.copy_threshold,
                "copy_threshold_from": judge.copy_threshold_from,
                "floor_db": judge.floor,
                "judged_classes": list(judge.judged),
            },
            "results": results,
            "full_judge": full,
            "timeline": timeline,
            "copying_starts": None
            if first_copy is None
            else {
                "step": first_copy["step"],
                "checkpoint": first_copy["checkpoint"],
                "copies": first_copy["copies"],
            },
        }
        report = json_safe(report)
        (self.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        audio = self._write_audio(judge, base_hits, tuned_hits)
        page = self.out / "report.html"
        page.write_text(report_html(report, audio))
        card = self.out / "MODEL_CARD.md"
        card.write_text(model_card(report))
        return {
            "model": model_path,
            "card": card,
            "report": page,
            "report_json": self.out / "report.json",
        }

    def _base_renders(
        self, base: LoadedModel, ask: dict[str, str | None], steps: int, only: Sequence[str]
    ) -> HitSet:
        """The base model's renders for the report, cached: they never change during a job."""
        settings = self.settings
        key = {
            "base": self.state["base"],
            "steps": steps,
            "n": settings.report_per_class,
            "seed": settings.seed,
            "classes": list(self.classes),
            "ask": ask,
            "only": list(only),
        }
        cache = self.out / "base_renders.npz"
        if cache.exists():
            stored = np.load(cache)
            if json.loads(str(stored["key"])) == key:
                return HitSet(
                    stored["audio"],
                    stored["labels"],
                    self.classes,
                    seeds=tuple(int(s) for s in stored["seeds"]),
                )
        hits = render_for_judge(
            base,
            self.classes,
            settings.report_per_class,
            steps,
            seed=settings.seed,
            ask=ask,
            only=only,
        )
        np.savez(
            cache,
            audio=hits.audio,
            labels=hits.labels,
            seeds=np.asarray(hits.seeds),
            key=json.dumps(key),
        )
        return hits

    def _full_judge(self, judge: HeldOutJudge, sets: dict[str, HitSet]) -> dict[str, Any] | None:
        """The project judge's FD in the classifier embedding and class fidelity, where it can
        run."""
        from drumdiff.model.judge.classifier import load_classifier
        from drumdiff.model.judge.evaluate import EvaluationError, build_reference
        from drumdiff.model.judge.evaluate import judge as run_judge

        path = DEFAULT_CLASSIFIER
        if not path.exists() or len(judge.held_labels) < 2:
            return None
        try:
            classifier = load_classifier(path)
            held = HitSet(judge.held_audio, judge.held_labels, self.classes)
            train = HitSet(
                judge.train_audio, judge.train_labels, self.classes, ids=tuple(judge.train_ids)
            )
            ref = build_reference(held, train, classifier, judge.sample_rate)
            out: dict[str, Any] = {}
            for name, hits in sets.items():
                scores = run_judge(ref, name, hits, repeats=10, seed=self.settings.seed).scores
                o = scores["overall"]
                emb = o.get("distances", {}).get("embedding", {})
                out[name] = {
                    "fd_embedding": emb.get("fd"),
                    "fd_floor": emb.get("fd_floor"),
                    "fd_ratio": emb.get("fd_ratio"),
                    "items_per_half": emb.get("items_per_half"),
                    "fidelity_micro": o["fidelity"]["micro"],
                    "fidelity_ceiling": o["fidelity"]["ceiling_micro"],
                    "fidelity_per_class": {
                        c: e["fidelity"]["share"] for c, e in scores["per_class"].items()
                    },
                }
            return out
        except (EvaluationError, DrumDiffError, ValueError) as err:
            return {"error": str(err)}

    def _write_audio(
        self, judge: HeldOutJudge, base_hits: HitSet, tuned_hits: HitSet
    ) -> dict[str, dict[str, list[str]]]:
        from drumdiff.model.wav import write_wav_atomic

        folder = self.out / "audio"
        folder.mkdir(exist_ok=True)
        n = self.settings.audio_per_class
        out: dict[str, dict[str, list[str]]] = {}
        sr = judge.sample_rate
        for cid, cname in enumerate(self.classes):
            if not ((judge.train_labels == cid).any() or (judge.held_labels == cid).any()):
                continue
            entry: dict[str, list[str]] = {}
            for tag, hits in (("base", base_hits), ("fine-tuned", tuned_hits)):
                idx = np.nonzero(hits.labels == cid)[0][:n]
                names = []
                for k in idx:
                    fname = f"{cname}_{tag}_{hits.seeds[k] if hits.seeds else k}.wav"
                    write_wav_atomic(folder / fname, hits.audio[k], sr)
                    names.append(fname)
                entry[tag] = names
            held = np.nonzero(judge.held_labels == cid)[0][:n]
            names = []
            for j, k in enumerate(held):
                fname = f"{cname}_held_out_{j}.wav"
                write_wav_atomic(folder / fname, judge.held_audio[k], sr)
                names.append(fname)
            entry["held-out"] = names
            out[cname] = entry
        return out
