"""The training objective: v-prediction MSE with condition dropout for guidance."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from drumdiff.model.config import Config
from drumdiff.model.core.diffusion import add_noise, alpha_sigma, v_target
from drumdiff.model.core.unet import DrumUNet1d


@functools.lru_cache(maxsize=8)
def frequency_weights(
    length: int, sample_rate: int, octave_share: float, floor_hz: float
) -> Tensor:
    """Per-rfft-bin loss weights (length // 2 + 1,) with mean 1 over the spectrum.

    A share `octave_share` of the weight is spread evenly per octave (~ 1 / f, held constant
    below `floor_hz`), the rest evenly per Hz. "Mean 1" counts each bin as often as it occurs
    in the full spectrum (the interior bins twice), so weights of all ones give the plain MSE.
    """
    if not 0.0 <= octave_share <= 1.0:
        raise ValueError(f"loss octave share must be in [0, 1], got {octave_share}")
    if floor_hz <= 0:
        raise ValueError(f"loss octave floor must be > 0 Hz, got {floor_hz}")
    bins = length // 2 + 1
    freqs = torch.arange(bins, dtype=torch.float64) * sample_rate / length
    multiplicity = torch.full((bins,), 2.0, dtype=torch.float64)
    multiplicity[0] = 1.0
    if length % 2 == 0:
        multiplicity[-1] = 1.0
    per_octave = 1.0 / freqs.clamp_min(floor_hz)
    per_octave = per_octave * length / (multiplicity * per_octave).sum()
    return ((1.0 - octave_share) + octave_share * per_octave).float()


def configured_frequency_weights(config: Config, length: int) -> Tensor | None:
    """The training loss's per-bin weights for clips of `length`, or None for the plain MSE."""
    d = config.diffusion
    if d.loss_octave_share == 0.0:
        return None
    return frequency_weights(
        length, config.model.sample_rate, d.loss_octave_share, d.loss_octave_floor_hz
    )


def spectral_mse(error: Tensor, weights: Tensor) -> Tensor:
    """Mean of `error` (B, C, T) squared, weighted per frequency bin: (B,).

    By Parseval, weights of all ones give exactly the time-domain mean square.
    """
    n = error.shape[-1]
    power = torch.fft.rfft(error.float(), dim=-1).abs().square()
    multiplicity = torch.full_like(weights, 2.0)
    multiplicity[0] = 1.0
    if n % 2 == 0:
        multiplicity[-1] = 1.0
    per_channel = (power * (multiplicity * weights).to(power.device)).sum(dim=-1) / (n * n)
    return per_channel.mean(dim=tuple(range(1, per_channel.dim())))


def v_loss(
    net: DrumUNet1d | Callable[..., Tensor],
    x0: Tensor,
    class_ids: Tensor,
    *,
    null_class: int | None = None,
    condition_dropout: float = 0.1,
    weighting: str = "uniform",
    frequency_weighting: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Mean v-objective loss of `net` on clean clips x0 (B, C, T) with labels (B,).

    `net` may be wrapped (DDP); then pass `null_class`. t ~ U[0, 1]; a `condition_dropout` share of
    items trains the null class. "snr-clamp" weights
    each item by min(SNR, 5) / (SNR + 1): Min-SNR-5 for the v target (Hang et al., 2023).
    `frequency_weighting` (T // 2 + 1,) weighs the error per frequency bin (`frequency_weights`).
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
    target = v_target(x0, noise, t)
    if frequency_weighting is None:
        per_item = F.mse_loss(v.float(), target.float(), reduction="none")
        per_item = per_item.mean(dim=tuple(range(1, x0.dim())))
    else:
        per_item = spectral_mse(v.float() - target.float(), frequency_weighting)
    if weighting == "uniform":
        return per_item.mean()
    if weighting == "snr-clamp":
        alpha, sigma = alpha_sigma(t)
        snr = (alpha / sigma.clamp_min(1e-8)) ** 2
        weight = snr.clamp(max=5.0) / (snr + 1)
        return (per_item * weight).mean()
    raise ValueError(f"unknown loss weighting {weighting!r}; expected 'uniform' or 'snr-clamp'")


#: FFT sizes of `log_spectral_distance` (hop: a quarter of each): 1.5 ms frames for onsets up to
#: 93 ms for kick and tom bodies.
SPECTRAL_FFTS = (64, 256, 1024, 4096)


def log_spectral_distance(
    audio: Tensor,
    target: Tensor,
    *,
    ffts: tuple[int, ...] = SPECTRAL_FFTS,
    floor_db: float = -60.0,
    time_weights: Tensor | None = None,
) -> Tensor:
    """Multi-resolution distance between the magnitude spectrograms of `audio` and `target`
    (both (B, C, T)): per resolution, the mean absolute log-magnitude difference plus the
    spectral convergence (Frobenius error over the target's norm); averaged over resolutions.

    Phase does not count, so noise of the right level and colour is as good as the exact noise:
    unlike a sample-wise error, this is not lowered by averaging unpredictable detail (wire and
    cymbal noise, the first milliseconds of an onset) away. Magnitudes below `floor_db` of each
    target spectrogram's loudest bin are treated as that floor, so an inaudible tail does not
    outweigh the hit. FFT sizes longer than the clips are left out. `time_weights` (T,) weighs
    each frame by its value at the frame's centre (normalised to average 1 over the frames).
    """
    if audio.shape != target.shape:
        raise ValueError(f"audio {tuple(audio.shape)} and target {tuple(target.shape)} differ")
    ffts = tuple(n for n in ffts if n <= audio.shape[-1])
    if not ffts:
        raise ValueError(f"log_spectral_distance: no FFT size fits {audio.shape[-1]} samples")
    mono = audio.reshape(-1, audio.shape[-1]).float()
    reference = target.reshape(-1, target.shape[-1]).float()
    total = mono.new_zeros(())
    for n_fft in ffts:
        window = torch.hann_window(n_fft, device=mono.device)
        spec = [
            torch.stft(x, n_fft, hop_length=n_fft // 4, window=window, return_complex=True).abs()
            for x in (mono, reference)
        ]
        frames = spec[0].shape[-1]
        if time_weights is None:
            weight = spec[0].new_ones(frames)
        else:
            centres = (torch.arange(frames) * (n_fft // 4)).clamp_max(time_weights.shape[-1] - 1)
            weight = time_weights.to(spec[0])[centres.to(time_weights.device)]
            weight = weight / weight.mean()
        floor = spec[1].amax(dim=(-2, -1), keepdim=True).clamp_min(1e-8) * 10 ** (floor_db / 20)
        log_error = (torch.log(spec[0] + floor) - torch.log(spec[1] + floor)).abs()
        error_power = ((spec[0] - spec[1]).square().sum(dim=-2) * weight).sum(dim=-1)
        target_power = (spec[1].square().sum(dim=-2) * weight).sum(dim=-1)
        convergence = error_power.sqrt() / target_power.sqrt().clamp_min(1e-8)
        log_error = (log_error * weight).mean()
        total = total + log_error + convergence.mean()
    return total / len(ffts)
