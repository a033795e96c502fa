"""Distillation: the step maths, the student beating the short teacher, shipping and choosing it."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from drumdiff.model.core.checkpoint import (
    LoadedModel,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from drumdiff.model.core.sampling import DISTILLED
from drumdiff.model.errors import CheckpointError, ConfigError, DrumDiffError
from drumdiff.model.render.generate import render, sampling_plan, settings_for, undistilled
from drumdiff.model.train.distill import (
    Distiller,
    DistillSettings,
    ddim_step,
    onset_weights,
    run_settings,
    segment_target,
    settings_from_overrides,
    teacher_plan,
)

TINY = DistillSettings(
    steps=2,
    teacher_steps=8,
    trajectories=40,
    validation=8,
    chunk=16,
    batch_size=8,
    max_steps=80,
    validate_every=0,
    checkpoint_every=40,
    log_every=20,
    lr=1e-3,
    warmup_steps=0,
)


def test_segment_target_is_the_x0_whose_ddim_step_lands_on_the_next_state() -> None:
    g = torch.Generator().manual_seed(0)
    x, x_next = torch.randn(3, 1, 64, generator=g), torch.randn(3, 1, 64, generator=g)
    t, t_next = torch.tensor([1.0, 0.7, 0.2]), torch.tensor([0.5, 0.3, 0.0])
    x0 = segment_target(x, x_next, t, t_next)
    torch.testing.assert_close(ddim_step(x, x0, t, t_next), x_next, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x0[2], x_next[2])  # a step to 0 lands on its x0


def test_student_levels_are_every_kth_teacher_level(tiny_model: LoadedModel) -> None:
    plan = teacher_plan(tiny_model, replace(TINY, steps=4, teacher_steps=12))
    teacher = plan.teacher_levels().tolist()
    assert plan.student_levels() == tuple(teacher[::3])
    assert plan.student_levels()[0] == 1.0 and plan.student_levels()[-1] == 0.0


def test_bad_settings_are_refused(tiny_model: LoadedModel) -> None:
    with pytest.raises(DrumDiffError, match="multiple"):
        settings_from_overrides(["distill.steps=3", "distill.teacher_steps=8"])
    with pytest.raises(DrumDiffError, match="unknown"):
        settings_from_overrides(["distill.stepz=3"])
    with pytest.raises(DrumDiffError, match="only distill"):
        settings_from_overrides(["train.lr=1"])
    with pytest.raises(DrumDiffError, match="multiple"):
        teacher_plan(tiny_model, replace(TINY, steps=3, teacher_steps=0))  # tiny default: 4 steps


@pytest.fixture
def tiny_teacher(tiny_model: LoadedModel, tmp_path: Path) -> LoadedModel:
    path = save_checkpoint(
        tmp_path / "teacher.pt",
        tiny_model.config,
        model_state=None,
        ema_state=tiny_model.denoiser.net.state_dict(),
        step=7,
    )
    return load_checkpoint(path)


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Distiller, dict[str, float], dict[str, float]]:
    from drumdiff_testkit import TINY_CONFIG, randomize

    from drumdiff.model.config import load_config
    from drumdiff.model.core.checkpoint import build_model

    config = load_config(TINY_CONFIG)
    torch.manual_seed(0)
    denoiser = randomize(build_model(config).net, seed=1)
    folder = tmp_path_factory.mktemp("distill")
    path = save_checkpoint(
        folder / "teacher.pt", config, model_state=None, ema_state=denoiser.state_dict()
    )
    teacher = load_checkpoint(path)
    distiller = Distiller(teacher, TINY, folder / "run", log=lambda _m: None)
    distiller.prepare(progress=False)
    _, val_rows = distiller._split()
    before = distiller.validate(val_rows)
    distiller.fit(progress=False)
    return distiller, before, distiller.validate(val_rows)


def test_student_at_two_steps_gets_closer_to_the_teacher_than_the_teacher_at_two(
    trained: tuple[Distiller, dict[str, float], dict[str, float]],
) -> None:
    _, before, after = trained
    # Held-out seeds, model space: the student's own 2-step run against the teacher's 8-step one.
    assert after["val_student_mse"] < 0.8 * before["val_student_mse"]
    assert after["val_student_mse"] < after["val_teacher_short_mse"]


def test_a_distilled_checkpoint_ships_and_renders_deterministically(
    trained: tuple[Distiller, dict[str, float], dict[str, float]], tmp_path: Path
) -> None:
    distiller, _, _ = trained
    step_file = distiller.run_dir / "checkpoints" / f"step-{distiller.step:07d}.pt"
    model = load_checkpoint(step_file)
    assert model.distilled is not None and model.distilled.steps == 2
    assert model.distilled.levels == distiller.levels
    settings = settings_for(model, sampler=DISTILLED, steps=2)
    batch = render(model, [3, 4], settings, classes=["kick", "snare"])
    again = render(model, [3], settings, classes=["kick"])
    np.testing.assert_array_equal(
        render(model, [3], settings, classes=["kick"]), again
    )  # same seed, same hit
    np.testing.assert_allclose(batch[0], again[0], atol=1e-6)  # a batch equals the singles
    np.testing.assert_allclose(
        render(model, [4], settings, classes=["snare"])[0], batch[1], atol=1e-6
    )
    # It is the student that renders, not the teacher at 2 steps.
    teacher_two = render(
        model, [3], settings_for(model, sampler="ddim", steps=2, guidance=1.0), classes=["kick"]
    )
    assert not np.allclose(teacher_two[0], again[0], atol=1e-4)


def test_the_student_with_eta_renews_part_of_its_noise_per_seed(
    trained: tuple[Distiller, dict[str, float], dict[str, float]],
) -> None:
    distiller, _, _ = trained
    model = load_checkpoint(distiller.last_path)
    plain = settings_for(model, sampler=DISTILLED, steps=2)
    stirred = settings_for(model, sampler=DISTILLED, steps=2, eta=0.5)
    batch = render(model, [3, 4], stirred, classes=["kick", "snare"])
    single = render(model, [3], stirred, classes=["kick"])
    np.testing.assert_array_equal(render(model, [3], stirred, classes=["kick"]), single)
    np.testing.assert_allclose(batch[0], single[0], atol=1e-6)  # a batch equals the singles
    assert not np.allclose(render(model, [3], plain, classes=["kick"])[0], single[0], atol=1e-4)


def test_the_distilled_sampler_needs_a_student_and_its_step_count(
    trained: tuple[Distiller, dict[str, float], dict[str, float]], tiny_model: LoadedModel
) -> None:
    distiller, _, _ = trained
    model = load_checkpoint(distiller.last_path)
    with pytest.raises(ValueError, match="exactly 2 steps"):
        sampling_plan(model, settings_for(model, sampler=DISTILLED, steps=5))
    with pytest.raises(ValueError, match="no distilled student"):
        sampling_plan(tiny_model, settings_for(tiny_model, sampler=DISTILLED, steps=2))


def test_a_step_count_alone_asks_the_full_model_when_the_default_is_distilled(
    trained: tuple[Distiller, dict[str, float], dict[str, float]],
) -> None:
    distiller, _, _ = trained
    loaded = load_checkpoint(distiller.last_path)
    model = replace(
        loaded,
        config=replace(
            loaded.config, sampling=replace(loaded.config.sampling, sampler=DISTILLED, steps=2)
        ),
    )
    assert settings_for(model).sampler == DISTILLED
    assert settings_for(model, steps=2).sampler == DISTILLED
    full = settings_for(model, steps=12)
    assert (full.sampler, full.steps) == ("dpmpp-2m", 12)
    assert sampling_plan(model, full).denoiser is model.denoiser
    # Sound design needs arbitrary noise levels: it runs the full model at the teacher's steps.
    design = undistilled(model, settings_for(model))
    assert (design.sampler, design.steps) == ("dpmpp-2m", 8)


def test_resume_goes_on_from_the_last_step(
    trained: tuple[Distiller, dict[str, float], dict[str, float]],
) -> None:
    distiller, _, _ = trained
    again = Distiller(
        distiller.teacher, replace(TINY, max_steps=90), distiller.run_dir, log=lambda _m: None
    )
    assert again.resume() and again.step == distiller.step
    for a, b in zip(again.ema.parameters(), distiller.ema.parameters()):
        torch.testing.assert_close(a, b)
    again.fit(progress=False)
    assert again.step == 90
    other = Distiller(
        distiller.teacher, replace(TINY, steps=4), distiller.run_dir, log=lambda _m: None
    )
    with pytest.raises(DrumDiffError, match="another plan"):
        other.resume()


def test_a_malformed_student_is_refused(tiny_teacher: LoadedModel, tmp_path: Path) -> None:
    state = tiny_teacher.denoiser.net.state_dict()
    bad = save_checkpoint(
        tmp_path / "bad.pt",
        tiny_teacher.config,
        model_state=None,
        ema_state=state,
        distilled={"weights": state, "levels": [1.0, 0.5]},
    )
    with pytest.raises(CheckpointError, match="not decreasing to 0"):
        load_checkpoint(bad)
    good = save_checkpoint(
        tmp_path / "good.pt",
        tiny_teacher.config,
        model_state=None,
        ema_state=state,
        distilled={"weights": state, "levels": [1.0, 0.5, 0.0]},
        half=True,
    )
    weights = read_checkpoint(good)["distilled"]["weights"]
    assert any(v.dtype == torch.float16 for v in weights.values())  # exported like the teacher
    assert load_checkpoint(good).distilled is not None
    with pytest.raises(CheckpointError, match="needs a distilled student"):
        save_checkpoint(
            tmp_path / "orphan.pt",
            replace(
                tiny_teacher.config,
                sampling=replace(tiny_teacher.config.sampling, sampler=DISTILLED),
            ),
            model_state=None,
            ema_state=state,
        )
    assert not (tmp_path / "orphan.pt").exists()


def test_a_student_can_teach_a_student_with_fewer_steps(
    trained: tuple[Distiller, dict[str, float], dict[str, float]], tmp_path: Path
) -> None:
    distiller, _, _ = trained
    teacher = load_checkpoint(distiller.last_path)
    settings = replace(TINY, steps=1, teacher_sampler=DISTILLED, max_steps=20, checkpoint_every=20)
    plan = teacher_plan(teacher, settings)
    assert plan.teacher_levels().tolist() == pytest.approx(list(distiller.levels))
    second = Distiller(teacher, settings, tmp_path / "second", log=lambda _m: None)
    assert second.levels == (1.0, 0.0)
    second.fit(progress=False)
    model = load_checkpoint(second.last_path)
    assert model.distilled is not None and model.distilled.steps == 1
    # The full model is still the original teacher, and sound design still finds its sampler.
    assert model.distilled.teacher["sampler"] == "dpmpp-2m"
    assert model.distilled.teacher["then"]["sampler"] == DISTILLED
    for a, b in zip(model.denoiser.parameters(), teacher.denoiser.parameters()):
        torch.testing.assert_close(a, b)


def test_a_student_can_start_from_another_runs_student(
    trained: tuple[Distiller, dict[str, float], dict[str, float]], tmp_path: Path
) -> None:
    distiller, _, _ = trained
    settings = replace(TINY, init=str(distiller.last_path), teacher_guidance=3.0)
    again = Distiller(distiller.teacher, settings, tmp_path / "again", log=lambda _m: None)
    start = load_checkpoint(distiller.last_path).distilled
    assert start is not None
    for a, b in zip(again.student.parameters(), start.denoiser.parameters()):
        torch.testing.assert_close(a, b)
    with pytest.raises(DrumDiffError, match="levels"):
        Distiller(
            distiller.teacher, replace(settings, steps=4), tmp_path / "other", log=lambda _m: None
        )


def test_the_student_can_keep_any_of_the_teachers_levels(tiny_model: LoadedModel) -> None:
    plan = teacher_plan(tiny_model, replace(TINY, steps=3, teacher_steps=8, keep=(0, 4, 6, 8)))
    teacher = plan.teacher_levels().tolist()
    assert plan.student_levels() == (teacher[0], teacher[4], teacher[6], teacher[8])
    # The stored trajectories depend on the teacher alone, so students of other levels share them.
    assert plan.teacher_json() == teacher_plan(tiny_model, replace(TINY, steps=2)).teacher_json()
    with pytest.raises(DrumDiffError, match="need 4"):
        settings_from_overrides(["distill.steps=3", "distill.keep=[0, 4, 8]"])
    with pytest.raises(DrumDiffError, match="start at 0 and increase"):
        settings_from_overrides(["distill.steps=2", "distill.keep=[0, 6, 4]"])
    with pytest.raises(DrumDiffError, match="end at the teacher's step count"):
        teacher_plan(tiny_model, replace(TINY, steps=2, teacher_steps=8, keep=(0, 4, 7)))
    with pytest.raises(DrumDiffError, match="rollout"):
        settings_from_overrides(["distill.rollout=1.5"])


def test_trajectories_hold_every_teacher_level(
    trained: tuple[Distiller, dict[str, float], dict[str, float]],
) -> None:
    distiller, _, _ = trained
    assert distiller.data is not None
    assert distiller.data.states.shape[:2] == (TINY.trajectories, TINY.teacher_steps + 1)


def test_a_finished_target_replaces_only_the_teachers_last_state_with_its_render(
    trained: tuple[Distiller, dict[str, float], dict[str, float]], tmp_path: Path
) -> None:
    from drumdiff.model.core.space import model_to_audio, space_weights
    from drumdiff.model.render.generate import finish_hits

    distiller, _, _ = trained
    assert distiller.data is not None
    raw = distiller.data.states
    teacher = distiller.teacher
    classes = len(teacher.classes)
    cfg = teacher.config.diffusion
    weights = space_weights(classes, class_ids=distiller.data.class_ids)
    raw_audio = model_to_audio(raw[:, -1].float(), cfg, weights).numpy()
    rows = np.eye(classes + 1)[distiller.data.class_ids.numpy()]
    expected = finish_hits(teacher, raw_audio, rows)
    peak = teacher.config.finish.peak
    assert not np.allclose(np.abs(raw_audio).max(axis=(1, 2)), peak, atol=0.02)
    for at_peak in (True, False):
        finished = Distiller(
            teacher,
            replace(TINY, finished_target=True, finished_at_peak=at_peak),
            tmp_path / f"finished-{at_peak}",
            trajectories=distiller.trajectories_dir,
            log=lambda _m: None,
        )
        data = finished.prepare(progress=False)
        # The path there stays the teacher's.
        torch.testing.assert_close(data.states[:, :-1], raw[:, :-1])
        got = model_to_audio(data.states[:, -1].float(), cfg, weights).numpy()
        if at_peak:
            np.testing.assert_allclose(got, expected, atol=2e-3)
            np.testing.assert_allclose(np.abs(got).max(axis=(1, 2)), peak, atol=2e-3)
            continue
        # The render's shape at the raw hit's level: the least-squares scale of the finished
        # render, so what is left of the raw hit is orthogonal to it.
        scale = np.abs(got).max(axis=(1, 2)) / np.abs(expected).max(axis=(1, 2))
        np.testing.assert_allclose(got, expected * scale[:, None, None], atol=2e-3 * scale.max())
        left = ((raw_audio - got) * got).sum(axis=(1, 2)) / (got * got).sum(axis=(1, 2))
        np.testing.assert_allclose(left, 0.0, atol=5e-3)
        assert not np.allclose(scale, 1.0, atol=0.05)


def test_raw_target_classes_keep_the_teachers_raw_hit(
    trained: tuple[Distiller, dict[str, float], dict[str, float]], tmp_path: Path
) -> None:
    distiller, _, _ = trained
    assert distiller.data is not None
    teacher = distiller.teacher
    kept_raw = teacher.classes[0]
    finished = Distiller(
        teacher,
        replace(TINY, finished_target=True, raw_target_classes=(kept_raw,)),
        tmp_path / "some-raw",
        trajectories=distiller.trajectories_dir,
        log=lambda _m: None,
    )
    data = finished.prepare(progress=False)
    raw = data.class_ids == 0
    assert bool(raw.any()) and bool((~raw).any())
    torch.testing.assert_close(data.states[raw], distiller.data.states[raw])
    changed = (data.states[~raw, -1] - distiller.data.states[~raw, -1]).abs().amax(dim=(1, 2))
    assert bool((changed > 1e-3).all())
    with pytest.raises(ConfigError, match="raw_target_classes"):
        Distiller(
            teacher,
            replace(TINY, finished_target=True, raw_target_classes=("cowbell",)),
            tmp_path / "unknown",
            log=lambda _m: None,
        )


def test_rollout_rows_start_from_the_students_own_state(
    trained: tuple[Distiller, dict[str, float], dict[str, float]], tmp_path: Path
) -> None:
    from drumdiff.model.train.distill import student_run

    distiller, _, _ = trained
    both = {}
    for rollout in (0.0, 1.0):
        again = Distiller(
            distiller.teacher,
            replace(TINY, rollout=rollout),
            tmp_path / f"r{rollout}",
            log=lambda _m: None,
        )
        again.data = distiller.data
        again.ema.load_state_dict(distiller.ema.state_dict())
        again.rng = np.random.default_rng(5)
        rows = np.arange(8)
        both[rollout] = again.batch(rows)
    x_teacher, _, t, _, ids = both[0.0]
    x_own, target, t_own, t_next, _ = both[1.0]
    assert distiller.data is not None
    later = t < 1.0  # rows past the first segment
    assert bool(later.any()) and bool((~later).any())
    torch.testing.assert_close(x_own[~later], x_teacher[~later])
    assert not torch.allclose(x_own[later], x_teacher[later], atol=1e-3)
    own = student_run(distiller.ema, distiller.data.states[:8, 0].float(), ids, distiller.levels)
    segment = torch.tensor([distiller.levels.index(float(v)) for v in t_own])
    torch.testing.assert_close(x_own[later], own[torch.arange(8), segment][later])
    # The target still lands on the teacher's next state.
    kept = torch.tensor(distiller.plan.kept())
    teacher_next = distiller.data.states[torch.arange(8), kept[segment + 1]].float()
    torch.testing.assert_close(
        ddim_step(x_own, target, t_own, t_next), teacher_next, atol=1e-4, rtol=1e-4
    )


def test_onset_weights_lean_on_the_first_milliseconds_and_average_one() -> None:
    w = onset_weights(32768, 44100, 10.0, 0.02)
    assert float(w.mean()) == pytest.approx(1.0, rel=1e-5)
    assert float(w[0] / w[-1]) == pytest.approx(10.0, rel=1e-3)
    assert bool((w[1:] <= w[:-1]).all())
    torch.testing.assert_close(onset_weights(100, 44100, 1.0, 0.02), torch.ones(100))
    with pytest.raises(DrumDiffError, match="onset"):
        settings_from_overrides(["distill.onset_weight=0"])


def test_the_onset_weight_weighs_the_regression(
    trained: tuple[Distiller, dict[str, float], dict[str, float]], tmp_path: Path
) -> None:
    distiller, _, _ = trained
    settings = replace(TINY, onset_weight=10.0, onset_s=0.005)
    weighted, by_hand = (
        Distiller(distiller.teacher, settings, tmp_path / name, log=lambda _m: None)
        for name in ("weighted", "by_hand")
    )
    weighted.data = by_hand.data = distiller.data
    train_rows, _ = weighted._split()
    weighted.rng, by_hand.rng = np.random.default_rng(3), np.random.default_rng(3)
    loss = weighted.train_step(train_rows)["loss"]
    # The same draws, by hand, from the same (untrained) student.
    rows = by_hand.rng.choice(train_rows, size=settings.batch_size, replace=False)
    x, target, t, _, ids = by_hand.batch(rows)
    with torch.no_grad():
        error = (by_hand.student(x, t, class_ids=ids, guidance=1.0) - target) ** 2
    cfg = distiller.teacher.config.model
    weights = onset_weights(cfg.length, cfg.sample_rate, 10.0, 0.005)
    assert loss == pytest.approx(float((error * weights).mean()), rel=1e-4)
    assert loss != pytest.approx(float(error.mean()), rel=1e-3)


def test_a_second_run_shares_the_first_runs_trajectories(
    trained: tuple[Distiller, dict[str, float], dict[str, float]], tmp_path: Path
) -> None:
    distiller, _, _ = trained
    shared = distiller.run_dir / "trajectories"
    second = Distiller(
        distiller.teacher,
        replace(TINY, keep=(0, 4, 8), rollout=0.5),
        tmp_path / "second",
        trajectories=shared,
        log=lambda _m: None,
    )
    data = second.prepare(progress=False)
    assert distiller.data is not None
    torch.testing.assert_close(data.states, distiller.data.states)
    assert not (tmp_path / "second" / "trajectories").exists()
    other_teacher = replace(TINY, teacher_guidance=3.5)
    with pytest.raises(DrumDiffError, match="another teacher"):
        Distiller(
            distiller.teacher,
            other_teacher,
            tmp_path / "third",
            trajectories=shared,
            log=lambda _m: None,
        ).prepare(progress=False)


def test_a_sharing_run_resumes_on_the_shared_trajectories_without_naming_them(
    trained: tuple[Distiller, dict[str, float], dict[str, float]], tmp_path: Path
) -> None:
    distiller, _, _ = trained
    shared = distiller.run_dir / "trajectories"
    run = tmp_path / "second"
    settings = replace(TINY, max_steps=2, checkpoint_every=2)
    first = Distiller(distiller.teacher, settings, run, trajectories=shared, log=lambda _m: None)
    first.prepare(progress=False)
    first.fit(progress=False)
    again = Distiller(distiller.teacher, settings, run, log=lambda _m: None)
    assert again.resume()
    assert again.trajectories_dir.resolve() == shared.resolve()
    again.prepare(progress=False)
    assert not (run / "trajectories").exists()
    moved = tmp_path / "moved"
    shared.rename(moved)
    try:
        with pytest.raises(DrumDiffError, match="shared trajectories .* are gone"):
            Distiller(distiller.teacher, settings, run, log=lambda _m: None)
        named = Distiller(distiller.teacher, settings, run, trajectories=moved, log=print)
        named.prepare(progress=False)
        assert Distiller(distiller.teacher, settings, run).trajectories_dir == moved.resolve()
    finally:
        moved.rename(shared)


def test_the_cli_refuses_a_run_without_trajectories_to_share(
    tiny_teacher: LoadedModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from drumdiff.distill import main

    code = main(
        [
            str(tiny_teacher.path),
            "--run",
            str(tmp_path / "run"),
            "--trajectories-from",
            str(tmp_path / "nothing"),
            "--no-progress",
        ]
    )
    assert code != 0
    assert "holds no stored trajectories" in capsys.readouterr().err


def test_a_run_goes_on_with_its_own_settings_and_overrides_change_only_what_they_name(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    assert run_settings(run, ["distill.steps=3"]) == (DistillSettings(steps=3), {})
    run.mkdir()
    started = replace(TINY, keep=(0, 4, 8), onset_weight=10.0, lr=2e-4)
    (run / "settings.json").write_text(json.dumps(asdict(started)))
    assert run_settings(run, []) == (started, {})
    settings, changed = run_settings(run, ["distill.lr=5e-4", "distill.onset_weight=10"])
    assert settings == replace(started, lr=5e-4)
    assert changed == {"lr": (2e-4, 5e-4)}


def test_unreadable_or_foreign_run_settings_are_refused(tmp_path: Path) -> None:
    (tmp_path / "settings.json").write_text("{not json")
    with pytest.raises(DrumDiffError, match="cannot read the run's settings"):
        run_settings(tmp_path, [])
    (tmp_path / "settings.json").write_text("[1, 2]")
    with pytest.raises(DrumDiffError, match="holds no settings"):
        run_settings(tmp_path, [])
    (tmp_path / "settings.json").write_text(json.dumps({"steps": 2, "stepz": 3}))
    with pytest.raises(DrumDiffError, match="settings.json: unknown config key distill.'stepz'"):
        run_settings(tmp_path, [])


def test_the_cli_resumes_a_run_with_its_settings_without_repeating_them(
    tiny_teacher: LoadedModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from drumdiff.distill import main

    run = tmp_path / "run"
    base = [str(tiny_teacher.path), "--run", str(run), "--no-progress"]
    tiny = [
        "distill.steps=2",
        "distill.teacher_steps=8",
        "distill.keep=[0, 4, 8]",
        "distill.trajectories=24",
        "distill.validation=4",
        "distill.chunk=12",
        "distill.batch_size=4",
        "distill.checkpoint_every=2",
        "distill.validate_every=0",
        "distill.onset_weight=10",
        "distill.lr=3e-4",
    ]
    sets = [arg for setting in tiny for arg in ("--set", setting)]
    assert main([*base, *sets, "--stop-at", "2"]) == 0
    capsys.readouterr()
    assert main([*base, "--stop-at", "4", "--set", "distill.lr=1e-4"]) == 0
    out = capsys.readouterr().out
    assert "distill.lr: 0.0003 (the run's) -> 0.0001" in out
    assert "stopped at step 4" in out
    state = read_checkpoint(run / "last.pt")["distill_state"]
    assert state["step"] == 4
    resumed = state["settings"]
    assert (resumed["steps"], resumed["keep"], resumed["onset_weight"]) == (2, (0, 4, 8), 10.0)
    assert resumed["lr"] == 1e-4
    assert json.loads((run / "settings.json").read_text())["lr"] == 1e-4


# -- adversarial post-training ----------------------------------------------------------------


def adversarial(real_data: Path, **changes: object) -> DistillSettings:
    return replace(
        TINY,
        trajectories=24,
        validation=4,
        max_steps=4,
        checkpoint_every=2,
        log_every=2,
        adversarial=0.1,
        real_data=str(real_data),
        adversarial_batch=4,
        **changes,  # type: ignore[arg-type]
    )


@pytest.fixture
def real_hits(tmp_path: Path, tiny_model: LoadedModel) -> Path:
    from _audio_fixtures import prepared

    return prepared(tmp_path / "real", tiny_model.config, kits=1, per_kit=8)


def test_adversarial_training_needs_real_hits_of_the_models_shape(
    tiny_teacher: LoadedModel, tmp_path: Path
) -> None:
    with pytest.raises(DrumDiffError, match="real_data"):
        settings_from_overrides(["distill.adversarial=0.1"])
    with pytest.raises(DrumDiffError, match="adversarial_steps"):
        settings_from_overrides(
            [
                "distill.adversarial=0.1",
                "distill.real_data=data",
                "distill.adversarial_steps=3",
                "distill.steps=2",
                "distill.teacher_steps=8",
            ]
        )
    from _audio_fixtures import prepared

    longer = replace(tiny_teacher.config, model=replace(tiny_teacher.config.model, length=4096))
    other = prepared(tmp_path / "long", longer, kits=1, per_kit=4)
    with pytest.raises(DrumDiffError, match="2048"):
        Distiller(tiny_teacher, adversarial(other), tmp_path / "run", log=lambda _m: None)
    with pytest.raises(DrumDiffError, match="prepared dataset"):
        Distiller(
            tiny_teacher, adversarial(tmp_path / "nowhere"), tmp_path / "run", log=lambda _m: None
        )


def test_finished_hits_are_the_students_run_with_gradients(
    tiny_teacher: LoadedModel, real_hits: Path, tmp_path: Path
) -> None:
    from drumdiff.model.core.space import model_to_audio, space_weights
    from drumdiff.model.train.distill import student_run

    distiller = Distiller(
        tiny_teacher, adversarial(real_hits, adversarial_steps=2), tmp_path / "run", log=print
    )
    data = distiller.prepare(progress=False)
    rows = np.arange(3)
    hits, ids = distiller.finished_hits(rows, 2)
    assert hits.requires_grad and hits.shape == (3, 1, 2048)
    # From the noise through every step, the finished hit is the student's own render.
    own = student_run(distiller.student, data.states[:3, 0].float(), ids, distiller.levels)[:, -1]
    weights = space_weights(len(tiny_teacher.classes), class_ids=ids)
    expected = model_to_audio(own, tiny_teacher.config.diffusion, weights)
    torch.testing.assert_close(hits.detach(), expected, atol=1e-5, rtol=1e-4)
    hits.pow(2).mean().backward()
    assert any(
        p.grad is not None and bool(p.grad.abs().sum() > 0) for p in distiller.student.parameters()
    )


def test_an_adversarial_run_trains_its_critic_logs_it_and_resumes_it(
    tiny_teacher: LoadedModel, real_hits: Path, tmp_path: Path
) -> None:
    import json

    settings = adversarial(real_hits)
    distiller = Distiller(tiny_teacher, settings, tmp_path / "run", log=lambda _m: None)
    assert distiller.critic is not None
    start = [p.detach().clone() for p in distiller.critic.parameters()]
    distiller.fit(progress=False)
    moved = [not torch.equal(a, b) for a, b in zip(start, distiller.critic.parameters())]
    assert any(moved)
    log = (tmp_path / "run" / "metrics.jsonl").read_text()
    rows = [json.loads(line) for line in log.splitlines()]
    logged = [r for r in rows if "critic_loss" in r]
    assert logged and all(
        np.isfinite(r["critic_loss"]) and np.isfinite(r["adversarial_loss"]) for r in logged
    )
    again = Distiller(
        tiny_teacher, replace(settings, max_steps=6), tmp_path / "run", log=lambda _m: None
    )
    assert again.resume() and again.critic is not None
    for a, b in zip(again.critic.state_dict().values(), distiller.critic.state_dict().values()):
        torch.testing.assert_close(a, b)
    again.fit(progress=False)
    assert again.step == 6


def test_the_cli_answers_a_critic_without_real_hits(
    tiny_teacher: LoadedModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from drumdiff.distill import main

    base = [str(tiny_teacher.path), "--run", str(tmp_path / "run"), "--no-progress"]
    assert main([*base, "--set", "distill.adversarial=0.05"]) != 0
    assert "distill.real_data" in capsys.readouterr().err
    missing = ["--set", "distill.adversarial=0.05", "--set", f"distill.real_data={tmp_path}"]
    assert main([*base, *missing]) != 0
    assert "not a prepared dataset" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_own_finished_hits_run_the_ema_student_before_the_steps_with_gradients(
    tiny_teacher: LoadedModel, tmp_path: Path
) -> None:
    from drumdiff.model.train.distill import student_run

    distiller = Distiller(tiny_teacher, replace(TINY, rollout=0.0), tmp_path / "run", log=print)
    data = distiller.prepare(progress=False)
    with torch.no_grad():  # the EMA student apart from the student, so the two parts differ
        for p in distiller.ema.parameters():
            p.mul_(0.9)
    rows = np.arange(3)
    hits, ids = distiller.finished_hits(rows, 1, own=True)
    assert hits.requires_grad
    start = student_run(distiller.ema, data.states[:3, 0].float(), ids, distiller.levels[:2])
    t = torch.full((3,), distiller.levels[1])
    with torch.no_grad():
        x0 = distiller.student(start[:, -1], t, class_ids=ids, guidance=1.0)
        last = ddim_step(start[:, -1], x0, t, torch.full_like(t, distiller.levels[2]))
    torch.testing.assert_close(hits.detach(), distiller.to_audio(last, ids), atol=1e-5, rtol=1e-4)
    teachers_start = distiller.finished_hits(rows, 1)[0]  # rollout 0: from the teacher's state
    assert not torch.allclose(teachers_start, hits)


def test_the_spectral_term_joins_the_loss_and_is_logged(
    trained: tuple[Distiller, dict[str, float], dict[str, float]], tmp_path: Path
) -> None:
    with pytest.raises(DrumDiffError, match="spectral_steps"):
        settings_from_overrides(
            ["distill.spectral=1", "distill.spectral_steps=3", "distill.steps=2"]
        )
    with pytest.raises(DrumDiffError, match="spectral must"):
        settings_from_overrides(["distill.spectral=-1"])
    with pytest.raises(DrumDiffError, match="spectral_onset_weight"):
        settings_from_overrides(["distill.spectral_onset_weight=0"])
    distiller, _, _ = trained
    grads = []
    for weight in (0.0, 1.0):
        run = Distiller(
            distiller.teacher,
            replace(TINY, spectral=weight, spectral_batch=4, spectral_steps=2),
            tmp_path / f"run{weight}",
            log=lambda _m: None,
        )
        run.data = distiller.data
        run.rng = np.random.default_rng(5)
        train_rows, _ = run._split()
        metrics = run.train_step(train_rows)
        assert ("spectral_loss" in metrics) == (weight > 0)
        grads.append(torch.cat([p.grad.flatten() for p in run.student.parameters()]))
    assert metrics["spectral_loss"] > 0
    # Same rows and student: the regression's gradient alone, then with the spectral term.
    assert not torch.allclose(grads[0], grads[1])


# --- onset skips -----------------------------------------------------------------------------

SKIPPED = replace(TINY, onset_skip_s=0.005, skip_block=16, skip_fit_rows=4, max_steps=6)


def test_a_skip_adds_its_factor_times_the_state_at_the_students_levels_only(
    tiny_model: LoadedModel,
) -> None:
    from drumdiff.model.core.denoiser import StudentDenoiser

    net = tiny_model.denoiser.net
    skips = torch.zeros(2, net.num_classes + 1, 3)
    skips[1, 0] = torch.tensor([-0.5, -0.25, 0.1])  # level 0.5, class 0 (kick)
    skips[1, net.null_class] = 0.3
    student = StudentDenoiser(net, (1.0, 0.5, 0.0), skips, block=4).eval()
    x = torch.randn(3, 1, 64, generator=torch.Generator().manual_seed(0))
    ids = torch.tensor([0, 1, net.null_class])
    with torch.no_grad():
        extra = student.v(x, torch.full((3,), 0.5), class_ids=ids) - tiny_model.denoiser.v(
            x, torch.full((3,), 0.5), class_ids=ids
        )
        off_level = student.v(x, torch.full((3,), 0.7), class_ids=ids) - tiny_model.denoiser.v(
            x, torch.full((3,), 0.7), class_ids=ids
        )
        blend = torch.zeros(1, net.num_classes + 1)
        blend[0, 0] = blend[0, net.null_class] = 1.0
        gain = student.skip_gain(torch.tensor([0.5]), 16, class_weights=blend)
    expected = torch.tensor([-0.5, -0.25, 0.1]).repeat_interleave(4)
    torch.testing.assert_close(extra[0, 0, :12], expected * x[0, 0, :12], atol=1e-6, rtol=1e-5)
    assert float(extra[0, 0, 12:].abs().max()) < 1e-6  # past the skipped span
    assert float(extra[1].abs().max()) < 1e-6  # snare has no factors
    torch.testing.assert_close(extra[2, 0, :12], 0.3 * x[2, 0, :12], atol=1e-6, rtol=1e-5)
    assert float(off_level.abs().max()) < 1e-6
    torch.testing.assert_close(gain[0, 0, :12], (expected + 0.3) / 2)
    kept = student.with_net(net)
    assert isinstance(kept, StudentDenoiser) and torch.equal(kept.skips, student.skips)
    with pytest.raises(ValueError, match="steps=2"):
        StudentDenoiser(net, (1.0, 0.5, 0.0), torch.zeros(3, net.num_classes + 1, 3), block=4)
    with pytest.raises(ValueError, match="null class"):
        StudentDenoiser(net, (1.0, 0.5, 0.0), torch.zeros(2, net.num_classes, 3), block=4)


def test_a_skip_of_minus_tan_half_the_angle_keeps_a_zero_v_state_through_ddim() -> None:
    # Why the skip exists: DDIM shrinks a state whose v is 0 by cos(angle); with
    # v = -tan(angle / 2) * x it lands where it started, as the ODE does.
    x = torch.randn(2, 1, 32, generator=torch.Generator().manual_seed(1))
    t, t_next = torch.tensor([0.9, 0.6]), torch.tensor([0.6, 0.0])
    angle = (t - t_next) * torch.pi / 2
    for v in (torch.zeros_like(x), -torch.tan(angle / 2)[:, None, None] * x):
        alpha, sigma = torch.cos(t * torch.pi / 2), torch.sin(t * torch.pi / 2)
        x0 = alpha[:, None, None] * x - sigma[:, None, None] * v
        moved = ddim_step(x, x0, t, t_next)
        ratio = moved.norm(dim=(1, 2)) / x.norm(dim=(1, 2))
        if bool((v == 0).all()):
            torch.testing.assert_close(ratio, torch.cos(angle))
        else:
            torch.testing.assert_close(moved, x, atol=1e-5, rtol=1e-5)


def test_fitted_skips_bring_the_students_first_step_closer_and_ship_in_its_checkpoint(
    tiny_teacher: LoadedModel, tmp_path: Path
) -> None:
    from drumdiff.model.core.denoiser import StudentDenoiser

    distiller = Distiller(tiny_teacher, SKIPPED, tmp_path / "run", log=lambda _m: None)
    data = distiller.prepare(progress=False)
    student = distiller.student
    assert isinstance(student, StudentDenoiser) and student.skips.shape == (2, 5, 14)
    assert distiller.skips_to_fit
    train_rows, _ = distiller._split()

    def first_step_miss() -> float:
        x, ids = data.states[:, 0].float(), data.class_ids
        t = torch.full((len(x),), distiller.levels[0])
        with torch.no_grad():
            x0 = student(x, t, class_ids=ids, guidance=1.0)
        moved = ddim_step(x, x0, t, torch.full_like(t, distiller.levels[1]))
        target = data.states[:, distiller.plan.kept()[1]].float()
        return float(((moved - target)[..., :224] ** 2).mean())

    before = first_step_miss()
    distiller.fit_skips(train_rows)
    assert float(student.skips.detach().abs().sum()) > 0 and not distiller.skips_to_fit
    assert first_step_miss() < before  # least squares on the fit rows, most of these rows
    torch.testing.assert_close(distiller.ema.skips, student.skips)  # type: ignore[union-attr]
    distiller.fit(progress=False)
    model = load_checkpoint(distiller.run_dir / "checkpoints" / f"step-{distiller.step:07d}.pt")
    assert model.distilled is not None
    shipped = model.distilled.denoiser
    assert isinstance(shipped, StudentDenoiser) and shipped.block == 16
    torch.testing.assert_close(shipped.skips, distiller.ema.skips)  # type: ignore[union-attr]
    settings = settings_for(model, sampler=DISTILLED, steps=2)
    batch = render(model, [3, 4], settings, classes=["kick", "snare"])
    np.testing.assert_allclose(
        render(model, [4], settings, classes=["snare"])[0], batch[1], atol=1e-6
    )


def test_skips_resume_start_other_runs_and_must_match(
    tiny_teacher: LoadedModel, tmp_path: Path
) -> None:
    first = Distiller(tiny_teacher, SKIPPED, tmp_path / "run", log=lambda _m: None)
    first.fit(progress=False)
    again = Distiller(tiny_teacher, replace(SKIPPED, max_steps=8), first.run_dir, log=print)
    assert again.resume() and not again.skips_to_fit
    torch.testing.assert_close(again.ema.skips, first.ema.skips)  # type: ignore[union-attr]
    torch.testing.assert_close(again.student.skips, first.student.skips)  # type: ignore[union-attr]
    plain = Distiller(tiny_teacher, replace(SKIPPED, onset_skip_s=0.0), first.run_dir, log=print)
    with pytest.raises(DrumDiffError, match="has onset skips"):
        plain.resume()
    step_file = first.run_dir / "checkpoints" / f"step-{first.step:07d}.pt"
    started = Distiller(
        tiny_teacher, replace(SKIPPED, init=str(step_file)), tmp_path / "next", log=print
    )
    assert not started.skips_to_fit  # the skips come with the student, not refitted
    torch.testing.assert_close(started.student.skips, first.ema.skips)  # type: ignore[union-attr]
    with pytest.raises(DrumDiffError, match="onset_skip_s"):
        Distiller(
            tiny_teacher,
            replace(SKIPPED, onset_skip_s=0.0, init=str(step_file)),
            tmp_path / "x",
            log=print,
        )
    with pytest.raises(DrumDiffError, match="onset skips are"):
        Distiller(tiny_teacher, replace(SKIPPED, skip_block=8, init=str(step_file)), tmp_path / "y")
    with pytest.raises(DrumDiffError, match="skip_block"):
        settings_from_overrides(["distill.skip_block=0"])
    longer = tiny_teacher.config.model.length / tiny_teacher.config.model.sample_rate + 0.01
    with pytest.raises(DrumDiffError, match="more than the model's 2048-sample clips"):
        Distiller(tiny_teacher, replace(SKIPPED, onset_skip_s=longer), tmp_path / "z")


def test_malformed_skips_are_refused(tiny_teacher: LoadedModel, tmp_path: Path) -> None:
    state = tiny_teacher.denoiser.net.state_dict()
    for skips, block, match in (
        (torch.zeros(3, 5, 2), 16, "do not fit"),
        ("no", 16, "malformed"),
        (torch.zeros(2, 5, 2), None, "malformed"),
    ):
        path = save_checkpoint(
            tmp_path / "bad.pt",
            tiny_teacher.config,
            model_state=None,
            ema_state=state,
            distilled={"weights": state, "levels": [1.0, 0.5, 0.0]},
        )
        payload = read_checkpoint(path)
        payload["distilled"]["skips"], payload["distilled"]["skip_block"] = skips, block
        torch.save(payload, path)
        with pytest.raises(CheckpointError, match=match):
            load_checkpoint(path)
