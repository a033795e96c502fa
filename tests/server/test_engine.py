"""The engine: batching of waiting requests, the bounded queue, the pool, determinism, shutdown."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from drumdiff.model.core.checkpoint import LoadedModel
from drumdiff.model.render.generate import render, settings_for
from drumdiff.server.config import GM_DRUM_MAP, EngineConfig
from drumdiff.server.engine import Engine, Hit, Origin, Task
from drumdiff.server.errors import BusyError, ProtocolError, ShuttingDown
from drumdiff.server.protocol import RenderRequest

ORIGIN = Origin("local")


class Recorder:
    """Collects engine results; `wait(n)` blocks until n results arrived."""

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self.fails: list[tuple[Task, Exception]] = []
        self._cond = threading.Condition()

    def on_hit(self, hit: Hit) -> None:
        with self._cond:
            self.hits.append(hit)
            self._cond.notify_all()

    def on_fail(self, task: Task, err: Exception) -> None:
        with self._cond:
            self.fails.append((task, err))
            self._cond.notify_all()

    def wait(self, n: int, timeout: float = 30.0) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.hits) + len(self.fails) >= n, timeout), (
                f"only {len(self.hits)} hits and {len(self.fails)} failures arrived"
            )


class GatedRenderer:
    """A fake renderer that blocks its first call until released and records batch sizes."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.batches: list[list[Any]] = []

    def __call__(self, model: LoadedModel, tasks: Sequence[Task]) -> np.ndarray:
        self.batches.append([t.request_id for t in tasks])
        self.entered.set()
        assert self.gate.wait(30.0)
        return np.zeros((len(tasks), 1, 64), dtype=np.float32)


def make_engine(model: LoadedModel, rec: Recorder, **cfg: Any) -> Engine:
    config = EngineConfig(**{"pool_size": 0, "warmup": False, "runtime": "torch", **cfg})
    return Engine(
        model, config, note_map=GM_DRUM_MAP, on_hit=rec.on_hit, on_fail=rec.on_fail, seed=7
    )


@pytest.fixture
def gated(tiny_model: LoadedModel) -> Any:
    rec = Recorder()
    fake = GatedRenderer()
    engine = Engine(
        tiny_model,
        EngineConfig(pool_size=0, warmup=False, queue_size=4, max_batch=16, runtime="torch"),
        note_map=GM_DRUM_MAP,
        on_hit=rec.on_hit,
        on_fail=rec.on_fail,
        renderers={"render": fake},
        seed=7,
    )
    engine.start()
    yield engine, fake, rec
    fake.gate.set()
    engine.stop()


def test_requests_waiting_together_render_as_one_batch(gated: Any) -> None:
    engine, fake, rec = gated
    engine.submit(RenderRequest("kick", 100, request_id="first", fresh=True), ORIGIN)
    assert fake.entered.wait(10.0)  # the worker is now busy with "first"
    for i in range(4):
        engine.submit(RenderRequest("snare", 100, request_id=i, fresh=True), ORIGIN)
    fake.gate.set()
    rec.wait(5)
    assert fake.batches == [["first"], [0, 1, 2, 3]]
    assert {h.batch_size for h in rec.hits if h.task.request_id != "first"} == {4}


def test_full_queue_answers_busy_and_does_not_grow(gated: Any) -> None:
    engine, fake, rec = gated
    engine.submit(RenderRequest("kick", 100, fresh=True), ORIGIN)
    assert fake.entered.wait(10.0)
    for _ in range(4):  # queue_size = 4
        engine.submit(RenderRequest("kick", 100, fresh=True), ORIGIN)
    with pytest.raises(BusyError, match="queue full"):
        engine.submit(RenderRequest("kick", 100, fresh=True, request_id=99), ORIGIN)
    assert engine.queue_length == 4
    assert engine.busy_rejections == 1
    fake.gate.set()
    rec.wait(5)
    assert len(rec.hits) == 5 and not rec.fails


def test_different_settings_are_separate_batches(gated: Any) -> None:
    engine, fake, rec = gated
    engine.submit(RenderRequest("kick", 100, request_id="first", fresh=True), ORIGIN)
    assert fake.entered.wait(10.0)
    engine.submit(RenderRequest("kick", 100, request_id="a", steps=3), ORIGIN)
    engine.submit(RenderRequest("kick", 100, request_id="b", steps=5), ORIGIN)
    engine.submit(RenderRequest("kick", 100, request_id="c", steps=3), ORIGIN)
    fake.gate.set()
    rec.wait(4)
    assert fake.batches[1:] == [["a", "c"], ["b"]]


def test_stop_answers_queued_requests_shutting_down(gated: Any) -> None:
    engine, fake, rec = gated
    engine.submit(RenderRequest("kick", 100, request_id="first", fresh=True), ORIGIN)
    assert fake.entered.wait(10.0)
    engine.submit(RenderRequest("kick", 100, request_id="queued", fresh=True), ORIGIN)
    threading.Timer(0.2, fake.gate.set).start()
    engine.stop()
    assert [h.task.request_id for h in rec.hits] == ["first"]  # the batch in progress finishes
    assert [(t.request_id, type(e)) for t, e in rec.fails] == [("queued", ShuttingDown)]
    with pytest.raises(ShuttingDown):
        engine.submit(RenderRequest("kick", 100), ORIGIN)


def test_fresh_render_with_seed_equals_a_direct_render(tiny_model: LoadedModel) -> None:
    rec = Recorder()
    engine = make_engine(tiny_model, rec)
    engine.start()
    try:
        engine.submit(RenderRequest("snare", 100, seed=123, fresh=True), ORIGIN)
        rec.wait(1)
    finally:
        engine.stop()
    hit = rec.hits[0]
    direct = render(tiny_model, [123], settings_for(tiny_model), classes=["snare"])[0]
    assert hit.task.seed == 123 and hit.source == "fresh"
    np.testing.assert_allclose(hit.audio, direct, atol=1e-6)


def test_pool_fills_then_serves_without_the_worker(tiny_model: LoadedModel) -> None:
    rec = Recorder()
    engine = make_engine(tiny_model, rec, pool_size=2, refill_batch=4)
    engine.start()
    try:
        assert engine.pool_warm_after is None or engine.pool_fill() == 1.0
        _wait_for(lambda: engine.pool_fill() == 1.0)
        assert engine.pool_counts() == {c: 2 for c in tiny_model.classes}
        _wait_for(lambda: engine.pool_warm_after is not None)  # said once, when it first filled
        assert engine.pool_warm_after is not None and engine.pool_warm_after >= 0
        task = engine.submit(RenderRequest("kick", 100), ORIGIN)
        # delivered synchronously, from the pool
        assert len(rec.hits) == 1 and rec.hits[0].source == "pool"
        assert task is not None and task.seed == rec.hits[0].task.seed
        assert engine.pool_counts()["kick"] == 1
        _wait_for(lambda: engine.pool_counts()["kick"] == 2)  # refilled in the background
        # a pooled hit is exactly the render of its seed
        direct = render(tiny_model, [task.seed], settings_for(tiny_model), classes=["kick"])[0]
        np.testing.assert_allclose(rec.hits[0].audio, direct, atol=1e-6)
        # explicit seed or fresh bypasses the pool
        engine.submit(RenderRequest("kick", 100, fresh=True), ORIGIN)
        rec.wait(2)
        assert rec.hits[1].source == "fresh"
        # changing a default empties stale entries
        engine.set_param("steps", 2)
        assert engine.pool_fill() < 1.0
        _wait_for(lambda: engine.pool_fill() == 1.0)
        engine.submit(RenderRequest("snare", 100), ORIGIN)
        assert rec.hits[-1].source == "pool" and rec.hits[-1].task.settings.steps == 2
    finally:
        engine.stop()


def test_variation_zero_repeats_the_last_hit(tiny_model: LoadedModel) -> None:
    rec = Recorder()
    engine = make_engine(tiny_model, rec, pool_size=1)
    engine.start()
    try:
        _wait_for(lambda: engine.pool_fill() == 1.0)
        engine.submit(RenderRequest("clap", 100), ORIGIN)
        engine.set_param("variation", 0.0)
        engine.submit(RenderRequest("clap", 90), ORIGIN)
        assert [h.source for h in rec.hits] == ["pool", "repeat"]
        assert rec.hits[0].task.seed == rec.hits[1].task.seed
    finally:
        engine.stop()


def test_notes_map_to_classes_with_fallbacks(tiny_model: LoadedModel) -> None:
    engine = make_engine(tiny_model, Recorder())
    assert engine.resolve(RenderRequest(36, 100), ORIGIN).drum_class == "kick"
    assert engine.resolve(RenderRequest(39, 100), ORIGIN).drum_class == "clap"
    # the tiny model has no open_hat, percussion or other: unconditional
    task = engine.resolve(RenderRequest(46, 100), ORIGIN)
    assert task.drum_class == "any" and task.class_arg is None and task.note == 46
    assert engine.resolve(RenderRequest("kick", 100), ORIGIN).note == 36
    with pytest.raises(ProtocolError, match="unknown class 'kik'"):
        engine.resolve(RenderRequest("kik", 100), ORIGIN)


def test_release_renders_nothing(tiny_model: LoadedModel) -> None:
    engine = make_engine(tiny_model, Recorder())
    assert engine.submit(RenderRequest("kick", 0), ORIGIN) is None
    assert engine.queue_length == 0


def test_daemon_assigns_increasing_ids_and_seeds_are_reproducible(tiny_model: LoadedModel) -> None:
    a = make_engine(tiny_model, Recorder())
    b = make_engine(tiny_model, Recorder())
    ta = [a.submit(RenderRequest("kick", 100, fresh=True), ORIGIN) for _ in range(3)]
    tb = [b.submit(RenderRequest("kick", 100, fresh=True), ORIGIN) for _ in range(3)]
    assert [t.request_id for t in ta] == [1, 2, 3]  # type: ignore[union-attr]
    assert [t.seed for t in ta] == [t.seed for t in tb]  # type: ignore[union-attr]


def _wait_for(predicate: Any, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_a_trigger_queued_while_the_pool_fills_takes_the_hit_the_refill_made(
    tiny_model: LoadedModel,
) -> None:
    rec = Recorder()
    engine = make_engine(tiny_model, rec, pool_size=1)
    task = engine.submit(RenderRequest("kick", 100), ORIGIN)  # pool empty: queued for the worker
    assert task is not None and task.poolable and not rec.hits
    engine._refill(["kick"])  # the round that was in progress when it arrived
    (pooled,) = engine._pool.ready("kick")
    engine.start()
    try:
        rec.wait(1)
    finally:
        engine.stop()
    assert rec.hits[0].source == "pool" and rec.hits[0].task.seed == pooled.seed
