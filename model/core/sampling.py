"""Samplers with one signature, chosen from a registry, plus noise-level schedules.

Every sampler is `sample_<name>(model, x, ts, *, extra_args=None, callback=None, generator=None,
eta=0.0) -> Tensor` where

- `model(x, t, **extra_args) -> x0` is a denoiser in variance-preserving form
  (x = alpha(t) * x0 + sigma(t) * eps on the cosine schedule);
- `x` is the starting noise at `ts[0]`, shape (B, C, T);
- `ts` is a decreasing 1-D tensor of noise levels ending in 0 (n steps = n + 1 values);
- `generator` is one `torch.Generator` or one per batch item (so a batch of N equals N singles
  with the same seeds);
- `eta` is the stochasticity of samplers that have one (ignored by the others).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor

from drumdiff.model.core.diffusion import t_from_alpha_sigma

Generators = torch.Generator | Sequence[torch.Generator] | None
Callback = Callable[[dict[str, Any]], None] | None


class X0Model(Protocol):
    """What a sampler calls: x0 = model(x_t, t, **extra_args); a Denoiser or a wrapper of one."""

    def __call__(self, x: Tensor, t: Tensor, **kwargs: Any) -> Tensor: ...


def randn(
    shape: Sequence[int], generator: Generators, *, device: torch.device | str = "cpu"
) -> Tensor:
    """Standard noise of `shape`; with a list of generators, item i draws from generator i."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(*shape, generator=generator).to(device)
    if len(generator) != shape[0]:
        raise ValueError(f"got {len(generator)} generators for a batch of {shape[0]}")
    return torch.stack([torch.randn(*shape[1:], generator=g) for g in generator]).to(device)


def generators_for(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per seed (CPU so that renders match across devices)."""
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


def _ab(t: float) -> tuple[float, float]:
    return math.cos(t * math.pi / 2), math.sin(t * math.pi / 2)


def _call(model: X0Model, x: Tensor, t: float, extra_args: dict[str, Any] | None) -> Tensor:
    return model(
        x, torch.full((x.shape[0],), t, device=x.device, dtype=x.dtype), **(extra_args or {})
    )


def _eps(x: Tensor, x0: Tensor, alpha: float, sigma: float) -> Tensor:
    return (x - alpha * x0) / sigma


def _check(ts: Tensor) -> list[float]:
    values = [float(v) for v in ts]
    if len(values) < 2 or values[-1] != 0.0:
        raise ValueError("ts must hold at least 2 noise levels and end in 0")
    if any(b >= a for a, b in zip(values, values[1:])):
        raise ValueError("ts must be strictly decreasing")
    if values[0] > 1.0:
        raise ValueError("ts must lie in [0, 1]")
    return values


@torch.no_grad()
def sample_ddim(
    model: X0Model,
    x: Tensor,
    ts: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback = None,
    generator: Generators = None,
    eta: float = 0.0,
) -> Tensor:
    """DDIM, Algorithm of Song et al. (2021), eq. 12, with stochasticity eta (0 = deterministic)."""
    levels = _check(ts)
    for i, (t, t_next) in enumerate(zip(levels, levels[1:])):
        alpha, sigma = _ab(t)
        alpha_n, sigma_n = _ab(t_next)
        x0 = _call(model, x, t, extra_args)
        eps = _eps(x, x0, alpha, sigma)
        noise_std = 0.0
        if eta > 0 and t_next > 0:
            noise_std = eta * (sigma_n / sigma) * math.sqrt(max(0.0, 1 - (alpha / alpha_n) ** 2))
        x = alpha_n * x0 + math.sqrt(max(0.0, sigma_n**2 - noise_std**2)) * eps
        if noise_std > 0:
            x = x + noise_std * randn(x.shape, generator, device=x.device).to(x.dtype)
        if callback is not None:
            callback({"i": i, "t": t, "x": x, "denoised": x0})
    return x


@torch.no_grad()
def sample_ddpm(
    model: X0Model,
    x: Tensor,
    ts: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback = None,
    generator: Generators = None,
    eta: float = 1.0,
) -> Tensor:
    """DDPM ancestral sampling (Ho et al., 2020, Algorithm 2): DDIM with eta = 1."""
    return sample_ddim(
        model, x, ts, extra_args=extra_args, callback=callback, generator=generator, eta=1.0
    )


@torch.no_grad()
def sample_dpmpp_2m(
    model: X0Model,
    x: Tensor,
    ts: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback = None,
    generator: Generators = None,
    eta: float = 0.0,
) -> Tensor:
    """DPM-Solver++(2M), Algorithm 2 of Lu et al. (2022), data prediction, multistep."""
    levels = _check(ts)
    x0_prev: Tensor | None = None
    h_prev = math.inf
    for i, (t, t_next) in enumerate(zip(levels, levels[1:])):
        alpha, sigma = _ab(t)
        alpha_n, sigma_n = _ab(t_next)
        x0 = _call(model, x, t, extra_args)
        # exp(-h) with h = lambda_next - lambda, lambda = log(alpha / sigma); 0 at either end.
        exp_neg_h = (alpha * sigma_n) / (sigma * alpha_n)
        h = -math.log(exp_neg_h) if exp_neg_h > 0 else math.inf
        if x0_prev is None or t_next == 0 or not math.isfinite(h):
            d = x0
        else:
            half_inv_r = h / (2 * h_prev)  # 1 / (2r), r = h_prev / h
            d = (1 + half_inv_r) * x0 - half_inv_r * x0_prev
        x = (sigma_n / sigma) * x + alpha_n * (1 - exp_neg_h) * d
        x0_prev, h_prev = x0, h
        if callback is not None:
            callback({"i": i, "t": t, "x": x, "denoised": x0})
    return x


@torch.no_grad()
def sample_heun(
    model: X0Model,
    x: Tensor,
    ts: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback = None,
    generator: Generators = None,
    eta: float = 0.0,
) -> Tensor:
    """Heun's 2nd-order method, Algorithm 1 of Karras et al. (2022), on the probability-flow ODE.

    Works in the variance-exploding view (x / alpha, sigma / alpha); a step from t = 1 (infinite
    VE sigma) and the last step to 0 are Euler steps, as in Karras et al.
    """
    levels = _check(ts)
    for i, (t, t_next) in enumerate(zip(levels, levels[1:])):
        alpha, sigma = _ab(t)
        alpha_n, sigma_n = _ab(t_next)
        x0 = _call(model, x, t, extra_args)
        eps = _eps(x, x0, alpha, sigma)
        x_euler = alpha_n * x0 + sigma_n * eps  # the DDIM / Euler step
        if t_next == 0 or alpha < 1e-6:
            x = x_euler
        else:
            s, s_n = sigma / alpha, sigma_n / alpha_n
            x0_2 = _call(model, x_euler, t_next, extra_args)
            eps_2 = _eps(x_euler, x0_2, alpha_n, sigma_n)
            x_ve = x / alpha + (s_n - s) * (eps + eps_2) / 2
            x = alpha_n * x_ve
        if callback is not None:
            callback({"i": i, "t": t, "x": x, "denoised": x0})
    return x


@torch.no_grad()
def sample_distilled(
    model: X0Model,
    x: Tensor,
    ts: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback = None,
    generator: Generators = None,
    eta: float = 0.0,
) -> Tensor:
    """A distilled student's own rule: deterministic DDIM through the levels it learned.

    `model` is the student and `ts` its levels (see `model/train/distill.py`); eta is ignored
    because
    the student was trained to land where the teacher's deterministic ODE lands.
    """
    return sample_ddim(model, x, ts, extra_args=extra_args, callback=callback, generator=generator)


Sampler = Callable[..., Tensor]

#: The sampler name of a checkpoint's few-step student (its network and levels, not the teacher's).
DISTILLED = "distilled"

SAMPLERS: dict[str, Sampler] = {
    "ddpm": sample_ddpm,
    "ddim": sample_ddim,
    "dpmpp-2m": sample_dpmpp_2m,
    "heun": sample_heun,
    DISTILLED: sample_distilled,
}

#: The samplers that run the model itself on a named schedule (all but the distilled student's).
SCHEDULED: tuple[str, ...] = tuple(name for name in SAMPLERS if name != DISTILLED)

#: Network evaluations per step, for reporting cost.
EVALS_PER_STEP: dict[str, int] = {"ddpm": 1, "ddim": 1, "dpmpp-2m": 1, "heun": 2, DISTILLED: 1}


def get_sampler(name: str) -> Sampler:
    try:
        return SAMPLERS[name]
    except KeyError:
        raise ValueError(f"unknown sampler {name!r}; expected one of {sorted(SAMPLERS)}") from None


def network_evaluations(sampler: str, steps: int) -> int:
    """How many network calls `steps` steps of `sampler` cost on schedules that start at t = 1.

    Heun's first step (from pure noise) and its last (to 0) are Euler steps, one call each.
    """
    if EVALS_PER_STEP[sampler] == 1 or steps < 2:
        return steps
    return 2 * steps - 2


def get_ts_linear(steps: int, *, device: torch.device | str = "cpu") -> Tensor:
    """Uniform in t from 1 to 0 (sample-generator's schedule)."""
    return torch.linspace(1.0, 0.0, steps + 1, device=device)


def get_ts_karras(
    steps: int,
    *,
    sigma_min: float = 1e-3,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Karras et al. (2022) eq. 5 spacing of the VE sigma, mapped to cosine-schedule t, then 0.

    The first level is t = 1 (pure noise) so that training and sampling start at the same place.
    """
    if steps < 1:
        raise ValueError("steps must be at least 1")
    if steps == 1:
        return torch.tensor([1.0, 0.0], device=device)
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    inv_rho_min, inv_rho_max = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (inv_rho_max + ramp * (inv_rho_min - inv_rho_max)) ** rho
    ts = t_from_alpha_sigma(torch.ones_like(sigmas), sigmas)
    ts[0] = 1.0
    return torch.cat([ts, ts.new_zeros(1)]).float().to(device)


SCHEDULES: dict[str, Callable[..., Tensor]] = {"linear": get_ts_linear, "karras": get_ts_karras}


def get_schedule(name: str, steps: int, *, device: torch.device | str = "cpu") -> Tensor:
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    try:
        return SCHEDULES[name](steps, device=device)
    except KeyError:
        raise ValueError(
            f"unknown schedule {name!r}; expected one of {sorted(SCHEDULES)}"
        ) from None
