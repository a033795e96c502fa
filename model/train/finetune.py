"""Fine-tune a trained model on a folder of one's own one-shots: prepare, hold out, train, judge,
export.

One folder (DIR) holds the whole job, so it can be stopped and resumed at any point:

- `finetune.json`: what was asked (folder, base model, labels, settings) and where the run stands;
- `data/`: the prepared folder (`data.dataset.prepare_dataset`); held-out hits are its validation
split;
- `last.pt`, `checkpoints/step-*.pt`, `metrics.jsonl`, `config.resolved.yaml`: the training run
  (`train.trainer.Trainer`); a checkpoint is kept at every judge point, so `design scrub DIR` and
  the daemon's `scrub` can go back to an earlier, less copied state;
- `judge.jsonl`: the cheap judge at every kept checkpoint (distance to the held-out hits, copies);
- at the end `model.pt` (fp16 EMA weights, what ships), `MODEL_CARD.md`, `report.json`,
  `report.html` (and `audio/`).

The judge here works on the user's own hits: a user's folder is usually one kit, so hits are held
out by file (per class), not by kit. Distances are log-mel distances in dB between a render and
its nearest held-out hit of the same class (and back), beside the same distance from each held-out
hit to the nearest of the user's training hits (the floor: how close the user's own hits are to
each other). A render is flagged as a copy when it is closer to a training hit (log-mel cosine)
than any held-out hit is, the rule of `judge.evaluate`.
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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from drumdiff.model import DEFAULT_CLASSIFIER
from drumdiff.model.config import Config, apply_override, config_from_dict, from_dict, to_dict
from drumdiff.model.core.checkpoint import (
    LoadedModel,
    full_model_config,
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
from drumdiff.model.train.finetune_files import (
    STATE_FILE,
    STATE_VERSION,
    append_judge_row,
    load_base_renders,
    now,
    read_state,
    read_timeline,
    save_base_renders,
    write_report_audio,
    write_report_json,
    write_report_pages,
    write_state,
)
from drumdiff.model.train.finetune_report import MIN_FILES_TO_HOLD_OUT

if TYPE_CHECKING:
    from drumdiff.model.train.trainer import Trainer

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
            finish.percentiles_for(tuple(classes), ignore_unknown=True),
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

    def held_hits(self) -> HitSet:
        return HitSet(self.held_audio, self.held_labels, self.classes)

    def train_hits(self) -> HitSet:
        return HitSet(self.train_audio, self.train_labels, self.classes, ids=tuple(self.train_ids))

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


def _split_overrides(overrides: Sequence[str]) -> tuple[list[str], list[str]]:
    """`finetune.KEY=VALUE` overrides (FinetuneSettings), then the training config's."""
    own = [o for o in overrides if o.strip().startswith("finetune.")]
    rest = [o for o in overrides if not o.strip().startswith("finetune.")]
    return own, rest


def _check_out_is_free(out: Path) -> None:
    if (out / STATE_FILE).exists():
        raise DrumDiffError(
            f"{out} already holds a fine-tune; go on with --resume {out} or pick another --out"
        )
    if out.exists() and any(out.iterdir()):
        raise DrumDiffError(f"{out} exists and is not empty; pick another --out")


def _prepare_config(base: str | Path, base_config: dict[str, Any], rest: Sequence[str]) -> Config:
    """The base model's config to prepare the folder with, once `rest` is known to apply to it."""
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
    return prep_config


def _with_batch_size(rest: list[str], base_config: dict[str, Any], hits: int) -> list[str]:
    """`rest` with the base's batch size, at most `hits`, unless it sets one itself."""
    if any(o.strip().startswith("train.batch_size=") for o in rest):
        return rest
    # Balanced draws go with replacement, but a batch larger than the folder is pointless.
    size = min(int(base_config["train"].get("batch_size", 16)), hits)
    return [f"train.batch_size={size}", *rest]


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
        _check_out_is_free(out)
        own, rest = _split_overrides(overrides)
        settings = settings_from_overrides(own)
        payload = read_checkpoint(base)
        payload["config"] = full_model_config(payload)  # a fine-tune has no student
        prep_config = _prepare_config(base, payload["config"], rest)
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
        train_set = DrumDataset(out / "data", classes, splits=("train",))
        if len(train_set) == 0:
            raise DrumDiffError(
                f"no usable training hits in {folder}; see {out / 'data' / 'report.json'}"
            )
        rest = _with_batch_size(rest, base_config, len(train_set))
        config = finetune_config(base_config, classes, train_set, name=name, overrides=rest)
        state = {
            "version": STATE_VERSION,
            "created": now(),
            "command": list(command),
            "folder": str(Path(folder).resolve()),
            "base": str(Path(base).resolve()),
            "base_step": int(payload.get("step", 0)),
            "name": name,
            "classes_from": classes_from,
            "classes": list(classes),
            "new_classes": [c for c in classes if c not in base_classes],
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
        return cls(out, read_state(out), device=device, log=log)

    def save_state(self) -> None:
        write_state(self.out, self.state)

    @property
    def config(self) -> Config:
        return config_from_dict(self.state["config"])

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.state["classes"])

    def timeline(self) -> list[dict[str, Any]]:
        """Every cheap judge so far, by step (the last one of a step wins)."""
        return read_timeline(self.out)

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
        if minutes is not None and minutes <= 0:
            raise DrumDiffError(f"minutes must be positive, got {minutes}")
        if stop_at is not None and stop_at < 1:
            raise DrumDiffError(f"stop_at must be at least 1, got {stop_at}")
        budget = self._set_budget(minutes, stop_at)
        session = _Session(self, budget, stop_at, should_stop, on_progress)
        step, loss = session.train()
        if session.stopped:
            self._set_status("stopped")
            return self._outcome("stopped", step)
        # The last step is always kept and judged: the timeline ends where the training did.
        if not self.timeline() or self.timeline()[-1]["step"] != step:
            session.checkpoint_and_judge(step, loss)
        self._set_status("trained")
        if not report:
            return self._outcome("trained", step)
        session.show(step, loss, "report")
        files = self.finish(session.judge)
        self.state["status"] = "done"
        self.state["finished"] = now()
        self.save_state()
        return self._outcome("done", step, files)

    def _set_budget(self, minutes: float | None, stop_at: int | None) -> float | None:
        """Record the job's time budget; the one this run stops at (None: it stops at a step)."""
        state = self.state
        if minutes is not None:
            state["budget_s"] = float(state["trained_s"]) + minutes * 60
        elif stop_at is None and not state["budget_s"]:
            state["budget_s"] = float(state["trained_s"]) + 600.0
        return float(state["budget_s"]) if (minutes is not None or stop_at is None) else None

    def _set_status(self, status: str) -> None:
        self.state["status"] = status
        self.save_state()

    def _outcome(self, status: str, step: int, files: dict[str, Path] | None = None) -> Outcome:
        return Outcome(status, step, float(self.state["trained_s"]), self.out, files or {})

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
        return _Report(self, judge).write(model_path)


# --- one training session --------------------------------------------------------------------


class _Session:
    """One `FineTune.run` from its trainer's resume to its last step: the trainer, the judge,
    the clock and when to judge, and the hooks the training loop calls."""

    def __init__(
        self,
        job: FineTune,
        budget: float | None,
        stop_at: int | None,
        should_stop: Callable[[], bool],
        on_progress: Callable[[Progress], None] | None,
    ) -> None:
        self.job, self.state = job, job.state
        self.budget, self.stop_at = budget, stop_at
        self.should_stop, self.on_progress = should_stop, on_progress
        config = job.config
        self.trainer, resumed = self._open_trainer(config)
        self.judge = HeldOutJudge(job.out / "data", job.classes)
        self.record = self._record_start(resumed)
        settings = job.settings
        self.render_steps = settings.render_steps or config.sampling.steps
        timeline = job.timeline()
        self.base_row = timeline[0] if timeline and timeline[0]["step"] == 0 else None
        self.latest = timeline[-1] if timeline else None
        self.trained_before = float(self.state["trained_s"])
        self.started = time.monotonic()
        self.judge_every_s, self.judge_every_steps = self._judge_interval(settings)
        self.last_judged_s = self.trained_before
        self.stopped = False

    def _judge_interval(self, settings: FinetuneSettings) -> tuple[float, int]:
        """Seconds or steps between cheap judges: as set, else a quarter of what this run trains
        (at least a minute when it runs by time)."""
        every_s = settings.judge_every_s or max(
            60.0, ((self.budget or 0.0) - self.trained_before) / 4
        )
        every_steps = settings.judge_every_steps
        if self.budget is None and not every_steps:
            every_steps = max(1, ((self.stop_at or 1) - self.trainer.step) // 4)
        return every_s, every_steps

    def _open_trainer(self, config: Config) -> tuple[Trainer, bool]:
        """The job's trainer, resumed from its last checkpoint (True) or started from the base
        model."""
        from drumdiff.model.train.trainer import Trainer

        out = self.job.out
        trainer = Trainer(
            config,
            out / "data",
            out,
            device=self.job.device,
            init_checkpoint=None if (out / "last.pt").exists() else self.state["base"],
            log=self.job.log,
        )
        resumed = trainer.resume()
        trainer.write_run_files()
        # The trainer fills in whatever the base model had not measured (model space, finishing).
        self.state["config"] = to_dict(trainer.config)
        return trainer, resumed

    def _record_start(self, resumed: bool) -> dict[str, Any]:
        """The judge's copy threshold and floor, and this session, in the state (saved)."""
        state, judge = self.state, self.judge
        state["copy_threshold"] = judge.copy_threshold
        state["copy_threshold_from"] = judge.copy_threshold_from
        state["floor_db"] = judge.floor
        state["status"] = "training"
        record = {"started": now(), "from_step": self.trainer.step, "resumed": resumed}
        state["sessions"].append(record)
        self.job.save_state()
        return record

    def trained_s(self) -> float:
        """Seconds trained in this job, all sessions."""
        return self.trained_before + (time.monotonic() - self.started)

    def train(self) -> tuple[int, float]:
        """Judge the base model if not yet done, train to the budget or step, record the end;
        the last step and its loss (NaN when nothing was left to train)."""
        if self.base_row is None and self.trainer.step == 0:
            self.checkpoint_and_judge(0, float("nan"))
        done_already = (self.budget is not None and self.trained_s() >= self.budget) or (
            self.stop_at is not None and self.trainer.step >= self.stop_at
        )
        loss = float("nan")
        if not done_already:
            result = self.trainer.fit(stop_at=self.stop_at, progress=False, on_step=self.on_step)
            loss = result.loss
        step = self.trainer.step
        self.state["step"], self.state["trained_s"] = step, self.trained_s()
        self.record.update(
            {
                "ended": now(),
                "to_step": step,
                "seconds": round(time.monotonic() - self.started, 1),
            }
        )
        return step, loss

    def on_step(self, step: int, loss: float) -> bool:
        """The training loop's hook after every step: judge when due; True stops training."""
        if self.should_stop():
            self.stopped = True
            return True
        out_of_time = self.budget is not None and self.trained_s() >= self.budget
        if self._judge_due(step) and not out_of_time and step != self.stop_at:
            self.checkpoint_and_judge(step, loss)
            if self.should_stop():
                self.stopped = True
                return True
        self.show(step, loss, "train")
        return out_of_time

    def _judge_due(self, step: int) -> bool:
        if self.judge_every_steps:
            return step % self.judge_every_steps == 0
        return self.trained_s() - self.last_judged_s >= self.judge_every_s

    def show(self, step: int, loss: float, phase: str) -> None:
        if self.on_progress is not None:
            self.on_progress(
                Progress(
                    step,
                    loss,
                    self.trained_s(),
                    self.budget,
                    self.stop_at,
                    phase,
                    self.latest,
                    self.base_row,
                )
            )

    def checkpoint_and_judge(self, step: int, loss: float) -> None:
        """Keep a checkpoint of `step` and its cheap judge, and save where the job stands."""
        self.show(step, loss, "judge")
        self.trainer.save()
        self.latest = self._cheap_judge(step)
        if step == 0:
            self.base_row = self.latest
        self.last_judged_s = self.trained_s()
        self.state["step"], self.state["trained_s"] = step, self.trained_s()
        self.job.save_state()

    def _cheap_judge(self, step: int) -> dict[str, Any]:
        """The EMA model's distances and copies at `step`, appended to the timeline."""
        t0 = time.monotonic()
        trainer, settings = self.trainer, self.job.settings
        loaded = LoadedModel(Denoiser(trainer.ema.model), trainer.config, step, None)  # type: ignore[arg-type]
        hits = render_for_judge(
            loaded,
            self.job.classes,
            settings.judge_per_class,
            self.render_steps,
            seed=settings.seed,
            only=self.judge.present,
        )
        row = {
            "step": step,
            "trained_s": round(self.trained_s(), 1),
            "time": now(),
            "checkpoint": f"checkpoints/step-{step:07d}.pt",
            **self.judge.measure(hits),
        }
        self.state["judge_s"] = float(self.state["judge_s"]) + time.monotonic() - t0
        append_judge_row(self.job.out, row)
        return row


# --- the report ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FinalRenders:
    """The report's renders ("base" and "fine-tuned") and how they were made."""

    sets: dict[str, HitSet]
    steps: int  # the fine-tuned model's sampler steps
    base_steps: int
    stand_in: str | None  # what the base model is asked for in place of a class it lacks
    seconds: float


class _Report:
    """The end of a job: renders of the base and the fine-tuned model, their figures on the
    held-out hits, written as report.json, the report page (with audio) and the model card."""

    def __init__(self, job: FineTune, judge: HeldOutJudge) -> None:
        self.job, self.judge = job, judge

    def write(self, model_path: Path) -> dict[str, Path]:
        job, judge = self.job, self.judge
        tuned = load_checkpoint(model_path, device=job.device)
        base = load_checkpoint(job.state["base"], device=job.device)
        renders = self._final_renders(tuned, base)
        results = {name: judge.measure(hits) for name, hits in renders.sets.items()}
        full = full_judge(judge, renders.sets, seed=job.settings.seed)
        report = self._content((model_path, tuned.step), renders, results, full)
        write_report_json(job.out, report)
        audio = write_report_audio(
            job.out,
            job.classes,
            renders.sets,
            judge.held_hits(),
            judge.present,
            job.settings.audio_per_class,
            judge.sample_rate,
        )
        return {"model": model_path, **write_report_pages(job.out, report, audio)}

    def _content(
        self,
        model: tuple[Path, int],
        renders: _FinalRenders,
        results: dict[str, Any],
        full: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """report.json: what was asked, how it trained, the judge's rules and both models'
        figures."""
        job, judge = self.job, self.judge
        state, settings = job.state, job.settings
        model_path, model_step = model
        timeline = job.timeline()
        report = {
            "created": now(),
            "command": state.get("command"),
            "folder": state["folder"],
            "base": {
                "path": state["base"],
                "step": state["base_step"],
                "render_steps": renders.base_steps,
                "stand_in_for_new_classes": renders.stand_in,
            },
            "model": {
                "path": str(model_path.resolve()),
                "step": model_step,
                "render_steps": renders.steps,
            },
            "classes": list(job.classes),
            "new_classes": state["new_classes"],
            "data": state["data"],
            "training": _training_summary(state, model_step),
            "judge": {
                "renders_per_class": settings.report_per_class,
                "seeds": [settings.seed, settings.seed + settings.report_per_class - 1],
                "render_s": round(renders.seconds, 1),
                "copy_threshold": judge.copy_threshold,
                "copy_threshold_from": judge.copy_threshold_from,
                "floor_db": judge.floor,
                "judged_classes": list(judge.judged),
            },
            "results": results,
            "full_judge": full,
            "timeline": timeline,
            "copying_starts": _copying_starts(timeline),
        }
        return dict(json_safe(report))

    def _final_renders(self, tuned: LoadedModel, base: LoadedModel) -> _FinalRenders:
        """The report's renders of the base model and of the fine-tuned one, on the same seeds.

        A class the base model lacks is asked of it as "other" where it has that class (else
        unconditionally), so every class has something to compare with.
        """
        settings = self.job.settings
        steps = settings.render_steps or tuned.config.sampling.steps
        base_steps = settings.render_steps or base.config.sampling.steps
        stand_in = "other" if "other" in base.classes else None
        ask = {c: (c if c in base.classes else stand_in) for c in self.job.classes}
        t0 = time.monotonic()
        base_hits = self._base_renders(base, ask, base_steps)
        tuned_hits = self._render(tuned, steps)
        return _FinalRenders(
            {"base": base_hits, "fine-tuned": tuned_hits},
            steps,
            base_steps,
            stand_in,
            time.monotonic() - t0,
        )

    def _render(
        self, model: LoadedModel, steps: int, *, ask: dict[str, str | None] | None = None
    ) -> HitSet:
        """The report's renders of one model: the same seeds and classes for both."""
        settings = self.job.settings
        return render_for_judge(
            model,
            self.job.classes,
            settings.report_per_class,
            steps,
            seed=settings.seed,
            ask=ask,
            only=self.judge.present,
        )

    def _base_renders(self, base: LoadedModel, ask: dict[str, str | None], steps: int) -> HitSet:
        """The base model's renders for the report, cached: they never change during a job."""
        settings = self.job.settings
        key = {
            "base": self.job.state["base"],
            "steps": steps,
            "n": settings.report_per_class,
            "seed": settings.seed,
            "classes": list(self.job.classes),
            "ask": ask,
            "only": list(self.judge.present),
        }
        cached = load_base_renders(self.job.out, key, self.job.classes)
        if cached is not None:
            return cached
        hits = self._render(base, steps, ask=ask)
        save_base_renders(self.job.out, key, hits)
        return hits


def full_judge(judge: HeldOutJudge, sets: dict[str, HitSet], *, seed: int) -> dict[str, Any] | None:
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
        ref = build_reference(judge.held_hits(), judge.train_hits(), classifier, judge.sample_rate)
        out: dict[str, Any] = {}
        for name, hits in sets.items():
            scores = run_judge(ref, name, hits, repeats=10, seed=seed).scores
            out[name] = _full_judge_entry(scores)
        return out
    except (EvaluationError, DrumDiffError, ValueError) as err:
        return {"error": str(err)}


def _full_judge_entry(scores: dict[str, Any]) -> dict[str, Any]:
    o = scores["overall"]
    emb = o.get("distances", {}).get("embedding", {})
    return {
        "fd_embedding": emb.get("fd"),
        "fd_floor": emb.get("fd_floor"),
        "fd_ratio": emb.get("fd_ratio"),
        "items_per_half": emb.get("items_per_half"),
        "fidelity_micro": o["fidelity"]["micro"],
        "fidelity_ceiling": o["fidelity"]["ceiling_micro"],
        "fidelity_per_class": {c: e["fidelity"]["share"] for c, e in scores["per_class"].items()},
    }


def _training_summary(state: dict[str, Any], steps: int) -> dict[str, Any]:
    return {
        "steps": steps,
        "trained_s": round(float(state["trained_s"]), 1),
        "judge_s": round(float(state["judge_s"]), 1),
        "sessions": state["sessions"],
        "overrides": state["overrides"],
        "settings": state["settings"],
        "train": state["config"]["train"],
        "augment": state["config"]["data"]["augment"],
    }


def _copying_starts(timeline: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first kept checkpoint whose renders include copies of training hits."""
    first_copy = next((row for row in timeline if row["copies"] > 0), None)
    if first_copy is None:
        return None
    return {
        "step": first_copy["step"],
        "checkpoint": first_copy["checkpoint"],
        "copies": first_copy["copies"],
    }
