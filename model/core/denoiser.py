"""The diffusion wrapper around the network: v-prediction to x0, classifier-free guidance."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from drumdiff.model.core.diffusion import x0_from_v
from drumdiff.model.core.unet import DrumUNet1d


class Denoiser(nn.Module):
    """`denoiser(x, t, class_ids=..., guidance=...) -> x0`, the contract every sampler uses.

    Guidance follows Ho & Salimans (2022): v = v_null + g * (v_cond - v_null); g = 1 is plain
    conditional sampling, g = 0 unconditional. Both passes run as one batch.
    """

    def __init__(self, net: DrumUNet1d) -> None:
        super().__init__()
        self.net = net

    @property
    def null_class(self) -> int:
        return self.net.null_class

    def with_net(self, net: DrumUNet1d) -> Denoiser:
        """The same wrapper around another network of the same shape (a compiled or exported
        one)."""
        return Denoiser(net)

    def v(
        self,
        x: Tensor,
        t: Tensor,
        *,
        class_ids: Tensor | None = None,
        class_weights: Tensor | None = None,
        guidance: float | Tensor = 1.0,
    ) -> Tensor:
        if isinstance(guidance, Tensor):  # one scale per item (per-class guidance)
            if bool((guidance == guidance.flatten()[0]).all()):
                guidance = float(guidance.flatten()[0])
            else:
                guidance = guidance.to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        conditional = class_weights is not None or (
            class_ids is not None and bool((class_ids != self.null_class).any())
        )
        if not conditional or (not isinstance(guidance, Tensor) and guidance == 1.0):
            # All-null ids: guidance has nothing to contrast, so one pass is the exact answer.
            return self.net(x, t, class_ids, class_weights)
        null_ids = torch.full((x.shape[0],), self.null_class, dtype=torch.long, device=x.device)
        if not isinstance(guidance, Tensor) and guidance == 0.0:
            return self.net(x, t, null_ids)
        if class_weights is not None:
            null_w = torch.nn.functional.one_hot(null_ids, self.net.num_classes + 1)
            weights = torch.cat([class_weights, null_w.to(class_weights.dtype)])
            v_both = self.net(torch.cat([x, x]), torch.cat([t, t]), None, weights)
        else:
            assert class_ids is not None
            ids = torch.cat([class_ids, null_ids])
            v_both = self.net(torch.cat([x, x]), torch.cat([t, t]), ids)
        v_cond, v_null = v_both.chunk(2)
        return v_null + guidance * (v_cond - v_null)

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        *,
        class_ids: Tensor | None = None,
        class_weights: Tensor | None = None,
        guidance: float | Tensor = 1.0,
    ) -> Tensor:
        v = self.v(x, t, class_ids=class_ids, class_weights=class_weights, guidance=guidance)
        return x0_from_v(x, v, t)


class StudentDenoiser(Denoiser):
    """A few-step student's denoiser: the network plus a learned input skip at each hit's onset.

    In the model space a hit's first milliseconds are white, unpredictable noise, so the network
    (teacher and student alike) predicts v = 0 there, and the probability-flow ODE carries the
    starting noise through unchanged. A DDIM step of a v = 0 state shrinks it by cos(step angle)
    instead (0.61 over four steps); keeping it needs v = -tan(angle / 2) * x, a copy of the input
    noise the network does not learn to make. The skip adds it: v = v_net + skip * x, one factor
    per student level, class (null class last) and `block` samples of the first
    `skips.shape[-1] * block` samples (0 past them, and at noise levels that are not the
    student's).
    """

    def __init__(
        self, net: DrumUNet1d, levels: tuple[float, ...], skips: Tensor, block: int
    ) -> None:
        super().__init__(net)
        if skips.dim() != 3 or skips.shape[0] != len(levels) - 1:
            raise ValueError(
                f"skips must be (steps={len(levels) - 1}, classes + 1, blocks), got "
                f"{tuple(skips.shape)}"
            )
        if skips.shape[1] != net.num_classes + 1 or block < 1:
            raise ValueError(
                f"skips need one row per class and the null class ({net.num_classes + 1}), got "
                f"{skips.shape[1]}, and a block of at least 1 sample, got {block}"
            )
        self.levels = tuple(float(v) for v in levels)
        self.block = int(block)
        self.skips = nn.Parameter(skips.detach().float().clone(), requires_grad=False)

    def with_net(self, net: DrumUNet1d) -> StudentDenoiser:
        return StudentDenoiser(net, self.levels, self.skips.detach(), self.block)

    def skip_gain(
        self,
        t: Tensor,
        length: int,
        *,
        class_ids: Tensor | None = None,
        class_weights: Tensor | None = None,
    ) -> Tensor:
        """The skip factor of each item at each sample, (B, 1, length)."""
        levels = torch.tensor(self.levels[:-1], device=t.device, dtype=torch.float32)
        gap, step = (t.float()[:, None] - levels[None]).abs().min(dim=1)
        if class_weights is not None:
            weights = class_weights.to(self.skips.dtype)
            weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-12)
        else:
            ids = (
                class_ids
                if class_ids is not None
                else torch.full_like(step, self.null_class, dtype=torch.long)
            )
            weights = nn.functional.one_hot(ids.long(), self.skips.shape[1]).to(self.skips.dtype)
        rows = torch.einsum("bk,bkn->bn", weights, self.skips[step])
        rows = rows * (gap < 1e-4).to(rows.dtype)[:, None]  # off the student's levels: no skip
        gain = rows.repeat_interleave(self.block, dim=-1)[:, :length]
        gain = nn.functional.pad(gain, (0, length - gain.shape[-1]))
        return gain[:, None]

    def v(
        self,
        x: Tensor,
        t: Tensor,
        *,
        class_ids: Tensor | None = None,
        class_weights: Tensor | None = None,
        guidance: float | Tensor = 1.0,
    ) -> Tensor:
        v = super().v(x, t, class_ids=class_ids, class_weights=class_weights, guidance=guidance)
        gain = self.skip_gain(t, x.shape[-1], class_ids=class_ids, class_weights=class_weights)
        return v + gain.to(x.dtype) * x
