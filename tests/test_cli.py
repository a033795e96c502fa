"""The `drumdiff` entry point and `drumdiff render`, end to end through `cli.main`."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from drumdiff_testkit import TINY_CONFIG

from drumdiff import cli
from drumdiff.model import DEFAULT_MODEL
from drumdiff.model.config import Config
from drumdiff.model.core.checkpoint import save_checkpoint
from drumdiff.model.core.denoiser import Denoiser
from drumdiff.model.wav import read_info


def _render(tmp_path: Path, *args: str) -> tuple[int, list[Path]]:
    out = tmp_path / "out"
    rc = cli.main(["render", "--config", str(TINY_CONFIG), "--out", str(out), *args])
    return rc, sorted(out.glob("*.wav")) if out.exists() else []


def test_usage_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 0
    text = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in text
    assert cli.main(["--help"]) == 0


def test_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("drumdiff ")


@pytest.mark.parametrize("name", ["render", "bench"])
def test_registered_commands_have_a_main(name: str) -> None:
    module = importlib.import_module(cli.COMMANDS[name][0])
    assert callable(module.main)


@pytest.mark.parametrize("fmt", ["PCM_24", "FLOAT", "PCM_16"])
def test_render_writes_readable_wavs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    rc, files = _render(
        tmp_path,
        "--class",
        "kick",
        "-n",
        "3",
        "--steps",
        "2",
        "--seed",
        "7",
        "--format",
        fmt,
        "--batch-size",
        "2",
    )
    assert rc == 0
    assert [p.name for p in files] == [f"kick_seed{s}_dpmpp-2m2.wav" for s in (7, 8, 9)]
    printed = capsys.readouterr().out
    for path in files:
        assert str(path.resolve()) in printed
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (44100, 1, 2048, fmt)
        data, _ = sf.read(str(path), always_2d=True)
        assert np.isfinite(data).all() and np.abs(data).max() <= 1.0
        meta = json.loads(read_info(path)["ICMT"])
        assert meta["class"] == "kick" and meta["steps"] == 2 and meta["sampler"] == "dpmpp-2m"
        assert meta["seed"] == int(path.name.split("seed")[1].split("_")[0])
        assert read_info(path)["ISFT"].startswith("drumdiff ")
    assert "rendered 3 hit(s)" in printed
    assert not list((tmp_path / "out").glob(".*")), "temporary files left behind"


@pytest.mark.parametrize(("seconds", "frames"), [(0.05, 2205), (0.1, 4410), (0.0464, 2046)])
def test_render_length_and_sampler(tmp_path: Path, seconds: float, frames: int) -> None:
    rc, files = _render(
        tmp_path,
        "-n",
        "2",
        "--steps",
        "2",
        "--seed",
        "1",
        "--length",
        str(seconds),
        "--sampler",
        "heun",
        "--schedule",
        "linear",
    )
    assert rc == 0 and len(files) == 2
    assert all(f.name.startswith("any_seed") and "heun2" in f.name for f in files)
    for path in files:
        assert sf.info(str(path)).frames == frames


def test_render_is_reproducible_from_the_seed(tmp_path: Path) -> None:
    args = ("--class", "snare", "-n", "2", "--steps", "2", "--seed", "42", "--format", "FLOAT")
    _, first = _render(tmp_path / "a", *args)
    _, second = _render(tmp_path / "b", *args, "--batch-size", "1")
    assert len(first) == len(second) == 2
    for a, b in zip(first, second):
        np.testing.assert_allclose(sf.read(str(a))[0], sf.read(str(b))[0], rtol=1e-4, atol=1e-5)


def test_render_from_a_checkpoint(
    tmp_path: Path, tiny_denoiser: Denoiser, tiny_config: Config
) -> None:
    ckpt = save_checkpoint(
        tmp_path / "m.pt", tiny_config, model_state=None, ema_state=tiny_denoiser.net.state_dict()
    )
    out = tmp_path / "out"
    rc = cli.main(
        [
            "render",
            str(ckpt),
            "--class",
            "clap",
            "-n",
            "1",
            "--steps",
            "2",
            "--seed",
            "3",
            "--out",
            str(out),
            "--format",
            "FLOAT",
        ]
    )
    assert rc == 0
    (path,) = out.glob("*.wav")
    data, rate = sf.read(str(path))
    assert rate == 44100 and data.shape == (2048,)
    assert np.abs(data).max() > 1e-3  # the trained-looking (non-zero) weights were used
    assert json.loads(read_info(path)["ICMT"])["model"] == str(ckpt)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--class", "cowbell"], "unknown class 'cowbell'"),
        (["-n", "0"], "-n must be at least 1"),
        (["--steps", "0"], "--steps must be at least 1"),
        (["--length", "0"], "length must be positive"),
    ],
)
def test_render_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    rc, files = _render(tmp_path, *args)
    err = capsys.readouterr().err
    assert rc == 1 and not files
    assert err.startswith("drumdiff: error: ") and message in err
    assert err.count("\n") == 1


def test_render_refuses_a_bad_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_text("nope")
    assert cli.main(["render", str(bad), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "not a PyTorch zip file" in err and err.count("\n") == 1
    assert cli.main(["render", str(tmp_path / "absent.pt"), "--out", str(tmp_path / "o")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_render_of_a_class_name_says_how_to_ask_for_the_class(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["render", "kick", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "'kick' is a drum class, not a checkpoint: drumdiff render --class kick" in err
    assert not (tmp_path / "o").exists()


def test_render_refuses_checkpoint_and_config_together(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = cli.main(["render", "x.pt", "--config", str(TINY_CONFIG), "--out", str(tmp_path)])
    assert rc == 1 and "not both" in capsys.readouterr().err


@pytest.mark.skipif(DEFAULT_MODEL.exists(), reason="a default model ships now")
def test_render_without_a_model_explains_itself(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["render", "--out", str(tmp_path)]) == 1
    assert "--config" in capsys.readouterr().err


def test_render_rejects_unknown_sampler_choice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, files = _render(tmp_path, "--sampler", "euler-x")
    assert rc == 1 and not files
    assert "unknown sampler 'euler-x'; expected one of" in capsys.readouterr().err


def test_render_never_overwrites_and_writes_the_root_note(tmp_path: Path) -> None:
    from drumdiff.model.wav import read_root_note

    rc, first = _render(tmp_path, "--seed", "3", "--steps", "2")
    assert rc == 0 and len(first) == 1
    before = first[0].read_bytes()
    rc, both = _render(
        tmp_path, "--seed", "3", "--steps", "2", "--guidance", "1"
    )  # same name, other settings
    assert rc == 0 and len(both) == 2
    assert first[0].read_bytes() == before
    assert all(read_root_note(p) == 60 for p in both)


def _parsers() -> list[tuple[str, Any]]:
    import argparse

    from drumdiff import design, render, serve

    found = [("render", render.build_parser()), ("serve", serve.build_parser())]
    for action in design.build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            found += [(f"design {name}", sub) for name, sub in action.choices.items()]
    return found


def test_help_says_each_default_once_and_every_option_has_help() -> None:
    import re

    from drumdiff.common import HelpFormatter

    for name, p in _parsers():
        formatter = HelpFormatter(name)
        for action in p._actions:
            if not action.option_strings or action.dest == "help":
                continue
            assert action.help, f"{name} {action.option_strings[0]} has no help"
            text = formatter._get_help_string(action)
            assert len(re.findall(r"\(?default[: ]", text)) <= 1, (
                f"{name} {action.option_strings[0]}: {text}"
            )
            assert "(default: None)" not in text % {"default": action.default}


def test_subcommand_help_does_not_import_torch() -> None:
    import subprocess
    import sys

    for argv in (["render", "--help"], ["design", "vary", "--help"], ["serve", "--help"]):
        code = (
            f"import sys; from drumdiff import cli; sys.argv=['drumdiff', *{argv!r}]\n"
            "try:\n    cli.main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        assert out.strip().endswith("False"), argv
