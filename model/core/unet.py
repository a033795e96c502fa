"""The network only: a patched 1D U-Net, `forward(x, t, class_ids) -> output`.

Lineage: Dance Diffusion's `DiffusionAttnUnet1D` (residual conv blocks, GroupNorm, GELU, skip
connections, self-attention at coarse levels, Fourier features of the noise level), plus a learned
patching stem so a CPU-sized model still sees 44.1 kHz audio, a learned embedding of absolute
time (one-shots are onset-aligned, so "where in the clip" predicts the envelope), and class
embeddings with a null class for classifier-free guidance. It knows nothing about diffusion: `t`
is just a scalar per item that it embeds.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from drumdiff.model.config import ModelConfig


def _groups(channels: int) -> int:
    for groups in (32, 16, 8, 4, 2, 1):
        if channels % groups == 0:
            return groups
    return 1


class FourierFeatures(nn.Module):
    """Fixed random Fourier features of a scalar (Tancik et al., 2020), as in Dance Diffusion."""

    weight: Tensor  # a buffer, registered in __init__

    def __init__(self, features: int, std: float = 16.0) -> None:
        super().__init__()
        self.register_buffer("weight", torch.randn(1, features // 2) * std)

    def forward(self, t: Tensor) -> Tensor:
        """t: (B,) -> (B, features)."""
        angles = 2 * math.pi * t[:, None] * self.weight
        return torch.cat([angles.cos(), angles.sin()], dim=-1)


class ResBlock(nn.Module):
    """GroupNorm-GELU-conv twice, with FiLM from the conditioning embedding and a skip."""

    def __init__(
        self, c_in: int, c_out: int, embed_dim: int, kernel_size: int, dropout: float
    ) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.norm1 = nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = nn.Conv1d(c_in, c_out, kernel_size, padding=pad)
        self.film = nn.Linear(embed_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv1d(c_out, c_out, kernel_size, padding=pad)
        nn.init.zeros_(self.conv2.weight)
        assert self.conv2.bias is not None  # Conv1d defaults to bias=True
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.gelu(self.norm1(x)))
        scale, shift = self.film(emb)[:, :, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.gelu(h)))
        return self.skip(x) + h


class SampleRefiner(nn.Module):
    """A residual stage at the full sample rate: coarse output and noisy input in, output out.

    The last convolution starts at zero, so a network that gains a refiner starts out computing
    exactly what it computed without one.
    """

    def __init__(
        self, audio_channels: int, channels: int, kernel_size: int, embed_dim: int
    ) -> None:
        super().__init__()
        if channels < 1 or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(
                f"the refiner needs channels >= 1 and an odd kernel, got {channels} and "
                f"{kernel_size}"
            )
        pad = kernel_size // 2
        self.conv_in = nn.Conv1d(2 * audio_channels, channels, kernel_size, padding=pad)
        self.film = nn.Linear(embed_dim, 2 * channels)
        self.conv_out = nn.Conv1d(channels, audio_channels, kernel_size, padding=pad)
        nn.init.zeros_(self.conv_out.weight)
        assert self.conv_out.bias is not None  # Conv1d defaults to bias=True
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, coarse: Tensor, x: Tensor, emb: Tensor) -> Tensor:
        """coarse, x: (B, C, T); emb: (B, embed_dim) -> (B, C, T)."""
        h = self.conv_in(torch.cat([coarse, x.to(coarse.dtype)], dim=1))
        scale, shift = self.film(emb)[:, :, None].chunk(2, dim=1)
        return coarse + self.conv_out(F.gelu(h * (1 + scale) + shift))


class SelfAttention(nn.Module):
    """Multi-head self-attention over time, pre-norm, residual."""

    def __init__(self, channels: int, head_dim: int) -> None:
        super().__init__()
        self.heads = max(1, channels // head_dim)
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.out = nn.Conv1d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        assert self.out.bias is not None  # Conv1d defaults to bias=True
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        b, c, n = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, n)
        q, k, v = qkv.transpose(-1, -2).unbind(dim=1)  # each (B, heads, N, d)
        h = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, d)
        h = h.transpose(-1, -2).reshape(b, c, n)
        return x + self.out(h)


class Level(nn.Module):
    """The residual blocks (and optional attention) of one U-Net level, on one side."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        blocks: int,
        attention: bool,
        cfg: ModelConfig,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            ResBlock(c_in if i == 0 else c_out, c_out, cfg.embed_dim, cfg.kernel_size, cfg.dropout)
            for i in range(blocks)
        )
        self.attention = nn.ModuleList(
            SelfAttention(c_out, cfg.head_dim) if attention else nn.Identity()
            for _ in range(blocks)
        )

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        for block, attn in zip(self.blocks, self.attention):
            x = attn(block(x, emb))
        return x


class DrumUNet1d(nn.Module):
    """Patched 1D U-Net.

    forward(x, t, class_ids=None, class_weights=None):
        x: (B, audio_channels, T) with T a multiple of patch_size * 2**(levels-1)
        t: (B,) noise level in [0, 1]
        class_ids: (B,) long, `num_classes` is the null class
        class_weights: (B, num_classes + 1) blend of class embeddings (morphing); overrides ids
    returns (B, audio_channels, T).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if not cfg.widths:
            raise ValueError("model.widths must name at least one level")
        levels = len(cfg.widths)
        factor = cfg.patch_size * 2 ** (levels - 1)
        if cfg.length % factor:
            raise ValueError(
                f"model.length {cfg.length} must be a multiple of patch_size * 2**(levels-1) = "
                f"{factor}"
            )
        bad = [lvl for lvl in cfg.attention_levels if not 0 <= lvl < levels]
        if bad:
            raise ValueError(f"attention level {bad[0]} out of range 0..{levels - 1}")
        if cfg.fourier_features < 2 or cfg.fourier_features % 2:
            raise ValueError(
                f"model.fourier_features must be even and >= 2, got {cfg.fourier_features}"
            )
        for lvl in sorted({*cfg.attention_levels, levels - 1}):  # the middle block always attends
            width = cfg.widths[lvl]
            if width % max(1, width // cfg.head_dim):
                raise ValueError(
                    f"model.widths[{lvl}] = {width} does not split into heads of ~{cfg.head_dim}"
                )
        self.cfg = cfg
        self.num_classes = len(cfg.classes)
        patch_channels = cfg.patch_size * cfg.audio_channels
        w0 = cfg.widths[0]

        self.fourier = FourierFeatures(cfg.fourier_features)
        self.class_embed = nn.Embedding(self.num_classes + 1, cfg.embed_dim)
        nn.init.normal_(self.class_embed.weight, std=0.02)
        self.embed_mlp = nn.Sequential(
            nn.Linear(cfg.fourier_features + cfg.embed_dim, cfg.embed_dim),
            nn.GELU(),
            nn.Linear(cfg.embed_dim, cfg.embed_dim),
        )
        self.stem = nn.Conv1d(patch_channels, w0, 3, padding=1)
        self.position = nn.Parameter(torch.zeros(1, w0, cfg.frames)) if cfg.positional else None

        attn = set(cfg.attention_levels)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c_prev = w0
        for i, width in enumerate(cfg.widths):
            self.down.append(Level(c_prev, width, cfg.blocks_per_level, i in attn, cfg))
            c_prev = width
            if i < levels - 1:
                self.downsample.append(nn.Conv1d(width, cfg.widths[i + 1], 4, stride=2, padding=1))
                c_prev = cfg.widths[i + 1]
        last = cfg.widths[-1]
        self.mid = Level(last, last, 1, True, cfg)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(levels)):
            width = cfg.widths[i]
            self.up.append(Level(2 * width, width, cfg.blocks_per_level, i in attn, cfg))
            if i > 0:
                self.upsample.append(
                    nn.ConvTranspose1d(width, cfg.widths[i - 1], 4, stride=2, padding=1)
                )
        self.out_norm = nn.GroupNorm(_groups(w0), w0)
        self.out = nn.Conv1d(w0, patch_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        assert self.out.bias is not None  # Conv1d defaults to bias=True
        nn.init.zeros_(self.out.bias)
        self.refiner = (
            SampleRefiner(
                cfg.audio_channels, cfg.refiner_channels, cfg.refiner_kernel, cfg.embed_dim
            )
            if cfg.refiner_channels
            else None
        )

    @property
    def null_class(self) -> int:
        return self.num_classes

    def _position(self, frames: int) -> Tensor | None:
        if self.position is None:
            return None
        if frames == self.position.shape[-1]:
            return self.position
        # Other lengths (renders longer or shorter than training): stretch the learned time axis for
        # the
        # part that was trained and hold the last value past it.
        trained = self.position.shape[-1]
        if frames < trained:
            return self.position[..., :frames]
        tail = self.position[..., -1:].expand(-1, -1, frames - trained)
        return torch.cat([self.position, tail], dim=-1)

    def condition(
        self, t: Tensor, class_ids: Tensor | None, class_weights: Tensor | None
    ) -> Tensor:
        """The (B, embed_dim) conditioning vector from noise level and class."""
        if class_weights is not None:
            cls = class_weights.to(self.class_embed.weight.dtype) @ self.class_embed.weight
        else:
            if class_ids is None:
                class_ids = torch.full_like(t, self.null_class, dtype=torch.long)
            cls = self.class_embed(class_ids)
        return self.embed_mlp(torch.cat([self.fourier(t).to(cls.dtype), cls], dim=-1))

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        class_ids: Tensor | None = None,
        class_weights: Tensor | None = None,
    ) -> Tensor:
        b, c, n = x.shape
        p = self.cfg.patch_size
        if c != self.cfg.audio_channels:
            raise ValueError(f"expected {self.cfg.audio_channels} audio channels, got {c}")
        factor = p * 2 ** (len(self.cfg.widths) - 1)
        if n % factor:
            raise ValueError(f"length {n} is not a multiple of {factor}")
        emb = self.condition(t, class_ids, class_weights)
        # Patch: (B, C, T) -> (B, C*P, T/P), each frame holding P consecutive samples.
        h = x.reshape(b, c, n // p, p).permute(0, 1, 3, 2).reshape(b, c * p, n // p)
        h = self.stem(h)
        pos = self._position(n // p)
        if pos is not None:
            h = h + pos
        skips = []
        for i, level in enumerate(self.down):
            h = level(h, emb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self.mid(h, emb)
        for j, level in enumerate(self.up):
            h = level(torch.cat([h, skips.pop()], dim=1), emb)
            if j < len(self.upsample):
                h = self.upsample[j](h)
        h = self.out(F.gelu(self.out_norm(h)))  # (B, C*P, T/P)
        out = h.reshape(b, c, p, n // p).permute(0, 1, 3, 2).reshape(b, c, n)
        if self.refiner is not None:
            out = self.refiner(out, x, emb)
        return out


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
