"""The engine with a distilled default model: the few-step path by default, the full model one
option away, and the runtime choice."""

from __future__ import annotations

import copy
import importlib.util
from dataclasses import replace

import pytest
from drumdiff_testkit import randomize
from test_engine import ORIGIN, Recorder

from drumdiff.model.core.checkpoint import DistilledModel, LoadedModel
from drumdiff.model.core.sampling import DISTILLED
from drumdiff.server.config import GM_DRUM_MAP, EngineConfig
from drumdiff.server.engine import Engine
from drumdiff.server.errors import ProtocolError
from drumdiff.server.protocol import RenderRequest


@pytest.fixture
def fast_model(tiny_model: LoadedModel) -> LoadedModel:
    student = copy.deepcopy(tiny_model.denoiser)
    randomize(student.net, seed=5)
    teacher = {"sampler": "dpmpp-2m", "schedule": "karras", "steps": 4, "guidance": 2.0}
    sampling = replace(tiny_model.config.sampling, sampler=DISTILLED, steps=2)
    return replace(
        tiny_model,
        config=replace(tiny_model.config, sampling=sampling),
        distilled=DistilledModel(student.eval(), (1.0, 0.5, 0.0), teacher),
    )


def engine_for(model: LoadedModel, rec: Recorder, **cfg: object) -> Engine:
    config = EngineConfig(**{"pool_size": 0, "warmup": False, "runtime": "torch", **cfg})  # type: ignore[arg-type]
    return Engine(
        model, config, note_map=GM_DRUM_MAP, on_hit=rec.on_hit, on_fail=rec.on_fail, seed=7
    )


def test_fresh_hits_use_the_student_and_a_step_count_asks_for_the_full_model(
    fast_model: LoadedModel,
) -> None:
    rec = Recorder()
    engine = engine_for(fast_model, rec)
    assert (engine.defaults.sampling.sampler, engine.defaults.sampling.steps) == (DISTILLED, 2)
    engine.start()
    try:
        engine.submit(RenderRequest("kick", 100, request_id="fast", fresh=True), ORIGIN)
        engine.submit(RenderRequest("kick", 100, request_id="full", fresh=True, steps=12), ORIGIN)
        engine.submit(
            RenderRequest("kick", 100, request_id="bad", fresh=True, steps=5, sampler=DISTILLED),
            ORIGIN,
        )
        rec.wait(3)
    finally:
        engine.stop()
    by_id = {h.task.request_id: h.task.settings for h in rec.hits}
    assert (by_id["fast"].sampler, by_id["fast"].steps) == (DISTILLED, 2)
    assert (by_id["full"].sampler, by_id["full"].steps) == ("dpmpp-2m", 12)
    assert [t.request_id for t, _ in rec.fails] == ["bad"]
    assert "exactly 2 steps" in str(rec.fails[0][1])


def test_set_steps_and_sampler_keep_the_defaults_runnable(
    fast_model: LoadedModel, tiny_model: LoadedModel
) -> None:
    engine = engine_for(fast_model, Recorder())
    engine.set_param("steps", 6)
    assert (engine.defaults.sampling.sampler, engine.defaults.sampling.steps) == ("dpmpp-2m", 6)
    engine.set_param("sampler", DISTILLED)
    assert (engine.defaults.sampling.sampler, engine.defaults.sampling.steps) == (DISTILLED, 2)
    plain = engine_for(tiny_model, Recorder())
    with pytest.raises(ProtocolError, match="no distilled student"):
        plain.set_param("sampler", DISTILLED)
    assert plain.defaults.sampling.sampler == "dpmpp-2m"


@pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None or importlib.util.find_spec("onnx") is None,
    reason="openvino and onnx are optional (pip install drumdiff[openvino])",
)
def test_the_engine_runs_on_openvino_when_asked(fast_model: LoadedModel) -> None:
    rec = Recorder()
    engine = engine_for(fast_model, rec, runtime="openvino")
    assert engine.runtime.runtime == "openvino", engine.runtime.reason
    engine.start()
    try:
        engine.submit(RenderRequest("snare", 100, request_id=1, fresh=True), ORIGIN)
        rec.wait(1)
    finally:
        engine.stop()
    assert not rec.fails and rec.hits[0].audio.shape[-1] > 0


def test_an_unknown_runtime_is_a_config_error() -> None:
    from drumdiff.model.errors import ConfigError

    with pytest.raises(ConfigError, match="engine.runtime"):
        EngineConfig(runtime="tpu")


def test_set_guidance_replaces_the_per_class_scales(tiny_model: LoadedModel) -> None:
    sampling = replace(tiny_model.config.sampling, class_guidance=("snare=3",))
    model = replace(tiny_model, config=replace(tiny_model.config, sampling=sampling))
    engine = engine_for(model, Recorder())
    assert engine.defaults.sampling.class_guidance == (("snare", 3.0),)
    engine.set_param("guidance", 5.0)
    assert engine.defaults.sampling.class_guidance == ()
    assert engine.defaults.sampling.guidance == 5.0
