"""Runtimes: an exported network matches torch or is not used; torch is always the fallback."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

import drumdiff.model.core.runtime as runtime_module
from drumdiff.model.core.checkpoint import LoadedModel
from drumdiff.model.core.runtime import TOLERANCE, use_runtime
from drumdiff.model.render.generate import render, settings_for

needs_openvino = pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None or importlib.util.find_spec("onnx") is None,
    reason="openvino and onnx are optional (pip install drumdiff[openvino])",
)


def test_torch_is_the_model_itself(tiny_model: LoadedModel) -> None:
    model, choice = use_runtime(tiny_model, "torch")
    assert model is tiny_model and choice.runtime == "torch"
    with pytest.raises(ValueError, match="unknown runtime"):
        use_runtime(tiny_model, "tensorrt")


def test_a_missing_package_falls_back_to_torch(
    tiny_model: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    monkeypatch.setattr(runtime_module, "export_onnx", lambda net, path, length: path)
    model, choice = use_runtime(tiny_model, "openvino")
    assert model is tiny_model
    assert choice.runtime == "torch" and "not installed" in choice.reason


@needs_openvino
def test_openvino_matches_torch_within_the_tolerance(tiny_model: LoadedModel) -> None:
    model, choice = use_runtime(tiny_model, "openvino")
    assert choice.runtime == "openvino", choice.reason
    assert choice.max_difference is not None and choice.max_difference <= TOLERANCE
    settings = settings_for(tiny_model)
    classes = ["kick", "snare", None]
    reference = render(tiny_model, [0, 1, 2], settings, classes=classes)
    exported = render(model, [0, 1, 2], settings, classes=classes)
    assert np.abs(exported - reference).max() <= TOLERANCE
    # Another length exports its own graph and still agrees.
    longer = settings_for(tiny_model, length=3000)
    assert np.abs(render(model, [5], longer) - render(tiny_model, [5], longer)).max() <= TOLERANCE


@needs_openvino
def test_a_runtime_that_disagrees_with_torch_is_refused(
    tiny_model: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime_module, "max_difference", lambda *a, **k: 0.5)
    model, choice = use_runtime(tiny_model, "openvino")
    assert model is tiny_model
    assert choice.runtime == "torch" and "differs from torch" in choice.reason
