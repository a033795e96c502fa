"""model/render/kit.py: the GM pad map, velocity layers, ring-out, the three format files read back,
and byte-identical re-renders from kit.json, on tiny random-weight models."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from drumdiff_testkit import TINY_CONFIG, randomize

from drumdiff.model.config import DRUM_CLASSES, load_config
from drumdiff.model.core.checkpoint import LoadedModel, build_model
from drumdiff.model.labels import gm_note_class
from drumdiff.model.render.generate import render, settings_for
from drumdiff.model.render.kit import (
    CYMBAL_CLASSES,
    DEFAULT_NOTES,
    HYDROGEN_MAX_LAYERS,
    TOM_SEMITONES,
    Extension,
    KitError,
    _hops,
    hydrogen_file,
    hydrogen_song_xml,
    hydrogen_velocity_range,
    load_kit_json,
    plan_from_dict,
    plan_kit,
    plan_to_dict,
    render_kit,
    ring_out,
    velocity_layers,
    write_kit,
)

ALL_CLASSES = tuple(c for c in DRUM_CLASSES if c != "other")
HAT_CHOKERS, HAT_CHOKED = (42, 44), (46,)
# Decent Sampler's documented attributes (Developer's Guide, "The <groups> element").
DS_GROUP_ATTRS = {
    "name", "volume", "seqMode", "seqLength", "seqPosition", "ampEnvEnabled", "trigger", "tags",
    "silencedByTags", "silencingMode", "ampVelTrack", "groupTuning", "enabled",
}  # fmt: skip
DS_SAMPLE_ATTRS = {
    "path", "rootNote", "loNote", "hiNote", "loVel", "hiVel", "seqPosition", "seqMode",
    "seqLength", "volume", "tuning", "pan", "trigger", "tags", "start", "end",
}  # fmt: skip


def _model(classes: tuple[str, ...], seed: int = 1) -> LoadedModel:
    cfg = load_config(TINY_CONFIG)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, classes=classes))
    denoiser = build_model(cfg)
    randomize(denoiser.net, seed=seed)
    return LoadedModel(denoiser.eval(), cfg, 0, None)


@pytest.fixture(scope="module")
def full_model() -> LoadedModel:
    """A tiny model that has every class the GM map names (cymbals and toms included)."""
    return _model(ALL_CLASSES)


@pytest.fixture(scope="module")
def kit_dir(full_model: LoadedModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A whole kit: 24 pads, 3 round robins, 4 velocity layers, cymbals grown to 0.12 s."""
    plan = plan_kit(
        full_model,
        name="testkit",
        round_robin=3,
        velocity_layers_count=4,
        length_cymbals_s=0.12,
        seed=5,
        settings=settings_for(full_model, steps=2),
        model_source={"config": str(TINY_CONFIG), "random_weights_seed": 1},
    )
    out = tmp_path_factory.mktemp("kit")
    write_kit(render_kit(full_model, plan), out, sample_rate=full_model.sample_rate)
    return out


# --------------------------------------------------------------------------------------------
# The plan


def test_pads_follow_the_project_gm_map(full_model: LoadedModel) -> None:
    plan = plan_kit(full_model, settings=settings_for(full_model, steps=2))
    notes = [p.note for p in plan.pads]
    assert notes == list(DEFAULT_NOTES)
    by_note = {p.note: p for p in plan.pads}
    for note, cls in {36: "kick", 38: "snare", 39: "clap", 42: "closed_hat", 44: "closed_hat",
                      46: "open_hat", 49: "crash", 57: "crash", 51: "ride", 59: "ride",
                      54: "percussion", 56: "percussion", 58: "percussion"}.items():  # fmt: skip
        assert by_note[note].drum_class == cls
    for pad in plan.pads:
        assert pad.gm_class == gm_note_class(pad.note)
    # Toms rise in pitch with the note and share their seeds (one drum at six tunings).
    toms = [by_note[n] for n in sorted(TOM_SEMITONES)]
    assert [t.semitones for t in toms] == sorted(t.semitones for t in toms)
    assert len({t.semitones for t in toms}) == len(toms)
    assert len({tuple(h.seed for h in t.hits) for t in toms}) == 1
    # Cymbals ring out, nothing else does; choke groups only on the hats.
    for pad in plan.pads:
        assert (pad.extension is not None) == (pad.gm_class in CYMBAL_CLASSES)
        assert (pad.choke_group is not None) == (pad.note in HAT_CHOKERS + HAT_CHOKED)
    assert by_note[46].off_by == by_note[42].choke_group == by_note[44].choke_group
    # Every other pad has its own seeds, and round robins differ in seed.
    seeds = [h.seed for p in plan.pads if p.gm_class != "tom" for h in p.hits]
    assert len(seeds) == len(set(seeds))


def test_missing_classes_fall_back_or_are_skipped() -> None:
    model = _model(("kick", "snare", "closed_hat", "clap"))
    plan = plan_kit(model, settings=settings_for(model, steps=2))
    assert {p.note for p in plan.pads} == {36, 37, 38, 39, 40, 42, 44}
    assert {n for n, _ in plan.skipped} == set(DEFAULT_NOTES) - {36, 37, 38, 39, 40, 42, 44}
    with_perc = _model(("kick", "percussion"))
    plan = plan_kit(with_perc, settings=settings_for(with_perc, steps=2))
    assert {p.drum_class for p in plan.pads} == {"kick", "percussion"}
    assert plan.pads[0].note == 36 and not plan.skipped


def test_classes_filter_and_bad_requests(full_model: LoadedModel) -> None:
    s = settings_for(full_model, steps=2)
    plan = plan_kit(full_model, classes=["kick", "crash"], settings=s)
    assert {p.note for p in plan.pads} == {36, 49, 52, 55, 57}
    with pytest.raises(KitError, match="unknown class"):
        plan_kit(full_model, classes=["cowbel"], settings=s)
    with pytest.raises(KitError, match="round robin"):
        plan_kit(full_model, round_robin=0, settings=s)
    with pytest.raises(KitError, match="at most 16 layers"):
        plan_kit(full_model, round_robin=5, velocity_layers_count=4, settings=s)
    plan_kit(full_model, round_robin=5, velocity_layers_count=4, formats=["sfz"], settings=s)
    with pytest.raises(KitError, match="unknown format"):
        plan_kit(full_model, formats=["sfz", "kontakt"], settings=s)
    with pytest.raises(KitError, match="kit name"):
        plan_kit(full_model, name="../evil", settings=s)
    with pytest.raises(KitError, match="no pads"):
        plan_kit(full_model, notes=[100], classes=["kick"], settings=s)


@pytest.mark.parametrize("count", [1, 2, 3, 5, 16])
def test_velocity_layers_cover_every_velocity_once(count: int) -> None:
    layers = velocity_layers(count, 12.0)
    owners = [
        [layer.index for layer in layers if layer.lovel <= v <= layer.hivel] for v in range(1, 128)
    ]
    assert all(len(o) == 1 for o in owners)
    assert [layer.gain_db for layer in layers] == sorted(layer.gain_db for layer in layers)
    assert layers[-1].gain_db == 0 and (count == 1 or layers[0].gain_db == -12)
    assert all(layer.method == "gain" for layer in layers)
    # Hydrogen plays MIDI velocity v at v / 127: each lands in exactly one band, none in a gap.
    for v in range(1, 128):
        inside = [
            ly
            for ly in layers
            if hydrogen_velocity_range(ly)[0] <= v / 127 <= hydrogen_velocity_range(ly)[1]
        ]
        assert len(inside) == 1
    with pytest.raises(KitError):
        velocity_layers(0)
    with pytest.raises(KitError):
        velocity_layers(17)


# --------------------------------------------------------------------------------------------
# Ring-out


def test_ring_out_grows_the_tail_with_the_model(full_model: LoadedModel) -> None:
    s = settings_for(full_model, steps=2)
    base = render(full_model, [3], s, classes=["crash"])[0]
    ext = Extension(0.12)
    hops = _hops(full_model, ext)
    assert hops >= 2
    grown = ring_out(full_model, base, list(range(hops)), s, drum_class="crash", extension=ext)
    target = round(0.12 * full_model.sample_rate)
    assert grown.shape == (1, target) and np.isfinite(grown).all()
    assert np.abs(grown).max() <= 1.0
    kept = base.shape[-1] - int(ext.trim_s * full_model.sample_rate)
    np.testing.assert_array_equal(grown[:, :kept], base[:, :kept])  # the render itself is untouched
    tail = grown[:, kept:-400]
    assert (
        np.sqrt(np.mean(tail**2)) > 1e-4
    )  # the model filled it: not silence, not a fade of the render
    again = ring_out(full_model, base, list(range(hops)), s, drum_class="crash", extension=ext)
    np.testing.assert_array_equal(grown, again)
    other = ring_out(full_model, base, [9] * hops, s, drum_class="crash", extension=ext)
    assert not np.array_equal(grown[:, kept:], other[:, kept:])  # the seeds draw the continuation
    with pytest.raises(KitError, match="needs"):
        ring_out(full_model, base, [0], s, drum_class="crash", extension=ext)


# --------------------------------------------------------------------------------------------
# The written kit


def _wavs(kit: Path) -> list[Path]:
    return sorted((kit / "samples").rglob("*.wav"))


def test_every_hit_is_written_with_its_metadata(kit_dir: Path, full_model: LoadedModel) -> None:
    meta = json.loads((kit_dir / "kit.json").read_text())
    files = [h["file"] for p in meta["pads"] for h in p["hits"]]
    assert len(files) == len(set(files)) == 24 * 3
    assert sorted(str(p.relative_to(kit_dir)) for p in _wavs(kit_dir)) == sorted(files)
    assert meta["layer_method"] == "gain" and "no strike-velocity condition" in meta["layer_note"]
    assert set(meta["sha256"]) == set(files)
    sr = full_model.sample_rate
    for pad in meta["pads"]:
        for hit in pad["hits"]:
            audio, rate = sf.read(kit_dir / hit["file"], always_2d=True)
            assert rate == sr and np.isfinite(audio).all() and np.abs(audio).max() > 0
            if pad["gm_class"] in CYMBAL_CLASSES:
                assert len(audio) == round(0.12 * sr)
            assert hit["seed"] >= 0
    # Toms: one drum repitched, so lower notes are longer (resampled down).
    lengths = {
        p["note"]: sf.info(kit_dir / p["hits"][0]["file"]).frames
        for p in meta["pads"]
        if p["gm_class"] == "tom"
    }
    ordered = [lengths[n] for n in sorted(lengths)]
    assert ordered == sorted(ordered, reverse=True) and len(set(ordered)) == len(ordered)


def test_round_robins_differ(kit_dir: Path) -> None:
    meta = json.loads((kit_dir / "kit.json").read_text())
    for pad in meta["pads"]:
        takes = [sf.read(kit_dir / h["file"])[0] for h in pad["hits"]]
        for i in range(len(takes)):
            for j in range(i + 1, len(takes)):
                a, b = takes[i], takes[j]
                n = min(len(a), len(b))
                corr = float(np.dot(a[:n], b[:n]) / (np.linalg.norm(a[:n]) * np.linalg.norm(b[:n])))
                assert corr < 0.99, (
                    f"note {pad['note']}: round robins {i + 1} and {j + 1} are the same hit"
                )


def _parse_sfz(text: str) -> list[dict[str, str]]:
    """Regions with the opcodes they inherit (control/global/group), comments dropped."""
    text = re.sub(r"//[^\n]*", "", text)
    scopes: dict[str, dict[str, str]] = {"control": {}, "global": {}, "group": {}}
    regions: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for token in re.findall(r"<\w+>|\S+=\S+", text):
        if token.startswith("<"):
            header = token[1:-1]
            if header == "region":
                current = {**scopes["control"], **scopes["global"], **scopes["group"]}
                regions.append(current)
            else:
                assert header in scopes, f"unexpected header <{header}>"
                if header == "global":
                    scopes["group"] = {}
                scopes[header] = {}
                current = scopes[header]
        else:
            assert current is not None, f"opcode {token} outside any header"
            key, value = token.split("=", 1)
            current[key] = value
    return regions


def test_sfz_maps_every_key_velocity_and_round_robin(kit_dir: Path) -> None:
    meta = json.loads((kit_dir / "kit.json").read_text())
    text = (kit_dir / "testkit.sfz").read_text()
    assert "layer_method=gain" in text
    regions = _parse_sfz(text)
    assert len(regions) == 24 * 4 * 3
    rr = meta["round_robin"]
    for pad in meta["pads"]:
        mine = [r for r in regions if int(r["key"]) == pad["note"]]
        for r in mine:
            assert r["loop_mode"] == "one_shot"
            assert (kit_dir / r["sample"]).is_file()
            assert int(r["seq_length"]) == rr and int(r["pitch_keycenter"]) == pad["note"]
        for v in range(1, 128):
            playing = [r for r in mine if int(r["lovel"]) <= v <= int(r["hivel"])]
            assert sorted(int(r["seq_position"]) for r in playing) == list(range(1, rr + 1))
            assert len({r["sample"] for r in playing}) == rr
    hats = {int(r["key"]): r for r in regions if int(r["key"]) in HAT_CHOKERS + HAT_CHOKED}
    assert hats[46]["off_by"] == hats[42]["group"] == hats[44]["group"] != hats[46]["group"]
    assert {r.get("group") for r in regions if int(r["key"]) not in hats} == {None}


def test_sfz_passes_sfzlint(kit_dir: Path) -> None:
    parser = pytest.importorskip(
        "sfzlint.parser", reason="sfzlint is not installed (pip install sfzlint)"
    )
    warnings: list[str] = []

    def collect(level: str, message: str, *rest: object) -> None:
        warnings.append(f"{level} {message}")

    def lint(path: Path) -> None:
        # What the `sfzlint` command does: a config with the file's path, so samples are checked.
        parser.validate(path, err_cb=collect, config=parser.SFZValidatorConfig(file_path=path))

    lint(kit_dir / "testkit.sfz")
    assert warnings == []
    # The linter does look: a broken copy is reported.
    broken = kit_dir / "broken.sfz"
    text = (kit_dir / "testkit.sfz").read_text()
    broken.write_text(text.replace("lovel=1 ", "lovel=0 ", 1).replace(".wav", ".wave", 1))
    lint(broken)
    broken.unlink()
    assert any("not in range" in w for w in warnings) and any("not found" in w for w in warnings)


def test_dspreset_uses_documented_elements_and_maps_everything(kit_dir: Path) -> None:
    meta = json.loads((kit_dir / "kit.json").read_text())
    text = (kit_dir / "testkit.dspreset").read_text()
    assert "layer_method=gain" in text
    root = ET.fromstring(text)
    assert root.tag == "DecentSampler" and root.get("minVersion")
    assert [c.tag for c in root] == ["groups"]
    groups = root.find("groups")
    assert groups is not None
    samples: list[tuple[ET.Element, ET.Element]] = []
    for group in groups:
        assert group.tag == "group" and set(group.attrib) <= DS_GROUP_ATTRS
        assert group.get("seqMode") == "round_robin"
        assert re.fullmatch(r"-?[\d.]+dB", group.get("volume", ""))
        for sample in group:
            assert sample.tag == "sample" and set(sample.attrib) <= DS_SAMPLE_ATTRS
            assert {"path", "rootNote"} <= set(sample.attrib)
            assert (kit_dir / sample.get("path", "")).is_file()
            samples.append((group, sample))
    rr = meta["round_robin"]
    for pad in meta["pads"]:
        note = pad["note"]
        mine = [
            (g, s)
            for g, s in samples
            if int(s.get("loNote", -1)) <= note <= int(s.get("hiNote", -1))
        ]
        assert {int(s.get("rootNote", -1)) for _, s in mine} == {note}
        for v in range(1, 128):
            playing = [
                s for _, s in mine if int(s.get("loVel", -1)) <= v <= int(s.get("hiVel", -1))
            ]
            assert sorted(int(s.get("seqPosition", 0)) for s in playing) == list(range(1, rr + 1))
    open_hat = [g for g, s in samples if s.get("rootNote") == "46"]
    closed = [g for g, s in samples if s.get("rootNote") in ("42", "44")]
    choke = open_hat[0].get("silencedByTags")
    assert choke and all(choke in (g.get("tags") or "").split(",") for g in closed)


def _h2_members(kit_dir: Path) -> dict[str, bytes]:
    with tarfile.open(kit_dir / "testkit.h2drumkit", "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_h2drumkit_is_a_kit_folder_with_every_layer(kit_dir: Path) -> None:
    members = _h2_members(kit_dir)
    assert all(name.startswith("testkit/") and name.count("/") == 1 for name in members)
    ns = {"h": "http://www.hydrogen-music.org/drumkit"}
    root = ET.fromstring(members["testkit/drumkit.xml"])
    assert root.tag == "{http://www.hydrogen-music.org/drumkit}drumkit_info"
    assert root.findtext("h:name", namespaces=ns) == "testkit"
    assert "layer_method=gain" in (root.findtext("h:info", namespaces=ns) or "")
    meta = json.loads((kit_dir / "kit.json").read_text())
    instruments = root.findall("h:instrumentList/h:instrument", ns)
    assert [int(i.findtext("h:midiOutNote", namespaces=ns) or -1) for i in instruments] == [
        p["note"] for p in meta["pads"]
    ]
    assert [int(i.findtext("h:id", namespaces=ns) or -1) for i in instruments] == list(
        range(len(instruments))
    )
    for inst, pad in zip(instruments, meta["pads"]):
        assert inst.findtext("h:sampleSelectionAlgo", namespaces=ns) == "ROUND_ROBIN"
        mute = int(inst.findtext("h:muteGroup", namespaces=ns) or 0)
        assert (mute != -1) == (pad["note"] in HAT_CHOKERS + HAT_CHOKED)
        layers = inst.findall("h:instrumentComponent/h:layer", ns)
        assert len(layers) <= HYDROGEN_MAX_LAYERS
        for layer in layers:
            name = layer.findtext("h:filename", namespaces=ns)
            assert f"testkit/{name}" in members
        for v in range(1, 128):
            playing = [
                ly
                for ly in layers
                if float(ly.findtext("h:min", namespaces=ns) or 9)
                <= v / 127
                <= float(ly.findtext("h:max", namespaces=ns) or -9)
            ]
            assert len(playing) == meta["round_robin"]
            assert (
                len({ly.findtext("h:filename", namespaces=ns) for ly in playing})
                == meta["round_robin"]
            )
    # The kit's samples are the same bytes as the loose WAVs.
    plan = load_kit_json(kit_dir / "kit.json")
    for pad in plan.pads:
        for hit in pad.hits:
            assert members[f"testkit/{hydrogen_file(hit)}"] == (kit_dir / hit.file).read_bytes()


def test_h2song_references_the_kit(kit_dir: Path) -> None:
    plan = load_kit_json(kit_dir / "kit.json")
    song = ET.fromstring(hydrogen_song_xml(plan, [(36, 0, 0.9), (38, 48, 0.5)]))
    notes = song.findall("patternList/pattern/noteList/note")
    assert [n.findtext("instrument") for n in notes] == ["0", "2"]
    assert {i.findtext("drumkit") for i in song.findall("instrumentList/instrument")} == {"testkit"}
    with pytest.raises(KitError, match="no pad"):
        hydrogen_song_xml(plan, [(100, 0, 0.5)])


def test_kit_rerenders_byte_identically_from_kit_json(
    kit_dir: Path, full_model: LoadedModel, tmp_path: Path
) -> None:
    plan = load_kit_json(kit_dir / "kit.json")
    write_kit(render_kit(full_model, plan), tmp_path, sample_rate=full_model.sample_rate)
    first = sorted(p.relative_to(kit_dir) for p in kit_dir.rglob("*") if p.is_file())
    second = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert first == second
    for rel in first:
        assert (kit_dir / rel).read_bytes() == (tmp_path / rel).read_bytes(), rel
    # A different model renders a different kit from the same plan.
    other = _model(ALL_CLASSES, seed=2)
    kit = render_kit(other, plan)
    hit = plan.pads[0].hits[0].file
    assert not np.allclose(kit.audio[hit][0], sf.read(kit_dir / hit)[0], atol=1e-3)


def test_kit_json_round_trips_and_refuses_bad_files(kit_dir: Path, tmp_path: Path) -> None:
    data = json.loads((kit_dir / "kit.json").read_text())
    plan = plan_from_dict(data)
    assert plan_to_dict(plan) == {k: v for k, v in data.items() if k != "sha256"}
    bad = json.loads(json.dumps(data))
    bad["pads"][0]["hits"][0]["file"] = "../../etc/evil.wav"
    with pytest.raises(KitError, match="relative .wav path"):
        plan_from_dict(bad)
    bad = json.loads(json.dumps(data))
    bad["layers"][0]["method"] = "model"
    with pytest.raises(KitError, match="layer method"):
        plan_from_dict(bad)
    with pytest.raises(KitError, match="not a drumdiff kit.json"):
        plan_from_dict({"format": "something"})
    bad = json.loads(json.dumps(data))
    del bad["pads"][0]["note"]
    with pytest.raises(KitError, match="has no 'note'"):
        plan_from_dict(bad)
    broken = tmp_path / "kit.json"
    broken.write_text("{not json")
    with pytest.raises(KitError, match="not JSON"):
        load_kit_json(broken)
    with pytest.raises(KitError, match="cannot read"):
        load_kit_json(tmp_path / "missing.json")


def test_h2drumkit_bytes_do_not_depend_on_time(kit_dir: Path) -> None:
    raw = (kit_dir / "testkit.h2drumkit").read_bytes()
    assert raw[4:8] == b"\0\0\0\0"  # gzip mtime
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tar:
        assert {m.mtime for m in tar.getmembers()} == {0}
