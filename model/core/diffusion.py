"""v-objective diffusion on the cosine schedule (sample-generator's formulation).

x_t = alpha(t) * x0 + sigma(t) * eps, alpha = cos(t*pi/2), sigma = sin(t*pi/2), and the network
predicts v = alpha * eps - sigma * x0. Everything here is plain maths over tensors.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def alpha_sigma(t: Tensor) -> tuple[Tensor, Tensor]:
    """Cosine schedule: (alpha, sigma) at noise level t in [0, 1]; alpha^2 + sigma^2 = 1."""
    angle = t * (math.pi / 2)
    return torch.cos(angle), torch.sin(angle)


def t_from_alpha_sigma(alpha: Tensor, sigma: Tensor) -> Tensor:
    return torch.atan2(sigma, alpha) * (2 / math.pi)


def t_from_log_snr(log_snr: Tensor) -> Tensor:
    """Inverse of log(alpha^2 / sigma^2) for the cosine schedule."""
    return t_from_alpha_sigma(torch.ones_like(log_snr), torch.exp(-log_snr / 2))


def _expand(a: Tensor, x: Tensor) -> Tensor:
    return a.reshape(-1, *([1] * (x.dim() - 1)))


def add_noise(x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """x_t for clean x0 (B, C, T), standard noise and levels t (B,)."""
    alpha, sigma = alpha_sigma(t)
    return _expand(alpha, x0) * x0 + _expand(sigma, x0) * noise


def v_target(x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    alpha, sigma = alpha_sigma(t)
    return _expand(alpha, x0) * noise - _expand(sigma, x0) * x0


def x0_from_v(x_t: Tensor, v: Tensor, t: Tensor) -> Tensor:
    alpha, sigma = alpha_sigma(t)
    return _expand(alpha, x_t) * x_t - _expand(sigma, x_t) * v


def eps_from_v(x_t: Tensor, v: Tensor, t: Tensor) -> Tensor:
    alpha, sigma = alpha_sigma(t)
    return _expand(sigma, x_t) * x_t + _expand(alpha, x_t) * v
