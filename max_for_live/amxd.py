"""Build the Max for Live device (.amxd) from its readable source (.maxpat), or the reverse.

    python max_for_live/amxd.py build      # M4L.drumdiff.maxpat -> M4L.drumdiff.amxd
    python max_for_live/amxd.py extract    # M4L.drumdiff.amxd -> M4L.drumdiff.maxpat
    python max_for_live/amxd.py check      # exit 1 if the two differ

An .amxd is a sequence of chunks, each a 4-byte ASCII tag, a little-endian uint32 size and the
data: `ampf` (4 bytes, the device type: `iiii` instrument, `aaaa` audio effect, `mmmm` MIDI
effect), `meta` (4 bytes, a uint32), then `ptch`, the patcher JSON (the same keys as a .maxpat)
terminated by a NUL byte. Frozen (`mx@c`) and encrypted (`ciph`) devices are not handled.

Edit the device in Max, save it (or "Save As" the patcher as .maxpat), then run `extract` or
`build` so both files stay in step; tests/frontends/test_max.py checks that they do.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEVICE = HERE / "M4L.drumdiff.amxd"
SOURCE = HERE / "M4L.drumdiff.maxpat"

DEVICE_TYPES = {b"iiii": "instrument", b"aaaa": "audio effect", b"mmmm": "MIDI effect"}


def read_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """The (tag, payload) chunks of an .amxd file; ValueError if the layout is broken."""
    chunks, pos = [], 0
    while pos < len(data):
        if pos + 8 > len(data):
            raise ValueError(f"truncated chunk header at byte {pos}")
        tag = data[pos : pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        if pos + 8 + size > len(data):
            raise ValueError(
                f"chunk {tag!r} at byte {pos} claims {size} bytes, {len(data) - pos - 8} left"
            )
        chunks.append((tag, data[pos + 8 : pos + 8 + size]))
        pos += 8 + size
    return chunks


def parse_amxd(data: bytes) -> tuple[bytes, int, dict[str, Any]]:
    """(device type tag, meta value, patcher JSON) of an unfrozen, unencrypted .amxd."""
    chunks = read_chunks(data)
    tags = [tag for tag, _ in chunks]
    if tags[:3] != [b"ampf", b"meta", b"ptch"]:
        raise ValueError(f"expected chunks ampf, meta, ptch; got {tags}")
    device_type, meta, ptch = (payload for _, payload in chunks[:3])
    if device_type not in DEVICE_TYPES or len(meta) != 4:
        raise ValueError(f"bad ampf {device_type!r} or meta of {len(meta)} bytes")
    if ptch.startswith(b"mx@c"):
        raise ValueError("frozen device: unfreeze it in Max first")
    if not ptch.endswith(b"\x00"):
        raise ValueError("ptch data must end with a NUL byte")
    patcher = json.loads(ptch[:-1].decode("utf-8"))
    return device_type, struct.unpack("<I", meta)[0], patcher


def encode_json(patcher: dict[str, Any]) -> bytes:
    return (json.dumps(patcher, indent="\t", ensure_ascii=False) + "\n").encode("utf-8")


def build_amxd(patcher: dict[str, Any], device_type: bytes = b"iiii", meta: int = 1) -> bytes:
    """The .amxd bytes for a patcher dict (`{"patcher": {...}}`)."""
    if "patcher" not in patcher:
        raise ValueError('a device patcher is a JSON object with a "patcher" key')
    ptch = encode_json(patcher) + b"\x00"
    return (
        b"ampf" + struct.pack("<I", 4) + device_type
        + b"meta" + struct.pack("<I", 4) + struct.pack("<I", meta)
        + b"ptch" + struct.pack("<I", len(ptch)) + ptch
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("command", choices=("build", "extract", "check"))
    p.add_argument("--maxpat", type=Path, default=SOURCE, help="readable patcher source")
    p.add_argument("--amxd", type=Path, default=DEVICE, help="Max for Live device")
    args = p.parse_args(argv)
    if args.command == "build":
        args.amxd.write_bytes(build_amxd(json.loads(args.maxpat.read_text())))
        print(f"wrote {args.amxd}")
    elif args.command == "extract":
        _, _, patcher = parse_amxd(args.amxd.read_bytes())
        args.maxpat.write_bytes(encode_json(patcher))
        print(f"wrote {args.maxpat}")
    else:
        _, _, patcher = parse_amxd(args.amxd.read_bytes())
        if patcher != json.loads(args.maxpat.read_text()):
            print(
                f"{args.amxd.name} and {args.maxpat.name} differ: run `build` or `extract`",
                file=sys.stderr,
            )
            return 1
        print("in step")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
