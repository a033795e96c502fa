"""Samplers and schedules: the shared contract, determinism, batching, and exactness on toy
cases."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import Tensor

from drumdiff.model.core.denoiser import Denoiser
from drumdiff.model.core.diffusion import alpha_sigma
from drumdiff.model.core.sampling import (
    SAMPLERS,
    SCHEDULES,
    generators_for,
    get_sampler,
    get_schedule,
    get_ts_karras,
    network_evaluations,
    randn,
)

DETERMINISTIC = ("ddim", "dpmpp-2m", "heun")
SHAPE = (1, 1, 2048)  # (B, C, T) of the tiny config


def _noise(batch: int, seeds: list[int] | None = None) -> tuple[Tensor, list[torch.Generator]]:
    gens = generators_for(seeds if seeds is not None else list(range(batch)))
    return randn((batch, *SHAPE[1:]), gens), gens


def _run(
    name: str,
    denoiser: Denoiser,
    seeds: list[int],
    *,
    steps: int = 3,
    schedule: str = "karras",
    **extra: Any,
) -> Tensor:
    x, gens = _noise(len(seeds), seeds)
    ts = get_schedule(schedule, steps)
    return SAMPLERS[name](denoiser, x, ts, extra_args=extra, generator=gens)


# -- registry ---------------------------------------------------------------------------------


def test_registry_holds_the_required_samplers() -> None:
    assert {"ddpm", "ddim", "dpmpp-2m", "heun"} <= set(SAMPLERS)
    for name, fn in SAMPLERS.items():
        assert get_sampler(name) is fn
        assert fn.__doc__ and fn.__doc__.strip(), f"{name} needs a docstring naming its algorithm"


def test_unknown_sampler_names_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown sampler 'euler-x'.*ddim"):
        get_sampler("euler-x")


def test_network_evaluations_counts_heun_twice() -> None:
    assert network_evaluations("ddim", 12) == 12
    assert network_evaluations("heun", 12) == 22  # first and last steps are Euler steps


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_reported_network_evaluations_are_not_fewer_than_real(name: str) -> None:
    calls = 0

    def model(x: Tensor, t: Tensor, **_: Any) -> Tensor:
        nonlocal calls
        calls += 1
        return torch.zeros_like(x)

    steps = 5
    SAMPLERS[name](model, torch.randn(1, 1, 8), get_schedule("linear", steps))
    assert calls == network_evaluations(name, steps)


# -- schedules --------------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
@pytest.mark.parametrize("steps", [1, 2, 3, 12, 50, 200])
def test_schedules_start_at_1_end_in_0_and_decrease(schedule: str, steps: int) -> None:
    ts = get_schedule(schedule, steps)
    assert ts.shape == (steps + 1,)
    assert ts.dtype == torch.float32
    assert ts[0].item() == 1.0
    assert ts[-1].item() == 0.0
    assert bool((ts[1:] < ts[:-1]).all()), ts


def test_karras_schedule_spends_steps_at_low_noise() -> None:
    ts = get_ts_karras(12)
    gaps = (ts[:-1] - ts[1:])[1:-1]
    assert gaps[0] > gaps[-1]  # coarse at high noise, fine near the data


@pytest.mark.parametrize("bad", [0, -1])
def test_schedule_rejects_nonpositive_steps(bad: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        get_schedule("karras", bad)


def test_unknown_schedule_names_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown schedule 'cosine'"):
        get_schedule("cosine", 4)


@pytest.mark.parametrize(
    "ts",
    [[1.0, 0.5], [1.0], [0.5, 0.7, 0.0], [1.0, 0.5, 0.5, 0.0], [1.5, 0.5, 0.0]],
    ids=["no-zero", "single", "increasing", "repeated", "above-1"],
)
def test_samplers_reject_malformed_schedules(ts: list[float]) -> None:
    for fn in SAMPLERS.values():
        with pytest.raises(ValueError):
            fn(lambda x, t, **_: x, torch.zeros(1, 1, 8), torch.tensor(ts))


# -- the contract on the tiny random model ----------------------------------------------------


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_sampler_output_is_finite_with_the_input_shape(name: str, tiny_denoiser: Denoiser) -> None:
    out = _run(name, tiny_denoiser, [0, 1], class_ids=torch.tensor([0, 2]), guidance=2.0)
    assert out.shape == (2, *SHAPE[1:])
    assert torch.isfinite(out).all()
    assert out.abs().max() > 0


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_same_seed_gives_identical_output(name: str, tiny_denoiser: Denoiser) -> None:
    a = _run(name, tiny_denoiser, [7], class_ids=torch.tensor([1]))
    b = _run(name, tiny_denoiser, [7], class_ids=torch.tensor([1]))
    c = _run(name, tiny_denoiser, [8], class_ids=torch.tensor([1]))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_batch_of_4_equals_4_singles(name: str, tiny_denoiser: Denoiser) -> None:
    seeds, ids = [3, 11, 5, 3], [0, 1, 2, 4]  # mixed classes, the null class, a repeated seed
    batch = _run(name, tiny_denoiser, seeds, class_ids=torch.tensor(ids), guidance=2.5)
    singles = torch.cat(
        [
            _run(name, tiny_denoiser, [s], class_ids=torch.tensor([c]), guidance=2.5)
            for s, c in zip(seeds, ids)
        ]
    )
    torch.testing.assert_close(batch, singles, rtol=1e-3, atol=1e-4)


def test_ddpm_is_stochastic_but_reproducible(tiny_denoiser: Denoiser) -> None:
    """DDPM draws fresh noise per step from the generators: it must differ from DDIM."""
    ddpm = _run("ddpm", tiny_denoiser, [4], steps=4)
    ddim = _run("ddim", tiny_denoiser, [4], steps=4)
    assert not torch.allclose(ddpm, ddim)


def test_ddim_eta_adds_noise_only_when_asked(tiny_denoiser: Denoiser) -> None:
    x, gens = _noise(1, [9])
    ts = get_schedule("karras", 4)
    plain = SAMPLERS["ddim"](tiny_denoiser, x, ts, generator=generators_for([9]), eta=0.0)
    noisy = SAMPLERS["ddim"](tiny_denoiser, x, ts, generator=generators_for([9]), eta=1.0)
    ddpm = SAMPLERS["ddpm"](tiny_denoiser, x, ts, generator=generators_for([9]))
    assert not torch.allclose(plain, noisy)
    torch.testing.assert_close(noisy, ddpm)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_callback_sees_every_step(name: str, tiny_denoiser: Denoiser) -> None:
    seen: list[dict[str, Any]] = []
    x, gens = _noise(1)
    SAMPLERS[name](
        tiny_denoiser, x, get_schedule("karras", 5), callback=seen.append, generator=gens
    )
    assert [info["i"] for info in seen] == list(range(5))
    assert all(info["x"].shape == x.shape and info["denoised"].shape == x.shape for info in seen)


def test_randn_with_generators_matches_one_by_one() -> None:
    batch = randn((3, 1, 16), generators_for([1, 2, 3]))
    singles = torch.cat([randn((1, 1, 16), generators_for([s])) for s in (1, 2, 3)])
    assert torch.equal(batch, singles)
    with pytest.raises(ValueError, match="2 generators for a batch of 3"):
        randn((3, 1, 16), generators_for([1, 2]))


# -- guidance and class blending --------------------------------------------------------------


def test_guidance_combines_conditional_and_null_predictions(tiny_denoiser: Denoiser) -> None:
    x, _ = _noise(2)
    t = torch.tensor([0.7, 0.3])
    ids = torch.tensor([0, 3])
    null = torch.full_like(ids, tiny_denoiser.null_class)
    v_cond = tiny_denoiser.net(x, t, ids)
    v_null = tiny_denoiser.net(x, t, null)
    assert not torch.allclose(v_cond, v_null), "the class must change the prediction"
    torch.testing.assert_close(tiny_denoiser.v(x, t, class_ids=ids, guidance=1.0), v_cond)
    torch.testing.assert_close(tiny_denoiser.v(x, t, class_ids=ids, guidance=0.0), v_null)
    torch.testing.assert_close(
        tiny_denoiser.v(x, t, class_ids=ids, guidance=3.0),
        v_null + 3.0 * (v_cond - v_null),
        rtol=1e-4,
        atol=1e-5,
    )


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_guidance_changes_the_render(name: str, tiny_denoiser: Denoiser) -> None:
    ids = torch.tensor([1])
    g1 = _run(name, tiny_denoiser, [2], class_ids=ids, guidance=1.0)
    g3 = _run(name, tiny_denoiser, [2], class_ids=ids, guidance=3.0)
    assert torch.isfinite(g3).all()
    assert not torch.allclose(g1, g3)


@pytest.mark.parametrize("guidance", [0.0, 1.0, 2.5])
def test_one_hot_class_weights_equal_class_ids(tiny_denoiser: Denoiser, guidance: float) -> None:
    x, _ = _noise(3)
    t = torch.tensor([0.9, 0.5, 0.1])
    ids = torch.tensor([0, 2, tiny_denoiser.null_class])
    weights = torch.nn.functional.one_hot(ids, tiny_denoiser.null_class + 1).float()
    by_ids = tiny_denoiser(x, t, class_ids=ids, guidance=guidance)
    by_weights = tiny_denoiser(x, t, class_weights=weights, guidance=guidance)
    torch.testing.assert_close(by_weights, by_ids, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_one_hot_class_weights_render_like_class_ids(name: str, tiny_denoiser: Denoiser) -> None:
    ids = torch.tensor([1, 3])
    weights = torch.nn.functional.one_hot(ids, tiny_denoiser.null_class + 1).float()
    a = _run(name, tiny_denoiser, [5, 6], class_ids=ids, guidance=2.0)
    b = _run(name, tiny_denoiser, [5, 6], class_weights=weights, guidance=2.0)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_blended_class_weights_lie_between_the_classes(tiny_denoiser: Denoiser) -> None:
    x, _ = _noise(1)
    t = torch.tensor([0.5])
    n = tiny_denoiser.null_class + 1
    w = torch.zeros(1, n)
    w[0, 0], w[0, 1] = 0.5, 0.5
    emb_mix = tiny_denoiser.net.condition(t, None, w)
    emb_a = tiny_denoiser.net.condition(t, torch.tensor([0]), None)
    emb_b = tiny_denoiser.net.condition(t, torch.tensor([1]), None)
    assert not torch.allclose(emb_mix, emb_a) and not torch.allclose(emb_mix, emb_b)


# -- exactness on analytic toy problems -------------------------------------------------------


class PointMass:
    """The exact denoiser of a data distribution that is the single point x0*: E[x0 | x_t] = x0*.

    With class conditioning, class k is the point x0*[k] (so each item has its own target).
    """

    def __init__(self, points: Tensor) -> None:
        self.points = points  # (K, C, T)
        self.calls = 0

    def __call__(self, x: Tensor, t: Tensor, *, class_ids: Tensor, **_: Any) -> Tensor:
        assert t.shape == (x.shape[0],) and bool((t > 0).all()), "never evaluated at t = 0"
        self.calls += 1
        return self.points[class_ids].to(x.dtype)


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
@pytest.mark.parametrize("steps", [1, 2, 7, 25])
@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_exact_denoiser_of_a_point_mass_lands_on_it(name: str, steps: int, schedule: str) -> None:
    """Every sampler, deterministic or not, must return x0* exactly, at any step count."""
    gen = torch.Generator().manual_seed(steps)
    points = torch.randn(3, 1, 64, generator=gen) * 0.5
    model = PointMass(points)
    ids = torch.tensor([2, 0, 1, 2])
    x, gens = _noise_like((4, 1, 64), [1, 2, 3, 4])
    out = SAMPLERS[name](
        model, x, get_schedule(schedule, steps), extra_args={"class_ids": ids}, generator=gens
    )
    assert model.calls > 0
    torch.testing.assert_close(out, points[ids], rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_perfect_x0_prediction_is_returned_at_every_step(name: str) -> None:
    """A fake model that always knows the true x0 makes deterministic samplers return it.

    The starting noise is correlated with nothing; intermediate `denoised` values must be x0 and
    intermediate states must stay on the straight path alpha * x0 + sigma * eps0.
    """
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(2, 1, 128, generator=gen).clamp(-1, 1)
    eps0 = torch.randn(2, 1, 128, generator=gen)
    states: list[tuple[float, Tensor, Tensor]] = []
    ts = get_schedule("karras", 6)
    levels = [float(v) for v in ts]

    def record(info: dict[str, Any]) -> None:
        states.append((levels[info["i"] + 1], info["x"], info["denoised"]))

    out = SAMPLERS[name](lambda x, t, **_: x0.clone(), eps0.clone(), ts, callback=record)
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-6)
    for t_next, x, denoised in states:
        assert torch.equal(denoised, x0)
        alpha, sigma = alpha_sigma(torch.tensor(t_next, dtype=torch.float64))
        # t = 1 has alpha = 6e-17, not 0: x1 carries that much x0; allow for it.
        expected = float(alpha) * x0 + float(sigma) * eps0
        torch.testing.assert_close(x, expected, rtol=1e-4, atol=1e-4)


def _noise_like(shape: tuple[int, ...], seeds: list[int]) -> tuple[Tensor, list[torch.Generator]]:
    gens = generators_for(seeds)
    return randn(shape, gens), gens


class Gaussian:
    """Exact denoiser of data x0 ~ N(mu, s^2 I): E[x0 | x_t] = mu + a s^2 (x - a mu) / (a^2 s^2 +
    sig^2).

    Its probability-flow ODE maps the starting noise z (at t = 1) to mu + s * z exactly, so a
    deterministic sampler's error against that target is its discretisation error.
    """

    def __init__(self, mu: Tensor, s: float) -> None:
        self.mu, self.s = mu, s

    def __call__(self, x: Tensor, t: Tensor, **_: Any) -> Tensor:
        a, sig = alpha_sigma(t.double())
        a, sig = a[:, None, None], sig[:, None, None]
        x = x.double()
        var = a**2 * self.s**2 + sig**2
        return (self.mu + a * self.s**2 * (x - a * self.mu) / var).to(torch.float32)


@pytest.mark.parametrize(("name", "order"), [("ddim", 1), ("dpmpp-2m", 2), ("heun", 2)])
def test_deterministic_samplers_converge_at_their_order(name: str, order: int) -> None:
    """Quadrupling the steps must cut the error ~4x (first order) or ~16x (second order)."""
    gen = torch.Generator().manual_seed(3)
    mu = torch.randn(1, 1, 256, generator=gen, dtype=torch.float64) * 0.3
    model = Gaussian(mu, s=0.2)
    z = torch.randn(1, 1, 256, generator=gen)
    target = (mu + 0.2 * z.double()).float()

    def error(steps: int) -> float:
        out = SAMPLERS[name](model, z.clone(), get_schedule("karras", steps))
        return float((out - target).abs().max())

    coarse, fine = error(24), error(96)
    # Measured: ddim 9.6e-2 -> 2.5e-2, dpmpp-2m 3.3e-2 -> 1.6e-3, heun 2.9e-2 -> 1.6e-3.
    assert coarse / fine > (3.0 if order == 1 else 10.0), (coarse, fine)
    assert fine < (3e-2 if order == 1 else 3e-3), (coarse, fine)


def test_higher_order_samplers_beat_ddim_on_a_gaussian() -> None:
    gen = torch.Generator().manual_seed(4)
    mu = torch.randn(1, 1, 256, generator=gen, dtype=torch.float64) * 0.3
    model = Gaussian(mu, s=0.2)
    z = torch.randn(1, 1, 256, generator=gen)
    target = (mu + 0.2 * z.double()).float()
    ts = get_schedule("karras", 10)
    errors = {
        name: float((SAMPLERS[name](model, z.clone(), ts) - target).abs().max())
        for name in DETERMINISTIC
    }
    assert errors["dpmpp-2m"] < errors["ddim"], errors
    assert errors["heun"] < errors["ddim"], errors


def test_ddpm_matches_the_gaussian_in_distribution() -> None:
    """Ancestral sampling of N(mu, s^2): many items, the sample mean and std must match."""
    mu, s = 0.4, 0.25
    model = Gaussian(torch.full((1, 1, 1), mu, dtype=torch.float64), s)
    gen = torch.Generator().manual_seed(0)  # one generator for the batch: cheap per step
    x = randn((4096, 1, 1), gen)
    out = SAMPLERS["ddpm"](model, x, get_schedule("linear", 160), generator=gen)
    # Measured: mean 0.408, std 0.243 (the std bias shrinks with steps: 0.167 at 10, 0.246 at 640).
    assert math.isclose(float(out.mean()), mu, abs_tol=0.02)
    assert math.isclose(float(out.std()), s, rel_tol=0.06)
