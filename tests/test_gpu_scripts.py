"""The device-session scripts, run on the CPU with the tiny model: train, distil, export."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from drumdiff_testkit import TINY_CONFIG, randomize

from drumdiff.model.config import load_config
from drumdiff.model.core.checkpoint import build_model, load_checkpoint, save_checkpoint
from drumdiff.model.core.sampling import DISTILLED
from drumdiff.model.render.generate import render, settings_for

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_default_trains_distils_and_exports_a_candidate_that_renders(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "tests" / "model"))
    from _audio_fixtures import prepared

    config = load_config(TINY_CONFIG)
    torch.manual_seed(0)
    net = randomize(build_model(config).net, seed=1)
    init = save_checkpoint(
        tmp_path / "init.pt", config, model_state=None, ema_state=net.state_dict()
    )
    data = prepared(tmp_path / "data", config, kits=2, per_kit=8)
    out = tmp_path / "out"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OMP_NUM_THREADS": "1",
        "DATA": str(data),
        "INIT": str(init),
        "OUT": str(out),
        "RUNS": str(tmp_path / "runs"),
        "DISTILL_STEPS": "4",
        "SKIP_STEPS": "2",
        # The tiny teacher renders 4 steps by default; the recipe's levels index 12.
        "DISTILL_SET": "distill.teacher_steps=12 distill.trajectories=32 distill.validation=8 "
        "distill.chunk=16 distill.batch_size=4 distill.skip_fit_rows=2 distill.checkpoint_every=2 "
        "distill.validate_every=0 distill.onset_skip_s=0.02",
    }
    done = subprocess.run(
        [
            "bash",
            str(ROOT / "scripts" / "gpu_default.sh"),
            "--stop-at",
            "4",
            "--set",
            "train.checkpoint_every=2",
            "--set",
            "train.log_every=2",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert {"train.log", "metrics.jsonl", "distill.log", "distill-skip.log"} <= {
        p.name for p in out.iterdir()
    }
    assert sorted(p.name for p in out.glob("ema-*.pt")) == ["ema-0000002.pt", "ema-0000004.pt"]
    assert "teacher: " + str(out / "ema-0000004.pt") in done.stdout

    candidate = load_checkpoint(out / "default-candidate.pt")
    assert candidate.distilled is not None
    assert len(candidate.distilled.levels) == 5  # 4 student steps
    settings = settings_for(candidate)
    assert (settings.sampler, settings.steps, settings.eta) == (DISTILLED, 4, 1.0)
    first = render(candidate, [3, 4], settings, classes=["kick", "snare"])
    again = render(candidate, [3, 4], settings, classes=["kick", "snare"])
    assert first.shape == (2, 1, config.model.length) and np.abs(first).max() > 0
    np.testing.assert_array_equal(first, again)


def test_gpu_default_says_what_it_needs(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATA", "OUT")}
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_default.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "DATA" in done.stderr
