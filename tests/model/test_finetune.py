"""Fine-tuning as a library: labels, the held-out share, the config, the judge, the copy flag,
and the two training-loop hooks it needs (a stop callback, metrics without TensorBoard)."""

from __future__ import annotations

import builtins
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from _audio_fixtures import NO_AUGMENT, prepared, tone

from drumdiff.model.config import Config, load_config, to_dict
from drumdiff.model.core.checkpoint import (
    load_checkpoint,
    model_from_config,
    read_checkpoint,
    save_checkpoint,
)
from drumdiff.model.data.dataset import DrumDataset
from drumdiff.model.errors import DrumDiffError
from drumdiff.model.judge.evaluate import HitSet
from drumdiff.model.render.generate import render, settings_for
from drumdiff.model.train import finetune as ft
from drumdiff.model.train.finetune import (
    FineTune,
    HeldOutJudge,
    class_list,
    class_slug,
    finetune_config,
    hold_out,
    nearest_distance,
    prepare_folder,
    settings_from_overrides,
)
from drumdiff.model.train.trainer import Trainer

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "tiny-test.yaml"


def QUIET(_msg: str) -> None:
    return None


def tiny(*overrides: str) -> Config:
    return load_config(TINY, list(overrides))


def write(path: Path, samples: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), samples.T, 44100)
    return path


def user_folder(root: Path) -> Path:
    """A user's kit: kicks, snares and hats by name, a folder of zaps, a broken file, a copy."""
    for i in range(5):
        write(root / f"Kick {i}.wav", tone(55 + 4 * i, decay_s=0.05))
        write(root / f"snare_{i}.wav", tone(190 + 9 * i, decay_s=0.02))
        write(root / f"HH-{i}.wav", tone(3000 + 150 * i, decay_s=0.01))
    for i in range(3):
        write(root / "Laser Zaps" / f"z{i}.wav", tone(800 + 90 * i, decay_s=0.03))
    write(root / "Laser Zaps" / "z0 copy.wav", tone(800, decay_s=0.03))  # a duplicate
    (root / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio")
    return root


def tiny_base(path: Path, *overrides: str) -> Path:
    config = tiny(*overrides)
    model = model_from_config(config)
    return save_checkpoint(
        path, config, model_state=None, ema_state=model.denoiser.net.state_dict(), step=5
    )


# -- labels and the held-out share ------------------------------------------------------------


def test_class_slug() -> None:
    assert class_slug("Laser Zaps!") == "laser_zaps"
    assert class_slug("808") == "808"
    with pytest.raises(DrumDiffError, match="not usable as a class name"):
        class_slug("--")


def test_hold_out_is_by_file_per_class_and_keeps_small_classes_whole() -> None:
    rows = [{"id": i, "label": "kick", "source": f"k{i}"} for i in range(10)]
    rows += [{"id": 10 + i, "label": "clap", "source": f"c{i}"} for i in range(2)]
    rows += [{"id": 20 + i, "label": "tom", "source": f"t{i}"} for i in range(3)]
    held = hold_out(rows, 0.2, seed=0)
    assert len(held & set(range(10))) == 2
    assert not held & {10, 11}  # two files: both train
    assert len(held & {20, 21, 22}) == 1  # at least one held out, at least one kept
    assert held == hold_out(rows, 0.2, seed=0)
    assert hold_out(rows, 0.2, seed=1) != held
    assert hold_out(rows, 0.0, seed=0) == set()


def test_prepare_folder_names_mode(tmp_path: Path) -> None:
    folder = user_folder(tmp_path / "kit")
    summary = prepare_folder(folder, tmp_path / "ds", tiny(), classes_from="names", holdout=0.2)
    # the zaps say nothing by name: "other"; the broken file and the copy are reported
    assert summary.classes == ("closed_hat", "kick", "other", "snare")
    assert summary.per_class["kick"] == {"train": 4, "validation": 1}
    assert summary.per_class["other"] == {"train": 2, "validation": 1}
    reasons = {Path(r["source"]).name: r["reason"] for r in summary.rejected}
    assert reasons.pop("broken.wav") == "unreadable"
    assert list(reasons.values()) == ["duplicate"] and set(reasons) <= {"z0.wav", "z0 copy.wav"}
    rows = [json.loads(line) for line in (tmp_path / "ds" / "index.jsonl").read_text().splitlines()]
    assert {r["split"] for r in rows} == {"train", "validation"}
    report = json.loads((tmp_path / "ds" / "report.json").read_text())
    assert report["per_split"] == {"train": 14, "validation": 4}


def test_prepare_folder_folders_and_one_class_modes(tmp_path: Path) -> None:
    folder = user_folder(tmp_path / "kit")
    by_folder = prepare_folder(folder, tmp_path / "a", tiny(), classes_from="folders")
    assert "laser_zaps" in by_folder.classes and "other" not in by_folder.classes
    assert (
        by_folder.per_class["laser_zaps"]["train"] + by_folder.per_class["laser_zaps"]["validation"]
        == 3
    )
    one = prepare_folder(folder, tmp_path / "b", tiny(), classes_from="Cow Bell")
    assert one.classes == ("cow_bell",)
    assert one.per_class["cow_bell"] == {"train": 14, "validation": 4}
    assert class_list(("kick", "snare"), one.classes) == ("kick", "snare", "cow_bell")


def test_prepare_folder_refuses_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DrumDiffError, match="is not a folder"):
        prepare_folder(tmp_path / "nope", tmp_path / "ds", tiny())


# -- settings and config ----------------------------------------------------------------------


def test_settings_overrides_are_checked() -> None:
    assert settings_from_overrides(["finetune.holdout=0.3"]).holdout == 0.3
    with pytest.raises(DrumDiffError, match="unknown config key"):
        settings_from_overrides(["finetune.nope=1"])
    with pytest.raises(DrumDiffError, match="expected an integer"):
        settings_from_overrides(["finetune.judge_per_class=two"])
    with pytest.raises(ValueError, match="holdout"):
        settings_from_overrides(["finetune.holdout=1.5"])


def test_finetune_config_keeps_base_spaces_and_measures_a_new_class(tmp_path: Path) -> None:
    folder = user_folder(tmp_path / "kit")
    summary = prepare_folder(folder, tmp_path / "ds", tiny(), classes_from="folders")
    base = to_dict(tiny())
    bands = 8
    base["diffusion"].update(
        class_spaces=True,
        spectrum_bands=bands,
        spectrum=[1.0] * bands,
        envelope=[1.0, 1.0],
        class_spectra=[[float(c + 2)] * bands for c in range(4)],
        class_envelopes=[[0.5, 0.5]] * 4,
    )
    base["finish"]["class_envelopes"] = [[-1.0, -2.0] * 4] * 4  # 8 blocks of 256 samples
    classes = class_list(base["model"]["classes"], summary.classes)
    assert classes == ("kick", "snare", "closed_hat", "clap", "laser_zaps")
    train = DrumDataset(tmp_path / "ds", classes, splits=("train",))
    config = finetune_config(base, classes, train, name="mine", overrides=["train.lr=3e-5"])
    assert config.name == "mine" and config.model.classes == classes
    assert config.train.lr == 3e-5  # --set wins over the small-data settings
    assert config.train.balance_classes and config.train.ema_decay == 0.995
    spectra = config.diffusion.class_spectra
    assert len(spectra) == 5 and spectra[:4] == tuple(
        tuple(float(c + 2) for _ in range(bands)) for c in range(4)
    )
    assert len(spectra[4]) == bands and spectra[4] != spectra[0]  # measured on the zaps
    assert len(config.diffusion.class_envelopes) == 5
    envelopes = config.finish.class_envelopes
    assert envelopes[3] == (-1.0, -2.0) * 4  # no claps in the folder: the base's
    assert envelopes[0] != (-1.0, -2.0) * 4 and envelopes[4]  # measured on the user's kicks, zaps


# -- the judge --------------------------------------------------------------------------------


def test_nearest_distance() -> None:
    a = np.zeros((2, 4))
    assert nearest_distance(a, a) == 0.0
    assert nearest_distance(a, a + 3.0) == pytest.approx(3.0)
    assert nearest_distance(a[:0], a) is None


def test_judge_flags_renders_that_are_training_hits(tmp_path: Path) -> None:
    folder = user_folder(tmp_path / "kit")
    prepare_folder(folder, tmp_path / "ds", tiny(), classes_from="names")
    classes = ("kick", "snare", "clap", "closed_hat", "other")
    judge = HeldOutJudge(tmp_path / "ds", classes)
    assert judge.judged == ("kick", "snare", "closed_hat", "other")
    assert 0 < judge.copy_threshold < 1
    copies = judge.measure(HitSet(judge.train_audio, judge.train_labels, classes))
    assert copies["copies"] == len(judge.train_labels)
    assert all(c["similarity"] > judge.copy_threshold for c in copies["copy_list"])
    # the held-out hits themselves are, by the rule's definition, never copies
    held = judge.measure(HitSet(judge.held_audio, judge.held_labels, classes))
    assert held["copies"] == 0
    assert held["mean_db"] == pytest.approx(0.0, abs=1e-6)  # each held-out hit is its own nearest
    assert copies["mean_db"] > 0
    noise = (
        np.random.default_rng(0).standard_normal(judge.held_audio.shape).astype(np.float32) * 0.1
    )
    far = judge.measure(HitSet(noise, judge.held_labels, classes))
    assert far["mean_db"] > held["mean_db"]
    with pytest.raises(DrumDiffError, match="labelled"):
        judge.measure(HitSet(noise, judge.held_labels, ("kick",) * 5))


# -- the training-loop hooks ------------------------------------------------------------------


def test_fit_writes_metrics_without_tensorboard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = builtins.__import__

    def no_tensorboard(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError("no tensorboard here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    config = tiny(
        *NO_AUGMENT, "train.log_every=2", "train.validate_every=0", "train.checkpoint_every=0"
    )
    data = prepared(tmp_path / "ds", config, kits=3, per_kit=4)
    messages: list[str] = []
    run = tmp_path / "not" / "made" / "yet"
    trainer = Trainer(config, data, run, log=messages.append)
    trainer.fit(stop_at=4, progress=False)  # no write_run_files first: the folder does not exist
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4]
    assert any("tensorboard is not installed" in m for m in messages)
    assert not (run / "tensorboard").exists()


def test_fit_on_step_can_stop_with_a_checkpoint(tmp_path: Path) -> None:
    config = tiny(*NO_AUGMENT, "train.checkpoint_every=0", "train.validate_every=0")
    data = prepared(tmp_path / "ds", config, kits=3, per_kit=4)
    seen: list[int] = []

    def on_step(step: int, loss: float) -> bool:
        seen.append(step)
        assert np.isfinite(loss)
        return step == 3

    state = Trainer(config, data, tmp_path / "run", log=QUIET).fit(
        stop_at=10, progress=False, on_step=on_step
    )
    assert state.step == 3 and seen == [1, 2, 3]
    assert read_checkpoint(tmp_path / "run" / "last.pt")["step"] == 3


# -- the whole job ----------------------------------------------------------------------------


FAST = ("finetune.judge_every_steps=4", "finetune.report_per_class=2", "finetune.audio_per_class=1")


def test_job_trains_judges_exports_and_flags_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = user_folder(tmp_path / "kit")
    base = tiny_base(tmp_path / "base.pt")
    job = FineTune.start(
        folder, tmp_path / "job", base, classes_from="folders", overrides=FAST, log=QUIET
    )
    assert job.state["new_classes"] == ["laser_zaps"]

    # A deliberately memorising model: from step 8 on, every render is one of the training hits.
    real_render = ft.render_for_judge

    def memorising(model: Any, classes: Any, per_class: int, steps: int, **kwargs: Any) -> HitSet:
        hits = real_render(model, classes, per_class, steps, **kwargs)
        if model.step < 8:
            return hits
        train = DrumDataset(tmp_path / "job" / "data", classes, splits=("train",))
        pick = [int(np.nonzero(np.asarray(train.labels) == label)[0][0]) for label in hits.labels]
        audio = np.stack([train.clip(i) for i in pick])
        return HitSet(audio, hits.labels, hits.classes, seeds=hits.seeds)

    monkeypatch.setattr(ft, "render_for_judge", memorising)
    outcome = job.run(stop_at=12)
    assert outcome.status == "done" and outcome.step == 12
    timeline = job.timeline()
    assert [r["step"] for r in timeline] == [0, 4, 8, 12]
    assert [r["copies"] > 0 for r in timeline] == [False, False, True, True]
    report = json.loads((tmp_path / "job" / "report.json").read_text())
    assert report["copying_starts"] == {
        "step": 8,
        "checkpoint": "checkpoints/step-0000008.pt",
        "copies": timeline[2]["copies"],
    }
    assert report["results"]["fine-tuned"]["copies"] == report["results"]["fine-tuned"]["renders"]
    assert report["results"]["base"]["copies"] == 0
    for step in (0, 4, 8, 12):
        assert (tmp_path / "job" / "checkpoints" / f"step-{step:07d}.pt").exists()
    page = (tmp_path / "job" / "report.html").read_text()
    assert "Copying starts at step 8" in page and "laser_zaps" in page
    card = (tmp_path / "job" / "MODEL_CARD.md").read_text()
    assert "12 steps" in card and "laser_zaps" in card
    model = load_checkpoint(tmp_path / "job" / "model.pt")
    assert model.classes[-1] == "laser_zaps" and model.step == 12
    payload = read_checkpoint(tmp_path / "job" / "model.pt")
    assert payload["model"] is None and payload["ema"]["class_embed.weight"].dtype.is_floating_point
    assert str(payload["ema"]["class_embed.weight"].dtype) == "torch.float16"


def test_a_base_that_renders_with_its_student_gives_a_fine_tune_of_the_full_models_sampling(
    tmp_path: Path,
) -> None:
    config = tiny("sampling.sampler=distilled", "sampling.steps=2", "sampling.eta=1.0")
    net = model_from_config(config).denoiser.net.state_dict()
    teacher = {"sampler": "ddim", "schedule": "linear", "steps": 6, "guidance": 2.5}
    base = save_checkpoint(
        tmp_path / "base.pt",
        config,
        model_state=None,
        ema_state=net,
        step=5,
        distilled={"weights": net, "levels": [1.0, 0.5, 0.0], "teacher": teacher},
    )
    job = FineTune.start(
        user_folder(tmp_path / "kit"), tmp_path / "job", base, overrides=FAST, log=QUIET
    )
    assert job.run(stop_at=4).status == "done"
    model = load_checkpoint(tmp_path / "job" / "model.pt")
    assert model.distilled is None
    settings = settings_for(model)
    assert (settings.sampler, settings.schedule, settings.steps) == ("ddim", "linear", 6)
    assert (settings.guidance, settings.eta) == (2.5, 0.0)
    assert np.isfinite(render(model, [1], settings, classes=[model.classes[0]])).all()


def test_job_refuses_to_overwrite_and_resume_needs_a_job(tmp_path: Path) -> None:
    folder = user_folder(tmp_path / "kit")
    base = tiny_base(tmp_path / "base.pt")
    FineTune.start(folder, tmp_path / "job", base, overrides=FAST, log=QUIET)
    with pytest.raises(DrumDiffError, match="already holds a fine-tune"):
        FineTune.start(folder, tmp_path / "job", base, log=QUIET)
    with pytest.raises(DrumDiffError, match="not a fine-tune folder"):
        FineTune.resume(tmp_path / "kit")


def test_job_checks_overrides_first_and_leaves_nothing_behind(tmp_path: Path) -> None:
    folder = user_folder(tmp_path / "kit")
    base = tiny_base(tmp_path / "base.pt")
    with pytest.raises(DrumDiffError, match="--set: .*unknown config key"):
        FineTune.start(folder, tmp_path / "job", base, overrides=["train.bogus=1"], log=QUIET)
    assert not (tmp_path / "job").exists()
    silent = tmp_path / "silent"
    write(silent / "nothing.wav", np.zeros((1, 2000), np.float32))
    with pytest.raises(DrumDiffError, match="no usable audio"):
        FineTune.start(silent, tmp_path / "job", base, log=QUIET)
    assert not (tmp_path / "job").exists()
    # and the same command then works
    assert (
        FineTune.start(folder, tmp_path / "job", base, overrides=FAST, log=QUIET).state["status"]
        == "prepared"
    )


def test_job_stops_when_asked_and_resumes_where_it_stopped(tmp_path: Path) -> None:
    folder = user_folder(tmp_path / "kit")
    base = tiny_base(tmp_path / "base.pt")
    job = FineTune.start(folder, tmp_path / "job", base, overrides=FAST, log=QUIET)
    calls = {"n": 0}

    def stop_after_six() -> bool:
        calls["n"] += 1
        return calls["n"] > 6

    outcome = job.run(stop_at=20, should_stop=stop_after_six)
    assert outcome.status == "stopped" and outcome.step == 6
    assert read_checkpoint(tmp_path / "job" / "last.pt")["step"] == 6
    assert not (tmp_path / "job" / "model.pt").exists()
    again = FineTune.resume(tmp_path / "job", log=QUIET)
    assert again.state["status"] == "stopped"
    outcome = again.run(stop_at=10)
    assert outcome.status == "done" and outcome.step == 10
    sessions = again.state["sessions"]
    assert [(s["from_step"], s["to_step"]) for s in sessions] == [(0, 6), (6, 10)]
    assert [r["step"] for r in again.timeline()] == [0, 4, 8, 10]
