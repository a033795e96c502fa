"""Training: overfitting, exact resume (in-process and after SIGKILL), --init, logging, batches."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from _audio_fixtures import NO_AUGMENT, prepared, sustained_kit

from drumdiff.model.config import Config, load_config
from drumdiff.model.core.checkpoint import load_checkpoint, read_checkpoint
from drumdiff.model.core.loss import v_loss
from drumdiff.model.data.dataset import prepare_dataset
from drumdiff.model.errors import DrumDiffError
from drumdiff.model.train.trainer import (
    BalancedBatchStream,
    BatchStream,
    DistInfo,
    Trainer,
    load_batch,
    plan_batch,
    run_name,
)

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "tiny-test.yaml"
QUIET = lambda _msg: None  # noqa: E731


def tiny(*overrides: str) -> Config:
    return load_config(TINY, list(overrides))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four kits of six clips: two train (12 clips), one validation, one test."""
    return prepared(tmp_path_factory.mktemp("ds"), tiny(), kits=4, per_kit=6)


def states_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- learning ---------------------------------------------------------------------------------


def test_tiny_model_overfits_four_clips(tmp_path: Path) -> None:
    config = tiny(
        *NO_AUGMENT,
        "diffusion.condition_dropout=0",
        # Pure tones sit at unit level in model space; a larger scale makes them stand out of
        # the noise earlier, which is what lets 100 steps of a tiny model show the fall.
        "diffusion.data_scale=4",
        "train.lr=5e-3",
        "train.warmup_steps=0",
        "train.max_steps=100",
        "train.log_every=1",
        "train.checkpoint_every=0",
        "train.validate_every=0",
    )
    src = sustained_kit(tmp_path / "src")
    prepare_dataset([src], tmp_path / "ds", config.model, config.data)
    trainer = Trainer(config, tmp_path / "ds", tmp_path / "run", log=QUIET)
    assert len(trainer.train_set) == 4

    def fixed_noise_loss() -> float:
        # The training loss on the four clips, with the noise and levels held fixed so that
        # before and after compare the model, not the draw.
        x, y = load_batch(trainer.train_set, np.arange(4), trainer.config, step=0, train=False)
        with torch.no_grad():
            return float(
                np.mean(
                    [
                        float(
                            v_loss(
                                trainer.net,
                                x,
                                y,
                                condition_dropout=0.0,
                                generator=torch.Generator().manual_seed(k),
                            )
                        )
                        for k in range(8)
                    ]
                )
            )

    before = fixed_noise_loss()
    state = trainer.fit(progress=False)
    after = fixed_noise_loss()
    assert state.step == 100
    assert after <= 0.5 * before, (before, after)
    rows = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert np.mean(losses[-10:]) < 0.75 * np.mean(losses[:5])  # the logged loss falls too


# -- exact resume -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [(), ("train.balance_classes=true", "train.grad_accumulation=2")],
    ids=["default", "balanced-accumulated"],
)
def test_resume_matches_uninterrupted_run(
    dataset: Path, tmp_path: Path, overrides: tuple[str, ...]
) -> None:
    # Augmentation stays on: its seeding must survive the resume too.
    config = tiny(
        "train.max_steps=12", "train.checkpoint_every=4", "train.validate_every=5", *overrides
    )
    whole = Trainer(config, dataset, tmp_path / "whole", log=QUIET)
    whole.write_run_files()
    whole.fit(progress=False)

    first = Trainer(config, dataset, tmp_path / "split", log=QUIET)
    first.write_run_files()
    assert first.fit(stop_at=7, progress=False).step == 7
    del first
    second = Trainer(config, dataset, tmp_path / "split", log=QUIET)
    assert second.resume()
    assert second.step == 7
    assert second.fit(progress=False).step == 12

    assert states_equal(whole.net.state_dict(), second.net.state_dict())
    assert states_equal(whole.ema.model.state_dict(), second.ema.model.state_dict())
    assert whole.stream.state() == second.stream.state()
    a, b = whole.optimizer.state_dict()["state"], second.optimizer.state_dict()["state"]
    assert all(states_equal(a[k], b[k]) for k in a)
    # Checkpoints are kept (undertrained ones are creatively useful), plus last.pt.
    names = sorted(p.name for p in (tmp_path / "split" / "checkpoints").iterdir())
    assert names == ["step-0000004.pt", "step-0000007.pt", "step-0000008.pt", "step-0000012.pt"]
    payload = read_checkpoint(tmp_path / "split" / "last.pt")
    assert {"model", "ema", "optimizer", "data", "step"} <= payload.keys()
    assert payload["step"] == 12 and {"epoch", "position"} <= payload["data"].keys()


def test_worker_processes_feed_exactly_the_inline_batches(dataset: Path, tmp_path: Path) -> None:
    # Prefetching in worker processes is a speed-up only: same data, same weights, bit for bit.
    config = tiny(
        "train.max_steps=5",
        "train.checkpoint_every=0",
        "train.validate_every=0",
        "train.grad_accumulation=2",
    )
    inline = Trainer(config, dataset, tmp_path / "inline", log=QUIET)
    inline.fit(progress=False)
    workers = Trainer(
        tiny(
            "train.max_steps=5",
            "train.checkpoint_every=0",
            "train.validate_every=0",
            "train.grad_accumulation=2",
            "train.num_workers=2",
        ),
        dataset,
        tmp_path / "workers",
        log=QUIET,
    )
    workers.fit(progress=False)
    assert workers.prefetcher is None  # closed when fit returns
    assert states_equal(inline.net.state_dict(), workers.net.state_dict())
    assert inline.stream.state() == workers.stream.state()


def test_time_limit_stops_and_checkpoints_the_last_step(dataset: Path, tmp_path: Path) -> None:
    config = tiny("train.max_steps=50", "train.checkpoint_every=0", "train.validate_every=0")
    trainer = Trainer(config, dataset, tmp_path / "run", log=QUIET)
    trainer.write_run_files()
    state = trainer.fit(stop_after_s=0.0, progress=False)
    assert state.step == 1
    assert read_checkpoint(tmp_path / "run" / "last.pt")["step"] == 1
    again = Trainer(config, dataset, tmp_path / "run", log=QUIET)
    assert again.resume() and again.step == 1


def test_resume_without_checkpoint_starts_fresh(dataset: Path, tmp_path: Path) -> None:
    trainer = Trainer(tiny(), dataset, tmp_path / "run", log=QUIET)
    assert not trainer.resume()
    assert trainer.step == 0


def _run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run(
        [sys.executable, "-m", "drumdiff", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_sigkilled_cli_run_resumes_from_its_last_checkpoint(dataset: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    sets = [
        "--set",
        "train.checkpoint_every=5",
        "--set",
        "train.max_steps=100000",
        "--set",
        "train.validate_every=0",
    ]
    config = tiny("train.checkpoint_every=5", "train.max_steps=100000", "train.validate_every=0")
    run_dir = runs / run_name(config)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "drumdiff",
            "train",
            str(TINY),
            "--data",
            str(dataset),
            "--runs",
            str(runs),
            "--no-progress",
            *sets,
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "checkpoints" / "step-0000010.pt").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no checkpoint at step 10 within two minutes"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)  # no chance to save anything
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    saved = max(int(p.stem.split("-")[1]) for p in (run_dir / "checkpoints").glob("step-*.pt"))
    assert saved >= 10
    stop = saved + 7
    done = _run_cli(
        "train",
        "--resume",
        str(run_dir),
        "--data",
        str(dataset),
        "--no-progress",
        "--stop-at",
        str(stop),
    )
    assert done.returncode == 0, done.stderr
    assert f"resumed {run_dir} at step {saved}" in done.stdout + done.stderr
    assert f"stopped at step {stop}" in done.stdout

    # The same number of steps without the kill gives the same weights.
    whole = Trainer(config, dataset, tmp_path / "whole", log=QUIET)
    whole.fit(stop_at=stop, progress=False)
    resumed = read_checkpoint(run_dir / "last.pt")
    assert resumed["step"] == stop
    assert states_equal(whole.net.state_dict(), resumed["model"])
    assert states_equal(whole.ema.model.state_dict(), resumed["ema"])


# -- fine-tuning ------------------------------------------------------------------------------


def test_init_with_a_changed_class_list_loads_and_trains(dataset: Path, tmp_path: Path) -> None:
    base = Trainer(tiny("train.max_steps=3"), dataset, tmp_path / "base", log=QUIET)
    base.fit(progress=False)
    ckpt = tmp_path / "base" / "last.pt"
    old = base.ema.model.class_embed.weight.detach().clone()  # kick, snare, closed_hat, clap, null

    messages: list[str] = []
    config = tiny("model.classes=[snare, kick, tom, other]", "train.max_steps=3")
    tuned = Trainer(config, dataset, tmp_path / "tuned", init_checkpoint=ckpt, log=messages.append)
    new = tuned.net.class_embed.weight.detach()
    assert new.shape == (5, old.shape[1])
    torch.testing.assert_close(new[0], old[1])  # snare keeps its row, wherever it moves
    torch.testing.assert_close(new[1], old[0])  # kick
    torch.testing.assert_close(new[4], old[4])  # the null class (guidance) is kept
    # New classes start near the mean of the known ones: closer than any known class is.
    mean = old[:4].mean(dim=0)
    spread = torch.linalg.vector_norm(old[:4] - mean, dim=1).min()
    assert torch.linalg.vector_norm(new[2] - mean) < spread
    assert torch.linalg.vector_norm(new[3] - mean) < spread
    assert not torch.equal(new[2], new[3])  # new classes start apart
    # Every other weight is the checkpoint's EMA.
    ema = read_checkpoint(ckpt)["ema"]
    assert all(
        torch.equal(v, ema[k])
        for k, v in tuned.net.state_dict().items()
        if k != "class_embed.weight"
    )
    assert any("initialised from" in m and "'tom'" in m for m in messages)
    # The optimizer and step count start fresh, and the run trains.
    assert tuned.step == 0 and not tuned.optimizer.state
    state = tuned.fit(progress=False)
    assert state.step == 3 and np.isfinite(state.loss)
    loaded = load_checkpoint(tmp_path / "tuned" / "last.pt")
    assert loaded.classes == ("snare", "kick", "tom", "other")


def test_init_cli_and_incompatible_weights(dataset: Path, tmp_path: Path) -> None:
    from drumdiff.train import main

    Trainer(tiny("train.max_steps=2"), dataset, tmp_path / "base", log=QUIET).fit(progress=False)
    ckpt = str(tmp_path / "base" / "last.pt")
    code = main(
        [
            str(TINY),
            "--data",
            str(dataset),
            "--runs",
            str(tmp_path / "runs"),
            "--init",
            ckpt,
            "--set",
            "model.classes=[kick, ride]",
            "--stop-at",
            "2",
            "--no-progress",
        ]
    )
    assert code == 0
    with pytest.raises(DrumDiffError, match="weights do not fit"):
        Trainer(
            tiny("model.widths=[16, 48]"),
            dataset,
            tmp_path / "bad",
            init_checkpoint=ckpt,
            log=QUIET,
        )
    assert (
        main(
            [
                str(TINY),
                "--data",
                str(dataset),
                "--runs",
                str(tmp_path / "runs"),
                "--init",
                ckpt,
                "--set",
                "model.widths=[16, 48]",
                "--no-progress",
            ]
        )
        == 1
    )


def test_cli_refuses_a_folder_that_is_not_a_run(dataset: Path, tmp_path: Path) -> None:
    from drumdiff.train import main

    assert main(["--resume", str(tmp_path), "--data", str(dataset)]) == 1
    assert main(["--data", str(dataset)]) == 1
    assert main([str(TINY), "--data", str(dataset), "--runs", str(tmp_path), "--minutes", "0"]) == 1


# -- logging ----------------------------------------------------------------------------------


def test_trains_and_logs_without_tensorboard(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As without the optional `train` extra: importing TensorBoard's writer fails, and the run
    # folder is not made beforehand (nothing calls write_run_files).
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    lines: list[str] = []
    config = tiny("train.max_steps=2", "train.log_every=1", "train.validate_every=2")
    Trainer(config, dataset, tmp_path / "fresh" / "run", log=lines.append).fit(progress=False)
    rows = (tmp_path / "fresh" / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows if "loss" in json.loads(r)] == [1, 2]
    assert any("tensorboard is not installed" in line for line in lines)
    assert not (tmp_path / "fresh" / "run" / "tensorboard").exists()


def test_tiny_run_writes_tensorboard_events_and_metrics(dataset: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = tiny(
        "train.max_steps=4", "train.log_every=2", "train.validate_every=4", "train.demo_every=4"
    )
    trainer = Trainer(config, dataset, tmp_path / "run", log=QUIET)
    trainer.write_run_files()
    trainer.fit(progress=False)
    rows = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    train_rows = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train_rows] == [2, 4]
    for row in train_rows:
        assert {"loss", "lr", "grad_norm", "clips_per_s", "time"} <= row.keys()
        assert row["clips_per_s"] > 0 and np.isfinite(row["loss"])
    assert [r["step"] for r in rows if "val_loss" in r] == [4]
    assert (tmp_path / "run" / "config.resolved.yaml").exists()

    events = EventAccumulator(
        str(tmp_path / "run" / "tensorboard"), size_guidance={"audio": 0, "images": 0}
    )
    events.Reload()
    tags = events.Tags()
    assert {"loss", "val_loss", "lr", "grad_norm", "clips_per_s"} <= set(tags["scalars"])
    assert {f"demo/{c}_{k}" for c in config.model.classes for k in (0, 1)} <= set(tags["audio"])
    assert {f"spectrogram/{c}" for c in config.model.classes} <= set(tags["images"])


# -- batches ----------------------------------------------------------------------------------


def test_plan_batch_finds_the_largest_fitting_power_of_two() -> None:
    tried: list[int] = []

    def fits(size: int) -> bool:
        tried.append(size)
        return size <= 12

    assert plan_batch(64, 1, start=16, limit=1000, fits=fits) == (8, 8)
    assert tried == [1, 2, 4, 8, 16]
    assert plan_batch(64, 2, start=16, limit=1000, fits=fits) == (8, 4)  # 8 x 4 x 2 processes
    assert plan_batch(50, 1, start=16, limit=1000, fits=lambda b: b <= 16) == (13, 4)  # 52 >= 50
    assert plan_batch(24, 1, start=16, limit=1000, fits=lambda b: True) == (24, 1)  # cap tried
    assert plan_batch(64, 1, start=16, limit=6, fits=lambda b: True) == (6, 11)  # small dataset
    assert plan_batch(64, 1, start=16, limit=1000) == (16, 4)  # CPU: batch_size as given
    assert plan_batch(8, 1, start=16, limit=1000) == (8, 1)
    with pytest.raises(DrumDiffError, match="not even a batch of 1"):
        plan_batch(64, 1, start=16, limit=1000, fits=lambda b: False)
    with pytest.raises(ValueError):
        plan_batch(0, 1, start=16, limit=1000)


def test_auto_batch_on_cpu_accumulates_to_the_target_and_resumes(
    dataset: Path, tmp_path: Path
) -> None:
    config = tiny("train.auto_batch=true", "train.target_batch=8", "train.max_steps=2")
    trainer = Trainer(config, dataset, tmp_path / "run", log=QUIET)
    assert (trainer.batch_size, trainer.accumulation) == (4, 2)
    trainer.fit(progress=False)
    # 2 steps x 2 micro-batches x 4 clips = 16 drawn from 12 training clips: one full epoch
    # of three batches, then one batch into the next.
    assert trainer.stream.state() == {"epoch": 1, "position": 4}
    assert read_checkpoint(tmp_path / "run" / "last.pt")["batch"] == {"size": 4, "accumulation": 2}
    again = Trainer(config, dataset, tmp_path / "run", log=QUIET)
    again.batch_size, again.accumulation = 1, 1  # as if another card had planned otherwise
    assert again.resume()
    assert (again.batch_size, again.accumulation) == (4, 2)
    # Without auto_batch the config's sizes are used, as before.
    plain = Trainer(tiny("train.grad_accumulation=3"), dataset, tmp_path / "plain", log=QUIET)
    assert (plain.batch_size, plain.accumulation) == (4, 3)


def test_balanced_stream_evens_out_classes_deterministically() -> None:
    labels = np.array([0] * 90 + [1] * 9 + [2] * 1)
    stream = BalancedBatchStream(labels, 30, 0, DistInfo())
    drawn = np.concatenate([stream.next() for _ in range(100)])
    share = Counter(labels[drawn].tolist())
    assert all(0.28 < share[c] / drawn.size < 0.39 for c in range(3)), share
    again = BalancedBatchStream(labels, 30, 0, DistInfo())
    np.testing.assert_array_equal(np.concatenate([again.next() for _ in range(100)]), drawn)
    # Resumable from its state alone.
    state = stream.state()
    following = [stream.next() for _ in range(3)]
    restored = BalancedBatchStream(labels, 30, 0, DistInfo())
    restored.load(state)
    for expected in following:
        np.testing.assert_array_equal(restored.next(), expected)
    # Each process takes its share of one global draw.
    ranks = [BalancedBatchStream(labels, 15, 0, DistInfo(r, 2)) for r in range(2)]
    parts = [r.next() for r in ranks]
    np.testing.assert_array_equal(
        np.sort(np.concatenate(parts)),
        np.sort(BalancedBatchStream(labels, 30, 0, DistInfo()).next()),
    )
    with pytest.raises(DrumDiffError, match="shuffled epochs"):
        restored.load(BatchStream(100, 30, 0, DistInfo()).state())
    with pytest.raises(DrumDiffError, match="class-balanced"):
        BatchStream(100, 30, 0, DistInfo()).load(state)


def test_default_stream_is_seeded_epochs_without_repeats() -> None:
    stream = BatchStream(10, 3, 5, DistInfo())
    first_epoch = np.concatenate([stream.next() for _ in range(3)])
    assert len(set(first_epoch.tolist())) == 9  # no repeats inside an epoch
    assert stream.state() == {"epoch": 0, "position": 9}
    assert stream.next().tolist() == np.random.default_rng([5, 1]).permutation(10)[:3].tolist()
    with pytest.raises(DrumDiffError, match="fewer than one batch"):
        BatchStream(3, 4, 0, DistInfo())


def test_run_name_is_stable_for_added_fields_at_default() -> None:
    config = tiny()
    assert run_name(config) == run_name(
        tiny("train.balance_classes=false", "train.auto_batch=false")
    )
    assert run_name(config) == run_name(tiny("finish.peak=0.5"))  # render-time only
    assert run_name(config) != run_name(tiny("train.balance_classes=true"))
    assert run_name(config).startswith("tiny-test_")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_auto_batch_on_a_gpu_probes_real_steps(dataset: Path, tmp_path: Path) -> None:
    config = tiny("train.auto_batch=true", "train.target_batch=64", "train.max_steps=2")
    trainer = Trainer(config, dataset, tmp_path / "run", log=QUIET)
    # The tiny model fits any batch; the 12 training clips cap the micro-batch.
    assert trainer.device.type == "cuda"
    assert trainer.batch_size <= 12 and trainer.batch_size * trainer.accumulation >= 64
    assert trainer._fits(2)
    assert trainer.net.class_embed.weight.grad is None  # the probe leaves no gradients
    assert trainer.fit(progress=False).step == 2


def test_checkpoints_carry_class_envelopes_and_export_sets_render_defaults(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from drumdiff.export import main as export_main
    from drumdiff.model.core.checkpoint import save_payload_atomic

    config = tiny("train.max_steps=1", "train.checkpoint_every=0", "train.validate_every=0")
    trainer = Trainer(config, dataset, tmp_path / "run", log=QUIET)
    trainer.fit(progress=False)
    payload = read_checkpoint(tmp_path / "run" / "last.pt")
    envelopes = payload["config"]["finish"]["class_envelopes"]
    assert len(envelopes) == len(config.model.classes)
    assert any(len(e) == config.model.length // config.finish.envelope_block for e in envelopes)

    out = tmp_path / "shipped.pt"
    assert (
        export_main(
            [str(tmp_path / "run" / "last.pt"), "--out", str(out), "--set", "sampling.guidance=5.5"]
        )
        == 0
    )
    shipped = read_checkpoint(out)
    assert shipped["config"]["sampling"]["guidance"] == 5.5
    assert shipped["config"]["finish"]["class_envelopes"] == envelopes
    assert "optimizer" not in shipped
    assert export_main([str(out), "--out", str(tmp_path / "x.pt"), "--set", "train.lr=1"]) == 1
    assert "only sampling.* and finish.*" in capsys.readouterr().err
    student = ["--set", "sampling.sampler=distilled"]
    assert export_main([str(out), "--out", str(tmp_path / "y.pt"), *student]) == 1
    assert "needs a distilled student" in capsys.readouterr().err
    assert not (tmp_path / "y.pt").exists()

    # A checkpoint from before finishing existed gets its envelopes measured by --data.
    old = dict(payload, config={k: v for k, v in payload["config"].items() if k != "finish"})
    save_payload_atomic(tmp_path / "old.pt", old)
    assert export_main([str(tmp_path / "old.pt"), "--out", str(tmp_path / "old-shipped.pt")]) == 0
    assert read_checkpoint(tmp_path / "old-shipped.pt")["config"]["finish"]["class_envelopes"] == []
    assert (
        export_main(
            [
                str(tmp_path / "old.pt"),
                "--out",
                str(tmp_path / "measured.pt"),
                "--data",
                str(dataset),
            ]
        )
        == 0
    )
    assert (
        read_checkpoint(tmp_path / "measured.pt")["config"]["finish"]["class_envelopes"]
        == envelopes
    )

    # A new envelope block or percentile re-measures them (stale envelopes would limit wrongly).
    finer = ["--set", f"finish.envelope_block={config.finish.envelope_block // 2}"]
    assert export_main([str(out), "--out", str(tmp_path / "stale.pt"), *finer]) == 1
    assert "give --data" in capsys.readouterr().err
    assert (
        export_main([str(out), "--out", str(tmp_path / "finer.pt"), *finer, "--data", str(dataset)])
        == 0
    )
    remeasured = read_checkpoint(tmp_path / "finer.pt")["config"]["finish"]["class_envelopes"]
    assert any(
        len(e) == 2 * (config.model.length // config.finish.envelope_block) for e in remeasured
    )

    # So does a class's own percentile, for that class alone.
    tighter = ["--set", "finish.class_percentiles=[kick=5]"]
    assert export_main([str(out), "--out", str(tmp_path / "stale.pt"), *tighter]) == 1
    assert "give --data" in capsys.readouterr().err
    tight_out = str(tmp_path / "tight.pt")
    assert export_main([str(out), "--out", tight_out, *tighter, "--data", str(dataset)]) == 0
    tight = read_checkpoint(tmp_path / "tight.pt")["config"]["finish"]
    kick = config.model.classes.index("kick")
    assert tight["class_percentiles"] == ["kick=5"]
    assert sum(tight["class_envelopes"][kick]) < sum(envelopes[kick])
    assert [e for c, e in enumerate(tight["class_envelopes"]) if c != kick] == [
        e for c, e in enumerate(envelopes) if c != kick
    ]
    unknown = ["--set", "finish.class_percentiles=[cowbell=50]", "--data", str(dataset)]
    assert export_main([str(out), "--out", str(tmp_path / "u.pt"), *unknown]) == 1
    assert "cowbell" in capsys.readouterr().err and not (tmp_path / "u.pt").exists()


def test_a_dead_loader_process_is_a_clear_error(dataset: Path, tmp_path: Path) -> None:
    config = tiny(
        "train.max_steps=50",
        "train.checkpoint_every=0",
        "train.validate_every=0",
        "train.num_workers=1",
    )
    trainer = Trainer(config, dataset, tmp_path / "run", log=QUIET)
    trainer.train_step()
    assert trainer.prefetcher is not None
    for process in list(trainer.prefetcher.pool._processes.values()):  # noqa: SLF001
        process.kill()
        process.join()
    with pytest.raises(DrumDiffError, match="batch loader process died"):
        for _ in range(10):
            trainer.train_step()
    trainer.close_loader()


def test_class_spaces_are_measured_per_class_and_renders_decode_in_them(
    dataset: Path, tmp_path: Path
) -> None:
    import dataclasses

    from drumdiff.model.config import FinishConfig
    from drumdiff.model.core.checkpoint import LoadedModel
    from drumdiff.model.render.generate import render, settings_for

    config = tiny(
        "diffusion.class_spaces=true",
        "model.classes=[kick, snare, closed_hat, clap, ride]",
        "train.max_steps=1",
        "train.checkpoint_every=0",
        "train.validate_every=0",
    )
    assert run_name(tiny()) == run_name(tiny("diffusion.class_spaces=false"))
    assert run_name(tiny()) != run_name(config)
    trainer = Trainer(config, dataset, tmp_path / "run", log=QUIET)
    d = trainer.config.diffusion
    classes = trainer.config.model.classes
    assert len(d.class_spectra) == len(d.class_envelopes) == len(classes)
    present = set(trainer.train_set.labels)
    absent = [c for c in range(len(classes)) if c not in present]
    assert absent and all(
        d.class_spectra[c] == d.spectrum for c in absent
    )  # no clips: the global space
    assert all(d.class_spectra[c] != d.spectrum for c in present)
    trainer.fit(progress=False)

    # A render in class c's space equals the same render from a global-space model whose global
    # space is c's: only the decoding differs.
    raw = FinishConfig(peak=0.0, dc_cutoff_hz=0.0, learn_envelopes=False)
    c = sorted(present)[0]
    spaced = dataclasses.replace(trainer.config, finish=raw)
    fixed = dataclasses.replace(
        spaced,
        diffusion=dataclasses.replace(
            d, class_spaces=False, spectrum=d.class_spectra[c], envelope=d.class_envelopes[c]
        ),
    )
    s = settings_for(LoadedModel(trainer.denoiser, spaced, 1, None), steps=2)
    a = render(LoadedModel(trainer.denoiser, spaced, 1, None), [3], s, classes=[classes[c]])
    b = render(LoadedModel(trainer.denoiser, fixed, 1, None), [3], s, classes=[classes[c]])
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_init_adds_a_refiner_and_trains_with_the_octave_loss(dataset: Path, tmp_path: Path) -> None:
    """From weights without a refiner: it starts as identity, then trains with the octave loss."""
    base = Trainer(tiny("train.max_steps=2"), dataset, tmp_path / "base", log=QUIET)
    base.fit(progress=False)
    messages: list[str] = []
    config = tiny(
        "model.refiner_channels=4",
        "model.refiner_kernel=5",
        "diffusion.loss_octave_share=0.5",
        "train.max_steps=4",
    )
    tuned = Trainer(
        config,
        dataset,
        tmp_path / "tuned",
        init_checkpoint=tmp_path / "base" / "last.pt",
        log=messages.append,
    )
    assert any("6 new and 0 dropped tensors" in m for m in messages)
    assert tuned.net.refiner is not None and not tuned.net.refiner.conv_out.weight.any()
    state = tuned.fit(progress=False)
    assert state.step == 4 and np.isfinite(state.loss)
    assert tuned.net.refiner.conv_out.weight.any()  # it learned something
    loaded = load_checkpoint(tmp_path / "tuned" / "last.pt")
    assert loaded.config.model.refiner_channels == 4
    assert loaded.denoiser.net.refiner is not None
