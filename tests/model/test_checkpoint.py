"""Checkpoints rebuild their own model; anything else is refused with a one-line reason."""

from __future__ import annotations

import dataclasses
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from drumdiff.model.config import Config, to_dict
from drumdiff.model.core.checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    LoadedModel,
    load_checkpoint,
    model_from_config,
    read_checkpoint,
    save_checkpoint,
)
from drumdiff.model.core.denoiser import Denoiser
from drumdiff.model.errors import CheckpointError, DrumDiffError


def _probe(denoiser: Denoiser) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, 2048, generator=gen)
    with torch.no_grad():
        return denoiser(x, torch.tensor([0.3, 0.8]), class_ids=torch.tensor([1, 4]), guidance=2.0)


@pytest.fixture
def saved(tmp_path: Path, tiny_denoiser: Denoiser, tiny_config: Config) -> Path:
    state = tiny_denoiser.net.state_dict()
    return save_checkpoint(
        tmp_path / "ckpt.pt", tiny_config, model_state=state, ema_state=state, step=7
    )


def _refused(path: Path) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message, f"not one line: {message!r}"
    assert str(path) in message
    assert len(message) < 400
    return message


# -- round trip -------------------------------------------------------------------------------


def test_round_trip_gives_identical_output(
    saved: Path, tiny_denoiser: Denoiser, tiny_config: Config
) -> None:
    loaded = load_checkpoint(saved)
    assert isinstance(loaded, LoadedModel)
    assert loaded.config == tiny_config
    assert loaded.step == 7 and loaded.path == saved
    assert loaded.classes == tiny_config.model.classes and loaded.sample_rate == 44100
    assert not loaded.denoiser.training
    assert torch.equal(_probe(loaded.denoiser), _probe(tiny_denoiser))


def test_ema_weights_are_preferred(
    tmp_path: Path, tiny_denoiser: Denoiser, tiny_config: Config
) -> None:
    model_state = tiny_denoiser.net.state_dict()
    ema_state = {k: v + 0.01 for k, v in model_state.items()}
    path = save_checkpoint(
        tmp_path / "c.pt", tiny_config, model_state=model_state, ema_state=ema_state
    )
    ema = load_checkpoint(path).denoiser.net.state_dict()
    raw = load_checkpoint(path, use_ema=False).denoiser.net.state_dict()
    for k in model_state:
        assert torch.equal(ema[k], ema_state[k]) and torch.equal(raw[k], model_state[k])
    only_model = save_checkpoint(
        tmp_path / "m.pt", tiny_config, model_state=model_state, ema_state=None
    )
    assert torch.equal(_probe(load_checkpoint(only_model).denoiser), _probe(tiny_denoiser))


def test_half_precision_checkpoint_loads_as_float32(
    tmp_path: Path, tiny_denoiser: Denoiser, tiny_config: Config
) -> None:
    state = tiny_denoiser.net.state_dict()
    full = save_checkpoint(tmp_path / "full.pt", tiny_config, model_state=None, ema_state=state)
    half = save_checkpoint(
        tmp_path / "half.pt", tiny_config, model_state=None, ema_state=state, half=True
    )
    assert half.stat().st_size < 0.6 * full.stat().st_size
    dtypes = {k: v.dtype for k, v in read_checkpoint(half)["ema"].items()}
    assert dtypes.pop("fourier.weight") == torch.float32  # frequencies up to ~50 stay exact
    assert set(dtypes.values()) == {torch.float16}
    loaded = load_checkpoint(half)
    for k, v in loaded.denoiser.net.state_dict().items():
        assert v.dtype == torch.float32
        expected = state[k] if k == "fourier.weight" else state[k].half().float()
        assert torch.equal(v, expected)
    ref = _probe(tiny_denoiser)
    out = _probe(loaded.denoiser)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, ref, rtol=0.05, atol=0.02 * float(ref.abs().max()))


def test_checkpoint_records_format_config_and_extra(saved: Path, tiny_config: Config) -> None:
    payload = read_checkpoint(saved)
    assert payload["format"] == FORMAT and payload["format_version"] == FORMAT_VERSION
    assert payload["config"] == to_dict(tiny_config)
    assert payload["config"]["model"]["classes"] == list(tiny_config.model.classes)
    assert payload["config"]["model"]["sample_rate"] == 44100


def test_save_is_atomic_and_needs_weights(tmp_path: Path, tiny_config: Config) -> None:
    with pytest.raises(ValueError, match="needs model or EMA weights"):
        save_checkpoint(tmp_path / "x.pt", tiny_config, model_state=None, ema_state=None)
    net_state = model_from_config(tiny_config).denoiser.net.state_dict()
    path = save_checkpoint(
        tmp_path / "sub" / "x.pt", tiny_config, model_state=net_state, ema_state=None
    )
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.pt"]  # no temporary left over


def test_loading_to_a_device_and_model_from_config(tiny_config: Config) -> None:
    a = model_from_config(tiny_config, seed=3)
    b = model_from_config(tiny_config, seed=3)
    for (ka, va), (kb, vb) in zip(a.denoiser.state_dict().items(), b.denoiser.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    assert a.path is None and a.step == 0


# -- refusals ---------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    assert "does not exist" in _refused(tmp_path / "nope.pt")


def test_folder(tmp_path: Path) -> None:
    assert "is a folder" in _refused(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pt"
    path.touch()
    assert "is empty" in _refused(path)


@pytest.mark.parametrize("keep", [0.001, 0.1, 0.5, 0.9, 0.999])
def test_truncated_file(saved: Path, keep: float) -> None:
    raw = saved.read_bytes()
    cut = saved.with_name("cut.pt")
    cut.write_bytes(raw[: max(1, int(len(raw) * keep))])
    message = _refused(cut)
    assert "truncated" in message or "not a PyTorch" in message


@pytest.mark.parametrize("kind", ["text", "random", "numpy", "plain-pickle", "other-zip", "wav"])
def test_foreign_files(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.pt"
    if kind == "text":
        path.write_text("model: not really\n")
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "numpy":
        with open(path, "wb") as fh:
            np.save(fh, np.zeros(16))
    elif kind == "plain-pickle":
        path.write_bytes(pickle.dumps({"model": {}, "format": FORMAT}))
    elif kind == "other-zip":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("readme.txt", "hello")
    else:
        from drumdiff.model.wav import write_wav

        write_wav(path, np.zeros((1, 100), np.float32), 44100)
    message = _refused(path)
    assert "not a PyTorch" in message or "not a drumdiff checkpoint" in message


@pytest.mark.parametrize(
    "payload",
    [
        {"weights": torch.zeros(3)},
        [torch.zeros(3)],
        {"format": "other", "format_version": 1},
    ],
    ids=["state-dict", "list", "other-format"],
)
def test_foreign_torch_files(tmp_path: Path, payload: object) -> None:
    path = tmp_path / "foreign.pt"
    torch.save(payload, path)
    assert "not a drumdiff checkpoint" in _refused(path)


def test_newer_format_version(saved: Path) -> None:
    payload = read_checkpoint(saved)
    payload["format_version"] = FORMAT_VERSION + 1
    torch.save(payload, saved)
    assert f"format version {FORMAT_VERSION + 1}" in _refused(saved)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p["config"]["model"].update(widths=[8, 16]), "do not match its config"),
        (lambda p: p["config"]["model"].update(bogus=1), "config is not valid"),
        (lambda p: p.pop("config"), "config is not valid"),
        (lambda p: p.update(model=None, ema=None), "holds no weights"),
        (lambda p: p.update(model=None, ema=[1, 2]), "not a mapping of names to tensors"),
        (lambda p: p["ema"].pop("out.weight"), "do not match its config"),
    ],
    ids=["shape-mismatch", "unknown-key", "no-config", "no-weights", "bad-weights", "missing-key"],
)
def test_inconsistent_checkpoints(saved: Path, change, message: str) -> None:  # type: ignore[no-untyped-def]
    payload = read_checkpoint(saved)
    change(payload)
    if payload.get("ema") is not None:
        payload["model"] = None
    torch.save(payload, saved)
    assert message in _refused(saved)


class _Exploit:
    """Unpickling this object would create a folder: proof of code execution."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.mkdir, (self.marker,))


def test_pickle_payload_is_refused_without_running_it(
    tmp_path: Path, tiny_denoiser: Denoiser, tiny_config: Config
) -> None:
    marker = tmp_path / "pwned"
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": to_dict(tiny_config),
        "step": 0,
        "model": None,
        "ema": tiny_denoiser.net.state_dict(),
        "note": _Exploit(marker),
    }
    path = tmp_path / "evil.pt"
    torch.save(payload, path)
    # The file is live: an unsafe load would run it.
    torch.load(path, weights_only=False)
    assert marker.exists(), "the test payload must really execute when unpickled unsafely"
    marker.rmdir()

    message = _refused(path)
    assert "refused" in message and "objects other than tensors" in message
    assert not marker.exists()
    with pytest.raises(CheckpointError):
        read_checkpoint(path)
    assert not marker.exists()


def test_checkpoint_errors_are_drumdiff_errors() -> None:
    assert issubclass(CheckpointError, DrumDiffError)


def test_changed_config_does_not_leak_between_loads(saved: Path, tiny_config: Config) -> None:
    loaded = load_checkpoint(saved)
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.config.model.length = 1  # type: ignore[misc]


# -- measured tables beside the config --------------------------------------------------------


def _measured(config: Config) -> Config:
    rng = np.random.default_rng(0)
    blocks = config.model.length // config.finish.envelope_block
    diffusion = dataclasses.replace(
        config.diffusion,
        spectrum=tuple(float(v) for v in rng.random(5) + 0.1),
        class_spectra=tuple(tuple(float(v) for v in rng.random(5) + 0.1) for _ in range(3)),
    )
    finish = dataclasses.replace(
        config.finish,
        class_envelopes=tuple(tuple(float(-v) for v in rng.random(blocks)) for _ in range(2)),
    )
    return dataclasses.replace(config, diffusion=diffusion, finish=finish)


def test_tables_live_beside_the_config_and_come_back_exact(
    tmp_path: Path, tiny_denoiser: Denoiser, tiny_config: Config
) -> None:
    config = _measured(tiny_config)
    path = save_checkpoint(
        tmp_path / "m.pt",
        config,
        model_state=tiny_denoiser.net.state_dict(),
        ema_state=None,
        step=1,
    )
    raw = torch.load(path, weights_only=True)
    assert "spectrum" not in raw["config"]["diffusion"]
    assert "class_envelopes" not in raw["config"]["finish"]
    assert raw["tables"]["diffusion.spectrum"].dtype == torch.float64
    assert load_checkpoint(path).config == config  # every value exactly as measured


def test_a_version_1_checkpoint_with_tables_inside_still_loads(
    tmp_path: Path, tiny_denoiser: Denoiser, tiny_config: Config
) -> None:
    config = _measured(tiny_config)
    state = {k: v.clone() for k, v in tiny_denoiser.net.state_dict().items()}
    old = {
        "format": FORMAT,
        "format_version": 1,
        "config": to_dict(config),
        "step": 3,
        "model": state,
        "ema": None,
    }
    torch.save(old, tmp_path / "v1.pt")
    loaded = load_checkpoint(tmp_path / "v1.pt")
    assert loaded.config == config and loaded.step == 3
    torch.testing.assert_close(_probe(loaded.denoiser), _probe(tiny_denoiser))
