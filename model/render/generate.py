"""Render one-shots from a loaded model: seeds in, finished float32 audio out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from drumdiff.model.core.checkpoint import LoadedModel, teacher_sampling
from drumdiff.model.core.denoiser import Denoiser
from drumdiff.model.core.sampling import DISTILLED, generators_for, get_sampler, get_schedule, randn
from drumdiff.model.core.space import model_to_audio
from drumdiff.model.render.finish import envelope_bound, finish_render

FADE_OUT_S = 0.005  # a short fade so a render never ends on a click


@dataclass(frozen=True)
class RenderSettings:
    """How to sample; defaults come from the model's SamplingConfig via `settings_for`."""

    steps: int
    sampler: str
    schedule: str = "karras"
    guidance: float = 2.0
    eta: float = 0.0
    length: int | None = None  # samples; None = the model's training length (any length works:
    # the network runs at the next length it accepts and the output is cut to this one)
    class_guidance: tuple[tuple[str, float], ...] = ()  # per-class scales; others use `guidance`

    def describe(self, drum_class: str | None = None) -> dict[str, Any]:
        """These settings as file metadata and reports record them; `guidance` is the scale a
        hit of `drum_class` renders with (without a class, the per-class scales are listed)."""
        by_class = dict(self.class_guidance)
        info: dict[str, Any] = {
            "steps": self.steps,
            "sampler": self.sampler,
            "schedule": self.schedule,
            "guidance": by_class.get(drum_class, self.guidance) if drum_class else self.guidance,
            "eta": self.eta,
        }
        if self.length is not None:
            info["length"] = self.length
        if by_class and not drum_class:
            info["class_guidance"] = by_class
        return info

    def guidance_row(self, classes: Sequence[str]) -> np.ndarray:
        """The scale of each class id (and the null class last) under these settings."""
        by_class = dict(self.class_guidance)
        unknown = sorted(set(by_class) - set(classes))
        if unknown:
            raise ValueError(f"class_guidance names {unknown}, which this model does not have")
        return np.array([by_class.get(c, self.guidance) for c in classes] + [self.guidance])


def settings_for(model: LoadedModel, **overrides: object) -> RenderSettings:
    """The model's default settings (its SamplingConfig) with `overrides` (None = keep)."""
    s = model.config.sampling
    base = RenderSettings(
        steps=s.steps,
        sampler=s.sampler,
        schedule=s.schedule,
        guidance=s.guidance,
        eta=s.eta,
        class_guidance=s.guidance_by_class(),
    )
    return settings_with(model, base, **overrides)


def settings_with(model: LoadedModel, base: RenderSettings, **overrides: object) -> RenderSettings:
    """`base` with `overrides` (None = keep base's value).

    When the base sampler is the distilled student and a request changes only the step count,
    it asks for the full model at that many steps: the sampler becomes the one the student was
    distilled from. Asking for `sampler="distilled"` without steps gives the student's step count;
    with a step count it cannot run, `sampling_plan` refuses it.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    values = {**base.__dict__, **given}
    if "guidance" in given and "class_guidance" not in given:
        values["class_guidance"] = ()  # a scale asked for applies to every class
    student = model.distilled
    if values["sampler"] == DISTILLED and "steps" not in given and student is not None:
        values["steps"] = student.steps  # the student runs at its own step count
    if (
        values["sampler"] == DISTILLED
        and "sampler" not in given
        and "steps" in given
        and (student is None or values["steps"] != student.steps)
    ):
        plan = teacher_sampling(student.teacher if student is not None else {})
        values["sampler"], values["schedule"] = plan["sampler"], plan["schedule"]
    return RenderSettings(**values)  # type: ignore[arg-type]


def undistilled(model: LoadedModel, settings: RenderSettings) -> RenderSettings:
    """Settings for the full model where an operation needs arbitrary noise levels (sound design
    starts part-way down a schedule, which a student trained on fixed levels cannot): the
    distilled sampler becomes the one its student imitates, at that sampler's steps."""
    if settings.sampler != DISTILLED:
        return settings
    plan = teacher_sampling(model.distilled.teacher if model.distilled is not None else {})
    return replace(
        settings, sampler=plan["sampler"], schedule=plan["schedule"], steps=plan["steps"]
    )


@dataclass(frozen=True)
class SamplingPlan:
    """Which network a render runs, through which noise levels, at which guidance."""

    denoiser: Denoiser
    ts: Tensor
    guidance: float


def sampling_plan(model: LoadedModel, settings: RenderSettings) -> SamplingPlan:
    """The distilled student (guidance baked in, its own levels) or the model with a schedule."""
    if settings.sampler != DISTILLED:
        ts = get_schedule(settings.schedule, settings.steps, device="cpu")
        return SamplingPlan(model.denoiser, ts, float(settings.guidance))
    student = model.distilled
    if student is None:
        raise ValueError("this model has no distilled student; pick another sampler, e.g. dpmpp-2m")
    if settings.steps != student.steps:
        raise ValueError(
            f"the distilled sampler renders in exactly {student.steps} steps, not "
            f"{settings.steps}; for {settings.steps} steps pick another sampler, e.g. dpmpp-2m"
        )
    return SamplingPlan(student.denoiser, torch.tensor(student.levels), 1.0)


def class_index(model: LoadedModel, name: str | int | None) -> int:
    """The id of a class name (or pass an id through); None = the null (unconditional) class."""
    classes = model.classes
    if name is None:
        return len(classes)
    if isinstance(name, int):
        if not 0 <= name <= len(classes):
            raise ValueError(f"class id {name} out of range 0..{len(classes)}")
        return name
    try:
        return classes.index(name)
    except ValueError:
        raise ValueError(f"unknown class {name!r}; expected one of {list(classes)}") from None


def valid_length(model: LoadedModel, length: int | None) -> int:
    """Round a requested length up to what the network accepts."""
    cfg = model.config.model
    factor = cfg.patch_size * 2 ** (len(cfg.widths) - 1)
    if length is None:
        return cfg.length
    if length <= 0:
        raise ValueError(f"length must be positive, got {length}")
    return int(-(-length // factor) * factor)


@torch.inference_mode()
def render(
    model: LoadedModel,
    seeds: Sequence[int],
    settings: RenderSettings,
    *,
    classes: Sequence[str | int | None] | None = None,
    class_weights: np.ndarray | torch.Tensor | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Render len(seeds) hits; returns float32 (B, C, T), finished (model/render/finish.py):
    envelope
    limited for their class, DC-free, faded at the end and normalised to the config's peak.

    Item i depends only on seeds[i] and its class, so a batch equals the same renders one by one.
    `class_weights` (B, num_classes + 1) blends classes (morphing) instead of `classes`.
    """
    if len(seeds) == 0:
        raise ValueError("nothing to render: no seeds")
    sampler = get_sampler(settings.sampler)
    plan = sampling_plan(model, settings)
    device = next(plan.denoiser.parameters()).device
    cfg = model.config.model
    frames = valid_length(model, settings.length)
    extra: dict[str, object] = {}
    if class_weights is not None:
        weights = torch.as_tensor(class_weights, dtype=torch.float32, device=device)
        if weights.shape != (len(seeds), len(model.classes) + 1):
            raise ValueError(
                f"class_weights must have shape ({len(seeds)}, {len(model.classes) + 1})"
            )
        extra["class_weights"] = weights
        rows = weights.cpu().numpy()
    else:
        names = list(classes) if classes is not None else [None] * len(seeds)
        if len(names) != len(seeds):
            raise ValueError(f"got {len(names)} classes for {len(seeds)} seeds")
        ids = [class_index(model, n) for n in names]
        extra["class_ids"] = torch.tensor(ids, dtype=torch.long, device=device)
        rows = np.eye(len(model.classes) + 1)[ids]
    extra["guidance"] = plan.guidance
    if settings.class_guidance and plan.denoiser is model.denoiser:
        # Per-class scales; a blend of classes takes the blend of their scales.
        scales = np.asarray(rows) @ settings.guidance_row(model.classes)
        extra["guidance"] = torch.as_tensor(scales, dtype=torch.float32, device=device)
    generators = generators_for(seeds)
    x = randn((len(seeds), cfg.audio_channels, frames), generators, device=device)

    def callback(info: dict[str, object]) -> None:
        if progress is not None:
            step = info["i"]
            assert isinstance(step, int)  # every sampler passes its step index
            progress(step + 1, settings.steps)

    out = sampler(
        plan.denoiser,
        x,
        plan.ts,
        extra_args=extra,
        callback=callback,
        generator=generators,
        eta=settings.eta,
    )
    # The network runs at a length it accepts; the caller gets the length it asked for.
    keep = settings.length if settings.length is not None else frames
    space = torch.as_tensor(
        np.asarray(rows), dtype=torch.float32
    )  # per-class spaces, if the model has them
    audio = model_to_audio(out.float(), model.config.diffusion, space).cpu().numpy()
    return finish_hits(model, audio, rows, keep=keep)


def finish_hits(
    model: LoadedModel, audio: np.ndarray, rows: np.ndarray, *, keep: int | None = None
) -> np.ndarray:
    """The network's raw output as audio (B, C, T) finished as a render is, each item bounded by
    the envelope of its class blend `rows` (B, num_classes + 1); the first `keep` samples."""
    finish = model.config.finish
    cfg = model.config.model
    fade = int(FADE_OUT_S * cfg.sample_rate)
    return np.stack(
        [
            finish_render(
                item,
                finish,
                cfg.sample_rate,
                envelope_bound(finish, row),
                fade,
                patch=cfg.patch_size,
                keep=keep,
            )
            for item, row in zip(audio, rows)
        ]
    )
