"""Distil a model into a few-step student with its guidance baked in.

The teacher (a trained model at its deterministic sampler, e.g. 12 steps of DPM-Solver++(2M)
at guidance 8, two network passes per step) is run once from many seeds, and every level of its
trajectory is kept. The student, initialised from the teacher's weights, runs through a few of
those levels (every (teacher steps / student steps)-th, or those `distill.keep` names) and learns
each segment as one DDIM step of one conditional network pass: from the teacher's state at level k
it predicts the x0 whose DDIM step lands on the teacher's state at level k + 1. This is the
multi-step generalisation of Salimans & Ho's progressive distillation (2022), done in one stage
from stored teacher trajectories (as in Luhman & Luhman, 2021, for the one-step case), and the
guidance is distilled with it (Meng et al., 2023) at one fixed scale.

Regression alone plateaus where the student cannot tell apart what the teacher would do, and
averages it: duller noise, softer onsets. `distill.adversarial` adds a critic (`critic.py`) that
compares the student's finished hits with real hits of the same class, beside the regression
(adversarial post-training, as in Sauer et al.'s ADD, 2023, and Novack et al.'s ARC, 2025).
`distill.spectral` instead adds a phase-blind distance between the student's own finished hit and
the teacher's (multi-resolution log-magnitude spectrograms): still a regression onto the teacher,
but one that averaging noise and onsets away does not lower (the role LPIPS plays for image
consistency models, Song et al. 2023).

`distill.onset_skip_s` gives the student learned onset skips (`StudentDenoiser`): in the model
space a hit's first milliseconds are white noise the network cannot predict, so it says v = 0
there and the teacher's many small steps carry the starting noise through, while the student's
few large DDIM steps shrink it (by the product of cos(step angle)). A per-level, per-class,
per-block factor times the state, added to v, keeps it; they are fitted by least squares on the
student's own run when a run starts and then trained with the network.

Stored trajectories make a CPU run affordable: each costs one teacher render, and the student's
steps then cost one forward and backward pass of a batch, reusing every trajectory many times.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from drumdiff.model.config import apply_override, from_dict
from drumdiff.model.core.checkpoint import (
    LoadedModel,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
    save_payload_atomic,
)
from drumdiff.model.core.denoiser import Denoiser, StudentDenoiser
from drumdiff.model.core.loss import log_spectral_distance
from drumdiff.model.core.sampling import DISTILLED, generators_for, get_sampler, get_schedule, randn
from drumdiff.model.core.space import (
    audio_to_model,
    model_to_audio,
    one_hot_weights,
    space_weights,
)
from drumdiff.model.data.dataset import DrumDataset
from drumdiff.model.errors import ConfigError, DrumDiffError
from drumdiff.model.render.generate import finish_hits
from drumdiff.model.train.critic import HitCritic, critic_loss, generator_loss
from drumdiff.model.train.runlog import RunLog

#: Teacher samplers whose trajectories are a function of the starting noise alone.
DETERMINISTIC = ("ddim", "dpmpp-2m", "heun")


@dataclass(frozen=True)
class DistillSettings:
    """How to distil (`--set distill.KEY=VALUE`); teacher fields of 0 / "" take the teacher's
    own."""

    steps: int = 2  # the student's steps (network passes per hit)
    teacher_steps: int = 0  # 0 = the teacher's default; a multiple of `steps`
    teacher_sampler: str = ""
    teacher_schedule: str = ""
    teacher_guidance: float = 0.0
    trajectories: int = 2048  # teacher renders to learn from
    validation: int = 64  # of those, held out to measure the student
    chunk: int = 32  # trajectories per stored file (the unit of resuming their generation)
    null_share: float = 0.1  # share of trajectories without a class ("any drum")
    batch_size: int = 16
    lr: float = 5e-5
    warmup_steps: int = 100
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    max_steps: int = 20000
    log_every: int = 50
    validate_every: int = 250
    checkpoint_every: int = 250
    seed: int = 0
    # The teacher's schedule indices of the student's levels (first 0, last the teacher's step
    # count); empty = every (teacher steps / steps)-th level.
    keep: tuple[int, ...] = ()
    # Share of the segments past the first that start from the EMA student's own run from the
    # noise rather than the teacher's state, so the student learns to correct its own drift.
    rollout: float = 0.0
    # A checkpoint whose distilled student (same levels) starts this one instead of the teacher's
    # weights: a new teacher plan (e.g. other guidance) need not start the student from scratch.
    init: str = ""
    # Adversarial post-training beside the regression: the weight of the student's critic loss
    # (0 = off), the prepared dataset whose train clips are the real hits the critic hears, how
    # many of the student's last steps run with gradients to the finished hit, the rows per
    # step, and the critic's learning rate.
    adversarial: float = 0.0
    real_data: str = ""
    adversarial_steps: int = 2
    adversarial_batch: int = 8
    critic_lr: float = 1e-4
    # The regression's weight on the first `onset_s` of every hit, against 1 for the rest (it
    # falls off exponentially; the whole profile averages 1). Onsets are a few ms of a 0.74 s
    # clip, so a flat loss lets the student average them away into slow attacks.
    onset_weight: float = 1.0
    onset_s: float = 0.02
    # A phase-blind term beside the regression: the weight of the multi-resolution log-spectral
    # distance between the student's own finished hit and the teacher's (0 = off), how many of
    # the student's last steps run with gradients to it (the earlier ones are the EMA student's
    # own run from the noise, as at render time), and the rows per step.
    spectral: float = 0.0
    spectral_steps: int = 2
    spectral_batch: int = 8
    # The spectral term's weight on each hit's first `onset_s` against the rest (the same profile
    # as `onset_weight`'s, frame by frame): the shortfall of a student's onset is in ~1 % of the
    # frames.
    spectral_onset_weight: float = 1.0
    # The student's onset skips (`StudentDenoiser`) over each hit's first `onset_skip_s` (0 =
    # none), one factor per level, class and `skip_block` samples: fitted by least squares on
    # the student's own run from `skip_fit_rows` train trajectories per class when the run
    # starts without them, then trained with the network at `skip_lr`.
    onset_skip_s: float = 0.0
    skip_block: int = 64
    skip_fit_rows: int = 40
    skip_lr: float = 1e-3
    # Learn the teacher's hits as a render finishes them (envelope limit, tail gate, patch-grid
    # suppression, fade-in) rather than its raw output: the student's last step then ends its
    # hits itself, and render finishing has little left to remove. The target keeps the raw
    # hit's level (a render's peak normalisation comes after the network anyway) unless
    # `finished_at_peak` asks for the finished render's own peak.
    finished_target: bool = False
    finished_at_peak: bool = False
    # Classes whose target stays the teacher's raw hit with `finished_target` (e.g. [kick]).
    raw_target_classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"distill.steps must be at least 1, got {self.steps}")
        if self.keep and len(self.keep) != self.steps + 1:
            raise ValueError(
                f"distill.keep names {len(self.keep)} levels; {self.steps} steps need "
                f"{self.steps + 1}"
            )
        if self.keep and (
            self.keep[0] != 0 or any(b <= a for a, b in itertools.pairwise(self.keep))
        ):
            raise ValueError(f"distill.keep must start at 0 and increase, got {list(self.keep)}")
        if not 0.0 <= self.rollout <= 1.0:
            raise ValueError(f"distill.rollout must be in [0, 1], got {self.rollout}")
        if self.adversarial < 0:
            raise ValueError(f"distill.adversarial must be 0 or more, got {self.adversarial}")
        if self.adversarial > 0 and not self.real_data:
            raise ValueError(
                "distill.adversarial needs distill.real_data, a prepared dataset of real hits"
            )
        if self.adversarial_steps < 1 or (self.adversarial and self.adversarial_steps > self.steps):
            raise ValueError(
                f"distill.adversarial_steps must be in [1, distill.steps={self.steps}], got "
                f"{self.adversarial_steps}"
            )
        if self.adversarial_batch < 1 or self.critic_lr <= 0:
            raise ValueError(
                "distill.adversarial_batch must be at least 1 and distill.critic_lr positive"
            )
        if self.spectral < 0:
            raise ValueError(f"distill.spectral must be 0 or more, got {self.spectral}")
        if self.spectral_steps < 1 or (self.spectral and self.spectral_steps > self.steps):
            raise ValueError(
                f"distill.spectral_steps must be in [1, distill.steps={self.steps}], got "
                f"{self.spectral_steps}"
            )
        if self.spectral_onset_weight <= 0:
            raise ValueError(
                f"distill.spectral_onset_weight must be positive, got {self.spectral_onset_weight}"
            )
        if self.spectral_batch < 1:
            raise ValueError(
                f"distill.spectral_batch must be at least 1, got {self.spectral_batch}"
            )
        if self.onset_skip_s < 0 or self.skip_block < 1 or self.skip_fit_rows < 1:
            raise ValueError(
                "distill.onset_skip_s must be 0 or more, distill.skip_block and "
                f"distill.skip_fit_rows at least 1, got {self.onset_skip_s}, {self.skip_block} "
                f"and {self.skip_fit_rows}"
            )
        if self.skip_lr < 0:
            raise ValueError(f"distill.skip_lr must be 0 or more, got {self.skip_lr}")
        if self.teacher_steps < 0:
            raise ValueError(f"distill.teacher_steps must be 0 or more, got {self.teacher_steps}")
        if self.onset_weight <= 0 or self.onset_s <= 0:
            raise ValueError(
                f"distill.onset_weight and distill.onset_s must be positive, got "
                f"{self.onset_weight} and {self.onset_s}"
            )
        if not self.keep and self.teacher_steps % self.steps:
            raise ValueError(
                f"distill.teacher_steps ({self.teacher_steps}) must be a multiple of distill.steps "
                f"({self.steps}), or distill.keep must name the student's levels"
            )
        if self.teacher_sampler and self.teacher_sampler not in (*DETERMINISTIC, DISTILLED):
            raise ValueError(
                f"distill.teacher_sampler must be one of {(*DETERMINISTIC, DISTILLED)} "
                "(deterministic)"
            )
        if not 0 < self.validation < self.trajectories:
            raise ValueError(
                "distill.validation must be at least 1 and fewer than distill.trajectories"
            )
        if self.chunk < 1 or self.batch_size < 1 or self.max_steps < 1:
            raise ValueError(
                "distill.chunk, distill.batch_size and distill.max_steps must be at least 1"
            )
        if not 0.0 <= self.null_share < 1.0:
            raise ValueError(f"distill.null_share must be in [0, 1), got {self.null_share}")
        if self.lr <= 0 or not 0.0 <= self.ema_decay < 1.0:
            raise ValueError("distill.lr must be positive and distill.ema_decay in [0, 1)")


#: A run folder's settings, written when the run starts and read back when it resumes.
SETTINGS_FILE = "settings.json"
#: Where a run that shares another run's trajectories finds them when it resumes.
SHARED_TRAJECTORIES_FILE = "trajectories_from.json"


def settings_from_overrides(
    overrides: Sequence[str], base: dict[str, Any] | None = None
) -> DistillSettings:
    """DistillSettings from `distill.KEY=VALUE` strings over `base` (stored settings, else the
    defaults); unknown keys and wrong types are errors."""
    data: dict[str, Any] = {"distill": dict(base or {})}
    for override in overrides:
        if not override.startswith("distill."):
            raise DrumDiffError(f"--set {override}: only distill.* settings can be set here")
        apply_override(data, override)
    try:
        return from_dict(DistillSettings, data["distill"], "distill")
    except (ConfigError, ValueError) as err:
        raise DrumDiffError(str(err)) from None


def run_settings(
    run_dir: Path, overrides: Sequence[str]
) -> tuple[DistillSettings, dict[str, tuple[Any, Any]]]:
    """The settings a run goes on with: those it started with (RUN/settings.json) with
    `overrides` on top, so resuming needs no setting repeated, and each setting the overrides
    changed (name: (stored, new)). A run folder without settings gets the defaults with
    `overrides`, and nothing counts as changed."""
    path = run_dir / SETTINGS_FILE
    if not path.exists():
        return settings_from_overrides(overrides), {}
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DrumDiffError(f"cannot read the run's settings {path}: {err}") from None
    if not isinstance(stored, dict):
        raise DrumDiffError(f"{path} holds no settings (a JSON object of distill.* keys)")
    try:
        before = asdict(settings_from_overrides([], stored))
    except DrumDiffError as err:
        raise DrumDiffError(f"{path}: {err}") from None
    settings = settings_from_overrides(overrides, stored)
    after = asdict(settings)
    changed = {key: (before[key], after[key]) for key in after if after[key] != before[key]}
    return settings, changed


@dataclass(frozen=True)
class TeacherPlan:
    """The teacher's deterministic sampling, and the student's levels on its schedule.

    A teacher that is itself a distilled student (sampler "distilled") runs through its own
    stored `levels`; any other teacher's levels come from its named schedule.
    """

    sampler: str
    schedule: str
    steps: int
    guidance: float
    student_steps: int
    levels: tuple[float, ...] = ()
    class_guidance: tuple[tuple[str, float], ...] = ()  # per-class scales (others: guidance)
    keep: tuple[int, ...] = ()  # the teacher's level indices of the student's (empty: every k-th)

    def teacher_levels(self) -> Tensor:
        if self.levels:
            return torch.tensor(self.levels)
        return get_schedule(self.schedule, self.steps)

    def kept(self) -> tuple[int, ...]:
        """Indices into the teacher's levels (and stored states) of the student's levels."""
        if self.keep:
            return self.keep
        return tuple(range(0, self.steps + 1, self.steps // self.student_steps))

    def student_levels(self) -> tuple[float, ...]:
        levels = self.teacher_levels()
        return tuple(float(levels[i]) for i in self.kept())

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        # Optional fields appear only when set, so plans written before them still compare equal.
        for key in ("levels", "class_guidance", "keep"):
            value = data.pop(key)
            if value:
                data[key] = [list(v) if isinstance(v, tuple) else v for v in value]
        return data

    def teacher_json(self) -> dict[str, Any]:
        """The teacher's part of the plan: what its stored trajectories depend on."""
        data = self.to_json()
        data.pop("student_steps")
        data.pop("keep", None)
        return data

    def guidance_of(self, classes: Sequence[str], class_ids: Sequence[int]) -> Tensor:
        """The teacher's guidance scale for each trajectory's class id (null class last)."""
        by_class = dict(self.class_guidance)
        row = [by_class.get(c, self.guidance) for c in classes] + [self.guidance]
        return torch.tensor([row[i] for i in class_ids], dtype=torch.float32)


def teacher_plan(teacher: LoadedModel, settings: DistillSettings) -> TeacherPlan:
    s = teacher.config.sampling
    sampler = settings.teacher_sampler or s.sampler
    if sampler == DISTILLED:
        # Progressive: a student becomes the teacher of a student with fewer steps.
        if teacher.distilled is None:
            raise DrumDiffError(
                "the teacher's sampler is distilled, but it has no distilled student"
            )
        student = teacher.distilled
        plan = TeacherPlan(
            DISTILLED, "", student.steps, 1.0, settings.steps, student.levels, keep=settings.keep
        )
    else:
        plan = TeacherPlan(
            sampler=sampler,
            schedule=settings.teacher_schedule or s.schedule,
            steps=settings.teacher_steps or s.steps,
            guidance=settings.teacher_guidance or s.guidance,
            student_steps=settings.steps,
            # A guidance asked for applies to every class, as it does for a render.
            class_guidance=() if settings.teacher_guidance else s.guidance_by_class(),
            keep=settings.keep,
        )
    if plan.sampler not in (*DETERMINISTIC, DISTILLED):
        raise DrumDiffError(
            f"the teacher's sampler {plan.sampler!r} is not deterministic; set "
            "distill.teacher_sampler "
            f"to one of {DETERMINISTIC}"
        )
    if plan.keep and plan.keep[-1] != plan.steps:
        raise DrumDiffError(
            f"distill.keep must end at the teacher's step count ({plan.steps}), got "
            f"{list(plan.keep)}"
        )
    if not plan.keep and plan.steps % plan.student_steps:
        raise DrumDiffError(
            f"the teacher's {plan.steps} steps are not a multiple of the student's "
            f"{plan.student_steps}; "
            "set distill.teacher_steps"
        )
    return plan


def teacher_network(teacher: LoadedModel, plan: TeacherPlan) -> Denoiser:
    """The network a plan runs: the model's, or its distilled student's."""
    if plan.sampler == DISTILLED:
        assert teacher.distilled is not None
        return teacher.distilled.denoiser
    return teacher.denoiser


def full_model_sampling(teacher: LoadedModel, plan: TeacherPlan) -> dict[str, Any]:
    """What the full model's sampling is, for `undistilled` (a chain records its first teacher)."""
    if plan.sampler == DISTILLED and teacher.distilled is not None:
        return {**teacher.distilled.teacher, "then": plan.to_json()}
    return plan.to_json()


# --- maths of one student step -------------------------------------------------------------


def _alpha_sigma(t: Tensor) -> tuple[Tensor, Tensor]:
    angle = t * (math.pi / 2)
    return torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]


def ddim_step(x: Tensor, x0: Tensor, t: Tensor, t_next: Tensor) -> Tensor:
    """The deterministic DDIM step from level t to t_next (per item) given the x0 estimate."""
    alpha, sigma = _alpha_sigma(t)
    alpha_n, sigma_n = _alpha_sigma(t_next)
    return alpha_n * x0 + sigma_n * (x - alpha * x0) / sigma


def onset_weights(length: int, sample_rate: int, weight: float, seconds: float) -> Tensor:
    """Per-sample loss weights: `weight` at the onset falling exponentially (time constant
    `seconds`) to 1, scaled so that they average 1 over `length` samples."""
    t = torch.arange(length, dtype=torch.float32) / sample_rate
    profile = 1.0 + (weight - 1.0) * torch.exp(-t / seconds)
    return profile / profile.mean()


def segment_target(x: Tensor, x_next: Tensor, t: Tensor, t_next: Tensor) -> Tensor:
    """The x0 whose DDIM step from (x, t) lands exactly on (x_next, t_next); t > t_next >= 0.

    Solves x_next = alpha_n x0 + sigma_n (x - alpha x0) / sigma for x0; the divisor is
    sin((t - t_next) pi / 2) / sigma > 0.
    """
    alpha, sigma = _alpha_sigma(t)
    alpha_n, sigma_n = _alpha_sigma(t_next)
    return (x_next - (sigma_n / sigma) * x) / (alpha_n - sigma_n * alpha / sigma)


# --- teacher trajectories ------------------------------------------------------------------


def trajectory_classes(num_classes: int, count: int, null_share: float, seed: int) -> np.ndarray:
    """Class ids for `count` trajectories: classes in turn, `null_share` of them the null class."""
    rng = np.random.default_rng(seed)
    ids = np.arange(count) % num_classes
    null = rng.random(count) < null_share
    ids[null] = num_classes
    return ids


@torch.inference_mode()
def teacher_trajectories(
    teacher: LoadedModel, plan: TeacherPlan, seeds: Sequence[int], class_ids: Sequence[int]
) -> Tensor:
    """The teacher's states at every level of its schedule, (B, teacher steps + 1, C, T), noise
    first."""
    cfg = teacher.config.model
    device = next(teacher_network(teacher, plan).parameters()).device
    x = randn((len(seeds), cfg.audio_channels, cfg.length), generators_for(seeds), device=device)
    states = [x.clone()]

    def keep(info: dict[str, Any]) -> None:
        states.append(info["x"].clone())

    extra = {
        "class_ids": torch.as_tensor(list(class_ids), dtype=torch.long, device=device),
        "guidance": plan.guidance_of(teacher.classes, class_ids).to(device),
    }
    get_sampler(plan.sampler)(
        teacher.denoiser, x, plan.teacher_levels(), extra_args=extra, callback=keep
    )
    return torch.stack(states, dim=1).cpu()


@dataclass
class Trajectories:
    states: Tensor  # (N, teacher steps + 1, C, T), float16
    class_ids: Tensor  # (N,)
    seeds: Tensor  # (N,)


def generate_trajectories(
    teacher: LoadedModel,
    plan: TeacherPlan,
    settings: DistillSettings,
    folder: Path,
    *,
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> Trajectories:
    """Render (or resume rendering) the stored teacher trajectories in `folder`, then load them all.

    Trajectory i starts from seed `settings.seed + i`; a chunk file is written atomically once
    complete, so an interrupted run starts again at the first missing chunk.
    """
    folder.mkdir(parents=True, exist_ok=True)
    meta = {
        "teacher_plan": plan.teacher_json(),
        "states": "every teacher level",
        "seed": settings.seed,
        "null_share": settings.null_share,
        "chunk": settings.chunk,
        "teacher": str(teacher.path),
        "teacher_step": teacher.step,
    }
    meta_path = folder / "trajectories.json"
    if meta_path.exists():
        stored = json.loads(meta_path.read_text())
        if stored != meta:
            raise DrumDiffError(
                f"{folder} holds trajectories of another teacher or plan ({stored}); "
                "use a new run folder or delete that one"
            )
    else:
        meta_path.write_text(json.dumps(meta, indent=2))
    ids = trajectory_classes(
        len(teacher.classes), settings.trajectories, settings.null_share, settings.seed
    )
    chunks = range(0, settings.trajectories, settings.chunk)
    missing = [start for start in chunks if not (folder / f"chunk_{start:06d}.pt").exists()]
    if missing:
        log(
            f"rendering {len(missing) * settings.chunk} teacher trajectories "
            f"({plan.sampler}, {plan.steps} steps, guidance {plan.guidance:g}) into {folder}"
        )
    bar = None
    if progress and missing:
        from tqdm import tqdm

        bar = tqdm(
            total=settings.trajectories,
            initial=settings.trajectories - len(missing) * settings.chunk,
            unit="hit",
            desc="teacher",
            dynamic_ncols=True,
        )
    for start in missing:
        stop = min(start + settings.chunk, settings.trajectories)
        seeds = list(range(settings.seed + start, settings.seed + stop))
        states = teacher_trajectories(teacher, plan, seeds, ids[start:stop].tolist())
        save_payload_atomic(
            folder / f"chunk_{start:06d}.pt",
            {
                "states": states.half(),
                "class_ids": torch.as_tensor(ids[start:stop]),
                "seeds": torch.as_tensor(seeds),
            },
        )
        if bar is not None:
            bar.update(stop - start)
    if bar is not None:
        bar.close()
    parts = [torch.load(folder / f"chunk_{start:06d}.pt", weights_only=True) for start in chunks]
    return Trajectories(
        states=torch.cat([p["states"] for p in parts]),
        class_ids=torch.cat([p["class_ids"] for p in parts]).long(),
        seeds=torch.cat([p["seeds"] for p in parts]).long(),
    )


@torch.no_grad()
def finished_states(
    teacher: LoadedModel,
    states: Tensor,
    class_ids: Tensor,
    *,
    at_peak: bool = False,
    batch: int = 64,
) -> Tensor:
    """Model-space hits (N, C, T) of these class ids (the null class last) finished as a render
    is (`finish_hits`) and taken back into model space, in `states`' dtype: each at the level
    that fits the raw hit best (least squares), or with `at_peak` at the render's own peak."""
    classes = len(teacher.classes)
    out = torch.empty_like(states)
    for start in range(0, len(states), batch):
        ids = class_ids[start : start + batch]
        weights = one_hot_weights(ids, classes)
        audio = model_to_audio(
            states[start : start + batch].float(), teacher.config.diffusion, weights
        )
        done = torch.from_numpy(finish_hits(teacher, audio.numpy(), weights.numpy()))
        if not at_peak:
            fit = (done * audio).sum(dim=(1, 2), keepdim=True)
            done = done * fit / (done * done).sum(dim=(1, 2), keepdim=True).clamp_min(1e-12)
        out[start : start + batch] = audio_to_model(done, teacher.config.diffusion, weights).to(
            states.dtype
        )
    return out


# --- the student ---------------------------------------------------------------------------


@torch.no_grad()
def student_run(
    student: Denoiser, noise: Tensor, class_ids: Tensor, levels: Sequence[float]
) -> Tensor:
    """The student's own DDIM run from `noise` through `levels`: its state at each level, noise
    first, (B, len(levels), C, T) in model space."""
    x, states = noise, [noise]
    for t, t_next in itertools.pairwise(levels):
        tt = torch.full((x.shape[0],), t)
        x0 = student(x, tt, class_ids=class_ids, guidance=1.0)
        x = ddim_step(x, x0, tt, torch.full_like(tt, t_next))
        states.append(x)
    return torch.stack(states, dim=1)


def student_render_states(
    student: Denoiser, noise: Tensor, class_ids: Tensor, levels: Sequence[float]
) -> Tensor:
    """The student's own DDIM run from `noise` through `levels`: its final state (model space)."""
    return student_run(student, noise, class_ids, levels)[:, -1]


@torch.no_grad()
def teacher_short_states(
    teacher: Denoiser, plan: TeacherPlan, noise: Tensor, class_ids: Tensor, classes: Sequence[str]
) -> Tensor:
    """The teacher at the student's step count (its own sampler and schedule; a distilled teacher
    through the student's levels): the baseline to beat."""
    if plan.sampler == DISTILLED:
        ts = torch.tensor(plan.student_levels())
    else:
        ts = get_schedule(plan.schedule, plan.student_steps)
    guidance = plan.guidance_of(classes, class_ids.tolist())
    extra = {"class_ids": class_ids, "guidance": guidance}
    return get_sampler(plan.sampler)(teacher, noise, ts, extra_args=extra)


class RealHits:
    """The train clips of a prepared dataset, drawn by class to pair with the student's hits.

    A class without real clips is left out of the adversarial rows (its trajectories still train
    the regression); the null class ("any drum") pairs with any clip.
    """

    def __init__(
        self, folder: str | Path, teacher: LoadedModel, *, log: Callable[[str], None] = print
    ) -> None:
        self.dataset = DrumDataset(folder, teacher.classes, splits=("train",))
        self.dataset.check_compatible(teacher.config.model)
        if not len(self.dataset):
            raise DrumDiffError(f"distill.real_data: {folder} has no train clips")
        labels = np.asarray(self.dataset.labels)
        self.by_class = [np.flatnonzero(labels == c) for c in range(len(teacher.classes))]
        self.by_class.append(np.arange(len(self.dataset)))  # the null class
        #: Whether each class id (the null class last) has real clips to pair with.
        self.covered = np.array([len(rows) > 0 for rows in self.by_class], dtype=bool)
        missing = [c for c, rows in zip(teacher.classes, self.by_class) if not len(rows)]
        if missing:
            log(f"distill.real_data has no {', '.join(missing)}: those train without the critic")

    def draw(self, class_ids: Tensor, rng: np.random.Generator) -> Tensor:
        """One random real clip per class id, (B, C, T)."""
        picks = [int(rng.choice(self.by_class[int(c)])) for c in class_ids.tolist()]
        return torch.from_numpy(np.stack([self.dataset.clip(i) for i in picks]))


class Distiller:
    """Owns one distillation run folder: trajectories/, checkpoints/, last.pt, metrics.jsonl.

    `trajectories` names another folder of stored teacher trajectories to use (another run's,
    of the same teacher) instead of RUN/trajectories; the run keeps its name
    (RUN/trajectories_from.json), so resuming needs it only to change it.
    """

    def __init__(
        self,
        teacher: LoadedModel,
        settings: DistillSettings,
        run_dir: str | Path,
        *,
        trajectories: str | Path | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.teacher = teacher
        self.settings = settings
        self.run_dir = Path(run_dir)
        self.log = log
        self.trajectories_dir = self._trajectories_folder(trajectories)
        self.plan = teacher_plan(teacher, settings)
        self.levels = self.plan.student_levels()
        unknown = sorted(set(settings.raw_target_classes) - set(teacher.classes))
        if unknown:
            raise ConfigError(
                f"distill.raw_target_classes names {unknown}, which the teacher does not have "
                f"(its classes: {', '.join(teacher.classes)})"
            )
        torch.manual_seed(settings.seed)
        cfg = teacher.config.model
        net = copy.deepcopy(teacher_network(teacher, self.plan).net).float()
        self.student: Denoiser = Denoiser(net)
        if settings.onset_skip_s > 0:
            blocks = math.ceil(settings.onset_skip_s * cfg.sample_rate / settings.skip_block)
            if blocks * settings.skip_block > cfg.length:
                raise ConfigError(
                    f"distill.onset_skip_s={settings.onset_skip_s} covers "
                    f"{blocks * settings.skip_block} samples in blocks of {settings.skip_block}, "
                    f"more than the model's {cfg.length}-sample clips"
                )
            skips = torch.zeros(settings.steps, len(teacher.classes) + 1, blocks)
            self.student = StudentDenoiser(net, self.levels, skips, settings.skip_block)
        self.student.train()
        #: Whether the onset skips still need their least-squares start (a new run without them).
        self.skips_to_fit = isinstance(self.student, StudentDenoiser)
        if settings.init:
            self._init_student(settings.init)
        for p in self.student.parameters():
            p.requires_grad_(True)
        self.ema = copy.deepcopy(self.student).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        groups: list[dict[str, Any]] = [{"params": list(self.student.net.parameters())}]
        if isinstance(self.student, StudentDenoiser):
            groups.append(
                {
                    "params": [self.student.skips],
                    "lr": settings.skip_lr,
                    "weight_decay": 0.0,
                    "lr_scale": settings.skip_lr / settings.lr,
                }
            )
        self.optimizer = torch.optim.AdamW(
            groups, lr=settings.lr, weight_decay=settings.weight_decay
        )
        self.critic: HitCritic | None = None
        self.real: RealHits | None = None
        if settings.adversarial > 0:
            self.real = RealHits(settings.real_data, teacher, log=log)
            self.critic = HitCritic(len(teacher.classes))
            self.critic_optimizer = torch.optim.Adam(
                self.critic.parameters(), lr=settings.critic_lr, betas=(0.5, 0.9)
            )
        self.step = 0
        self.rng = np.random.default_rng(settings.seed)

        def profile(weight: float) -> Tensor | None:  # None: flat, nothing to weigh
            if weight == 1.0:
                return None
            return onset_weights(cfg.length, cfg.sample_rate, weight, settings.onset_s)

        self.time_weights = profile(settings.onset_weight)
        self.spectral_weights = profile(settings.spectral_onset_weight)
        self.data: Trajectories | None = None
        self._teacher_short: float | None = None

    def _trajectories_folder(self, given: str | Path | None) -> Path:
        """`given`, else the shared folder the run started with, else RUN/trajectories."""
        pointer = self.run_dir / SHARED_TRAJECTORIES_FILE
        stored = None
        if pointer.exists():
            try:
                stored = Path(json.loads(pointer.read_text())["trajectories"])
            except (OSError, ValueError, KeyError, TypeError) as err:
                raise DrumDiffError(f"cannot read {pointer}: {err}") from None
        if given is not None:
            if stored is not None and Path(given).resolve() != stored:
                self.log(f"trajectories: {stored} (the run's) -> {Path(given).resolve()}")
            return Path(given)
        if stored is None:
            return self.run_dir / "trajectories"
        if not (stored / "trajectories.json").exists():
            raise DrumDiffError(
                f"the run's shared trajectories ({stored}, named in {pointer}) are gone: "
                "name a folder that holds them (--trajectories-from RUN) or delete that file "
                "to render them into this run"
            )
        return stored

    def _init_student(self, path: str) -> None:
        start = load_checkpoint(path).distilled
        if start is None:
            raise DrumDiffError(f"distill.init: {path} has no distilled student")
        if tuple(round(v, 6) for v in start.levels) != tuple(round(v, 6) for v in self.levels):
            raise DrumDiffError(
                f"distill.init: {path}'s student runs through levels {start.levels}, this one "
                f"through {self.levels}"
            )
        self.student.net.load_state_dict(start.denoiser.net.state_dict())
        theirs = start.denoiser if isinstance(start.denoiser, StudentDenoiser) else None
        if theirs is None:
            return
        if not isinstance(self.student, StudentDenoiser):
            raise DrumDiffError(
                f"distill.init: {path}'s student has onset skips; set distill.onset_skip_s "
                "(and distill.skip_block) to keep them"
            )
        if theirs.skips.shape != self.student.skips.shape or theirs.block != self.student.block:
            raise DrumDiffError(
                f"distill.init: {path}'s onset skips are {tuple(theirs.skips.shape)} of "
                f"{theirs.block} samples, this run's {tuple(self.student.skips.shape)} of "
                f"{self.student.block}"
            )
        with torch.no_grad():
            self.student.skips.copy_(theirs.skips)
        self.skips_to_fit = False

    # -- state ----------------------------------------------------------------------------
    @property
    def last_path(self) -> Path:
        return self.run_dir / "last.pt"

    def resume(self) -> bool:
        if not self.last_path.exists():
            return False
        payload = read_checkpoint(self.last_path)
        state = payload.get("distill_state")
        if not isinstance(state, dict):
            raise DrumDiffError(f"{self.last_path} is not a distillation checkpoint")
        if state.get("plan") != self.plan.to_json():
            raise DrumDiffError(
                f"{self.last_path} distils another plan ({state.get('plan')}); use a new run folder"
            )
        self.student.net.load_state_dict(state["student"])
        self.ema.net.load_state_dict(payload["distilled"]["weights"])
        if isinstance(self.student, StudentDenoiser) and isinstance(self.ema, StudentDenoiser):
            if "student_skips" not in state:
                raise DrumDiffError(
                    f"{self.last_path} has no onset skips; resume without distill.onset_skip_s"
                )
            with torch.no_grad():
                self.student.skips.copy_(state["student_skips"])
                self.ema.skips.copy_(payload["distilled"]["skips"])
            self.skips_to_fit = False
        elif "student_skips" in state:
            raise DrumDiffError(
                f"{self.last_path} has onset skips; resume with its distill.onset_skip_s"
            )
        self.optimizer.load_state_dict(state["optimizer"])
        if self.critic is not None:
            if "critic" in state:
                self.critic.load_state_dict(state["critic"])
                self.critic_optimizer.load_state_dict(state["critic_optimizer"])
            else:
                self.log("the run had no critic: its critic starts now")
        self.step = int(state["step"])
        self.rng = np.random.default_rng([self.settings.seed, self.step])
        self.log(f"resumed {self.run_dir} at step {self.step}")
        return True

    def distilled_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "weights": self.ema.net.state_dict(),
            "levels": list(self.levels),
            "teacher": full_model_sampling(self.teacher, self.plan),
        }
        if isinstance(self.ema, StudentDenoiser):
            entry.update(skips=self.ema.skips.detach(), skip_block=self.ema.block)
        return entry

    def save(self) -> None:
        teacher_state = self.teacher.denoiser.net.state_dict()
        save_checkpoint(
            self.last_path,
            self.teacher.config,
            model_state=None,
            ema_state=teacher_state,
            step=self.teacher.step,
            distilled=self.distilled_entry(),
            extra={
                "distill_state": {
                    "step": self.step,
                    "plan": self.plan.to_json(),
                    "settings": asdict(self.settings),
                    "student": self.student.net.state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    **self._critic_state(),
                    **self._skip_state(),
                }
            },
        )
        # A small fp16 copy per checkpoint, ready for `drumdiff eval` / `render --checkpoint`.
        save_checkpoint(
            self.run_dir / "checkpoints" / f"step-{self.step:07d}.pt",
            self.teacher.config,
            model_state=None,
            ema_state=teacher_state,
            step=self.teacher.step,
            distilled=self.distilled_entry(),
            half=True,
            extra={"distill_step": self.step},
        )

    def _skip_state(self) -> dict[str, Any]:
        if not isinstance(self.student, StudentDenoiser):
            return {}
        return {"student_skips": self.student.skips.detach().clone()}

    def _critic_state(self) -> dict[str, Any]:
        if self.critic is None:
            return {}
        return {
            "critic": self.critic.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
        }

    # -- data -----------------------------------------------------------------------------
    def prepare(self, *, progress: bool = True) -> Trajectories:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / SETTINGS_FILE).write_text(json.dumps(asdict(self.settings), indent=2))
        if self.trajectories_dir != self.run_dir / "trajectories":
            shared = {"trajectories": str(self.trajectories_dir.resolve())}
            (self.run_dir / SHARED_TRAJECTORIES_FILE).write_text(json.dumps(shared, indent=2))
        self.data = generate_trajectories(
            self.teacher,
            self.plan,
            self.settings,
            self.trajectories_dir,
            log=self.log,
            progress=progress,
        )
        if self.settings.finished_target:
            raw = [self.teacher.classes.index(c) for c in self.settings.raw_target_classes]
            finish = ~torch.isin(self.data.class_ids, torch.tensor(raw, dtype=torch.long))
            self.data.states[finish, -1] = finished_states(
                self.teacher,
                self.data.states[finish, -1],
                self.data.class_ids[finish],
                at_peak=self.settings.finished_at_peak,
            )
            self.log(
                "the student learns the teacher's finished hits"
                + (f" (raw: {', '.join(self.settings.raw_target_classes)})" if raw else "")
            )
        return self.data

    def _split(self) -> tuple[np.ndarray, np.ndarray]:
        n = self.settings.trajectories
        order = np.random.default_rng(self.settings.seed + 1).permutation(n)
        return order[self.settings.validation :], order[: self.settings.validation]

    # -- training -------------------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        warm = self.settings.warmup_steps
        return self.settings.lr * min(1.0, (step + 1) / warm) if warm else self.settings.lr

    def start_states(self, rows: np.ndarray, idx: Tensor) -> Tensor:
        """Each row's state at the start of the student's segment `idx`: the teacher's, or for a
        `distill.rollout` share of the rows past the first segment the EMA student's own there."""
        assert self.data is not None
        states = self.data.states[torch.as_tensor(rows)]
        kept = torch.tensor(self.plan.kept())
        x = states[torch.arange(len(rows)), kept[idx]].float()
        if self.settings.rollout > 0:
            own = torch.as_tensor(self.rng.random(len(rows)) < self.settings.rollout) & (idx > 0)
            if bool(own.any()):
                ids = self.data.class_ids[torch.as_tensor(rows)]
                top = int(idx[own].max())
                run = student_run(
                    self.ema, states[own, 0].float(), ids[own], self.levels[: top + 1]
                )
                x[own] = run[torch.arange(int(own.sum())), idx[own]]
        return x

    def batch(self, rows: np.ndarray) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """x at a segment's start (see `start_states`), the x0 target, t, t_next and the class
        ids, for trajectory rows; the target always lands on the teacher's next state."""
        assert self.data is not None
        segment = self.rng.integers(0, self.plan.student_steps, size=len(rows))
        idx = torch.as_tensor(segment)
        states = self.data.states[torch.as_tensor(rows)]
        ids = self.data.class_ids[torch.as_tensor(rows)]
        kept = torch.tensor(self.plan.kept())
        x_next = states[torch.arange(len(rows)), kept[idx + 1]].float()
        levels = torch.tensor(self.levels)
        t, t_next = levels[idx], levels[idx + 1]
        x = self.start_states(rows, idx)
        return x, segment_target(x, x_next, t, t_next), t, t_next, ids

    def finished_hits(
        self, rows: np.ndarray, steps: int, *, own: bool = False
    ) -> tuple[Tensor, Tensor]:
        """The student's finished hits (audio, with gradients through its last `steps` steps)
        and their class ids, for trajectory rows. The earlier steps' state is `start_states`'
        (the teacher's, or a rollout share the EMA student's own), or with `own` always the EMA
        student's own run from the noise, as at render time."""
        assert self.data is not None
        first = self.plan.student_steps - steps
        ids = self.data.class_ids[torch.as_tensor(rows)]
        if own:
            noise = self.data.states[torch.as_tensor(rows), 0].float()
            with torch.no_grad():
                x = student_run(self.ema, noise, ids, self.levels[: first + 1])[:, -1]
        else:
            x = self.start_states(rows, torch.full((len(rows),), first))
        for k in range(first, self.plan.student_steps):
            t = torch.full((len(rows),), self.levels[k])
            x0 = self.student(x, t, class_ids=ids, guidance=1.0)
            x = ddim_step(x, x0, t, torch.full_like(t, self.levels[k + 1]))
        return self.to_audio(x, ids), ids

    def to_audio(self, x: Tensor, class_ids: Tensor) -> Tensor:
        """Model-space states of these classes as audio (differentiable)."""
        weights = space_weights(len(self.teacher.classes), class_ids=class_ids)
        return model_to_audio(x, self.teacher.config.diffusion, weights)

    def spectral_loss(self, train_rows: np.ndarray) -> tuple[Tensor, dict[str, float]]:
        """The log-spectral distance of the student's own finished hits from the teacher's."""
        assert self.data is not None
        s = self.settings
        rows = self.rng.choice(
            train_rows, size=s.spectral_batch, replace=len(train_rows) < s.spectral_batch
        )
        mine, ids = self.finished_hits(rows, s.spectral_steps, own=True)
        with torch.no_grad():
            teacher = self.to_audio(self.data.states[torch.as_tensor(rows), -1].float(), ids)
        loss = log_spectral_distance(mine, teacher, time_weights=self.spectral_weights)
        return loss, {"spectral_loss": float(loss.detach())}

    def adversarial_loss(self, train_rows: np.ndarray) -> tuple[Tensor, dict[str, float]]:
        """One critic step on the student's finished hits against real hits of the same classes,
        then the student's loss against the updated critic (with gradients to the student)."""
        assert self.critic is not None and self.real is not None and self.data is not None
        s = self.settings
        eligible = train_rows[self.real.covered[self.data.class_ids[train_rows].numpy()]]
        rows = self.rng.choice(
            eligible, size=s.adversarial_batch, replace=len(eligible) < s.adversarial_batch
        )
        fake, ids = self.finished_hits(rows, s.adversarial_steps)
        real = self.real.draw(ids, self.rng)
        critic_step = critic_loss(self.critic(real, ids), self.critic(fake.detach(), ids))
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_step.backward()
        self.critic_optimizer.step()
        self.critic.requires_grad_(False)
        with torch.no_grad():
            real_scores = self.critic(real, ids)
        fake_scores = self.critic(fake, ids)
        self.critic.requires_grad_(True)
        student_loss = generator_loss(real_scores, fake_scores)
        return student_loss, {
            "critic_loss": float(critic_step.detach()),
            "adversarial_loss": float(student_loss.detach()),
            "critic_margin": float((real_scores - fake_scores.detach()).mean()),
        }

    @torch.no_grad()
    def fit_skips(self, train_rows: np.ndarray) -> None:
        """Least-squares onset skips, level by level, on the student's own run from the noise.

        Step k's factors are fitted with the earlier steps' already in place, so each corrects
        the state the student itself reaches; per class and block, the factor c minimises
        |ddim(x, x0) - sin(angle) * c * x - teacher's next state|^2. The EMA student takes them.
        """
        student = self.student
        assert isinstance(student, StudentDenoiser) and self.data is not None
        s = self.settings
        ids_all = self.data.class_ids.numpy()
        rows = np.concatenate(
            [
                train_rows[ids_all[train_rows] == c][: s.skip_fit_rows]
                for c in range(student.skips.shape[1])
            ]
        )
        kept = self.plan.kept()
        classes, blocks = student.skips.shape[1:]
        span = blocks * student.block
        student.skips.zero_()
        for k in range(self.plan.student_steps):
            angle = (self.levels[k] - self.levels[k + 1]) * math.pi / 2
            num = torch.zeros(classes, blocks)
            den = torch.zeros(classes, blocks)
            for start in range(0, len(rows), 16):
                part = torch.as_tensor(rows[start : start + 16])
                ids = self.data.class_ids[part]
                x = self.data.states[part, 0].float()
                if k:
                    x = student_run(student, x, ids, self.levels[: k + 1])[:, -1]
                t = torch.full((len(part),), self.levels[k])
                x0 = student(x, t, class_ids=ids, guidance=1.0)
                moved = ddim_step(x, x0, t, torch.full_like(t, self.levels[k + 1]))
                target = self.data.states[part, kept[k + 1]].float()
                head = (len(part), x.shape[1], blocks, student.block)
                miss = (moved - target)[..., :span].reshape(head)
                here = x[..., :span].reshape(head)
                num.index_add_(0, ids, (miss * here).sum(dim=(1, 3)))
                den.index_add_(0, ids, (here * here).sum(dim=(1, 3)) * math.sin(angle))
            student.skips[k] = torch.where(den > 0, num / den.clamp_min(1e-12), 0.0)
        assert isinstance(self.ema, StudentDenoiser)
        self.ema.skips.copy_(student.skips)
        self.skips_to_fit = False
        self.log(f"fitted the onset skips on {len(rows)} trajectories of the student's own run")

    def train_step(self, train_rows: np.ndarray) -> dict[str, float]:
        """One optimiser step: the regression loss, plus with `distill.adversarial` the critic's
        step and the student's adversarial loss, and with `distill.spectral` the log-spectral
        distance; returns the step's losses."""
        rows = self.rng.choice(
            train_rows,
            size=self.settings.batch_size,
            replace=len(train_rows) < self.settings.batch_size,
        )
        x, target, t, _t_next, ids = self.batch(rows)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.step) * group.get("lr_scale", 1.0)
        x0 = self.student(x, t, class_ids=ids, guidance=1.0)
        error = (x0 - target) ** 2
        if self.time_weights is not None:
            error = error * self.time_weights[: error.shape[-1]]
        loss = torch.mean(error)
        metrics = {"loss": float(loss.detach())}
        if self.critic is not None:
            student_loss, adversarial = self.adversarial_loss(train_rows)
            loss = loss + self.settings.adversarial * student_loss
            metrics.update(adversarial)
        if self.settings.spectral > 0:
            spectral, spectral_metrics = self.spectral_loss(train_rows)
            loss = loss + self.settings.spectral * spectral
            metrics.update(spectral_metrics)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.settings.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.student.parameters(), self.settings.grad_clip)
        self.optimizer.step()
        self.step += 1
        decay = min(self.settings.ema_decay, (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            for e, p in zip(self.ema.parameters(), self.student.parameters()):
                e.lerp_(p, 1 - decay)
        return metrics

    @torch.no_grad()
    def validate(self, rows: np.ndarray) -> dict[str, float]:
        """Distances to the teacher's full-step result on held-out seeds, in model space (MSE).

        `student`: the EMA student's own run from the noise; `teacher_short`: the teacher at the
        student's step count (what distillation must beat).
        """
        assert self.data is not None
        student_err, short_err = [], []
        for start in range(0, len(rows), 16):
            part = torch.as_tensor(rows[start : start + 16])
            states = self.data.states[part].float()
            ids = self.data.class_ids[part]
            final = states[:, -1]
            mine = student_render_states(self.ema, states[:, 0], ids, self.levels)
            student_err.append(torch.mean((mine - final) ** 2, dim=(1, 2)))
            if self._teacher_short is None:
                network = teacher_network(self.teacher, self.plan)
                short = teacher_short_states(
                    network, self.plan, states[:, 0], ids, self.teacher.classes
                )
                short_err.append(torch.mean((short - final) ** 2, dim=(1, 2)))
        if self._teacher_short is None:
            self._teacher_short = float(torch.cat(short_err).mean())
        return {
            "val_student_mse": float(torch.cat(student_err).mean()),
            "val_teacher_short_mse": self._teacher_short,
        }

    def fit(
        self,
        *,
        stop_at: int | None = None,
        stop_after_s: float | None = None,
        progress: bool = True,
    ) -> float:
        """Train to `stop_at` (or distill.max_steps) or for `stop_after_s`; checkpoints the last
        step."""
        if self.data is None:
            self.prepare(progress=progress)
        s = self.settings
        target = min(s.max_steps, stop_at) if stop_at is not None else s.max_steps
        deadline = time.monotonic() + stop_after_s if stop_after_s is not None else None
        train_rows, val_rows = self._split()
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(
                total=target, initial=self.step, unit="step", desc="student", dynamic_ncols=True
            )
        run_log = RunLog(self.run_dir, prefix="distill/", log=self.log)
        loss = float("nan")
        window: list[dict[str, float]] = []
        if self.skips_to_fit:
            self.fit_skips(train_rows)
        with run_log:
            if self.step == 0:
                run_log.row({"step": 0, **self.validate(val_rows), "time": time.time()})
            while self.step < target:
                metrics = self.train_step(train_rows)
                loss = metrics["loss"]
                window.append(metrics)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}")
                if s.log_every and self.step % s.log_every == 0:
                    means = {k: float(np.mean([m[k] for m in window])) for k in window[0]}
                    run_log.row(
                        {
                            "step": self.step,
                            **means,
                            "lr": self.lr_at(self.step),
                            "time": time.time(),
                        }
                    )
                    window = []
                if s.validate_every and self.step % s.validate_every == 0:
                    run_log.row({"step": self.step, **self.validate(val_rows)})
                out_of_time = deadline is not None and time.monotonic() >= deadline
                if (
                    (s.checkpoint_every and self.step % s.checkpoint_every == 0)
                    or self.step == target
                    or out_of_time
                ):
                    self.save()
                if out_of_time:
                    self.log(f"time limit reached at step {self.step}")
                    break
        if bar is not None:
            bar.close()
        return loss


__all__ = [
    "DISTILLED",
    "DistillSettings",
    "Distiller",
    "TeacherPlan",
    "ddim_step",
    "segment_target",
    "run_settings",
    "settings_from_overrides",
    "teacher_plan",
    "teacher_trajectories",
]
