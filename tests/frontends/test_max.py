"""The Max for Live device: .amxd chunks, patcher JSON, boxes and patch lines, and the OSC
addresses both frontends use against server/protocol.py."""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import max_objects
import pdfile
import pytest

from drumdiff.server import protocol

REPO = Path(__file__).resolve().parents[2]
M4L = REPO / "max_for_live"
DEVICE = M4L / "M4L.drumdiff.amxd"
SOURCE = M4L / "M4L.drumdiff.maxpat"
PD = REPO / "pd_patches" / "drumdiff.pd"

_spec = importlib.util.spec_from_file_location("amxd", M4L / "amxd.py")
assert _spec is not None and _spec.loader is not None
amxd = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(amxd)

#: Requests and replies every frontend must speak.
CORE = (
    protocol.HELLO,
    protocol.HELLO_REPLY,
    protocol.RENDER,
    protocol.DONE,
    protocol.FAIL,
    protocol.STATUS,
    protocol.STATUS_REPLY,
)


def walk(patcher: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every patcher dict, the top one and the subpatchers inside boxes."""
    yield patcher
    for entry in patcher["boxes"]:
        inner = entry["box"].get("patcher")
        if inner is not None:
            yield from walk(inner)


@pytest.fixture(scope="module")
def device() -> tuple[bytes, int, dict[str, Any]]:
    return amxd.parse_amxd(DEVICE.read_bytes())


def test_amxd_chunks(device: tuple[bytes, int, dict[str, Any]]) -> None:
    data = DEVICE.read_bytes()
    chunks = amxd.read_chunks(data)
    assert [tag for tag, _ in chunks] == [b"ampf", b"meta", b"ptch"]
    assert len(chunks[0][1]) == 4 and len(chunks[1][1]) == 4
    assert len(chunks[2][1]) == len(data) - 32, "ptch fills the rest of the file"
    device_type, meta, _ = device
    assert device_type == b"iiii", "an instrument: MIDI in, audio out"
    assert meta in (0, 1, 7)


def test_amxd_is_built_from_the_maxpat(
    device: tuple[bytes, int, dict[str, Any]], tmp_path: Path
) -> None:
    source = json.loads(SOURCE.read_text())
    assert device[2] == source, "run `python max_for_live/amxd.py build` after editing the .maxpat"
    out = tmp_path / "built.amxd"
    assert amxd.main(["build", "--maxpat", str(SOURCE), "--amxd", str(out)]) == 0
    assert out.read_bytes() == DEVICE.read_bytes()
    back = tmp_path / "back.maxpat"
    assert amxd.main(["extract", "--maxpat", str(back), "--amxd", str(out)]) == 0
    assert json.loads(back.read_text()) == source


def test_amxd_parser_rejects_broken_files() -> None:
    good = DEVICE.read_bytes()
    with pytest.raises(ValueError, match="claims"):
        amxd.parse_amxd(good[:-10])
    with pytest.raises(ValueError, match="NUL"):
        amxd.parse_amxd(amxd.build_amxd({"patcher": {}})[:-1] + b" ")
    with pytest.raises(ValueError, match="frozen"):
        ptch = b"mx@c" + b"\x00" * 12
        amxd.parse_amxd(good[:24] + b"ptch" + len(ptch).to_bytes(4, "little") + ptch)


def test_patcher_essentials(device: tuple[bytes, int, dict[str, Any]]) -> None:
    top = device[2]["patcher"]
    assert top["classnamespace"] == "box" and top["appversion"]["major"] >= 8
    assert top["openinpresentation"] == 1 and top["devicewidth"] > 0


def test_ids_unique_and_lines_within_ports(device: tuple[bytes, int, dict[str, Any]]) -> None:
    for patcher in walk(device[2]["patcher"]):
        boxes = [entry["box"] for entry in patcher["boxes"]]
        ids = [b["id"] for b in boxes]
        assert len(ids) == len(set(ids)), "duplicate box ids"
        by_id = {b["id"]: b for b in boxes}
        seen = set()
        for entry in patcher["lines"]:
            line = entry["patchline"]
            (src, outlet), (dst, inlet) = line["source"], line["destination"]
            assert src in by_id and dst in by_id, f"patchline {line} joins a missing box"
            assert 0 <= outlet < by_id[src]["numoutlets"], (
                f"{line}: {by_id[src].get('text')} outlet"
            )
            assert 0 <= inlet < by_id[dst]["numinlets"], f"{line}: {by_id[dst].get('text')} inlet"
            assert (src, outlet, dst, inlet) not in seen, f"duplicate patchline {line}"
            seen.add((src, outlet, dst, inlet))


def test_every_object_is_a_real_max_object_with_its_counts(
    device: tuple[bytes, int, dict[str, Any]],
) -> None:
    for patcher in walk(device[2]["patcher"]):
        for entry in patcher["boxes"]:
            box = entry["box"]
            ins, outs = max_objects.counts(box)  # KeyError: not a known Max object
            assert (box["numinlets"], box["numoutlets"]) == (ins, outs), box
            assert len(box.get("outlettype", [])) == outs, box
            if box.get("presentation"):
                assert len(box.get("presentation_rect", [])) == 4, (
                    f"{box['id']} has no presentation_rect"
                )


def test_live_parameters_saved_with_the_set(device: tuple[bytes, int, dict[str, Any]]) -> None:
    top = device[2]["patcher"]
    live = [
        e["box"]
        for e in top["boxes"]
        if e["box"]["maxclass"].startswith("live.") and e["box"]["maxclass"] != "live.comment"
    ]
    names = [b["saved_attribute_attributes"]["valueof"]["parameter_longname"] for b in live]
    assert len(names) == len(set(names)), "parameter long names must be unique"
    assert {"Class", "Steps", "Guidance", "Variation", "Pool"} <= set(names)
    for b in live:
        assert b["parameter_enable"] == 1 and b["varname"]
        valueof = b["saved_attribute_attributes"]["valueof"]
        assert valueof["parameter_initial_enable"] == 1 and valueof["parameter_initial"]
        assert top["parameters"][b["id"]][0] == valueof["parameter_longname"]
    classes = next(b for b in live if b["varname"] == "Class")["saved_attribute_attributes"][
        "valueof"
    ]
    from drumdiff.server.config import GM_DRUM_MAP

    assert set(GM_DRUM_MAP.values()) <= set(classes["parameter_enum"])


def _texts(device: tuple[bytes, int, dict[str, Any]], maxclass: str | None = None) -> list[str]:
    return [
        e["box"].get("text", "")
        for p in walk(device[2]["patcher"])
        for e in p["boxes"]
        if maxclass is None or e["box"]["maxclass"] == maxclass
    ]


def test_device_transport_and_playback(device: tuple[bytes, int, dict[str, Any]]) -> None:
    objects = _texts(device, "newobj")
    assert any(re.fullmatch(r"udpsend 127\.0\.0\.1 \d+", t) for t in objects)
    assert any(re.fullmatch(r"udpreceive \d+ @defer 1", t) for t in objects)
    buffers = [t.split()[1] for t in objects if t.startswith("buffer~ ")]
    players = [t.split()[1] for t in objects if t.startswith("play~ ")]
    assert len(buffers) >= 2 and all(name.startswith("---") for name in buffers), (
        "device-local buffer~ per voice"
    )
    assert sorted(players) == sorted(buffers)
    assert "prepend replace" in objects, "files are loaded with buffer~ replace"
    assert "plugout~" in objects and "notein" in objects and "live.thisdevice" in objects


# ---------------------------------------------------------------------------------------------
# OSC addresses in both frontends


def max_addresses(device: tuple[bytes, int, dict[str, Any]]) -> set[str]:
    found = set()
    for text in _texts(device, "message") + _texts(device, "newobj"):
        found |= set(re.findall(r"/drumdiff/[A-Za-z0-9_.]+", text))
    return found


def pd_addresses() -> set[str]:
    """Sent: `oscformat drumdiff <name>`; received: the [route] after [route drumdiff]."""
    canvas = pdfile.parse(PD)[0]
    found = set()
    for box in canvas.boxes:
        if box.kind == "obj" and box.text[:1] == ["oscformat"]:
            found.add("/" + "/".join(box.text[1:]))
    prefixes = [
        b.index for b in canvas.boxes if b.kind == "obj" and b.text == ["route", "drumdiff"]
    ]
    assert len(prefixes) == 1
    for a, outlet, b, _ in canvas.connects:
        if a == prefixes[0] and outlet == 0:
            names = canvas.boxes[b].text[1:]
            found |= {f"/drumdiff/{name}" for name in names}
    return found


@pytest.mark.parametrize("frontend", ["pd", "max"])
def test_frontend_addresses_are_the_protocols(
    frontend: str, device: tuple[bytes, int, dict[str, Any]]
) -> None:
    used = pd_addresses() if frontend == "pd" else max_addresses(device)
    unknown = used - set(protocol.SPECS)
    assert not unknown, (
        f"{frontend} uses addresses server/protocol.py does not define: {sorted(unknown)}"
    )
    missing = set(CORE) - used
    assert not missing, f"{frontend} does not use the core addresses {sorted(missing)}"
    sent = {a for a in used if protocol.SPECS[a].direction == "in"}
    assert sent <= set(protocol.PARSERS), "every request a frontend sends has a parser"
