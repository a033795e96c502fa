"""Every model config in configs/ builds and runs; the YAML loader is strict and round-trips."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import torch
import yaml
from drumdiff_testkit import CONFIGS, TINY_CONFIG, is_model_config, model_config_paths

from drumdiff.model.config import (
    DRUM_CLASSES,
    Config,
    ModelConfig,
    TrainConfig,
    config_from_dict,
    load_config,
    to_dict,
)
from drumdiff.model.core.checkpoint import build_model
from drumdiff.model.core.unet import count_parameters
from drumdiff.model.errors import ConfigError, DrumDiffError

MODEL_CONFIGS = model_config_paths()


def test_the_tiny_config_is_found() -> None:
    assert TINY_CONFIG in MODEL_CONFIGS


def test_non_model_yaml_is_skipped() -> None:
    assert not is_model_config({"server": {"port": 9000}})
    assert not is_model_config({"osc": {}, "model": {}})
    assert not is_model_config({"name": "x"})
    assert is_model_config({"model": {"length": 1024}})


def _short(cfg: Config) -> Config:
    """The same network at the shortest valid length, so a big config stays cheap."""
    m = cfg.model
    factor = m.patch_size * 2 ** (len(m.widths) - 1)
    return dataclasses.replace(cfg, model=dataclasses.replace(m, length=min(m.length, 2 * factor)))


@pytest.mark.parametrize("path", MODEL_CONFIGS, ids=[p.stem for p in MODEL_CONFIGS])
def test_config_loads_and_is_consistent(path: Path) -> None:
    cfg = load_config(path)
    m = cfg.model
    factor = m.patch_size * 2 ** (len(m.widths) - 1)
    assert m.length % factor == 0, f"length {m.length} is not a multiple of {factor}"
    assert all(0 <= lvl < len(m.widths) for lvl in m.attention_levels)
    assert m.audio_channels in (1, 2)
    assert len(set(m.classes)) == len(m.classes) >= 1
    assert config_from_dict(to_dict(cfg)) == cfg


@pytest.mark.parametrize("path", MODEL_CONFIGS, ids=[p.stem for p in MODEL_CONFIGS])
def test_config_builds_and_runs_a_forward_pass(path: Path) -> None:
    cfg = _short(load_config(path))
    m = cfg.model
    torch.manual_seed(0)
    denoiser = build_model(cfg).eval()
    assert count_parameters(denoiser) > 0
    x = torch.randn(2, m.audio_channels, m.length)
    t = torch.tensor([0.2, 0.9])
    ids = torch.tensor([0, len(m.classes)])  # a class and the null class
    with torch.no_grad():
        v = denoiser.net(x, t, ids)
        x0 = denoiser(x, t, class_ids=ids, guidance=2.0)
    assert v.shape == x.shape and x0.shape == x.shape
    assert torch.isfinite(v).all() and torch.isfinite(x0).all()


# -- the loader -------------------------------------------------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def test_defaults_live_in_the_dataclasses() -> None:
    cfg = load_config()
    assert cfg == Config()
    assert cfg.model.classes == DRUM_CLASSES
    assert cfg.model.duration_s == pytest.approx(0.743, abs=1e-3)


def test_yaml_overrides_defaults_and_lists_become_tuples(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, "model:\n  widths: [8, 16]\n  attention_levels: []\n"))
    assert cfg.model.widths == (8, 16)
    assert cfg.model.attention_levels == ()
    assert cfg.model.patch_size == ModelConfig().patch_size
    assert cfg.train == TrainConfig()


def test_tiny_config_values(tiny_config: Config) -> None:
    assert tiny_config.name == "tiny-test"
    assert tiny_config.model.length == 2048
    assert tiny_config.model.classes == ("kick", "snare", "closed_hat", "clap")
    assert tiny_config.model.frames == 2048 // 16


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model:\n  lenght: 1024\n", "unknown config key model.'lenght'"),
        ("modle:\n  length: 1024\n", "unknown config key 'modle'"),
        ("data:\n  augment:\n    flip: 1\n", "unknown config key data.augment.'flip'"),
    ],
)
def test_unknown_keys_are_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text))
    assert message in str(info.value)
    assert str(tmp_path / "cfg.yaml") in str(info.value)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("model:\n  length: 1024.5\n", "model.length"),
        ("model:\n  length: '1024'\n", "model.length"),
        ("model:\n  length: true\n", "model.length"),
        ("model:\n  positional: 1\n", "model.positional"),
        ("model:\n  widths: 64\n", "model.widths"),
        ("model:\n  widths: [64, x]\n", "model.widths[1]"),
        ("train:\n  betas: [0.9]\n", "train.betas"),
        ("train:\n  lr: fast\n", "train.lr"),
        ("name: 3\n", "name"),
        ("model: [1, 2]\n", "model"),
    ],
)
def test_wrong_types_are_refused_with_the_field_named(
    tmp_path: Path, text: str, where: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(where) + ": expected"):
        load_config(_write(tmp_path, text))


def test_integers_are_accepted_for_floats(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, "train:\n  lr: 1\n  grad_clip: 2\n"))
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)


@pytest.mark.parametrize("literal", ["1e-4", "2E-4", "1e4", "-3e-2"])
def test_exponent_floats_without_a_dot_are_numbers(tmp_path: Path, literal: str) -> None:
    """YAML 1.1 (PyYAML) reads `1e-4` as a string; the loader must still take it as a number."""
    expected = float(literal)
    assert load_config(_write(tmp_path, f"train:\n  lr: {literal}\n")).train.lr == expected
    assert load_config(overrides=[f"train.lr={literal}"]).train.lr == expected


def test_overrides_apply_after_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "train:\n  lr: 0.5\nmodel:\n  widths: [8, 16]\n")
    cfg = load_config(
        path,
        overrides=("train.lr=0.001", "model.widths=[4, 8, 16]", "name=exp", "sampling.steps=9"),
    )
    assert cfg.train.lr == 0.001
    assert cfg.model.widths == (4, 8, 16)
    assert cfg.name == "exp"
    assert cfg.sampling.steps == 9
    assert load_config(overrides=["data.augment.gain_db=[-3, 0]"]).data.augment.gain_db == (
        -3.0,
        0.0,
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.lr", "not of the form"),
        ("train.nope=1", "unknown config key train.'nope'"),
        ("train.lr=abc", "train.lr: expected a number"),
        ("name.x=1", "name: expected a string"),
    ],
)
def test_bad_overrides_are_refused(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=[override])


def test_override_below_a_value_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "model:\n  length: 1024\n")
    with pytest.raises(ConfigError, match="'length' is not a section"):
        load_config(path, overrides=["model.length.x=1"])


def test_missing_and_malformed_files_raise_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "model: [unclosed\n"))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(_write(tmp_path, "- 1\n- 2\n"))
    assert issubclass(ConfigError, DrumDiffError) and issubclass(ConfigError, ValueError)


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path, "")) == Config()


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_round_trip_through_dict_yaml_and_back(path: Path) -> None:
    if not is_model_config(yaml.safe_load(path.read_text())):
        pytest.skip("not a model config")
    cfg = load_config(path)
    plain = to_dict(cfg)
    assert config_from_dict(plain) == cfg
    again = config_from_dict(yaml.safe_load(yaml.safe_dump(plain)))
    assert again == cfg
    assert isinstance(again.model.widths, tuple)


def test_configs_are_frozen(tiny_config: Config) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        tiny_config.model.length = 4  # type: ignore[misc]


def test_tables_measured_in_other_blocks_are_refused() -> None:
    from drumdiff.model.config import Config, DiffusionConfig, FinishConfig, ModelConfig

    model = ModelConfig(length=2048)
    Config(model=model, diffusion=DiffusionConfig(envelope=(1.0,) * 8, envelope_block=256))
    with pytest.raises(ConfigError, match="diffusion.envelope holds 8 blocks.*make 32"):
        Config(model=model, diffusion=DiffusionConfig(envelope=(1.0,) * 8, envelope_block=64))
    with pytest.raises(ConfigError, match="finish.class_envelopes holds 4 blocks"):
        Config(model=model, finish=FinishConfig(class_envelopes=((-1.0,) * 4,), envelope_block=256))


def test_an_override_of_a_measuring_setting_clears_what_was_measured_under_it(
    tmp_path: Path,
) -> None:
    from drumdiff.model.config import Config, apply_override, to_dict

    data = to_dict(Config())
    data["diffusion"].update(envelope_block=256, envelope=[1.0] * 128, spectrum=[1.0] * 513)
    data["diffusion"]["class_envelopes"] = [[1.0] * 128]
    data["finish"]["class_envelopes"] = [[-3.0] * 128]
    apply_override(data, "diffusion.envelope_block=256")  # the same value: nothing to measure
    assert len(data["diffusion"]["envelope"]) == 128
    apply_override(data, "diffusion.envelope_block=64")
    assert data["diffusion"]["envelope"] == [] and data["diffusion"]["class_envelopes"] == []
    assert len(data["diffusion"]["spectrum"]) == 513 and data["finish"]["class_envelopes"]
    apply_override(data, "finish.class_percentiles=[snare=50]")
    assert data["finish"]["class_envelopes"] == []

    path = tmp_path / "full.yaml"
    full = to_dict(Config())
    full["diffusion"].update(envelope_block=256, envelope=[1.0] * 128)
    path.write_text(yaml.safe_dump(full))
    assert load_config(path).diffusion.envelope == (1.0,) * 128
    finer = load_config(path, ["diffusion.envelope_block=64"])
    assert finer.diffusion.envelope == () and finer.diffusion.envelope_block == 64
