"""A real-or-rendered critic of drum hits, per class, for adversarial post-training.

Regression onto a teacher's states averages over what the student cannot tell apart, which is
heard as duller noise (hats, crashes, snare wires) and softer onsets. A critic that compares the
student's finished hits with real hits of the same class pushes back on exactly that. It looks at
what is heard: log-magnitude spectrograms at a few resolutions (long frames for kick and tom
bodies, short ones for onsets), each through a small strided 2-D convolution stack, pooled onto a
coarse grid of bands and times (so where and when energy sits counts: a kick's body must last,
not only sound like a kick in places), and scored with a class projection (Miyato & Koyama
2018). Hits are peak-normalised first, because rendering finishes every hit to its peak anyway.

The losses are relativistic and paired by class (Jolicoeur-Martineau 2018; used for audio
post-training by Novack et al. 2025, "ARC"): the critic learns that a real hit of a class sounds
more real than a rendered one of the same class, and the student learns the reverse.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

#: FFT sizes of the critic's spectrograms (hop: a quarter of each).
DEFAULT_FFTS = (2048, 512, 128)


def peak_normalised(audio: Tensor) -> Tensor:
    """(B, C, T) or (B, T) -> the same, each item scaled to a peak of one (silence stays)."""
    flat = audio.reshape(audio.shape[0], -1)
    peak = flat.abs().amax(dim=1).clamp_min(1e-4)
    return audio / peak.reshape(-1, *([1] * (audio.dim() - 1)))


class _Resolution(nn.Module):
    window: Tensor

    def __init__(self, n_fft: int, channels: int, layers: int, grid: tuple[int, int]) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.grid = grid
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        # Every layer halves both axes: a full-resolution layer would cost most of the critic.
        convs: list[nn.Module] = [spectral_norm(nn.Conv2d(1, channels, 3, stride=2, padding=1))]
        for _ in range(layers - 1):
            convs.append(spectral_norm(nn.Conv2d(channels, channels, 3, stride=2, padding=1)))
        self.convs = nn.ModuleList(convs)

    def forward(self, mono: Tensor) -> Tensor:
        """(B, T) -> features pooled onto a coarse (frequency, time) grid, (B, channels x cells)."""
        spec = torch.stft(
            mono,
            self.n_fft,
            hop_length=self.n_fft // 4,
            window=self.window,
            return_complex=True,
        )
        h = torch.log(spec.abs() + 1e-5)[:, None]  # (B, 1, freq, frames)
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.2)
        return F.adaptive_avg_pool2d(h, self.grid).flatten(1)


class HitCritic(nn.Module):
    """`critic(audio, class_ids) -> (B,)` realness scores; `class_ids` may hold the null class
    (`num_classes`, "any drum")."""

    def __init__(
        self,
        num_classes: int,
        *,
        ffts: Sequence[int] = DEFAULT_FFTS,
        channels: int = 16,
        layers: int = 4,
        grid: tuple[int, int] = (4, 8),
    ) -> None:
        super().__init__()
        if not ffts:
            raise ValueError("the critic needs at least one FFT size")
        self.resolutions = nn.ModuleList(_Resolution(n, channels, layers, grid) for n in ffts)
        width = channels * grid[0] * grid[1] * len(self.resolutions)
        self.score = spectral_norm(nn.Linear(width, 1))
        self.embed = spectral_norm(nn.Embedding(num_classes + 1, width))

    def forward(self, audio: Tensor, class_ids: Tensor) -> Tensor:
        mono = peak_normalised(audio.float())
        if mono.dim() == 3:
            mono = mono.mean(dim=1)
        features = torch.cat([r(mono) for r in self.resolutions], dim=1)
        projection = (self.embed(class_ids.long()) * features).sum(dim=1)
        return self.score(features).squeeze(1) + projection


def critic_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """The critic's relativistic loss over class-paired scores (real i with fake i)."""
    return F.softplus(fake_scores - real_scores).mean()


def generator_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """The student's relativistic loss: its hit should score above the paired real one."""
    return F.softplus(real_scores - fake_scores).mean()


__all__ = ["DEFAULT_FFTS", "HitCritic", "critic_loss", "generator_loss", "peak_normalised"]
