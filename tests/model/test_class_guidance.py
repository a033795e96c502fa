"""Per-class guidance defaults: each class its own scale unless a request names one."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from drumdiff.model.config import SamplingConfig
from drumdiff.model.core.checkpoint import LoadedModel
from drumdiff.model.errors import ConfigError
from drumdiff.model.render.generate import render, settings_for


def with_class_guidance(model: LoadedModel, *entries: str) -> LoadedModel:
    sampling = replace(model.config.sampling, class_guidance=entries)
    return replace(model, config=replace(model.config, sampling=sampling))


def test_entries_are_checked_when_the_config_loads() -> None:
    assert SamplingConfig(class_guidance=("snare=3", " kick = 2.5")).guidance_by_class() == (
        ("snare", 3.0),
        ("kick", 2.5),
    )
    for bad in ("snare", "snare=loud", "=3", "snare=60"):
        with pytest.raises(ConfigError, match="class_guidance"):
            SamplingConfig(class_guidance=(bad,))


def test_each_class_renders_at_its_own_scale(tiny_model: LoadedModel) -> None:
    model = with_class_guidance(tiny_model, "kick=1")
    settings = settings_for(model)
    assert settings.class_guidance == (("kick", 1.0),)
    both = render(model, [3, 4], settings, classes=["kick", "snare"])
    kick_at_1 = render(tiny_model, [3], settings_for(tiny_model, guidance=1.0), classes=["kick"])
    snare_default = render(tiny_model, [4], settings_for(tiny_model), classes=["snare"])
    np.testing.assert_allclose(both[0], kick_at_1[0], atol=1e-5)
    np.testing.assert_allclose(both[1], snare_default[0], atol=1e-5)
    assert not np.allclose(
        kick_at_1[0], render(tiny_model, [3], settings_for(tiny_model), classes=["kick"])[0]
    )


def test_a_requested_scale_applies_to_every_class(tiny_model: LoadedModel) -> None:
    model = with_class_guidance(tiny_model, "kick=1")
    settings = settings_for(model, guidance=4.0)
    assert settings.class_guidance == () and settings.guidance == 4.0
    np.testing.assert_allclose(
        render(model, [3], settings, classes=["kick"]),
        render(tiny_model, [3], settings_for(tiny_model, guidance=4.0), classes=["kick"]),
        atol=1e-6,
    )


def test_a_class_the_model_lacks_is_an_error(tiny_model: LoadedModel) -> None:
    model = with_class_guidance(tiny_model, "cowbell=3")
    with pytest.raises(ValueError, match="cowbell"):
        render(model, [0], settings_for(model), classes=["kick"])


def test_metadata_records_the_scale_each_class_rendered_with() -> None:
    from drumdiff.model.render.generate import RenderSettings

    settings = RenderSettings(
        steps=4, sampler="ddim", guidance=8.0, class_guidance=(("kick", 3.0),)
    )
    assert settings.describe("kick")["guidance"] == 3.0
    assert settings.describe("snare")["guidance"] == 8.0
    whole = settings.describe()
    assert whole["guidance"] == 8.0 and whole["class_guidance"] == {"kick": 3.0}
    assert "length" not in whole and replace(settings, length=99).describe()["length"] == 99
