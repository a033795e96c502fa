"""What gain-made velocity layers miss: brightness, attack and level against strike velocity in the
real layered instruments of the prepared dataset, beside what `drumdiff kit`'s layers do.

`drumdiff kit` makes a soft layer by playing the same render quieter (`layer_method="gain"`), so
its spectral centroid and attack time do not move with velocity at all, by construction. Real
kits' layers are separate strikes. For every instrument of the dataset with at least 3 velocity
layers (Hydrogen `<min>`/`<max>` ranges, recorded by `drumdiff prepare` in index.jsonl), this
measures per layer, on the prepared clips (`model.features.descriptors`), the spectral centroid
and the 10-90 % attack time, and from the original file the peak level, then reports per class
the median over instruments of: softest / hardest centroid, softest / hardest attack, the level
of the softest layer re the hardest (dB), and the rank correlation of centroid with velocity.

  .venv/bin/python bench/kit_layers.py            # writes bench-results/kit_layers.json

No model is run: the generated side is exact (ratios 1, correlation undefined).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf

from drumdiff.model.judge.features import descriptors

REPO = Path(__file__).resolve().parent.parent


def _rank_corr(x: list[float], y: list[float]) -> float:
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    if np.std(rx) == 0 or np.std(ry) == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", default="/work/data/hydrogen", help="prepared dataset")
    p.add_argument("--min-layers", type=int, default=3)
    p.add_argument("--out", default=str(REPO / "bench-results" / "kit_layers.json"))
    args = p.parse_args(argv)
    data = Path(args.data)
    meta = json.loads((data / "dataset.json").read_text())
    rows = [
        json.loads(line) for line in (data / "index.jsonl").read_text().splitlines() if line.strip()
    ]
    clips = np.load(data / "clips.npy", mmap_mode="r")
    if len(clips) != len(rows):
        raise SystemExit(f"{data}: {len(rows)} index rows but {len(clips)} clips")
    groups: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for i, row in enumerate(rows):
        if row.get("velocity"):
            groups[(row["kit"], row["instrument"], row["label"])].append({**row, "clip": i})
    per_instrument = []
    for (kit, instrument, label), layers in sorted(groups.items()):
        layers = sorted(layers, key=lambda r: sum(r["velocity"]))
        if len({tuple(r["velocity"]) for r in layers}) < args.min_layers:
            continue
        audio = np.stack([np.asarray(clips[r["clip"]]) for r in layers])
        d = descriptors(audio, int(meta["sample_rate"]))
        peaks = [float(np.abs(sf.read(r["source"], dtype="float32")[0]).max()) for r in layers]
        velocity = [sum(r["velocity"]) / 2 for r in layers]
        centroid, attack = d["centroid_hz"].tolist(), d["attack_s"].tolist()
        per_instrument.append(
            {
                "kit": kit,
                "instrument": instrument,
                "class": label,
                "layers": len(layers),
                "velocity": velocity,
                "centroid_hz": [round(c, 1) for c in centroid],
                "attack_s": [round(a, 5) for a in attack],
                "level_db": [round(20 * np.log10(max(pk, 1e-9) / max(peaks)), 2) for pk in peaks],
                "centroid_soft_over_hard": centroid[0] / centroid[-1],
                "attack_soft_over_hard": attack[0] / attack[-1] if attack[-1] > 0 else float("nan"),
                "level_soft_re_hard_db": 20 * np.log10(max(peaks[0], 1e-9) / max(peaks[-1], 1e-9)),
                "centroid_velocity_rank_corr": _rank_corr(velocity, centroid),
            }
        )
    keys = (
        "centroid_soft_over_hard",
        "attack_soft_over_hard",
        "level_soft_re_hard_db",
        "centroid_velocity_rank_corr",
    )
    summary = {}
    for cls in sorted({i["class"] for i in per_instrument}) + ["all"]:
        chosen = [i for i in per_instrument if cls in ("all", i["class"])]
        summary[cls] = {"instruments": len(chosen)}
        for key in keys:
            values = [i[key] for i in chosen if np.isfinite(i[key])]
            summary[cls][key] = round(statistics.median(values), 3) if values else None
    print(
        f"{'class':<11} {'n':>3} {'centroid soft/hard':>19} {'attack soft/hard':>17} "
        f"{'level soft dB':>14} {'rank corr':>10}"
    )
    for cls, m in summary.items():
        print(
            f"{cls:<11} {m['instruments']:>3} {m['centroid_soft_over_hard']!s:>19} "
            f"{m['attack_soft_over_hard']!s:>17} "
            f"{m['level_soft_re_hard_db']!s:>14} {m['centroid_velocity_rank_corr']!s:>10}"
        )
    print(
        "drumdiff kit, layer_method=gain: centroid and attack soft/hard = 1 exactly, level = "
        "-layer span (12 dB)"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "data": str(data),
                "generated_gain_layers": {
                    "centroid_soft_over_hard": 1.0,
                    "attack_soft_over_hard": 1.0,
                },
                "medians": summary,
                "instruments": per_instrument,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
