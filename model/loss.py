"""The training objective: v-prediction MSE with condition dropout for guidance."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from model.diffusion import add_noise, alpha_sigma, v_target
from model.unet import DrumUNet1d


def v_loss(
    net: DrumUNet1d | Callable[..., Tensor],
    x0: Tensor,
    class_ids: Tensor,
    *,
    null_class: int | None = None,
    condition_dropout: float = 0.1,
    weighting: str = "uniform",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Mean v-objective loss of `net` on clean clips x0 (B, C, T) with labels (B,).

    `net` may be wrapped (DDP); then pass `null_class`. t ~ U[0, 1]; a `condition_dropout` share of items trains the null class. "snr-clamp" weights
    each item by min(SNR, 5) / (SNR + 1): Min-SNR-5 for the v target (Hang et al., 2023).
    """
    b = x0.shape[0]
    device = x0.device
    # Drawn on the generator's device (CPU when none is given), then moved.
    draw = generator.device if generator is not None else torch.device("cpu")
    t = torch.rand(b, generator=generator, device=draw).to(device)
    noise = torch.randn(x0.shape, generator=generator, device=draw).to(device, x0.dtype)
    drop = torch.rand(b, generator=generator, device=draw).to(device) < condition_dropout
    if null_class is None:
        null_class = net.null_class  # type: ignore[union-attr]
    ids = torch.where(drop, torch.full_like(class_ids, null_class), class_ids)
    v = net(add_noise(x0, noise, t), t, ids)
    per_item = F.mse_loss(v.float(), v_target(x0, noise, t).float(), reduction="none")
    per_item = per_item.mean(dim=tuple(range(1, x0.dim())))
    if weighting == "uniform":
        return per_item.mean()
    if weighting == "snr-clamp":
        alpha, sigma = alpha_sigma(t)
        snr = (alpha / sigma.clamp_min(1e-8)) ** 2
        weight = snr.clamp(max=5.0) / (snr + 1)
        return (per_item * weight).mean()
    raise ValueError(f"unknown loss weighting {weighting!r}; expected 'uniform' or 'snr-clamp'")
