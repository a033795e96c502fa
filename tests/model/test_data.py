"""`prepare`: scanning, rejects with reasons, labels, kit metadata, caching, determinism, splits."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from _audio_fixtures import (
    NEW_LAYOUT_XML,
    kit_tree,
    messy_source,
    tone,
    write,
)

from drumdiff.model.config import Config, load_config
from drumdiff.model.data.dataset import DrumDataset, prepare_dataset, read_hydrogen_kit, split_kits
from drumdiff.model.errors import DrumDiffError

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny-test.yaml"


@pytest.fixture(scope="module")
def config() -> Config:
    # All ten classes, so every label the rules give is kept by DrumDataset too.
    return load_config(
        TINY,
        [
            "model.classes=[kick, snare, clap, closed_hat, open_hat, tom, crash, ride, percussion, "
            "other]"
        ],
    )


def read_index(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def messy(tmp_path_factory: pytest.TempPathFactory, config: Config) -> dict[str, object]:
    root = tmp_path_factory.mktemp("messy")
    expected = messy_source(root / "src")
    report = prepare_dataset([root / "src"], root / "out", config.model, config.data)
    return {"root": root, "out": root / "out", "expected": expected, "report": report}


def test_prepare_keeps_good_files_with_right_labels(messy: dict, config: Config) -> None:
    out: Path = messy["out"]
    labels: dict[str, str] = messy["expected"]["labels"]
    rows = read_index(out)
    assert {Path(str(r["source"])).name: r["label"] for r in rows} == labels
    assert messy["report"].kept == len(labels)
    clips = np.load(out / "clips.npy")
    assert clips.shape == (len(labels), 1, config.model.length)
    assert clips.dtype == np.float32
    assert np.isfinite(clips).all()
    # Peak-normalised to data.peak, and the onset is at the start (leading silence trimmed).
    np.testing.assert_allclose(np.abs(clips).max(axis=(1, 2)), config.data.peak, rtol=1e-5)
    kick = next(r for r in rows if Path(str(r["source"])).name == "Kick_01.wav")
    assert np.abs(clips[int(kick["id"]), 0, :8]).max() > 0.0
    # A cut clip ends in a fade, never a click.
    shaker = next(r for r in rows if Path(str(r["source"])).name == "perc_shaker_3s.wav")
    assert abs(float(clips[int(shaker["id"]), 0, -1])) < 1e-3


def test_prepare_lists_each_reject_with_its_reason(messy: dict) -> None:
    report = json.loads((messy["out"] / "report.json").read_text())
    got = {Path(r["source"]).name: r["reason"] for r in report["rejected"]}
    assert got == messy["expected"]["rejected"]
    assert all(r["detail"] for r in report["rejected"])
    assert report["per_reason"] == dict(Counter(messy["expected"]["rejected"].values()))
    assert report["duplicates"] == 1
    assert report["kept"] == len(messy["expected"]["labels"])
    assert report["per_class"] == dict(Counter(messy["expected"]["labels"].values()))
    assert sum(report["per_split"].values()) == report["kept"]


def test_prepare_keeps_kit_metadata(messy: dict) -> None:
    rows = {Path(str(r["source"])).name: r for r in read_index(messy["out"])}
    for name, kit in messy["expected"]["kits"].items():
        assert rows[name]["kit"] == kit
    assert rows["a-soft.wav"]["licence"] == "CC-BY-SA-3.0"
    assert rows["a-soft.wav"]["instrument"] == "Kick"
    assert rows["a-soft.wav"]["velocity"] == [0.0, 0.5]
    assert rows["x1.flac"]["licence"] == "GPL"
    assert rows["x1.flac"]["velocity"] is None
    assert all(r["source"] and r["hash"] for r in rows.values())
    # By-kit split: every row of a kit sits in the split of its kit.
    splits: dict[str, set[str]] = {}
    for row in rows.values():
        splits.setdefault(str(row["kit"]), set()).add(str(row["split"]))
    assert all(len(s) == 1 for s in splits.values())


def test_dataset_reads_prepared_folder(messy: dict, config: Config) -> None:
    everything = DrumDataset(
        messy["out"], config.model.classes, splits=("train", "validation", "test")
    )
    assert len(everything) == messy["report"].kept
    assert sum(everything.class_counts().values()) == len(everything)
    assert everything.clip(0).shape == (1, config.model.length)
    everything.check_compatible(config.model)
    with pytest.raises(DrumDiffError, match="re-run prepare"):
        everything.check_compatible(load_config(TINY, ["model.length=4096"]).model)
    # A model without some classes maps unknown labels to "other", or drops them without one.
    few = DrumDataset(messy["out"], ("kick", "other"), splits=("train", "validation", "test"))
    assert len(few) == len(everything)
    assert few.class_counts()["kick"] == 3
    strict = DrumDataset(messy["out"], ("kick", "snare"), splits=("train", "validation", "test"))
    assert len(strict) == 4
    with pytest.raises(DrumDiffError, match="not a prepared dataset"):
        DrumDataset(messy["root"] / "src", ("kick",))


def test_rerun_is_incremental_and_deterministic(tmp_path: Path, config: Config) -> None:
    src = tmp_path / "src"
    messy_source(src)
    out = tmp_path / "out"
    first = prepare_dataset([src], out, config.model, config.data)
    clips, index = (out / "clips.npy").read_bytes(), (out / "index.jsonl").read_text()
    second = prepare_dataset([src], out, config.model, config.data)
    # Every file that processed before comes from the cache now (kept ones and the duplicate).
    assert second.reused == first.kept + first.duplicates
    assert (out / "clips.npy").read_bytes() == clips
    assert (out / "index.jsonl").read_text() == index
    # A fresh folder (no cache) gives the very same dataset.
    fresh = tmp_path / "fresh"
    prepare_dataset([src], fresh, config.model, config.data)
    assert (fresh / "clips.npy").read_bytes() == clips
    assert (fresh / "index.jsonl").read_text() == index
    # A new file is processed; the rest still comes from the cache.
    write(src / "Plain Kit" / "ride_new.wav", tone(4100, decay_s=0.3))
    third = prepare_dataset([src], out, config.model, config.data)
    assert third.reused == second.reused
    assert third.kept == first.kept + 1
    # A different processing config never reuses clips made for another.
    other = load_config(TINY, ["data.peak=0.5"])
    fourth = prepare_dataset([src], out, other.model, other.data)
    assert fourth.reused == 0


def test_prepare_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from drumdiff.prepare import main

    messy_source(tmp_path / "src")
    out = tmp_path / "out"
    assert (
        main(
            [
                str(tmp_path / "src"),
                "--out",
                str(out),
                "--config",
                str(TINY),
                "--test-kit",
                "Old Kit",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "kept 13 clips" in printed and '"unreadable": 3' in printed
    assert {r["split"] for r in read_index(out) if r["kit"] == "Old Kit"} == {"test"}
    assert main([str(tmp_path / "src"), "--out", str(out), "--config", str(TINY)]) == 0
    assert "reused 14 processed files from the cache" in capsys.readouterr().out
    assert main([str(tmp_path / "nothing"), "--out", str(tmp_path / "o2")]) == 1


def test_prepare_with_nothing_usable_fails_loudly(tmp_path: Path, config: Config) -> None:
    write(tmp_path / "src" / "silent.wav", np.zeros((1, 1000), np.float32))
    with pytest.raises(DrumDiffError, match="no usable audio"):
        prepare_dataset([tmp_path / "src"], tmp_path / "out", config.model, config.data)


def test_stereo_config_keeps_two_channels(tmp_path: Path) -> None:
    stereo = load_config(TINY, ["model.audio_channels=2"])
    write(tmp_path / "src" / "k" / "kick.wav", tone(60))
    write(tmp_path / "src" / "k" / "snare.wav", tone(220, channels=2))
    prepare_dataset([tmp_path / "src"], tmp_path / "out", stereo.model, stereo.data)
    clips = np.load(tmp_path / "out" / "clips.npy")
    assert clips.shape == (2, 2, stereo.model.length)
    np.testing.assert_array_equal(clips[0, 0], clips[0, 1])  # mono source duplicated


def test_read_hydrogen_kit_both_layouts(tmp_path: Path) -> None:
    (tmp_path / "drumkit.xml").write_text(NEW_LAYOUT_XML)
    kit, licence, files = read_hydrogen_kit(tmp_path / "drumkit.xml")
    assert (kit, licence) == ("New Kit", "CC-BY-SA-3.0")
    assert [(p.name, inst, vel) for p, inst, vel in files] == [
        ("a-soft.wav", "Kick", (0.0, 0.5)),
        ("a-hard.wav", "Kick", (0.5, 1.0)),
        ("b.wav", "Hat Open", (0.0, 1.0)),
        ("gone.wav", "Snare", (0.0, 1.0)),
    ]


def test_broken_kit_xml_is_reported_not_fatal(tmp_path: Path, config: Config) -> None:
    kit = tmp_path / "src" / "Bad"
    write(kit / "kick.wav", tone(60))
    (kit / "drumkit.xml").write_text("<drumkit_info><name>oops")
    report = prepare_dataset(
        [tmp_path / "src", tmp_path / "nowhere"], tmp_path / "out", config.model, config.data
    )
    assert report.kept == 1
    assert report.per_reason["bad_kit_xml"] == 1
    assert report.per_reason["missing"] == 1


@pytest.mark.parametrize("kits", [3, 7, 20])
def test_split_by_kit_puts_no_kit_in_two_splits(tmp_path: Path, config: Config, kits: int) -> None:
    src = kit_tree(tmp_path / "src", kits=kits, per_kit=4)
    report = prepare_dataset([src], tmp_path / "out", config.model, config.data)
    rows = read_index(tmp_path / "out")
    per_kit: dict[str, set[str]] = {}
    for row in rows:
        per_kit.setdefault(str(row["kit"]), set()).add(str(row["split"]))
    assert len(per_kit) == kits
    assert all(len(s) == 1 for s in per_kit.values())
    assert set(report.per_split) == {"train", "validation", "test"}
    datasets = [
        DrumDataset(tmp_path / "out", config.model.classes, splits=(s,))
        for s in ("train", "validation", "test")
    ]
    kits_of = [{str(r["kit"]) for r in d.rows} for d in datasets]
    assert not (kits_of[0] & kits_of[1] or kits_of[0] & kits_of[2] or kits_of[1] & kits_of[2])
    assert sum(len(d) for d in datasets) == report.kept


def test_split_kits_is_seeded_and_honours_named_kits() -> None:
    sizes = {f"kit{i}": 10 + i for i in range(12)}
    a = split_kits(sizes, seed=0, validation=0.15, test=0.15)
    assert a == split_kits(sizes, seed=0, validation=0.15, test=0.15)
    assert a != split_kits(sizes, seed=1, validation=0.15, test=0.15)
    held = sum(sizes[k] for k, s in a.items() if s != "train")
    assert 0.3 * sum(sizes.values()) <= held < 0.3 * sum(sizes.values()) + 2 * max(sizes.values())
    named = split_kits(
        sizes, seed=0, validation=0.15, test=0.15, test_kits=["kit3"], validation_kits=["kit5"]
    )
    assert named["kit3"] == "test" and named["kit5"] == "validation"
    assert [k for k, s in named.items() if s == "test"] == ["kit3"]
    # One or two kits: everything trains (nothing to hold out without losing a whole kit).
    assert set(split_kits({"a": 5, "b": 5}, seed=0, validation=0.15, test=0.15).values()) == {
        "train"
    }
