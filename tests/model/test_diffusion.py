"""v-objective identities on the cosine schedule, and the training loss."""

from __future__ import annotations

import math

import pytest
import torch

from drumdiff.model.config import Config
from drumdiff.model.core.denoiser import Denoiser
from drumdiff.model.core.diffusion import (
    add_noise,
    alpha_sigma,
    eps_from_v,
    t_from_alpha_sigma,
    t_from_log_snr,
    v_target,
    x0_from_v,
)
from drumdiff.model.core.loss import log_spectral_distance, v_loss


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(5, 2, 64, generator=gen, dtype=torch.float64)
    noise = torch.randn(5, 2, 64, generator=gen, dtype=torch.float64)
    t = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0], dtype=torch.float64)
    return x0, noise, t


def test_schedule_endpoints() -> None:
    alpha, sigma = alpha_sigma(torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64))
    assert alpha[0] == 1.0 and sigma[0] == 0.0
    assert alpha[2] == pytest.approx(0.0, abs=1e-15) and sigma[2] == 1.0
    assert alpha[1] == pytest.approx(math.sqrt(0.5)) and sigma[1] == pytest.approx(math.sqrt(0.5))


def test_schedule_is_variance_preserving_and_monotone() -> None:
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    alpha, sigma = alpha_sigma(t)
    torch.testing.assert_close(alpha**2 + sigma**2, torch.ones_like(t))
    assert bool((alpha[1:] < alpha[:-1]).all()) and bool((sigma[1:] > sigma[:-1]).all())


def test_t_round_trips_through_alpha_sigma_and_log_snr() -> None:
    t = torch.linspace(0.01, 0.99, 50, dtype=torch.float64)
    alpha, sigma = alpha_sigma(t)
    torch.testing.assert_close(t_from_alpha_sigma(alpha, sigma), t)
    torch.testing.assert_close(t_from_log_snr(torch.log(alpha**2 / sigma**2)), t)


def test_add_noise_at_the_endpoints(batch: tuple[torch.Tensor, ...]) -> None:
    x0, noise, t = batch
    xt = add_noise(x0, noise, t)
    torch.testing.assert_close(xt[0], x0[0], rtol=0, atol=0)
    torch.testing.assert_close(xt[-1], noise[-1], rtol=0, atol=1e-15)


def test_v_target_reconstructs_x0_and_noise(batch: tuple[torch.Tensor, ...]) -> None:
    x0, noise, t = batch
    xt = add_noise(x0, noise, t)
    v = v_target(x0, noise, t)
    torch.testing.assert_close(x0_from_v(xt, v, t), x0, rtol=0, atol=1e-12)
    torch.testing.assert_close(eps_from_v(xt, v, t), noise, rtol=0, atol=1e-12)


def test_v_target_in_float32_is_exact_to_rounding(batch: tuple[torch.Tensor, ...]) -> None:
    x0, noise, t = (b.float() for b in batch)
    xt = add_noise(x0, noise, t)
    v = v_target(x0, noise, t)
    torch.testing.assert_close(x0_from_v(xt, v, t), x0, rtol=0, atol=1e-5)
    torch.testing.assert_close(eps_from_v(xt, v, t), noise, rtol=0, atol=1e-5)


def test_v_target_endpoints(batch: tuple[torch.Tensor, ...]) -> None:
    x0, noise, t = batch
    v = v_target(x0, noise, t)
    torch.testing.assert_close(v[0], noise[0])  # t = 0: v = eps
    torch.testing.assert_close(v[-1], -x0[-1])  # t = 1: v = -x0


def test_denoiser_returns_x0_from_the_network_v(tiny_denoiser: Denoiser) -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 1, 2048, generator=gen)
    t = torch.tensor([0.3, 0.8])
    ids = torch.tensor([0, 1])
    v = tiny_denoiser.net(x, t, ids)
    torch.testing.assert_close(tiny_denoiser(x, t, class_ids=ids), x0_from_v(x, v, t))


# -- loss --------------------------------------------------------------------------------------


@pytest.mark.parametrize("weighting", ["uniform", "snr-clamp"])
def test_loss_is_finite_and_has_gradients(
    tiny_denoiser: Denoiser, tiny_config: Config, weighting: str
) -> None:
    tiny_denoiser.train()
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 1, tiny_config.model.length, generator=gen) * 0.3
    loss = v_loss(
        tiny_denoiser.net, x0, torch.tensor([0, 1, 2]), weighting=weighting, generator=gen
    )
    assert loss.ndim == 0 and torch.isfinite(loss) and loss > 0
    loss.backward()
    grads = [p.grad for p in tiny_denoiser.net.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_loss_is_reproducible_with_a_generator(tiny_denoiser: Denoiser) -> None:
    x0 = torch.zeros(2, 1, 2048)
    ids = torch.tensor([0, 1])
    a = v_loss(tiny_denoiser.net, x0, ids, generator=torch.Generator().manual_seed(5))
    b = v_loss(tiny_denoiser.net, x0, ids, generator=torch.Generator().manual_seed(5))
    c = v_loss(tiny_denoiser.net, x0, ids, generator=torch.Generator().manual_seed(6))
    assert a == b and a != c


def test_loss_of_a_perfect_v_predictor_is_zero() -> None:
    """The loss compares against v = alpha * eps - sigma * x0: an oracle net scores 0."""

    class Oracle(torch.nn.Module):
        null_class = 3

        def forward(self, x: torch.Tensor, t: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
            alpha, sigma = alpha_sigma(t)
            # x0 is the constant 0.5 clip, so v follows from x_t alone.
            x0 = torch.full_like(x, 0.5)
            eps = (x - alpha[:, None, None] * x0) / sigma[:, None, None].clamp_min(1e-12)
            return v_target(x0, eps, t)

    x0 = torch.full((4, 1, 32), 0.5)
    gen = torch.Generator().manual_seed(2)
    loss = v_loss(Oracle(), x0, torch.zeros(4, dtype=torch.long), generator=gen)  # type: ignore[arg-type]
    assert float(loss) < 1e-8


def test_condition_dropout_feeds_the_null_class() -> None:
    seen: list[torch.Tensor] = []

    class Spy(torch.nn.Module):
        null_class = 9

        def forward(self, x: torch.Tensor, t: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
            seen.append(ids)
            return torch.zeros_like(x)

    x0 = torch.zeros(64, 1, 8)
    ids = torch.zeros(64, dtype=torch.long)
    v_loss(Spy(), x0, ids, condition_dropout=0.0)  # type: ignore[arg-type]
    v_loss(Spy(), x0, ids, condition_dropout=1.0)  # type: ignore[arg-type]
    v_loss(Spy(), x0, ids, condition_dropout=0.5, generator=torch.Generator().manual_seed(0))  # type: ignore[arg-type]
    assert bool((seen[0] == 0).all())
    assert bool((seen[1] == 9).all())
    assert 10 < int((seen[2] == 9).sum()) < 54


def test_unknown_loss_weighting_is_refused(tiny_denoiser: Denoiser) -> None:
    with pytest.raises(ValueError, match="unknown loss weighting 'min-snr'"):
        v_loss(tiny_denoiser.net, torch.zeros(1, 1, 2048), torch.tensor([0]), weighting="min-snr")


def test_envelope_maps_audio_to_unit_level_and_back() -> None:
    import numpy as np

    from drumdiff.model.config import DiffusionConfig
    from drumdiff.model.core.space import (
        audio_to_model,
        envelope_gain,
        measure_envelope,
        model_to_audio,
    )

    rng = np.random.default_rng(0)
    decay = np.exp(-np.arange(4096) / 800.0)
    clips = rng.standard_normal((64, 1, 4096)) * decay
    envelope = measure_envelope(clips, 512)
    assert len(envelope) == 8 and envelope[0] > 5 * envelope[-1]
    cfg = DiffusionConfig(
        data_scale=1.0, envelope=envelope, envelope_block=512, envelope_floor=1e-4
    )
    x = torch.from_numpy(clips).float()
    m = audio_to_model(x, cfg)
    block_rms = m.reshape(64, 8, 512).pow(2).mean(dim=(0, 2)).sqrt()
    assert torch.allclose(block_rms, torch.ones(8), atol=0.15)  # flat in model space
    torch.testing.assert_close(model_to_audio(m, cfg), x, rtol=1e-5, atol=1e-6)
    # Longer than trained: the last value is held; the floor bounds the gain.
    assert envelope_gain(cfg, 6000)[-1] == envelope_gain(cfg, 6000)[4500]
    floored = DiffusionConfig(envelope=(1.0, 0.0), envelope_block=2, envelope_floor=0.01)
    assert float(envelope_gain(floored, 4).max()) == pytest.approx(100.0)


def test_spectrum_whitens_coloured_noise_and_inverts_exactly() -> None:
    import numpy as np

    from drumdiff.model.config import DiffusionConfig
    from drumdiff.model.core.space import (
        audio_to_model,
        measure_spectrum,
        model_to_audio,
        spectrum_gain,
    )

    rng = np.random.default_rng(1)
    white = rng.standard_normal((32, 1, 4096))
    # Brown-ish noise: strong lows, weak highs (like drums), 1/f^2 power.
    spec = np.fft.rfft(white, axis=-1) / np.maximum(np.arange(2049), 8) * 8
    coloured = np.fft.irfft(spec, n=4096, axis=-1)
    amp = measure_spectrum(coloured, 65)
    assert len(amp) == 65 and amp[1] > 10 * amp[-1]
    assert np.allclose(measure_spectrum(white, 65)[1:], 1.0, atol=0.15)  # white measures 1
    cfg = DiffusionConfig(spectrum=amp, spectrum_floor_db=-80.0)
    x = torch.from_numpy(coloured).float()
    m = audio_to_model(x, cfg)
    power = (torch.fft.rfft(m, dim=-1).abs() ** 2 / 4096).mean(dim=(0, 1))
    assert float(power[64:].mean()) == pytest.approx(float(power[1000:2000].mean()), rel=0.3)
    torch.testing.assert_close(model_to_audio(m, cfg), x, rtol=1e-4, atol=1e-5)
    # The floor bounds the gain of near-empty bands.
    floored = DiffusionConfig(spectrum=(1.0, 1e-9), spectrum_floor_db=-40.0)
    assert float(spectrum_gain(floored, 64).max()) == pytest.approx(100.0, rel=1e-4)


def test_class_spaces_pick_each_items_space_and_invert_exactly() -> None:
    import dataclasses

    from drumdiff.model.config import DiffusionConfig
    from drumdiff.model.core.space import (
        audio_to_model,
        model_to_audio,
        one_hot_weights,
        space_gains,
    )

    gen = torch.Generator().manual_seed(0)
    bands = 9
    spectra = tuple(
        tuple(float(v) for v in torch.rand(bands, generator=gen) + 0.1) for _ in range(2)
    )
    envelopes = ((1.0, 0.5, 0.1, 0.05), (0.8, 0.8, 0.6, 0.4))
    cfg = DiffusionConfig(
        spectrum=(1.0,) * bands,
        envelope=(0.5,) * 4,
        envelope_block=64,
        spectrum_bands=bands,
        class_spaces=True,
        class_spectra=spectra,
        class_envelopes=envelopes,
    )
    audio = torch.randn(3, 1, 256, generator=gen)
    weights = one_hot_weights(torch.tensor([0, 1, 2]), 2)  # class 0, class 1, null
    x = audio_to_model(audio, cfg, weights)
    for i, own in enumerate(
        [
            dataclasses.replace(
                cfg, spectrum=spectra[0], envelope=envelopes[0], class_spaces=False
            ),
            dataclasses.replace(
                cfg, spectrum=spectra[1], envelope=envelopes[1], class_spaces=False
            ),
            dataclasses.replace(cfg, class_spaces=False),  # the null class: the global space
        ]
    ):
        torch.testing.assert_close(x[i], audio_to_model(audio[i], own), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model_to_audio(x, cfg, weights), audio, rtol=1e-4, atol=1e-5)
    # An even blend sits at the geometric mean of the two spaces.
    _, env = space_gains(cfg, 256, torch.tensor([[0.5, 0.5, 0.0]]))
    _, env0 = space_gains(cfg, 256, torch.tensor([[1.0, 0.0, 0.0]]))
    _, env1 = space_gains(cfg, 256, torch.tensor([[0.0, 1.0, 0.0]]))
    torch.testing.assert_close(env, (env0 * env1).sqrt())
    # Without class spaces the weights change nothing.
    plain = dataclasses.replace(cfg, class_spaces=False)
    torch.testing.assert_close(audio_to_model(audio, plain, weights), audio_to_model(audio, plain))


def test_flat_frequency_weights_give_the_plain_mse() -> None:
    from drumdiff.model.core.loss import frequency_weights, spectral_mse

    error = torch.randn(3, 2, 1000)
    flat = frequency_weights(1000, 44100, 0.0, 40.0)
    assert torch.allclose(spectral_mse(error, flat), error.square().mean(dim=(1, 2)), rtol=1e-4)
    odd = torch.randn(2, 1, 999)
    assert torch.allclose(
        spectral_mse(odd, frequency_weights(999, 44100, 0.0, 40.0)),
        odd.square().mean(dim=(1, 2)),
        rtol=1e-4,
    )


def test_octave_weights_favour_low_bands_evenly_per_octave() -> None:
    from drumdiff.model.core.loss import frequency_weights

    n, sr = 32768, 44100
    w = frequency_weights(n, sr, 1.0, 40.0).double()
    freqs = torch.arange(n // 2 + 1, dtype=torch.float64) * sr / n

    def band(lo: float, hi: float) -> float:
        return float(w[(freqs >= lo) & (freqs < hi)].sum())

    # Each octave above the floor carries the same weight; per Hz it would be 1:2:4...
    assert band(100, 200) == pytest.approx(band(1000, 2000), rel=0.02)
    assert band(100, 200) == pytest.approx(band(5000, 10000), rel=0.02)
    # Mean weight 1 counted over the full spectrum keeps the loss on the plain MSE's scale.
    multiplicity = torch.full_like(w, 2.0)
    multiplicity[0] = multiplicity[-1] = 1.0
    assert float((multiplicity * w).sum() / n) == pytest.approx(1.0, rel=1e-6)
    half = frequency_weights(n, sr, 0.5, 40.0).double()
    assert torch.allclose(half, 0.5 + 0.5 * w)
    with pytest.raises(ValueError, match="octave share"):
        frequency_weights(n, sr, 1.5, 40.0)


def test_octave_weighted_loss_punishes_a_low_error_more_than_a_high_one() -> None:
    from drumdiff.model.core.loss import frequency_weights, spectral_mse

    n, sr = 4096, 44100
    time = torch.arange(n) / sr
    low = torch.sin(2 * torch.pi * 60 * time)[None, None]
    high = torch.sin(2 * torch.pi * 6000 * time)[None, None]
    flat = frequency_weights(n, sr, 0.0, 40.0)
    octave = frequency_weights(n, sr, 0.5, 40.0)
    assert float(spectral_mse(low, flat)) == pytest.approx(
        float(spectral_mse(high, flat)), rel=0.05
    )
    assert float(spectral_mse(low, octave)) > 10 * float(spectral_mse(high, octave))


def test_configured_loss_is_the_plain_mse_until_asked(tiny_config: Config) -> None:
    import dataclasses

    from drumdiff.model.core.loss import configured_frequency_weights

    assert configured_frequency_weights(tiny_config, 2048) is None
    cfg = dataclasses.replace(
        tiny_config, diffusion=dataclasses.replace(tiny_config.diffusion, loss_octave_share=0.5)
    )
    weights = configured_frequency_weights(cfg, 2048)
    assert weights is not None and weights.shape == (1025,)


def test_the_log_spectral_distance_is_blind_to_phase_and_punishes_averaging_noise_away() -> None:
    gen = torch.Generator().manual_seed(0)
    decay = torch.exp(-torch.arange(8192) / 2000.0)
    hit = torch.randn(4, 1, 8192, generator=gen) * decay
    other = torch.randn(4, 1, 8192, generator=gen) * decay  # the same noise, drawn again
    assert float(log_spectral_distance(hit, hit)) == pytest.approx(0.0, abs=1e-6)
    assert float(log_spectral_distance(-hit, hit)) == pytest.approx(0.0, abs=1e-6)
    # A sample-wise error prefers the average of unpredictable noise (silence) to another draw
    # of it; this distance prefers the draw, and a quieter copy lies in between.
    assert float(torch.mean(hit**2)) < float(torch.mean((other - hit) ** 2))
    drawn = float(log_spectral_distance(other, hit))
    quieter = float(log_spectral_distance(0.25 * hit, hit))
    silent = float(log_spectral_distance(torch.zeros_like(hit), hit))
    assert drawn < quieter < silent
    with pytest.raises(ValueError, match="differ"):
        log_spectral_distance(hit, hit[..., :100])
    with pytest.raises(ValueError, match="no FFT size"):
        log_spectral_distance(hit[..., :32], hit[..., :32])


def test_time_weights_make_a_weak_onset_count() -> None:
    gen = torch.Generator().manual_seed(1)
    hit = torch.randn(2, 1, 8192, generator=gen) * torch.exp(-torch.arange(8192) / 2000.0)
    weak_onset = hit.clone()
    weak_onset[..., :400] *= 0.5
    flat = log_spectral_distance(weak_onset, hit)
    ones = log_spectral_distance(weak_onset, hit, time_weights=torch.ones(8192))
    onset = 1.0 + 29.0 * torch.exp(-torch.arange(8192) / 400.0)
    leaning = log_spectral_distance(weak_onset, hit, time_weights=onset)
    assert float(ones) == pytest.approx(float(flat), rel=1e-5)
    assert float(leaning) > 2 * float(flat) > 0
