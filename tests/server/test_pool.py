"""The hit pool: first in, first out per class; stale settings dropped; refills evenly."""

from __future__ import annotations

import numpy as np

from drumdiff.model.render.generate import RenderSettings
from drumdiff.server.pool import HitPool, Pooled

A = RenderSettings(steps=4, sampler="ddim")
B = RenderSettings(steps=8, sampler="ddim")


def _hit(seed: int, settings: RenderSettings = A) -> Pooled:
    return Pooled(seed, settings, np.zeros((1, 4), np.float32))


def test_takes_oldest_with_the_settings_asked_for() -> None:
    pool = HitPool(3)
    pool.add([("kick", _hit(1, B)), ("kick", _hit(2)), ("kick", _hit(3))])
    taken = pool.take("kick", A)
    assert taken is not None and taken.seed == 2  # the B hit was stale and is gone
    assert pool.counts() == {"kick": 1}
    assert pool.take("snare", A) is None


def test_keep_only_and_fill() -> None:
    pool = HitPool(2)
    pool.add([("kick", _hit(1)), ("kick", _hit(2, B)), ("snare", _hit(3))])
    assert pool.fill(["kick", "snare"]) == 3 / 4
    pool.keep_only(A)
    assert pool.counts() == {"kick": 1, "snare": 1}
    assert HitPool(0).fill(["kick"]) == 1.0


def test_refill_plan_is_round_robin_emptiest_first_and_capped() -> None:
    pool = HitPool(2)
    pool.add([("kick", _hit(1))])
    assert pool.refill_plan(["kick", "snare", "tom"], 8) == ["snare", "tom", "kick", "snare", "tom"]
    assert pool.refill_plan(["kick", "snare", "tom"], 2) == ["snare", "tom"]
    assert HitPool(0).refill_plan(["kick"], 4) == []


def test_last_hit_is_remembered_until_cleared() -> None:
    pool = HitPool(1)
    pool.remember("kick", _hit(9))
    last = pool.last("kick")
    assert last is not None and last.seed == 9
    pool.clear()
    assert pool.last("kick") is None and pool.counts() == {}
