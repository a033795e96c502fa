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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
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


Sampler = Callable[..., Tensor]


@dataclass(frozen=True)
class Step:
    """Step i of a schedule, from noise level t to t_next, with alpha and sigma at both ends."""

    i: int
    t: float
    t_next: float
    alpha: float
    sigma: float
    alpha_n: float
    sigma_n: float


@dataclass(frozen=True)
class Call:
    """What one sampler call was given besides x and ts, for step rules that need it."""

    model: X0Model
    extra_args: dict[str, Any] | None
    generator: Generators
    eta: float


#: How a sampler moves x from step.t to step.t_next, given the model's x0 = model(x, step.t).
StepRule = Callable[[Tensor, Tensor, Step], Tensor]


def _steps(ts: Tensor) -> Iterator[Step]:
    levels = _check(ts)
    for i, (t, t_next) in enumerate(zip(levels, levels[1:])):
        yield Step(i, t, t_next, *_ab(t), *_ab(t_next))


def _sampler(rule_for: Callable[[Call], StepRule]) -> Sampler:
    """The sampler of a step rule: the one shared signature, the loop and the callback.

    `rule_for` makes a fresh rule per call (a multistep rule keeps its history in it); its
    name and docstring become the sampler's.
    """

    @torch.no_grad()
    def sample(
        model: X0Model,
        x: Tensor,
        ts: Tensor,
        *,
        extra_args: dict[str, Any] | None = None,
        callback: Callback = None,
        generator: Generators = None,
        eta: float = 0.0,
    ) -> Tensor:
        rule = rule_for(Call(model, extra_args, generator, eta))
        for step in _steps(ts):
            x0 = _call(model, x, step.t, extra_args)
            x = rule(x, x0, step)
            if callback is not None:
                callback({"i": step.i, "t": step.t, "x": x, "denoised": x0})
        return x

    # Only the name and the docstring: the signature shown must stay the sampler's own.
    sample.__name__ = sample.__qualname__ = rule_for.__name__
    sample.__doc__ = rule_for.__doc__
    return sample


def _ddim_step(x: Tensor, x0: Tensor, s: Step, *, eta: float, generator: Generators) -> Tensor:
    eps = _eps(x, x0, s.alpha, s.sigma)
    noise_std = 0.0
    if eta > 0 and s.t_next > 0:
        noise_std = (
            eta * (s.sigma_n / s.sigma) * math.sqrt(max(0.0, 1 - (s.alpha / s.alpha_n) ** 2))
        )
    x = s.alpha_n * x0 + math.sqrt(max(0.0, s.sigma_n**2 - noise_std**2)) * eps
    if noise_std > 0:
        x = x + noise_std * randn(x.shape, generator, device=x.device).to(x.dtype)
    return x


class _Dpmpp2mStep:
    """One DPM-Solver++(2M) step; it keeps the previous x0 and step size for the next one."""

    def __init__(self) -> None:
        self.x0_prev: Tensor | None = None
        self.h_prev = math.inf

    def __call__(self, x: Tensor, x0: Tensor, s: Step) -> Tensor:
        # exp(-h) with h = lambda_next - lambda, lambda = log(alpha / sigma); 0 at either end.
        exp_neg_h = (s.alpha * s.sigma_n) / (s.sigma * s.alpha_n)
        h = -math.log(exp_neg_h) if exp_neg_h > 0 else math.inf
        if self.x0_prev is None or s.t_next == 0 or not math.isfinite(h):
            d = x0
        else:
            half_inv_r = h / (2 * self.h_prev)  # 1 / (2r), r = h_prev / h
            d = (1 + half_inv_r) * x0 - half_inv_r * self.x0_prev
        self.x0_prev, self.h_prev = x0, h
        return (s.sigma_n / s.sigma) * x + s.alpha_n * (1 - exp_neg_h) * d


def _heun_step(
    x: Tensor, x0: Tensor, s: Step, *, model: X0Model, extra_args: dict[str, Any] | None
) -> Tensor:
    eps = _eps(x, x0, s.alpha, s.sigma)
    x_euler = s.alpha_n * x0 + s.sigma_n * eps  # the DDIM / Euler step
    if s.t_next == 0 or s.alpha < 1e-6:
        return x_euler
    ve, ve_n = s.sigma / s.alpha, s.sigma_n / s.alpha_n
    x0_2 = _call(model, x_euler, s.t_next, extra_args)
    eps_2 = _eps(x_euler, x0_2, s.alpha_n, s.sigma_n)
    x_ve = x / s.alpha + (ve_n - ve) * (eps + eps_2) / 2
    return s.alpha_n * x_ve


@_sampler
def sample_ddim(call: Call) -> StepRule:
    """DDIM, Algorithm of Song et al. (2021), eq. 12, with stochasticity eta (0 = deterministic)."""
    return partial(_ddim_step, eta=call.eta, generator=call.generator)


@_sampler
def sample_ddpm(call: Call) -> StepRule:
    """DDPM ancestral sampling (Ho et al., 2020, Algorithm 2): DDIM with eta = 1."""
    return partial(_ddim_step, eta=1.0, generator=call.generator)


@_sampler
def sample_dpmpp_2m(call: Call) -> StepRule:
    """DPM-Solver++(2M), Algorithm 2 of Lu et al. (2022), data prediction, multistep."""
    return _Dpmpp2mStep()


@_sampler
def sample_heun(call: Call) -> StepRule:
    """Heun's 2nd-order method, Algorithm 1 of Karras et al. (2022), on the probability-flow ODE.

    Works in the variance-exploding view (x / alpha, sigma / alpha); a step from t = 1 (infinite
    VE sigma) and the last step to 0 are Euler steps, as in Karras et al.
    """
    return partial(_heun_step, model=call.model, extra_args=call.extra_args)


@_sampler
def sample_distilled(call: Call) -> StepRule:
    """A distilled student's own rule: DDIM through the levels it learned.

    `model` is the student and `ts` its levels (see `model/train/distill.py`). At eta 0 each
    step lands where the teacher's deterministic ODE lands; eta > 0 swaps part of each step's
    noise for fresh noise (DDIM's eta), which the student, trained also from its own drifted
    states, takes as a new state of the same level.
    """
    return partial(_ddim_step, eta=call.eta, generator=call.generator)


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
