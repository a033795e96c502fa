"""The files of a fine-tune folder besides the training run's own: the job's state, the cheap
judge's timeline, the cached base-model renders and the report's audio (see
`train.finetune` for the folder as a whole)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from drumdiff.model.errors import DrumDiffError
from drumdiff.model.files import write_text_atomic
from drumdiff.model.judge.evaluate import HitSet
from drumdiff.model.train.finetune_report import model_card, report_html

STATE_FILE = "finetune.json"
JUDGE_FILE = "judge.jsonl"
STATE_VERSION = 1
BASE_RENDERS_FILE = "base_renders.npz"
AUDIO_FOLDER = "audio"
REPORT_JSON = "report.json"
REPORT_PAGE = "report.html"
MODEL_CARD = "MODEL_CARD.md"


def now() -> str:
    """The time stamps of the state and the report: UTC, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --- the job's state -------------------------------------------------------------------------


def read_state(out: Path) -> dict[str, Any]:
    """The state of the job in `out`, refused when missing, damaged or of another version."""
    path = out / STATE_FILE
    if not path.exists():
        raise DrumDiffError(f"{out} is not a fine-tune folder (no {STATE_FILE})")
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DrumDiffError(f"{path} is damaged ({err})") from None
    if state.get("version") != STATE_VERSION:
        raise DrumDiffError(
            f"{path} has version {state.get('version')!r}; this drumdiff reads {STATE_VERSION}"
        )
    return state


def write_state(out: Path, state: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / STATE_FILE, json.dumps(state, indent=2) + "\n")


# --- the cheap judge's timeline --------------------------------------------------------------


def read_timeline(out: Path) -> list[dict[str, Any]]:
    """Every cheap judge so far, by step (the last one of a step wins)."""
    path = out / JUDGE_FILE
    if not path.exists():
        return []
    rows: dict[int, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            rows[int(row["step"])] = row
    return [rows[k] for k in sorted(rows)]


def append_judge_row(out: Path, row: dict[str, Any]) -> None:
    with open(out / JUDGE_FILE, "a") as fh:
        fh.write(json.dumps(row) + "\n")


# --- the base model's renders ----------------------------------------------------------------


def load_base_renders(out: Path, key: dict[str, Any], classes: tuple[str, ...]) -> HitSet | None:
    """The cached base renders when they were made for `key`, else None."""
    cache = out / BASE_RENDERS_FILE
    if not cache.exists():
        return None
    stored = np.load(cache)
    if json.loads(str(stored["key"])) != key:
        return None
    return HitSet(
        stored["audio"], stored["labels"], classes, seeds=tuple(int(s) for s in stored["seeds"])
    )


def save_base_renders(out: Path, key: dict[str, Any], hits: HitSet) -> None:
    np.savez(
        out / BASE_RENDERS_FILE,
        audio=hits.audio,
        labels=hits.labels,
        seeds=np.asarray(hits.seeds),
        key=json.dumps(key),
    )


# --- the report ----------------------------------------------------------------------------


def write_report_json(out: Path, report: dict[str, Any]) -> Path:
    path = out / REPORT_JSON
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


def write_report_pages(
    out: Path, report: dict[str, Any], audio: dict[str, dict[str, list[str]]]
) -> dict[str, Path]:
    """The report's page (with `audio`, see `write_report_audio`) and the model card, beside
    report.json."""
    page = out / REPORT_PAGE
    page.write_text(report_html(report, audio))
    card = out / MODEL_CARD
    card.write_text(model_card(report))
    return {"card": card, "report": page, "report_json": out / REPORT_JSON}


# --- the report's audio ----------------------------------------------------------------------


def _write_wavs(
    folder: Path, names: Sequence[str], audio: Sequence[np.ndarray], sample_rate: int
) -> list[str]:
    from drumdiff.model.wav import write_wav_atomic

    for name, hit in zip(names, audio):
        write_wav_atomic(folder / name, hit, sample_rate)
    return list(names)


def write_report_audio(
    out: Path,
    classes: Sequence[str],
    renders: dict[str, HitSet],
    held: HitSet,
    present: Sequence[str],
    per_class: int,
    sample_rate: int,
) -> dict[str, dict[str, list[str]]]:
    """WAVs for the report page: up to `per_class` hits of each `present` class from each set of
    `renders` and from the held-out hits; class -> set -> file names."""
    folder = out / AUDIO_FOLDER
    folder.mkdir(exist_ok=True)
    written: dict[str, dict[str, list[str]]] = {}
    for cid, cname in enumerate(classes):
        if cname not in present:
            continue
        entry: dict[str, list[str]] = {}
        for tag, hits in renders.items():
            idx = np.nonzero(hits.labels == cid)[0][:per_class]
            names = [f"{cname}_{tag}_{hits.seeds[k] if hits.seeds else k}.wav" for k in idx]
            entry[tag] = _write_wavs(folder, names, [hits.audio[k] for k in idx], sample_rate)
        idx = np.nonzero(held.labels == cid)[0][:per_class]
        names = [f"{cname}_held_out_{j}.wav" for j in range(len(idx))]
        entry["held-out"] = _write_wavs(folder, names, [held.audio[k] for k in idx], sample_rate)
        written[cname] = entry
    return written
