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
