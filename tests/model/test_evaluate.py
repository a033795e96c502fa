"""The quality judge on known cases: synthetic hits, tiny classifier, tiny random model."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_CONFIG

from drumdiff.model.judge.classifier import (
    ClassifierError,
    load_classifier,
    train_classifier_on_arrays,
)
from drumdiff.model.judge.evaluate import (
    HitSet,
    build_reference,
    frechet_distance,
    grid_peaks_db,
    judge,
    kernel_distance,
    noise_bursts,
)
from drumdiff.model.judge.features import descriptors, handcrafted_features

SR = 44100
LENGTH = 2048  # configs/tiny-test.yaml
LABELS = ("kick", "snare", "closed_hat")  # thumps, noise bursts, clicks
CLASSES = ("kick", "snare", "closed_hat", "clap")  # the tiny config's classes


def synth(label: str, seed: int, length: int = LENGTH) -> np.ndarray:
    """A synthetic drum of a class, float32 (1, T), peak 0.9: low sine thump, noise burst, click."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / SR
    if label == "kick":
        f0 = rng.uniform(50, 90)
        phase = 2 * np.pi * (f0 * t + rng.uniform(40, 80) * 0.01 * (1 - np.exp(-t / 0.01)))
        x = np.sin(phase) * np.exp(-t / rng.uniform(0.012, 0.025))
    elif label == "snare":
        x = rng.standard_normal(length) * np.exp(-t / rng.uniform(0.004, 0.01))
    else:
        x = np.zeros(length)
        ring = np.sin(2 * np.pi * rng.uniform(7000, 10000) * t) * np.exp(
            -t / rng.uniform(0.0005, 0.001)
        )
        x += ring + 0.2 * rng.standard_normal(length) * np.exp(-t / 0.0005)
    return (0.9 * x / np.abs(x).max()).astype(np.float32)[None]


def synth_set(per_label: int, seed: int) -> HitSet:
    audio, labels = [], []
    for li, label in enumerate(LABELS):
        for i in range(per_label):
            audio.append(synth(label, seed * 1000 + li * 100 + i))
            labels.append(CLASSES.index(label))
    return HitSet(np.stack(audio), np.asarray(labels), CLASSES, ids=tuple(range(len(audio))))


@pytest.fixture(scope="module")
def classifier():  # type: ignore[no-untyped-def]
    train = synth_set(12, seed=1)
    return train_classifier_on_arrays(
        train.audio, train.labels, CLASSES, SR, epochs=12, batch_size=12, seed=0
    )


@pytest.fixture(scope="module")
def reference(classifier):  # type: ignore[no-untyped-def]
    return build_reference(synth_set(10, seed=2), synth_set(8, seed=3), classifier, SR)


def test_identical_sets_give_near_zero_distances() -> None:
    hits = synth_set(8, seed=4)
    feats = handcrafted_features(hits.audio, SR)
    feats = (feats - feats.mean(0)) / np.maximum(feats.std(0), 1.0)
    noise = handcrafted_features(noise_bursts(LABELS, 8, LENGTH, SR).audio, SR)
    noise = (noise - feats.mean(0)) / np.maximum(feats.std(0), 1.0)
    assert frechet_distance(feats, feats) < 1e-6 * frechet_distance(feats, noise)
    # Unbiased KID of a set with itself is not exactly 0 (it drops the diagonal on one side only).
    assert abs(kernel_distance(feats, feats)) < 0.05 * kernel_distance(feats, noise)


def test_white_noise_scores_far_worse_than_real_like_hits(reference) -> None:  # type: ignore[no-untyped-def]
    like = judge(reference, "like", synth_set(10, seed=5), repeats=4)
    noise = judge(reference, "noise", noise_bursts(CLASSES, 10, LENGTH, SR), repeats=4)
    for space in ("embedding", "handcrafted"):
        good = like.scores["overall"]["distances"][space]
        bad = noise.scores["overall"]["distances"][space]
        assert good["fd_ratio"] < 3, space
        assert bad["fd_ratio"] > 3 * good["fd_ratio"], space
        assert bad["kid"] > 3 * max(good["kid"], good["kid_floor"]), space
        assert bad["mmd_ratio"] > 3 * good["mmd_ratio"], space
    assert like.scores["overall"]["fidelity"]["micro"] > 0.8
    assert (
        noise.scores["overall"]["fidelity"]["micro"] < like.scores["overall"]["fidelity"]["micro"]
    )


def test_copy_detector_flags_exact_and_gained_training_hits(reference) -> None:  # type: ignore[no-untyped-def]
    train = synth_set(8, seed=3)  # the reference's training set
    fresh = synth_set(1, seed=6)
    audio = np.stack([train.audio[0], train.audio[0] * 10 ** (-4 / 20), *fresh.audio])
    labels = np.concatenate([train.labels[:2], fresh.labels])
    hits = HitSet(audio, labels, CLASSES, seeds=tuple(range(len(audio))))
    result = judge(reference, "copies", hits, repeats=1)
    flagged = sorted(c["item"] for c in result.scores["copies"])
    assert flagged == [0, 1]
    assert result.scores["copies"][0]["train_id"] == 0
    assert 0 < reference.copy_threshold < 1


def test_classifier_beats_chance_on_unseen_synthetic_hits(classifier, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    test = synth_set(10, seed=7)
    proba = classifier.predict_proba(test.audio, SR)
    targets = np.array([classifier.classes.index(CLASSES[i]) for i in test.labels])
    assert (proba.argmax(1) == targets).mean() > 0.8  # chance is 1/3
    emb = classifier.embed(test.audio, SR)
    assert emb.shape == (len(test.labels), classifier.config.embed_dim)
    path = classifier.save(tmp_path / "clf.pt")
    again = load_classifier(path)
    np.testing.assert_allclose(again.predict_proba(test.audio, SR), proba, atol=1e-5)
    with pytest.raises(ClassifierError, match="Hz"):
        again.embed(test.audio, 22050)


def test_classifier_files_with_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": "drumdiff-classifier", "payload": Path("x")}, path)
    with pytest.raises(ClassifierError, match="refused"):
        load_classifier(path)
    with pytest.raises(ClassifierError, match="does not exist"):
        load_classifier(tmp_path / "missing.pt")


def test_descriptors_see_clipping_silence_and_decay() -> None:
    t = np.arange(8192) / SR
    short = np.sin(2 * np.pi * 200 * t) * np.exp(-t / 0.01)
    long = np.sin(2 * np.pi * 200 * t) * np.exp(-t / 0.05)
    clipped = np.clip(3 * long, -0.9, 0.9)
    late = np.concatenate([1e-2 * np.ones(1000), short[:-1000]])  # -40 dBFS before the onset
    offset = short + 0.05  # -26 dBFS of DC
    d = descriptors(np.stack([short, long, clipped, late, offset])[:, None].astype(np.float32), SR)
    assert d["decay_s"][1] > 3 * d["decay_s"][0]
    assert list(d["clipped"]) == [0, 0, 1, 0, 0]
    assert np.isnan(d["pre_onset_db"][0])
    assert -41 < d["pre_onset_db"][3] < -39
    assert d["dc_db"][0] < -40 and -27 < d["dc_db"][4] < -25
    assert 150 < d["centroid_hz"][1] < 400


def test_descriptors_see_a_click_at_the_start_and_a_short_body() -> None:
    t = np.arange(8192) / SR
    ramp = np.minimum(1.0, t / 0.005)
    smooth = np.sin(2 * np.pi * 60 * t) * ramp * np.exp(-t / 0.08)
    click = np.exp(-t / 0.02)  # a step at full level: starts at its peak
    d = descriptors(np.stack([smooth, click])[:, None].astype(np.float32), SR)
    assert d["start_level"][0] < 0.01 and d["start_level"][1] == pytest.approx(1.0)
    assert d["decay20_s"][0] > d["decay20_s"][1] > 0
    assert d["decay20_s"][0] < d["decay_s"][0]


def test_nearest_neighbour_ratio_is_one_for_the_same_kind_and_grows_away_from_it() -> None:
    from drumdiff.model.judge.evaluate import nearest_neighbour_ratio

    rng = np.random.default_rng(0)
    real = rng.standard_normal((7, 16))
    alike = rng.standard_normal((20, 16))
    shifted = alike + 3.0
    collapsed = np.repeat(real[:1], 20, axis=0) + 0.01 * rng.standard_normal((20, 16))
    same = nearest_neighbour_ratio(real, alike, repeats=20)["ratio"]
    assert 0.7 < same < 1.4
    assert nearest_neighbour_ratio(real, shifted, repeats=20)["ratio"] > 1.5 * same
    # One real hit copied over and over is close to the kit one way, far from most of it the other.
    assert nearest_neighbour_ratio(real, collapsed, repeats=20)["ratio"] > 0.5
    assert nearest_neighbour_ratio(real[:2], alike)["ratio"] is None


def test_targets_check_every_class_and_the_kick_start() -> None:
    from drumdiff.model.judge.evaluate import targets

    def entry(ratio: float, reliable: bool, start: float) -> dict:
        return {
            "distances": {"embedding": {"reliable": reliable, "fd_ratio": 5.0}},
            "nearest": {"embedding": {"ratio": ratio}},
            "fidelity": {"ratio": 1.0},
            "descriptors": {
                "centroid_hz": {"ratio": 1.1},
                "decay20_s": {"ratio": 0.5},
                "attack_s": {"ratio": 1.0},
                "start_level": {"generated_median": start, "real_median": 0.01},
            },
            "sanity": {"grid_peaks_db": 6.0, "real_grid_peaks_db": 1.0},
        }

    result = {
        "overall": {},
        "copies": [],
        "per_class": {"kick": entry(1.5, False, 0.9), "snare": entry(1.5, True, 0.0)},
    }
    t = targets(result)
    kick, snare = t["class_distance"]["classes"]["kick"], t["class_distance"]["classes"]["snare"]
    assert kick == {"value": 1.5, "measure": "nearest", "met": True}
    assert snare == {"value": 5.0, "measure": "fd", "met": False}  # enough test hits: Frechet
    assert t["kick_start_level"]["met"] is False
    body = t["body_descriptors"]["classes"]["kick"]
    assert body["centroid_hz"]["met"] and not body["decay20_s"]["met"]
    assert t["grid_peaks"]["classes"]["kick"] == {"above_real_db": 5.0, "met": False}

    from drumdiff.evaluate import target_rows

    lines = target_rows({"name": "steps=4", "targets": t})
    distance = next(line for line in lines if "distance" in line)
    assert "met: kick;" in distance and "not met: snare 5.00" in distance
    kick_body = next(line for line in lines if line.lstrip().startswith("kick medians"))
    assert "met: centroid attack;" in kick_body and "not met: decay20 0.50" in kick_body
    assert any("0.900 (not met)" in line for line in lines)
    assert any("not met: kick +5.0" in line for line in lines)
    assert target_rows({"name": "steps=4"}) == []


def write_dataset(folder: Path) -> Path:
    """A tiny prepared dataset in the format `drumdiff prepare` writes."""
    folder.mkdir(parents=True)
    clips, rows = [], []
    for split, kit, per_label, seed in (
        ("train", "A", 8, 11),
        ("validation", "V", 2, 12),
        ("test", "T", 6, 13),
    ):
        for li, label in enumerate(LABELS):
            for i in range(per_label):
                rows.append(
                    {
                        "id": len(rows),
                        "split": split,
                        "label": label,
                        "kit": kit,
                        "licence": "CC0",
                        "source": f"{kit}/{label}{i}.wav",
                        "hash": f"{len(rows):016x}",
                    }
                )
                clips.append(synth(label, seed * 1000 + li * 100 + i))
    np.save(folder / "clips.npy", np.stack(clips))
    (folder / "index.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "dataset.json").write_text(
        json.dumps(
            {
                "sample_rate": SR,
                "audio_channels": 1,
                "length": LENGTH,
                "count": len(rows),
                "kits": {"A": "train", "V": "validation", "T": "test"},
            }
        )
    )
    return folder


def test_grid_peaks_see_a_pattern_repeating_every_patch() -> None:
    rng = np.random.default_rng(4)
    length, period = 8192, 32
    envelope = np.exp(-np.arange(length) / SR / 0.05)
    clean = rng.standard_normal((20, 1, length)) * envelope
    # Each hit gets its own pattern (as a patched network's output does), a third of its level.
    patterns = rng.standard_normal((20, 1, period))
    buzzing = clean + 0.3 * np.tile(patterns, length // period) * envelope
    assert abs(grid_peaks_db(clean, period)) < 1.5
    assert grid_peaks_db(buzzing, period) > 6
    assert grid_peaks_db(clean[:0], period) is None


def test_drumdiff_eval_end_to_end_writes_json_and_html(tmp_path: Path) -> None:
    from drumdiff.cli import main

    data = write_dataset(tmp_path / "data")
    out = tmp_path / "report"
    rc = main(
        [
            "eval",
            "--config",
            str(TINY_CONFIG),
            "--data",
            str(data),
            "--n",
            "3",
            "--steps",
            "2",
            "3",
            "--train-classifier",
            str(tmp_path / "clf.pt"),
            "--classifier-epochs",
            "2",
            "--reference-noise",
            "--reference-real",
            "--unfinished",
            "--repeats",
            "2",
            "--audio-per-class",
            "1",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    names = [r["name"] for r in report["results"]]
    assert names == ["steps=2", "raw=2", "steps=3", "raw=3", "noise", "real-train"]
    assert set(report["finishing"]) == {"2", "3"}
    assert report["results"][1]["render"]["finished"] is False
    real_train = report["results"][-1]
    assert (
        len(real_train["copies"]) == real_train["overall"]["generated"] > 0
    )  # training hits copy themselves
    assert "class_distance" in report["results"][0]["targets"]
    assert report["protocol"]["n_per_class"] == 3 and report["protocol"]["seeds"] == [0, 1, 2]
    first = report["results"][0]
    assert set(first["per_class"]) == set(CLASSES)
    assert first["overall"]["distances"]["embedding"]["fd_floor"] > 0
    assert "ratio" in first["overall"]["descriptors"]["decay_s"]
    assert first["per_class"]["clap"]["fidelity"]["ceiling"] is None  # no real claps in the data
    sanity = first["overall"]["sanity"]
    assert (
        sanity["grid_period"] == 16 and sanity["grid_peaks_db"] is not None
    )  # the tiny model's patch
    page = (out / "index.html").read_text()
    assert "steps=2" in page and "<audio" in page and "patch-grid peaks" in page
    assert list((out / "audio").glob("kick_gen_seed0.wav"))
    # The plot needs the optional `eval` extra; the page works without it.
    has_matplotlib = importlib.util.find_spec("matplotlib") is not None
    assert (out / "metrics_vs_steps.png").exists() == has_matplotlib


def test_eval_without_a_classifier_fails_with_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from drumdiff.evaluate import main

    data = write_dataset(tmp_path / "data")
    rc = main(
        [
            "--config",
            str(TINY_CONFIG),
            "--data",
            str(data),
            "--classifier",
            str(tmp_path / "none.pt"),
            "--out",
            str(tmp_path / "r"),
        ]
    )
    assert rc == 1
    assert "--train-classifier" in capsys.readouterr().err
