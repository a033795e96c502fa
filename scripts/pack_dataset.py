"""Copy some splits of a prepared dataset into a smaller one, e.g. to train on a remote GPU.

    python scripts/pack_dataset.py /data/hydrogen /tmp/packed --splits train validation --float16

The packed folder is an ordinary prepared dataset (clips.npy, index.jsonl, dataset.json) holding
only the named splits, renumbered; float16 halves its size (training reads clips as float32).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def pack(source: Path, out: Path, splits: list[str], float16: bool) -> int:
    """Write the packed dataset; returns the number of clips kept."""
    rows = [json.loads(line) for line in (source / "index.jsonl").read_text().splitlines() if line]
    kept = [row for row in rows if row["split"] in splits]
    if not kept:
        raise ValueError(f"no clips in splits {splits} of {source}")
    clips = np.load(source / "clips.npy", mmap_mode="r")
    packed = np.stack([np.asarray(clips[int(row["id"])]) for row in kept])
    if float16:
        packed = packed.astype(np.float16)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "clips.npy", packed)
    with open(out / "index.jsonl", "w") as fh:
        for new_id, row in enumerate(kept):
            fh.write(json.dumps({**row, "id": new_id}) + "\n")
    meta = json.loads((source / "dataset.json").read_text())
    meta["count"] = len(kept)
    meta["kits"] = {kit: split for kit, split in meta.get("kits", {}).items() if split in splits}
    meta["packed_from"] = str(source)
    (out / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    return len(kept)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("source", type=Path, help="a dataset folder from `drumdiff prepare`")
    p.add_argument("out", type=Path, help="where to write the packed dataset")
    p.add_argument("--splits", nargs="+", default=["train", "validation"])
    p.add_argument("--float16", action="store_true", help="store clips as float16 (half the size)")
    args = p.parse_args(argv)
    if not (args.source / "clips.npy").exists():
        print(f"error: {args.source} is not a prepared dataset (no clips.npy)", file=sys.stderr)
        return 2
    try:
        count = pack(args.source, args.out, args.splits, args.float16)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    size = (args.out / "clips.npy").stat().st_size / 2**20
    print(f"packed {count} clips of {args.splits} into {args.out} ({size:.1f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
