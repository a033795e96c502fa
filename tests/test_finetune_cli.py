"""`drumdiff finetune` end to end on the tiny config: a messy folder, a one-class folder, Ctrl-C
and --resume, bad arguments, and the daemon serving the result."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from drumdiff_testkit import serve_command

from drumdiff import finetune as cli
from drumdiff.model.config import load_config
from drumdiff.model.core.checkpoint import (
    load_checkpoint,
    model_from_config,
    read_checkpoint,
    save_checkpoint,
)

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny-test.yaml"
FAST = [
    "--set",
    "finetune.judge_every_steps=5",
    "--set",
    "finetune.report_per_class=2",
    "--set",
    "finetune.audio_per_class=1",
    "--no-progress",
]


def hit(freq: float, decay_s: float, frames: int = 3000) -> np.ndarray:
    t = np.arange(frames) / 44100
    return (0.8 * np.sin(2 * np.pi * freq * t) * np.exp(-t / decay_s)).astype(np.float32)


def messy_folder(root: Path) -> Path:
    """Named kicks and snares, a folder of unknown sounds, a broken file and a text file."""
    root.mkdir(parents=True)
    for i in range(4):
        sf.write(str(root / f"BD_{i:02d}.wav"), hit(50 + 5 * i, 0.06), 44100)
        sf.write(str(root / f"Snr {i}.flac"), hit(210 + 11 * i, 0.02), 44100)
    (root / "weird").mkdir()
    for i in range(3):
        sf.write(str(root / "weird" / f"blip{i}.wav"), hit(1200 + 130 * i, 0.01), 44100)
    (root / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage")
    (root / "notes.txt").write_text("not audio")
    return root


@pytest.fixture
def base(tmp_path: Path) -> Path:
    config = load_config(TINY)
    model = model_from_config(config)
    return save_checkpoint(
        tmp_path / "base.pt",
        config,
        model_state=None,
        ema_state=model.denoiser.net.state_dict(),
        step=3,
    )


def test_whole_command_on_a_messy_folder(
    tmp_path: Path, base: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = messy_folder(tmp_path / "my kit")
    out = tmp_path / "job"
    rc = cli.main([str(folder), "--init", str(base), "--out", str(out), "--stop-at", "10", *FAST])
    text = capsys.readouterr()
    assert rc == 0, text.err
    assert "skipped" in text.out and "broken.wav" in text.out
    # The weird folder is "other" by name; the tiny base has no "other", so it is added.
    assert "classes the base model lacks, added: other" in text.out
    assert re.search(r"distance to held-out hits: base [\d.]+ dB -> fine-tuned [\d.]+ dB", text.out)
    for name in (
        "model.pt",
        "MODEL_CARD.md",
        "report.html",
        "report.json",
        "judge.jsonl",
        "last.pt",
    ):
        assert (out / name).is_file(), name
    model = load_checkpoint(out / "model.pt")
    assert model.classes == ("kick", "snare", "closed_hat", "clap", "other") and model.step == 10
    assert model.config.name == "my_kit"
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["per_class"] == {
        "kick": {"train": 3, "validation": 1},
        "other": {"train": 2, "validation": 1},
        "snare": {"train": 3, "validation": 1},
    }
    assert {Path(r["source"]).name for r in report["data"]["rejected"]} == {"broken.wav"}
    assert set(report["results"]["fine-tuned"]["per_class_db"]) == {"kick", "snare", "other"}
    assert [r["step"] for r in report["timeline"]] == [0, 5, 10]
    assert report["command"][:2] == ["drumdiff", "finetune"]
    assert "Distance to your held-out hits" in (out / "report.html").read_text()


def test_one_class_folder_becomes_the_class_named(
    tmp_path: Path, base: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "hits"
    folder.mkdir()
    for i in range(5):
        sf.write(str(folder / f"{i:03d}.wav"), hit(400 + 40 * i, 0.03), 44100)
    out = tmp_path / "job"
    rc = cli.main(
        [
            str(folder),
            "--init",
            str(base),
            "--out",
            str(out),
            "--classes-from",
            "Metal Clank",
            "--stop-at",
            "5",
            *FAST,
        ]
    )
    assert rc == 0, capsys.readouterr().err
    model = load_checkpoint(out / "model.pt")
    assert model.classes[-1] == "metal_clank"
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["per_class"] == {"metal_clank": {"train": 4, "validation": 1}}
    assert report["new_classes"] == ["metal_clank"]
    assert report["judge"]["judged_classes"] == ["metal_clank"]


def test_bad_arguments_are_one_line_errors(
    tmp_path: Path, base: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([]) == 1
    assert "give a FOLDER" in capsys.readouterr().err
    assert (
        cli.main([str(tmp_path / "nowhere"), "--init", str(base), "--out", str(tmp_path / "j")])
        == 1
    )
    assert "is not a folder" in capsys.readouterr().err
    assert cli.main([str(tmp_path), "--minutes", "0"]) == 1
    assert "--minutes must be positive" in capsys.readouterr().err
    assert cli.main(["--resume", str(tmp_path)]) == 1
    assert "not a fine-tune folder" in capsys.readouterr().err
    assert cli.main(["--resume", str(tmp_path), "--set", "train.lr=1"]) == 1
    assert "give only --minutes or --stop-at" in capsys.readouterr().err
    folder = messy_folder(tmp_path / "kit")
    assert (
        cli.main(
            [
                str(folder),
                "--init",
                str(base),
                "--out",
                str(tmp_path / "j2"),
                "--set",
                "finetune.bogus=1",
            ]
        )
        == 1
    )
    assert "unknown config key" in capsys.readouterr().err
    assert cli.main([str(folder), "--init", str(tmp_path / "missing.pt")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_ctrl_c_stops_with_a_checkpoint_and_resume_goes_on(tmp_path: Path, base: Path) -> None:
    folder = messy_folder(tmp_path / "kit")
    out = tmp_path / "job"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "drumdiff",
            "finetune",
            str(folder),
            "--init",
            str(base),
            "--out",
            str(out),
            "--minutes",
            "30",
            *FAST,
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Wait for the first checkpoint after step 0 (the run is then training for real).
        deadline = time.monotonic() + 120
        while not (out / "checkpoints" / "step-0000005.pt").exists():
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no checkpoint at step 5"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err[-3000:]
    assert "finetune --resume" in err and "Traceback" not in err
    state = json.loads((out / "finetune.json").read_text())
    stopped = read_checkpoint(out / "last.pt")["step"]
    assert state["status"] == "stopped" and state["step"] == stopped >= 5
    assert not (out / "model.pt").exists()

    target = stopped + 6
    rc = cli.main(["--resume", str(out), "--stop-at", str(target), "--no-progress"])
    assert rc == 0
    state = json.loads((out / "finetune.json").read_text())
    assert state["status"] == "done"
    assert [(s["from_step"], s["to_step"]) for s in state["sessions"]] == [
        (0, stopped),
        (stopped, target),
    ]
    assert load_checkpoint(out / "model.pt").step == target
    steps = [r["step"] for r in json.loads((out / "report.json").read_text())["timeline"]]
    assert steps[0] == 0 and steps[-1] == target and steps == sorted(steps)


def test_resume_after_a_step_stop_trains_on(tmp_path: Path, base: Path) -> None:
    folder = messy_folder(tmp_path / "kit")
    out = tmp_path / "job"
    assert (
        cli.main(
            [
                str(folder),
                "--init",
                str(base),
                "--out",
                str(out),
                "--stop-at",
                "5",
                "--no-report",
                *FAST,
            ]
        )
        == 0
    )
    assert read_checkpoint(out / "last.pt")["step"] == 5 and not (out / "model.pt").exists()
    first = read_checkpoint(out / "checkpoints" / "step-0000005.pt")["ema"]
    assert cli.main(["--resume", str(out), "--stop-at", "8", "--no-progress"]) == 0
    assert load_checkpoint(out / "model.pt").step == 8
    # The earlier checkpoint is still there for scrubbing, unchanged.
    kept = read_checkpoint(out / "checkpoints" / "step-0000005.pt")["ema"]
    assert all(np.array_equal(first[k].numpy(), kept[k].numpy()) for k in first)


def test_the_daemon_serves_the_result(tmp_path: Path, base: Path) -> None:
    from drumdiff.server import protocol
    from tests.server.conftest import OscClient

    folder = tmp_path / "hits"
    folder.mkdir()
    for i in range(4):
        sf.write(str(folder / f"{i}.wav"), hit(300 + 50 * i, 0.03), 44100)
    out = tmp_path / "job"
    assert (
        cli.main(
            [
                str(folder),
                "--init",
                str(base),
                "--out",
                str(out),
                "--classes-from",
                "zap",
                "--stop-at",
                "3",
                *FAST,
            ]
        )
        == 0
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "JACK_NO_START_SERVER": "1"}
    proc = subprocess.Popen(
        serve_command(
            "--checkpoint",
            str(out / "model.pt"),
            "--port",
            "0",
            "--folder",
            str(tmp_path / "rendered"),
            "--no-midi",
        ),
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    client = None
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"ready on udp ([\d.]+):(\d+)", line)
        assert match, (line, proc.stderr.read() if proc.stderr else "")
        client = OscClient((match.group(1), int(match.group(2))))
        address, args = client.ask(protocol.RENDER, "zap", 100, "id", 7, "fresh", 1)
        assert address == protocol.DONE, args
        assert args[0] == 7 and args[2] == "zap" and Path(args[1]).is_file()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if client is not None:
            client.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
