"""The hit critic: level-blind, class-aware, and able to learn and teach the difference between
a drum's body and noise."""

from __future__ import annotations

import numpy as np
import torch
from drumdiff_testkit import make_hit

from drumdiff.model.train.critic import HitCritic, critic_loss, generator_loss, peak_normalised

LENGTH = 4096


def bodies(n: int, seed: int) -> torch.Tensor:
    """n kick-like hits: decaying low sines with a little noise, (n, 1, LENGTH)."""
    rng = np.random.default_rng(seed)
    hits = [
        make_hit(LENGTH, freq=float(rng.uniform(50, 90)), decay_s=0.05, seed=int(rng.integers(99)))
        for _ in range(n)
    ]
    return torch.from_numpy(np.stack(hits))


def noise_bursts(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    env = torch.exp(-torch.arange(LENGTH) / 2000.0)
    return torch.randn(n, 1, LENGTH, generator=g) * env


def small_critic(seed: int = 0) -> HitCritic:
    torch.manual_seed(seed)
    return HitCritic(3, ffts=(512, 128), channels=8, layers=3)


def test_peak_normalised_scales_each_hit_to_one_and_keeps_silence() -> None:
    audio = torch.stack([torch.full((1, 8), 0.25), torch.zeros(1, 8)])
    out = peak_normalised(audio)
    assert float(out[0].abs().max()) == 1.0
    assert float(out[1].abs().max()) == 0.0


def test_scores_ignore_the_level_and_depend_on_the_class() -> None:
    critic = small_critic().eval()
    hits = bodies(4, seed=1)
    ids = torch.tensor([0, 1, 2, 3])  # 3 is the null class
    with torch.no_grad():
        scores = critic(hits, ids)
        quieter = critic(0.3 * hits, ids)
        as_snares = critic(hits, torch.ones(4, dtype=torch.long))
    assert scores.shape == (4,)
    torch.testing.assert_close(scores, quieter, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(scores, as_snares)


def test_the_critic_learns_a_body_from_noise_and_teaches_it() -> None:
    critic = small_critic()
    optimizer = torch.optim.Adam(critic.parameters(), lr=2e-3, betas=(0.5, 0.9))
    ids = torch.zeros(8, dtype=torch.long)
    first = None
    for step in range(60):
        real, fake = bodies(8, seed=step), noise_bursts(8, seed=step)
        loss = critic_loss(critic(real, ids), critic(fake, ids))
        first = float(loss.detach()) if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    real, fake = bodies(8, seed=1000), noise_bursts(8, seed=1000)
    with torch.no_grad():
        held_out = critic_loss(critic(real, ids), critic(fake, ids))
    assert first is not None and float(held_out) < 0.5 * first

    # The student's side: gradients of its loss move a noise burst toward what scores as real.
    critic.requires_grad_(False)
    hit = noise_bursts(8, seed=2000).requires_grad_(True)
    student = torch.optim.Adam([hit], lr=5e-2)
    with torch.no_grad():
        real_scores = critic(real, ids)
        before = float(generator_loss(real_scores, critic(hit, ids)))
    for _ in range(50):
        loss = generator_loss(real_scores, critic(hit, ids))
        student.zero_grad()
        loss.backward()
        student.step()
    with torch.no_grad():
        after = float(generator_loss(real_scores, critic(hit, ids)))
    assert after < 0.5 * before, (before, after)
