"""Sound design with a trained model: variation, inversion and interpolation, inpainting and
extension, class morphing, the checkpoints of a run to scrub through, and pitch.

Every function takes a `LoadedModel` and plain arguments (no YAML, no argparse) and is seeded:
item i of a batch depends only on seeds[i], so results can be recalled from the seeds echoed in
file metadata and daemon replies. Audio goes in and comes out as float32 numpy arrays, (C, T) for
one hit and (B, C, T) for a batch, at the model's sample rate; inside, the model works on
`space.audio_to_model(audio)`, as in training.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from drumdiff.model.audio import DrumAudio, apply_fade_out, normalise_peak, peak_safe
from drumdiff.model.core.checkpoint import LoadedModel, load_checkpoint
from drumdiff.model.core.diffusion import add_noise, alpha_sigma
from drumdiff.model.core.sampling import (
    X0Model,
    generators_for,
    get_sampler,
    get_schedule,
    randn,
    sample_ddim,
)
from drumdiff.model.core.space import audio_to_model, model_to_audio, space_weights
from drumdiff.model.errors import CheckpointError, DrumDiffError
from drumdiff.model.labels import DEFAULT_ROOT_NOTE
from drumdiff.model.render.design_defaults import DESIGN_DEFAULTS
from drumdiff.model.render.finish import (
    block_rms_db,
    dc_block,
    envelope_bound,
    finish_patch_grid,
    gate_tail,
    limit_to_envelope,
)
from drumdiff.model.render.generate import (
    FADE_OUT_S,
    RenderSettings,
    class_index,
    render,
    undistilled,
    valid_length,
)

ClassRef = str | int | None
AudioIn = np.ndarray | DrumAudio


class SoundDesignError(DrumDiffError, ValueError):
    """A sound-design request is malformed (bad level, range, weights, checkpoint choice...)."""


# ---------------------------------------------------------------------------------------------
# Shared plumbing


def fit_audio(model: LoadedModel, audio: AudioIn, length: int | None = None) -> np.ndarray:
    """An input hit as the model takes it: float32 (C, T) at its rate, channels and length.

    `audio` is a `DrumAudio` (resampled and remixed as needed) or an array (C, T) / (T,) already
    at the model's rate. It is cut (with a short fade) or zero-padded to `valid_length(length)`,
    the training length when `length` is None.
    """
    cfg = model.config.model
    if not isinstance(audio, DrumAudio):
        array = np.asarray(audio, dtype=np.float32)
        if array.ndim == 1:
            array = array[None]
        if array.ndim != 2:
            raise SoundDesignError(f"audio must be (channels, frames), got shape {array.shape}")
        audio = DrumAudio(array, cfg.sample_rate)
    if audio.frames == 0:
        raise SoundDesignError("input audio is empty")
    if not np.isfinite(audio.samples).all():
        raise SoundDesignError("input audio contains NaN or Inf")
    audio = audio.resampled(cfg.sample_rate).with_channels(cfg.audio_channels)
    frames = valid_length(model, length)
    fade = int(FADE_OUT_S * cfg.sample_rate)
    return np.ascontiguousarray(audio.fixed_length(frames, fade_out=fade).samples, dtype=np.float32)


def _device(model: LoadedModel) -> torch.device:
    return next(model.denoiser.parameters()).device


def _space(model: LoadedModel, extra: dict[str, Any] | None) -> Tensor | None:
    """The class weights that pick each item's model space (models with per-class spaces)."""
    if extra is None:
        return None
    return space_weights(
        len(model.classes),
        class_ids=extra.get("class_ids"),
        class_weights=extra.get("class_weights"),
    )


def _to_model(model: LoadedModel, audio: np.ndarray, extra: dict[str, Any] | None = None) -> Tensor:
    """(…, C, T) audio -> the scaled space the network was trained on (for `extra`'s classes)."""
    return audio_to_model(
        torch.as_tensor(audio, dtype=torch.float32, device=_device(model)),
        model.config.diffusion,
        _space(model, extra),
    )


def _from_model(model: LoadedModel, x: Tensor, extra: dict[str, Any] | None = None) -> np.ndarray:
    audio = model_to_audio(x.float(), model.config.diffusion, _space(model, extra))
    return audio.cpu().numpy().astype(np.float32)


#: The loudest peak a finished hit may have (model.audio.peak_safe's ceiling).
PEAK_CEILING = 0.999
#: DC blocker cutoff for hits made from a user's audio. Render's 10 Hz pole turns a 50 Hz
#: kick's phase by 11 degrees: inaudible, but the waveform moves so far (SNR 14-17 dB against
#: the input on Hydrogen's kicks) that an interpolation's endpoints would no longer be the
#: inputs. At 2 Hz the same kicks stay at 27-31 dB, and an offset is still gone within 0.25 s.
DESIGN_DC_CUTOFF_HZ = 2.0


def _design_dc_cutoff(model: LoadedModel) -> float:
    cutoff = model.config.finish.dc_cutoff_hz
    return min(cutoff, DESIGN_DC_CUTOFF_HZ) if cutoff > 0 else 0.0


#: How much louder than its source (at any moment, relative to the peak) a hit made from it
#: may be before the envelope limit turns it down: a variation may differ from its source, an
#: end tick 20-40 dB above a faded-out source is the denoiser's.
SOURCE_ENVELOPE_MARGIN_DB = 3.0


def source_bound(
    model: LoadedModel, sources: Sequence[np.ndarray], classes: Sequence[ClassRef] = ()
) -> tuple[float, ...]:
    """The envelope limit for a hit made from `sources` (C, T) conditioned on `classes`: at each
    block the louder of the sources' own level (plus SOURCE_ENVELOPE_MARGIN_DB) and the classes'
    measured envelopes (model/render/finish.py), in dB relative to the peak."""
    cfg = model.config.finish
    block = cfg.envelope_block
    curves = []
    for source in sources:
        peak = _peak(source)
        if peak > 0:
            curves.append(block_rms_db(source / peak, block) + SOURCE_ENVELOPE_MARGIN_DB)
    for name in classes:
        if name is None:
            continue
        bound = envelope_bound(cfg, class_weight_vector(model, {name: 1.0}).tolist())
        if bound:
            curves.append(np.asarray(bound, dtype=np.float64))
    if not curves:
        return ()
    size = max(len(c) for c in curves)
    # A curve shorter than the others holds its last value, as limit_to_envelope does.
    padded = [
        np.concatenate([c, np.full(size - len(c), c[-1])]) if len(c) < size else c for c in curves
    ]
    return tuple(float(v) for v in np.max(padded, axis=0))


def finish_from_audio(
    model: LoadedModel,
    audio: np.ndarray,
    peaks: Sequence[float],
    bounds: Sequence[Sequence[float]],
    length: int | None = None,
) -> np.ndarray:
    """Finish (B, C, T) hits made from a user's audio (vary, interpolate) as `render` finishes
    its own, cut to `length`: patch-grid suppression (before the cut), envelope limit to
    bounds[i] (see `source_bound`), DC blocker, tail gate, end fade, then item i's peak set to
    peaks[i].

    Two of render's steps differ, because the sound is the user's and not only the model's:
    - the envelope limit is not the class's alone: render turns a hit down wherever it is
      louder than its class's 75th-percentile envelope, which here would cut a user's own long
      tail (an 808, an open hat); the bound is the louder of the source's own envelope and the
      class's, so it removes only what neither has, such as the tick a denoiser leaves in the
      last 10 ms of a faded-out source;
    - the peak is the input's (for interpolation, the blend of both inputs' peaks), not the
      training clips' 0.95: a hit varied at -6 dB stays at -6 dB, and an interpolation's
      endpoints stay the inputs.
    The DC blocker runs at 2 Hz (DESIGN_DC_CUTOFF_HZ) so the user's low end keeps its phase; the
    tail gate only touches audio already 55 dB below the peak.
    """
    cfg = model.config.finish
    sr = model.config.model.sample_rate
    fade = int(FADE_OUT_S * sr)
    out = []
    patch = model.config.model.patch_size
    for item, peak, bound in zip(audio, peaks, bounds):
        item = finish_patch_grid(item, cfg, sr, patch)[..., : length or item.shape[-1]]
        if bound:
            item = limit_to_envelope(item, bound, cfg.envelope_block, cfg.envelope_margin_db)
        item = np.array(dc_block(item, sr, _design_dc_cutoff(model)), dtype=np.float32)
        item = np.array(
            gate_tail(item, sr, cfg.tail_gate_db, cfg.tail_gate_block, cfg.tail_gate_release_s),
            dtype=np.float32,
        )
        apply_fade_out(item, fade)
        out.append(
            normalise_peak(item, min(float(peak), PEAK_CEILING)) if peak > 0 else peak_safe(item)
        )
    return np.stack(out)


def _peak(audio: np.ndarray) -> float:
    return float(np.abs(audio).max()) if audio.size else 0.0


def _conditioning(
    model: LoadedModel,
    batch: int,
    *,
    classes: Sequence[ClassRef] | None = None,
    class_weights: Tensor | None = None,
    guidance: float,
) -> dict[str, Any]:
    """The `extra_args` of the sampler: class ids (None = unconditional) or blended weights."""
    extra: dict[str, Any] = {"guidance": float(guidance)}
    if class_weights is not None:
        extra["class_weights"] = class_weights.to(_device(model), torch.float32)
        return extra
    names = list(classes) if classes is not None else [None] * batch
    if len(names) != batch:
        raise SoundDesignError(f"got {len(names)} classes for a batch of {batch}")
    ids = [class_index(model, n) for n in names]
    extra["class_ids"] = torch.tensor(ids, dtype=torch.long, device=_device(model))
    return extra


def _check_seeds(seeds: Sequence[int]) -> list[int]:
    if len(seeds) == 0:
        raise SoundDesignError("nothing to render: no seeds")
    return [int(s) for s in seeds]


def schedule_below(name: str, steps: int, level: float) -> Tensor:
    """The part of a sampling schedule below noise level `level`, starting at `level`.

    `steps` is the length of the full schedule (from t = 1), so a variation at level 0.3 costs
    only the steps that lie below 0.3, as in SDEdit / img2img "strength".
    """
    full = get_schedule(name, steps)
    below = full[full < level]
    return torch.cat([torch.tensor([float(level)]), below])


# ---------------------------------------------------------------------------------------------
# Variation (SDEdit, Meng et al. 2022; Dance Diffusion's "regeneration")


@torch.inference_mode()
def variation(
    model: LoadedModel,
    audio: AudioIn,
    level: float,
    seeds: Sequence[int],
    settings: RenderSettings,
    *,
    drum_class: ClassRef = None,
) -> np.ndarray:
    """len(seeds) variations of one hit, float32 (B, C, T).

    The input is noised to noise level t = `level` (alpha * x + sigma * noise, the noise drawn
    from each seed) and denoised with `settings.sampler` over the schedule below `level`. Level 0
    returns the (fitted) input itself, level 1 a new sound of `drum_class` (None =
    unconditional) that owes nothing to the input.
    """
    if not 0.0 <= level <= 1.0 or not math.isfinite(level):
        raise SoundDesignError(f"variation level must be in [0, 1], got {level}")
    seeds = _check_seeds(seeds)
    source = fit_audio(model, audio, settings.length)
    if level == 0.0:
        return np.repeat(source[None, :, : settings.length or source.shape[-1]], len(seeds), axis=0)
    settings = undistilled(model, settings)
    sampler = get_sampler(settings.sampler)
    generators = generators_for(seeds)
    extra = _conditioning(
        model, len(seeds), classes=[drum_class] * len(seeds), guidance=settings.guidance
    )
    x0 = _to_model(model, np.repeat(source[None], len(seeds), axis=0), extra)
    noise = randn(x0.shape, generators, device=x0.device)
    t = torch.full((len(seeds),), float(level), device=x0.device)
    x = add_noise(x0, noise, t)
    ts = schedule_below(settings.schedule, settings.steps, level)
    out = sampler(model.denoiser, x, ts, extra_args=extra, generator=generators, eta=settings.eta)
    kept = source[..., : settings.length or source.shape[-1]]
    # At level 1 nothing of the source is left in the result, its envelope included.
    bound = source_bound(model, [kept] if level < 1.0 else [], [drum_class])
    n = len(seeds)
    return finish_from_audio(
        model, _from_model(model, out, extra), [_peak(kept)] * n, [bound] * n, settings.length
    )


# ---------------------------------------------------------------------------------------------
# Inversion and interpolation (DDIM inversion: Song et al. 2021 §4.3, Dhariwal & Nichol 2021)


def _ab(t: float) -> tuple[float, float]:
    alpha, sigma = alpha_sigma(torch.tensor(t, dtype=torch.float64))
    return float(alpha), float(sigma)


def _predict(
    model: LoadedModel, x: Tensor, t: float, extra: dict[str, Any]
) -> tuple[Tensor, Tensor]:
    """(x0, eps) predicted at level t; from v, so both are defined at t = 0 and at t = 1."""
    alpha, sigma = _ab(t)
    tt = torch.full((x.shape[0],), t, device=x.device, dtype=x.dtype)
    v = model.denoiser.v(x, tt, **extra)
    return alpha * x - sigma * v, sigma * x + alpha * v


@torch.inference_mode()
def invert(
    model: LoadedModel,
    audio: np.ndarray,
    steps: int,
    *,
    classes: Sequence[ClassRef] | None = None,
    guidance: float = 1.0,
    schedule: str = "karras",
    refine: int = 0,
) -> Tensor:
    """Deterministic DDIM run backwards, t from 0 up to 1: the latent noise of each hit.

    Args:
        audio: fitted hits, float32 (B, C, T) or (C, T) (see `fit_audio`).
        steps: steps of the schedule; `reconstruct` with the same steps, schedule, classes and
            guidance maps the latent back to (nearly) the input, closer with more steps.
        classes: the condition of each item (None = unconditional). Guidance other than 1
            makes the ODE stiffer and the inversion worse (Mokady et al. 2023), hence 1.
        refine: fixed-point iterations per step that make each backward step the exact inverse
            of the forward DDIM step (Pan et al. 2023, AIDI); each costs one network call.
    Returns:
        latents (B, C, T) in the model's scaled space, at t = 1 (standard-normal-like).
    """
    if steps < 1:
        raise SoundDesignError(f"steps must be at least 1, got {steps}")
    if refine < 0:
        raise SoundDesignError(f"refine must be >= 0, got {refine}")
    batch = np.asarray(audio, dtype=np.float32)
    if batch.ndim == 2:
        batch = batch[None]
    extra = _conditioning(model, batch.shape[0], classes=classes, guidance=guidance)
    x = _to_model(model, batch, extra)
    levels = [float(v) for v in get_schedule(schedule, steps).flip(0)]  # 0 ... 1
    for t, t_next in zip(levels, levels[1:]):
        alpha, sigma = _ab(t)
        alpha_n, sigma_n = _ab(t_next)
        x0, eps = _predict(model, x, t, extra)
        z = alpha_n * x0 + sigma_n * eps  # the plain inversion step (model evaluated at t)
        for _ in range(refine):
            # Solve DDIM(z, t_next -> t) = x. Near t = 0 (sigma small) solve for eps, elsewhere
            # for x0: each form is a contraction where the other is not (at t_next = 1 the eps
            # form is stationary, since eps(z, 1) = z exactly).
            x0_z, eps_z = _predict(model, z, t_next, extra)
            if sigma < 0.5:
                z = alpha_n * (x - sigma * eps_z) / alpha + sigma_n * eps_z
            else:
                z = alpha_n * x0_z + sigma_n * (x - alpha * x0_z) / sigma
        x = z
    return x


@torch.inference_mode()
def reconstruct(
    model: LoadedModel,
    latents: Tensor,
    steps: int,
    *,
    classes: Sequence[ClassRef] | None = None,
    class_weights: Tensor | None = None,
    guidance: float = 1.0,
    schedule: str = "karras",
) -> np.ndarray:
    """Deterministic DDIM from latents at t = 1 to audio (B, C, T), unscaled, unprocessed."""
    extra = _conditioning(
        model, latents.shape[0], classes=classes, class_weights=class_weights, guidance=guidance
    )
    out = sample_ddim(model.denoiser, latents, get_schedule(schedule, steps), extra_args=extra)
    return _from_model(model, out, extra)


def slerp(a: Tensor, b: Tensor, w: float) -> Tensor:
    """Spherical interpolation of two latents (Shoemake 1985); linear when nearly parallel.

    Gaussian latents live near a sphere, so a straight line between them passes through
    low-norm noise that the model never saw (White 2016, "Sampling generative networks").
    """
    a_flat, b_flat = a.reshape(-1).double(), b.reshape(-1).double()
    cos = torch.dot(a_flat, b_flat) / (a_flat.norm() * b_flat.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if float(omega) < 1e-4:
        out = (1 - w) * a_flat + w * b_flat
    else:
        out = (torch.sin((1 - w) * omega) * a_flat + torch.sin(w * omega) * b_flat) / torch.sin(
            omega
        )
    return out.reshape(a.shape).to(a.dtype)


def class_weight_vector(model: LoadedModel, weights: Mapping[ClassRef, float]) -> np.ndarray:
    """Normalised (num_classes + 1,) weights from {class name / id / None (null): weight}."""
    if not weights:
        raise SoundDesignError("morph needs at least one class weight")
    vec = np.zeros(len(model.classes) + 1, np.float64)
    for name, weight in weights.items():
        weight = float(weight)
        if not math.isfinite(weight) or weight < 0:
            raise SoundDesignError(
                f"class weight of {name!r} must be finite and >= 0, got {weight}"
            )
        try:
            vec[class_index(model, name)] += weight
        except ValueError as err:
            raise SoundDesignError(str(err)) from None
    total = vec.sum()
    if total <= 0:
        raise SoundDesignError("class weights sum to 0")
    return (vec / total).astype(np.float32)


@torch.inference_mode()
def interpolate(
    model: LoadedModel,
    a: AudioIn,
    b: AudioIn,
    n: int,
    steps: int,
    *,
    class_a: ClassRef = None,
    class_b: ClassRef = None,
    guidance: float = 1.0,
    schedule: str = "karras",
    refine: int = 0,
    length: int | None = None,
    fractions: Sequence[float] | None = None,
) -> np.ndarray:
    """n hits from `a` to `b` (B = n, C, T): invert both, slerp the latents, sample with DDIM.

    Deterministic (no seeds): the same inputs and options give the same hits. The class
    condition moves linearly from `class_a` to `class_b` along the way; items 0 and n-1
    reproduce the inputs, better with more `steps` (see `invert`). `fractions` (each in
    [0, 1]) replaces the n evenly spaced points, e.g. to render only some of them.
    """
    if fractions is None:
        if n < 2:
            raise SoundDesignError(f"interpolation needs n >= 2 (the two endpoints), got {n}")
        fractions = np.linspace(0.0, 1.0, n).tolist()
    if not fractions or any(not 0.0 <= float(w) <= 1.0 for w in fractions):
        raise SoundDesignError("interpolation fractions must lie in [0, 1]")
    pair = np.stack([fit_audio(model, a, length), fit_audio(model, b, length)])
    latents = invert(
        model,
        pair,
        steps,
        classes=[class_a, class_b],
        guidance=guidance,
        schedule=schedule,
        refine=refine,
    )
    z = torch.stack([slerp(latents[0], latents[1], float(w)) for w in fractions])
    wa = class_weight_vector(model, {class_a: 1.0})
    wb = class_weight_vector(model, {class_b: 1.0})
    weights = torch.as_tensor(
        np.stack([(1 - w) * wa + w * wb for w in fractions]), dtype=torch.float32
    )
    out = reconstruct(model, z, steps, class_weights=weights, guidance=guidance, schedule=schedule)
    a_kept, b_kept = (x[..., : length or x.shape[-1]] for x in pair)
    peaks = [(1 - w) * _peak(a_kept) + w * _peak(b_kept) for w in fractions]
    bound = source_bound(model, [a_kept, b_kept], [class_a, class_b])
    return finish_from_audio(model, out, peaks, [bound] * len(fractions), length)


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """10 log10(|ref|^2 / |ref - est|^2); inf when identical."""
    ref = np.asarray(reference, np.float64)
    err = float(((ref - np.asarray(estimate, np.float64)) ** 2).sum())
    power = float((ref**2).sum())
    if err == 0:
        return math.inf
    return 10 * math.log10(max(power, 1e-30) / err)


def inversion_snr(
    model: LoadedModel,
    audio: np.ndarray,
    steps: int,
    *,
    drum_class: ClassRef = None,
    schedule: str = "karras",
    refine: int = 0,
) -> float:
    """SNR (dB) of invert -> reconstruct against a fitted hit (C, T): how exact inversion is."""
    latent = invert(model, audio, steps, classes=[drum_class], schedule=schedule, refine=refine)
    back = reconstruct(model, latent, steps, classes=[drum_class], schedule=schedule)
    return snr_db(audio, back[0])


# ---------------------------------------------------------------------------------------------
# Inpainting and extension (replacement conditioning: Song et al. 2021, App. I.2; RePaint's
# known-region update, Lugmayr et al. 2022, without its resampling jumps)


def seam_mask(keep: np.ndarray, seam: int) -> np.ndarray:
    """A soft keep-mask: 1 on kept samples, falling to 0 over `seam` samples into each
    regenerated stretch (raised cosine), so kept samples stay exact and the seam is smooth."""
    keep = np.asarray(keep, bool)
    soft = keep.astype(np.float32)
    if seam <= 0:
        return soft
    ramp = 0.5 * (1 + np.cos(np.linspace(0, math.pi, seam + 2)[1:-1])).astype(np.float32)
    # Distance of every regenerated sample to the nearest kept one, on each side.
    n = keep.size
    idx = np.arange(n)
    last_kept = np.where(keep, idx, -1)
    last_kept = np.maximum.accumulate(last_kept)
    next_kept = np.where(keep, idx, n + seam + 1)
    next_kept = np.minimum.accumulate(next_kept[::-1])[::-1]
    dist = np.minimum(np.where(last_kept >= 0, idx - last_kept, n + seam + 1), next_kept - idx)
    inside = (~keep) & (dist <= seam)
    soft[inside] = ramp[dist[inside] - 1]
    return soft


def keep_mask_for(frames: int, regenerate: tuple[int, int]) -> np.ndarray:
    """Keep everything but samples [start, end)."""
    start, end = regenerate
    if not 0 <= start < end <= frames:
        raise SoundDesignError(
            f"regenerate range [{start}, {end}) must lie within 0..{frames} and not be empty"
        )
    keep = np.ones(frames, bool)
    keep[start:end] = False
    return keep


class _Inpainter:
    """Wraps a denoiser so any sampler inpaints: the kept region of the input it sees is the
    source noised to the current level, and of its x0 prediction the source itself."""

    def __init__(self, denoiser: X0Model, source: Tensor, noise: Tensor, mask: Tensor) -> None:
        self.denoiser, self.source, self.noise, self.mask = denoiser, source, noise, mask

    def __call__(self, x: Tensor, t: Tensor, **extra: Any) -> Tensor:
        alpha, sigma = alpha_sigma(t)
        known = alpha[:, None, None] * self.source + sigma[:, None, None] * self.noise
        x = self.mask * known + (1 - self.mask) * x
        x0 = self.denoiser(x, t, **extra)
        return self.mask * self.source + (1 - self.mask) * x0


@torch.inference_mode()
def inpaint(
    model: LoadedModel,
    audio: AudioIn,
    seeds: Sequence[int],
    settings: RenderSettings,
    *,
    regenerate: tuple[int, int] | None = None,
    keep_mask: np.ndarray | None = None,
    drum_class: ClassRef = None,
    seam: int | None = None,
) -> np.ndarray:
    """Regenerate part of a hit and keep the rest, float32 (B, C, T).

    Give `regenerate` = (start, end) in samples, or `keep_mask` (T,) bool (True = keep). The
    kept samples are re-imposed at every step (noised to the step's level on the way in, exact
    in the prediction) and set exactly at the end; a raised-cosine crossfade of `seam` samples
    (default 5 ms) inside the regenerated part hides the joint. Kept samples equal the input.
    """
    if (regenerate is None) == (keep_mask is None):
        raise SoundDesignError("give exactly one of regenerate=(start, end) or keep_mask")
    seeds = _check_seeds(seeds)
    cfg = model.config.model
    source = fit_audio(model, audio, settings.length)
    frames = source.shape[-1]  # what the network runs at
    out_len = settings.length or frames  # what the caller gets
    if keep_mask is not None:
        keep = np.asarray(keep_mask, bool).reshape(-1)
        if keep.size not in (frames, out_len):
            raise SoundDesignError(f"keep_mask has {keep.size} samples, the audio {out_len}")
        # Samples past the asked length are cut away at the end; let the model fill them.
        keep = np.concatenate([keep, np.zeros(frames - keep.size, bool)])
    else:
        assert regenerate is not None
        keep = keep_mask_for(out_len, (int(regenerate[0]), int(regenerate[1])))
        keep = np.concatenate([keep, np.zeros(frames - out_len, bool)])
    if keep[:out_len].all():
        return np.repeat(source[None, :, :out_len], len(seeds), axis=0)
    seam = int(DESIGN_DEFAULTS.seam_ms * 1e-3 * cfg.sample_rate) if seam is None else int(seam)
    device = _device(model)
    generators = generators_for(seeds)
    x = randn((len(seeds), cfg.audio_channels, frames), generators, device=device)
    extra = _conditioning(
        model, len(seeds), classes=[drum_class] * len(seeds), guidance=settings.guidance
    )
    src = _to_model(model, np.repeat(source[None], len(seeds), axis=0), extra)
    hard = torch.as_tensor(keep, dtype=torch.float32, device=device)[None, None]
    wrapped = _Inpainter(model.denoiser, src, x.clone(), hard)
    settings = undistilled(model, settings)
    ts = get_schedule(settings.schedule, settings.steps)
    sampler = get_sampler(settings.sampler)
    out = sampler(wrapped, x, ts, extra_args=extra, generator=generators, eta=settings.eta)
    generated = _from_model(model, out, extra)[..., :out_len]
    keep, source = keep[:out_len], source[:, :out_len]
    fade = int(FADE_OUT_S * cfg.sample_rate)
    soft = seam_mask(keep, seam)[None]
    result = []
    finish = model.config.finish
    for item in generated:
        # Finished as a render is, but only the new part: the kept samples are the user's, exact.
        # No envelope limit and no normalisation (see `finish_from_audio`): the new part meets
        # the kept one at the kept one's level.
        item = np.array(dc_block(item, cfg.sample_rate, _design_dc_cutoff(model)), dtype=np.float32)
        if not keep[-1]:  # only a regenerated ending gets the tail gate and the end fade
            item = np.array(
                gate_tail(
                    item,
                    cfg.sample_rate,
                    finish.tail_gate_db,
                    finish.tail_gate_block,
                    finish.tail_gate_release_s,
                ),
                dtype=np.float32,
            )
            apply_fade_out(item, fade)
        # Both parts are within the ceiling, so their convex blend is too, and no gain change
        # touches the kept samples.
        item = peak_safe(item)
        result.append((soft * source + (1 - soft) * item).astype(np.float32))
    return np.stack(result)


def extend(
    model: LoadedModel,
    audio: AudioIn,
    seeds: Sequence[int],
    settings: RenderSettings,
    *,
    keep: str,
    split: int,
    drum_class: ClassRef = None,
    seam: int | None = None,
) -> np.ndarray:
    """Keep the attack and grow a new tail (`keep="attack"`: samples [0, split) kept), or keep
    the tail and grow a new attack (`keep="tail"`: samples [split, T) kept).

    With `settings.length` longer than the input, "attack" extends a short hit into a longer one.
    """
    frames = settings.length or valid_length(model, None)
    if not 0 < split < frames:
        raise SoundDesignError(f"split must be in 1..{frames - 1}, got {split}")
    if keep == "attack":
        regenerate = (split, frames)
    elif keep == "tail":
        regenerate = (0, split)
    else:
        raise SoundDesignError(f"unknown keep {keep!r}; expected one of ['attack', 'tail']")
    return inpaint(
        model, audio, seeds, settings, regenerate=regenerate, drum_class=drum_class, seam=seam
    )


# ---------------------------------------------------------------------------------------------
# Class morphing (CRASH's class mixing, through the embeddings and guidance)


def morph(
    model: LoadedModel,
    weights: Mapping[ClassRef, float],
    seeds: Sequence[int],
    settings: RenderSettings,
) -> np.ndarray:
    """Render hits from a blend of classes, e.g. {"kick": 0.5, "tom": 0.5}; weights are
    normalised to sum to 1 and blend the class embeddings (guidance pulls toward the blend).
    A single class with weight 1 renders exactly what `render` does for that class."""
    seeds = _check_seeds(seeds)
    vec = class_weight_vector(model, weights)
    return render(model, seeds, settings, class_weights=np.repeat(vec[None], len(seeds), axis=0))


# ---------------------------------------------------------------------------------------------
# Checkpoint scrubbing (the paper's undertrained models, §8.3)

_STEP_FILE = re.compile(r"^step-(\d+)\.pt$")


@dataclass(frozen=True)
class CheckpointEntry:
    step: int
    path: Path


def list_checkpoints(run: str | Path) -> list[CheckpointEntry]:
    """The `step-*.pt` checkpoints of a run folder (or of its checkpoints/ folder), by step."""
    run = Path(run)
    if run.is_file():
        raise CheckpointError(
            f"{run} is a checkpoint file, not a run folder: scrubbing picks among a run's "
            "step-*.pt "
            f"checkpoints (give its folder, e.g. runs/default_xxxxxxxx); `drumdiff render {run}` "
            "renders this one"
        )
    folder = run / "checkpoints" if (run / "checkpoints").is_dir() else run
    if not folder.is_dir():
        raise CheckpointError(f"run folder {run} does not exist")
    entries = []
    for path in folder.iterdir():
        match = _STEP_FILE.match(path.name)
        if match and path.is_file():
            entries.append(CheckpointEntry(int(match.group(1)), path))
    if not entries:
        raise CheckpointError(f"no step-*.pt checkpoints in {folder}")
    return sorted(entries, key=lambda e: e.step)


def pick_checkpoint(
    entries: Sequence[CheckpointEntry],
    *,
    step: int | None = None,
    fraction: float | None = None,
) -> CheckpointEntry:
    """The checkpoint nearest a training step, or nearest `fraction` of the newest one's step
    (0 = the first kept, 1 = the newest: training so far). Ties go to the earlier one."""
    if not entries:
        raise CheckpointError("no checkpoints to choose from")
    if (step is None) == (fraction is None):
        raise SoundDesignError("give exactly one of step or fraction")
    ordered = sorted(entries, key=lambda e: e.step)
    if fraction is not None:
        if not 0.0 <= fraction <= 1.0 or not math.isfinite(fraction):
            raise SoundDesignError(f"fraction must be in [0, 1], got {fraction}")
        first, last = ordered[0].step, ordered[-1].step
        target = first + fraction * (last - first)
    else:
        assert step is not None
        if step < 0:
            raise SoundDesignError(f"step must be >= 0, got {step}")
        target = float(step)
    return min(ordered, key=lambda e: (abs(e.step - target), e.step))


class ModelCache:
    """A few loaded models kept resident, least recently used evicted first. Thread-safe.

    Keyed by resolved path and modification time, so a rewritten file (last.pt) is reloaded.
    """

    def __init__(self, capacity: int = 3, *, device: str | torch.device = "cpu") -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.device = torch.device(device)
        self._models: OrderedDict[tuple[str, int], LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0  # how many times a file was read (tests and status)

    def get(self, path: str | Path) -> LoadedModel:
        path = Path(path).resolve()
        try:
            key = (str(path), path.stat().st_mtime_ns)
        except OSError:
            raise CheckpointError(f"checkpoint {path} does not exist") from None
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            model = load_checkpoint(path, device=self.device)
            self.loads += 1
            self._models[key] = model
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)
            return model

    def put(self, model: LoadedModel) -> None:
        """Make an already loaded model resident (e.g. the daemon's default)."""
        if model.path is None:
            raise ValueError("only models loaded from a file can be cached")
        path = model.path.resolve()
        with self._lock:
            self._models[(str(path), path.stat().st_mtime_ns)] = model
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)

    def resident(self) -> list[Path]:
        with self._lock:
            return [Path(p) for p, _ in self._models]

    def __len__(self) -> int:
        with self._lock:
            return len(self._models)


# ---------------------------------------------------------------------------------------------
# Pitch


def pitch_shift(audio: np.ndarray, sample_rate: int, semitones: float) -> np.ndarray:
    """Pitch by resampling (soxr VHQ), like a sampler's repitch: up is shorter, down longer.

    `audio` is (C, T) or (B, C, T); the result keeps `sample_rate` and the leading axes.
    """
    if not math.isfinite(semitones) or abs(semitones) > 48:
        raise SoundDesignError(f"pitch must be within +-48 semitones, got {semitones}")
    if semitones == 0:
        return np.asarray(audio, np.float32).copy()
    import soxr

    array = np.asarray(audio, np.float32)
    ratio = 2.0 ** (semitones / 12.0)
    # Reading the samples as if recorded at sr * ratio and resampling to sr raises the pitch.
    flat = array.reshape(-1, array.shape[-1])
    out = soxr.resample(flat.T, sample_rate * ratio, sample_rate, quality="VHQ").T
    return np.ascontiguousarray(out.reshape(*array.shape[:-1], -1), dtype=np.float32)


def pitched_root_note(semitones: float, root: int = DEFAULT_ROOT_NOTE) -> int:
    """The `smpl` root (unity) note of a hit pitched by `semitones`: a sampler playing it at
    that key gives the pitched sound, and each key away from it moves the pitch from there as
    if the original had been played at `root`. Rounded to whole semitones (the fraction field
    of `smpl` is not written)."""
    note = int(round(root + semitones))
    if not 0 <= note <= 127:
        raise SoundDesignError(f"root note {note} out of MIDI range 0..127")
    return note
