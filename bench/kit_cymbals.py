"""Do the kit's cymbals ring out like real ones? Decay of `drumdiff kit`'s crash, ride and open hat
(rendered at the model's length, then grown by `model.kit.ring_out`) against the real cymbals of
the test kits, all at the same length.

Real side: every crash, ride and open-hat hit of the prepared dataset's test split (GMRockKit and
HardElectro1 for the shipped model), read from its original file (the prepared clips are cut to
the model's length), onset-trimmed at -40 dB, peak-normalised, cut or padded to `--length`.
Generated side: `--n` hits per class from the model, both as the kit writes them (ring out) and
as a plain render padded with silence (what a kit would hold without it).

Descriptors, on a 64-sample RMS envelope from `model.features.descriptors` plus a smoothed one:
  decay_s    peak -> last time within 30 dB of it (model.features' `decay_s`)
  t20_s      peak -> first time the 50 ms-smoothed envelope falls 20 dB below its peak
  level_1s, level_2s   RMS level of 100 ms around 1 s and 2 s, dB re the clip's peak
  max_rise_db          the largest rise between consecutive 100 ms RMS blocks after 0.3 s,
                       where one of them is within 60 dB of the peak (a joint where a
                       continuation comes in louder shows up here)

  .venv/bin/python bench/kit_cymbals.py                         # shipped model, 4 hits per class
  .venv/bin/python bench/kit_cymbals.py --n 8 --steps 12 --out bench-results/kit_cymbals.json

Prints a table of medians and writes the JSON (per hit and medians).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from drumdiff.model import DEFAULT_MODEL  # noqa: E402
from drumdiff.model.audio import DrumAudio  # noqa: E402
from drumdiff.model.core.checkpoint import load_checkpoint  # noqa: E402
from drumdiff.model.judge.features import descriptors  # noqa: E402
from drumdiff.model.render.generate import render, settings_for  # noqa: E402
from drumdiff.model.render.kit import CYMBAL_CLASSES, Extension, _hops, ring_out  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

NAMES = ("decay_s", "t20_s", "level_1s", "level_2s", "max_rise_db")


def _block_db(x: np.ndarray, sr: int, block_s: float = 0.1) -> np.ndarray:
    block = int(block_s * sr)
    n = len(x) // block
    rms = np.sqrt(np.square(x[: n * block].reshape(n, block)).mean(axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-10))


def measure(audio: np.ndarray, sr: int) -> dict[str, float]:
    """The descriptors above for one hit (C, T)."""
    x = np.asarray(audio, np.float64).mean(axis=0)
    peak_db = 20 * np.log10(max(float(np.abs(x).max()), 1e-10))
    d = descriptors(audio[None].astype(np.float32), sr)
    smooth = int(0.05 * sr)
    env = np.sqrt(np.convolve(np.square(x), np.ones(smooth) / smooth, mode="same"))
    k = int(np.argmax(env))
    below = np.nonzero(env[k:] < env[k] * 10 ** (-20 / 20))[0]
    t20 = float(below[0] / sr) if below.size else float((len(x) - k) / sr)

    def level_at(t: float) -> float:
        a, b = int((t - 0.05) * sr), int((t + 0.05) * sr)
        if b > len(x):
            return float("nan")
        return float(20 * np.log10(max(float(np.sqrt(np.square(x[a:b]).mean())), 1e-10)) - peak_db)

    blocks = _block_db(x, sr) - peak_db
    start = int(0.3 / 0.1)
    # Rises far below the peak (the last -60 dB) are inaudible and are left out.
    tail = blocks[start:]
    rises = np.diff(tail)[(tail[:-1] > -60.0) | (tail[1:] > -60.0)]
    return {
        "decay_s": float(d["decay_s"][0]),
        "t20_s": t20,
        "level_1s": level_at(1.0),
        "level_2s": level_at(2.0),
        "max_rise_db": float(rises.max()) if rises.size else 0.0,
    }


def real_cymbals(
    dataset: Path, split: str, sr: int, frames: int
) -> list[tuple[str, str, np.ndarray]]:
    rows = [
        json.loads(line)
        for line in (dataset / "index.jsonl").read_text().splitlines()
        if line.strip()
    ]
    out = []
    for row in rows:
        if row.get("split") != split or row.get("label") not in CYMBAL_CLASSES:
            continue
        audio = DrumAudio.from_file(row["source"]).resampled(sr).with_channels(1)
        audio = (
            audio.onset_trimmed(-40.0)
            .peak_normalized(0.95)
            .fixed_length(frames, fade_out=int(0.005 * sr))
        )
        out.append((row["label"], f"{row['kit']}/{Path(row['source']).name}", audio.samples))
    return out


def _medians(items: list[dict], cls: str | None) -> dict[str, float | None]:
    chosen = [i for i in items if cls is None or i["class"] == cls]
    result: dict[str, float | None] = {"n": len(chosen)}  # type: ignore[dict-item]
    for name in NAMES:
        values = [i[name] for i in chosen if np.isfinite(i[name])]
        result[name] = round(statistics.median(values), 3) if values else None
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", default=str(DEFAULT_MODEL))
    p.add_argument("--data", default="/work/data/hydrogen", help="prepared dataset (index.jsonl)")
    p.add_argument("--split", default="test")
    p.add_argument("--length", type=float, default=2.5, help="seconds, both sides")
    p.add_argument("--n", type=int, default=4, help="generated hits per class")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--out", default=str(REPO / "bench-results" / "kit_cymbals.json"))
    args = p.parse_args(argv)
    if args.n < 1:
        p.error("--n must be at least 1")
    model = load_checkpoint(args.checkpoint)
    sr = model.sample_rate
    frames = round(args.length * sr)
    settings = settings_for(model, steps=args.steps)
    ext = Extension(args.length)
    hops = _hops(model, ext)
    real = [
        {"class": cls, "name": name, **measure(audio, sr)}
        for cls, name, audio in real_cymbals(Path(args.data), args.split, sr, frames)
    ]
    ringing, plain = [], []
    started = time.perf_counter()
    with tqdm(total=args.n * len(CYMBAL_CLASSES), unit="hit", desc="cymbals") as bar:
        for cls in CYMBAL_CLASSES:
            for i in range(args.n):
                seed = args.seed + i
                base = render(model, [seed], settings, classes=[cls])[0]
                padded = np.zeros((base.shape[0], frames), np.float32)
                padded[:, : min(frames, base.shape[-1])] = base[:, :frames]
                plain.append({"class": cls, "seed": seed, **measure(padded, sr)})
                seeds = [seed * 100 + k for k in range(hops)]
                grown = ring_out(model, base, seeds, settings, drum_class=cls, extension=ext)
                ringing.append({"class": cls, "seed": seed, **measure(grown, sr)})
                bar.update(1)
    elapsed = time.perf_counter() - started
    summary = {
        side: {cls or "all": _medians(items, cls) for cls in (*CYMBAL_CLASSES, None)}
        for side, items in (("real", real), ("ring_out", ringing), ("plain_render", plain))
    }
    header = f"{'class':<9} {'side':<13} {'n':>3} " + " ".join(f"{n:>11}" for n in NAMES)
    print(header)
    for cls in (*CYMBAL_CLASSES, "all"):
        for side in ("real", "ring_out", "plain_render"):
            m = summary[side][cls]
            cells = " ".join(f"{'-' if m[n] is None else m[n]:>11}" for n in NAMES)
            print(f"{cls:<9} {side:<13} {m['n']:>3} {cells}")
    result = {
        "checkpoint": args.checkpoint,
        "length_s": args.length,
        "steps": settings.steps,
        "sampler": settings.sampler,
        "guidance": settings.guidance,
        "extension": {"lead": ext.lead, "context": ext.context, "trim_s": ext.trim_s, "hops": hops},
        "render_seconds": round(elapsed, 1),
        "medians": summary,
        "hits": {"real": real, "ring_out": ringing, "plain_render": plain},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out} ({elapsed:.0f} s of rendering)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
