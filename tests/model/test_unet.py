"""The network alone: shapes, conditioning, validation, per-item independence."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from drumdiff_testkit import randomize

from drumdiff.model.config import Config, ModelConfig
from drumdiff.model.core.unet import DrumUNet1d, FourierFeatures, count_parameters


def _net(cfg: ModelConfig, seed: int = 1) -> DrumUNet1d:
    torch.manual_seed(0)
    return randomize(DrumUNet1d(cfg), seed=seed).eval()  # type: ignore[return-value]


def test_fresh_network_predicts_zero_until_trained(tiny_config: Config) -> None:
    """The zero-initialised output layer: a fresh model is the 'v = 0' denoiser."""
    net = DrumUNet1d(tiny_config.model).eval()
    out = net(torch.randn(2, 1, 2048), torch.rand(2), torch.tensor([0, 1]))
    assert torch.equal(out, torch.zeros_like(out))


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("blocks", [1, 2])
def test_forward_shape_mono_stereo_and_depth(
    tiny_config: Config, channels: int, blocks: int
) -> None:
    cfg = dataclasses.replace(tiny_config.model, audio_channels=channels, blocks_per_level=blocks)
    net = _net(cfg)
    x = torch.randn(3, channels, cfg.length)
    with torch.no_grad():
        out = net(x, torch.rand(3), torch.tensor([0, 1, 4]))
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_output_depends_on_input_noise_level_and_class(tiny_config: Config) -> None:
    net = _net(tiny_config.model)
    x = torch.randn(1, 1, 2048)
    with torch.no_grad():
        base = net(x, torch.tensor([0.5]), torch.tensor([0]))
        assert not torch.allclose(base, net(x * 0.5, torch.tensor([0.5]), torch.tensor([0])))
        assert not torch.allclose(base, net(x, torch.tensor([0.6]), torch.tensor([0])))
        assert not torch.allclose(base, net(x, torch.tensor([0.5]), torch.tensor([1])))


def test_no_class_means_the_null_class(tiny_config: Config) -> None:
    net = _net(tiny_config.model)
    x, t = torch.randn(2, 1, 2048), torch.rand(2)
    null = torch.full((2,), net.null_class)
    with torch.no_grad():
        torch.testing.assert_close(net(x, t), net(x, t, null))
    assert net.null_class == len(tiny_config.model.classes)


def test_items_do_not_leak_across_the_batch(tiny_config: Config) -> None:
    net = _net(tiny_config.model)
    x, t, ids = torch.randn(3, 1, 2048), torch.rand(3), torch.tensor([0, 2, 4])
    with torch.no_grad():
        batch = net(x, t, ids)
        x2 = x.clone()
        x2[1] = torch.randn(1, 2048)
        changed = net(x2, t, ids)
    torch.testing.assert_close(batch[[0, 2]], changed[[0, 2]], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(batch[1], changed[1])


def test_patching_keeps_time_local(tiny_config: Config) -> None:
    """Patch/unpatch must be inverse reshapes: with the network reduced to identity-like
    behaviour, a change late in the clip cannot move the first samples through the patching."""
    cfg = dataclasses.replace(
        tiny_config.model, widths=(16,), attention_levels=(), positional=False, kernel_size=1
    )
    net = _net(cfg)
    # with kernel 1 everywhere except the 3-tap stem/out convs, frame k only sees frames k-2..k+2
    x = torch.randn(1, 1, cfg.length)
    x2 = x.clone()
    x2[..., -16 * 8 :] += 1.0  # the last 8 frames
    with torch.no_grad():
        a, b = net(x, torch.tensor([0.5]), None), net(x2, torch.tensor([0.5]), None)
    # GroupNorm is global over time, so allow for its statistics shifting; the first frames must
    # still move far less than the changed ones.
    early = (a - b)[..., : 16 * 8].abs().mean()
    late = (a - b)[..., -16 * 8 :].abs().mean()
    assert late > 3 * early


def test_renders_at_other_lengths(tiny_config: Config) -> None:
    net = _net(tiny_config.model)
    for n in (1024, 2048, 4096):
        with torch.no_grad():
            out = net(torch.randn(1, 1, n), torch.rand(1), torch.tensor([0]))
        assert out.shape == (1, 1, n) and torch.isfinite(out).all()


def test_bad_inputs_are_refused(tiny_config: Config) -> None:
    net = _net(tiny_config.model)
    with pytest.raises(ValueError, match="expected 1 audio channels, got 2"):
        net(torch.randn(1, 2, 2048), torch.rand(1))
    with pytest.raises(ValueError, match="length 2000 is not a multiple of 32"):
        net(torch.randn(1, 1, 2000), torch.rand(1))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"widths": ()}, "at least one level"),
        ({"length": 2000}, "multiple of patch_size"),
        ({"attention_levels": (2,)}, "attention level 2 out of range"),
        ({"fourier_features": 15}, "fourier_features must be even"),
        ({"widths": (16, 20), "head_dim": 6}, r"widths\[1\] = 20 does not split into heads"),
    ],
)
def test_bad_model_configs_are_refused_at_build(
    tiny_config: Config, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        DrumUNet1d(dataclasses.replace(tiny_config.model, **changes))  # type: ignore[arg-type]


def test_class_count_sets_the_embedding(tiny_config: Config) -> None:
    cfg = dataclasses.replace(tiny_config.model, classes=("any",))
    net = DrumUNet1d(cfg)
    assert net.class_embed.num_embeddings == 2  # the one class and the null class
    assert count_parameters(net) < count_parameters(DrumUNet1d(tiny_config.model))


def test_fourier_features_shape() -> None:
    ff = FourierFeatures(16)
    out = ff(torch.tensor([0.0, 0.5, 1.0]))
    assert out.shape == (3, 16)
    torch.testing.assert_close(out[0, :8], torch.ones(8))  # cos(0)


def test_refiner_starts_as_identity_and_then_sees_across_patch_borders(tiny_config: Config) -> None:
    """A network that gains a refiner computes what it did without one until it is trained."""
    plain = _net(tiny_config.model)
    cfg = dataclasses.replace(tiny_config.model, refiner_channels=4, refiner_kernel=5)
    torch.manual_seed(0)
    refined = DrumUNet1d(cfg).eval()
    missing, unexpected = refined.load_state_dict(plain.state_dict(), strict=False)
    assert missing and all(k.startswith("refiner.") for k in missing) and not unexpected
    x, t, ids = torch.randn(2, 1, cfg.length), torch.rand(2), torch.tensor([0, 1])
    with torch.no_grad():
        assert torch.equal(refined(x, t, ids), plain(x, t, ids))
        randomize(refined.refiner, seed=3)
        # An impulse in the input one sample before a patch border moves the output after it.
        border = cfg.patch_size * 4
        x2 = x.clone()
        x2[..., border - 1] += 1.0
        change = (refined(x2, t, ids) - refined(x, t, ids)).abs()[0, 0]
        base_change = (plain(x2, t, ids) - plain(x, t, ids)).abs()[0, 0]
    assert not torch.allclose(change, base_change)
    assert float(change[border : border + 2].sum()) > 0


@pytest.mark.parametrize(("channels", "kernel"), [(0, 5), (4, 4)])
def test_refiner_needs_channels_and_an_odd_kernel(channels: int, kernel: int) -> None:
    from drumdiff.model.core.unet import SampleRefiner

    with pytest.raises(ValueError, match="odd kernel"):
        SampleRefiner(1, channels, kernel, 8)
