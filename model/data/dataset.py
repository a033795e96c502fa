"""Prepare folders of one-shots into a cached dataset, and read it back for training.

A dataset folder holds:
- `clips.npy`: float32 array (N, C, T), memory-mapped by training;
- `index.jsonl`: one row per clip (id, class, split, kit, licence, source, velocity, hash);
- `report.json`: counts per class, split and reject reason, and every rejected file with why;
- `dataset.json`: the processing parameters (rate, channels, length, ...) the clips were made with;
- `cache/`: one processed clip per source file, so a re-run only processes what changed.
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drumdiff.model.audio import AUDIO_EXTENSIONS, DrumAudio
from drumdiff.model.config import DataConfig, ModelConfig
from drumdiff.model.errors import AudioError, DrumDiffError
from drumdiff.model.files import atomic_open, atomic_path
from drumdiff.model.labels import label_from_names

SPLITS = ("train", "validation", "test")
SILENCE_PEAK = 10 ** (-80 / 20)  # files whose peak is below -80 dBFS are silent


@dataclass(frozen=True)
class SourceItem:
    """One audio file found under a source folder, with what is known about it."""

    path: Path
    kit: str
    licence: str
    instrument: str = ""
    velocity: tuple[float, float] | None = None  # Hydrogen layer range, 0..1


@dataclass
class PrepareReport:
    kept: int = 0
    per_class: Counter = field(default_factory=Counter)
    per_split: Counter = field(default_factory=Counter)
    per_reason: Counter = field(default_factory=Counter)
    rejected: list[dict[str, str]] = field(default_factory=list)
    duplicates: int = 0
    reused: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "kept": self.kept,
            "per_class": dict(sorted(self.per_class.items())),
            "per_split": dict(self.per_split),
            "per_reason": dict(sorted(self.per_reason.items())),
            "duplicates": self.duplicates,
            "reused_from_cache": self.reused,
            "rejected": self.rejected,
        }


# --- scanning --------------------------------------------------------------------------------


def _xml_text(element: ET.Element, tag: str, ns: str) -> str:
    found = element.find(ns + tag)
    return (found.text or "").strip() if found is not None and found.text else ""


def read_hydrogen_kit(
    xml_path: Path,
) -> tuple[str, str, list[tuple[Path, str, tuple[float, float] | None]]]:
    """(kit name, licence, [(file, instrument name, velocity range)]) from a drumkit.xml.

    Handles both layouts: `<layer><filename>` (with `<min>/<max>`) and the older
    `<filename>` directly in `<instrument>`.
    """
    root = ET.parse(xml_path).getroot()
    ns = root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""
    kit = _xml_text(root, "name", ns) or xml_path.parent.name
    licence = _xml_text(root, "license", ns) or "unknown"
    files: list[tuple[Path, str, tuple[float, float] | None]] = []
    for inst in root.iter(ns + "instrument"):
        name = _xml_text(inst, "name", ns)
        layers = list(inst.iter(ns + "layer"))
        if layers:
            for layer in layers:
                fname = _xml_text(layer, "filename", ns)
                if not fname:
                    continue
                try:
                    vel = (float(_xml_text(layer, "min", ns)), float(_xml_text(layer, "max", ns)))
                except ValueError:
                    vel = None
                files.append((xml_path.parent / fname, name, vel))
        else:
            fname = _xml_text(inst, "filename", ns)
            if fname:
                files.append((xml_path.parent / fname, name, None))
    return kit, " ".join(licence.split())[:200], files


def scan_sources(
    sources: Sequence[str | Path], *, exclude: Sequence[str] = ()
) -> tuple[list[SourceItem], list[dict[str, str]]]:
    """Every audio file under the sources, labelled with kit metadata where a drumkit.xml exists.

    Files named by a drumkit.xml take its instrument names and licence; other files take their
    kit from the folder under the source root. Returns items sorted by path, and problems found.
    """
    items: dict[Path, SourceItem] = {}
    problems: list[dict[str, str]] = []
    excluded = [e.lower() for e in exclude]
    for source in sources:
        root = Path(source)
        if not root.exists():
            problems.append({"source": str(root), "reason": "missing", "detail": "no such path"})
            continue
        if root.is_file():
            candidates = [root]
            base = root.parent
        else:
            candidates = sorted(p for p in root.rglob("*") if p.is_file())
            base = root
        for xml_path in (p for p in candidates if p.name == "drumkit.xml"):
            try:
                kit, licence, files = read_hydrogen_kit(xml_path)
            except (ET.ParseError, OSError) as err:
                problems.append(
                    {"source": str(xml_path), "reason": "bad_kit_xml", "detail": str(err)[:120]}
                )
                continue
            for path, inst, vel in files:
                items[path.resolve()] = SourceItem(path.resolve(), kit, licence, inst, vel)
        for path in candidates:
            if path.suffix.lower() not in AUDIO_EXTENSIONS:
                continue
            resolved = path.resolve()
            if resolved in items:
                continue
            rel = path.relative_to(base) if path != base else Path(path.name)
            kit = rel.parts[0] if len(rel.parts) > 1 else base.name
            items[resolved] = SourceItem(resolved, kit, _folder_licence(path, base))
    kept = [
        item
        for path, item in sorted(items.items())
        if not any(e in str(path).lower() or e in item.kit.lower() for e in excluded)
    ]
    return kept, problems


def _folder_licence(path: Path, base: Path) -> str:
    for folder in [path.parent, *path.parent.parents]:
        for name in ("LICENSE", "LICENSE.txt", "LICENCE", "COPYING", "license.txt"):
            candidate = folder / name
            if candidate.is_file():
                try:
                    return candidate.read_text(errors="replace").strip().splitlines()[0][:200]
                except (OSError, IndexError):
                    return "unknown"
        if folder == base or folder == folder.parent:
            break
    return "unknown"


# --- processing one file ---------------------------------------------------------------------


def process_clip(path: Path, model: ModelConfig, data: DataConfig) -> np.ndarray:
    """Load -> channels -> resample -> onset trim -> cut/pad with fade -> peak normalise.

    Raises AudioError with a short reason for anything unusable.
    """
    audio = DrumAudio.from_file(path, max_seconds=data.max_source_s)
    if audio.peak < SILENCE_PEAK:
        raise AudioError("silent")
    audio = audio.with_channels(model.audio_channels).resampled(model.sample_rate)
    audio = audio.onset_trimmed(data.onset_threshold_db)
    audio = audio.fixed_length(model.length, int(data.fade_out_s * model.sample_rate))
    if audio.peak < SILENCE_PEAK:
        raise AudioError("silent")
    out = audio.peak_normalized(data.peak).samples
    if not np.isfinite(out).all():
        raise AudioError("contains NaN or Inf after processing")
    return out


def content_hash(clip: np.ndarray) -> str:
    """Hash of a normalised clip, coarsely quantised so near-exact copies collide."""
    quantised = np.round(clip * 512).astype(np.int16)
    return hashlib.sha1(quantised.tobytes()).hexdigest()[:16]


#: Two normalised clips whose samples all differ by at most this are one sound (a copy saved at
#: another level, bit depth or format). Coarse hashing alone misses them: a sample of one copy
#: on a rounding boundary flips the whole hash.
NEAR_DUPLICATE_TOLERANCE = 2.0 / 512


class DuplicateFinder:
    """Exact copies by content hash; near-exact copies by a max-difference check.

    Candidates are found through the clip's mean absolute level (copies within the tolerance
    lie in the same or a neighbouring bucket of that width), then a 64-block signature, then
    the full clip, so a large dataset is not compared all against all.
    """

    def __init__(self, tolerance: float = NEAR_DUPLICATE_TOLERANCE) -> None:
        self.tolerance = tolerance
        self.by_hash: dict[str, str] = {}
        # bucket -> (clips, their signatures, their sources), appended in step
        self.buckets: dict[int, tuple[list[np.ndarray], list[np.ndarray], list[str]]] = {}

    def _signature(self, clip: np.ndarray) -> np.ndarray:
        flat = clip.reshape(-1)
        blocks = 64 if flat.size % 64 == 0 else 1
        return flat.reshape(blocks, -1).mean(axis=1)

    def _bucket(self, clip: np.ndarray) -> int:
        return int(float(np.abs(clip).mean()) // self.tolerance)

    def find(self, clip: np.ndarray, digest: str) -> str | None:
        """The source of an earlier clip this one duplicates, or None."""
        if digest in self.by_hash:
            return self.by_hash[digest]
        signature, bucket = self._signature(clip), self._bucket(clip)
        for b in (bucket - 1, bucket, bucket + 1):
            if b not in self.buckets:
                continue
            clips, signatures, sources = self.buckets[b]
            # One vectorised test of the whole bucket; only close signatures get a full compare.
            close = np.abs(np.asarray(signatures) - signature).max(axis=1) <= self.tolerance
            for i in np.flatnonzero(close):
                other = clips[i]
                if other.shape == clip.shape and np.abs(other - clip).max() <= self.tolerance:
                    return sources[i]
        return None

    def add(self, clip: np.ndarray, digest: str, source: str) -> None:
        self.by_hash[digest] = source
        clips, signatures, sources = self.buckets.setdefault(self._bucket(clip), ([], [], []))
        clips.append(clip)
        signatures.append(self._signature(clip))
        sources.append(source)


def processing_key(model: ModelConfig, data: DataConfig) -> dict[str, object]:
    return {
        "sample_rate": model.sample_rate,
        "audio_channels": model.audio_channels,
        "length": model.length,
        "peak": data.peak,
        "fade_out_s": data.fade_out_s,
        "onset_threshold_db": data.onset_threshold_db,
        "max_source_s": data.max_source_s,
        "version": 1,
    }


def _cache_name(path: Path, key: dict[str, object]) -> str:
    stat = path.stat()
    ident = json.dumps([str(path), stat.st_size, stat.st_mtime_ns, key], sort_keys=True)
    return hashlib.sha1(ident.encode()).hexdigest()


# --- splitting -------------------------------------------------------------------------------


def split_kits(
    kit_sizes: dict[str, int],
    *,
    seed: int,
    validation: float,
    test: float,
    test_kits: Sequence[str] = (),
    validation_kits: Sequence[str] = (),
) -> dict[str, str]:
    """Assign whole kits to splits so no kit is in two splits.

    Named kits go where named; the rest are shuffled by a seeded hash and given to test, then
    validation, until each holds its share of clips; everything else trains.
    """
    total = sum(kit_sizes.values())
    assignment = {k: "test" for k in test_kits if k in kit_sizes}
    assignment.update({k: "validation" for k in validation_kits if k in kit_sizes})
    order = sorted(
        (k for k in kit_sizes if k not in assignment),
        key=lambda k: hashlib.sha1(f"{seed}:{k}".encode()).hexdigest(),
    )
    counts = Counter(
        {s: sum(kit_sizes[k] for k, v in assignment.items() if v == s) for s in SPLITS}
    )
    for kit in order:
        if len(kit_sizes) > 2 and not test_kits and counts["test"] < test * total:
            split = "test"
        elif (
            len(kit_sizes) > 2 and not validation_kits and counts["validation"] < validation * total
        ):
            split = "validation"
        else:
            split = "train"
        assignment[kit] = split
        counts[split] += kit_sizes[kit]
    return assignment


# --- the whole run ---------------------------------------------------------------------------


def prepare_dataset(
    sources: Sequence[str | Path],
    out: str | Path,
    model: ModelConfig,
    data: DataConfig,
    *,
    exclude: Sequence[str] = (),
    test_kits: Sequence[str] = (),
    validation_kits: Sequence[str] = (),
    progress: Callable[[Iterable[SourceItem]], Iterable[SourceItem]] | None = None,
) -> PrepareReport:
    """Scan, process, deduplicate, label and split; write the dataset folder. Never stops on a
    bad file: each one is listed in the report with its reason."""
    out = Path(out)
    cache = out / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    key = processing_key(model, data)
    report = PrepareReport()
    items, problems = scan_sources(sources, exclude=exclude)
    for problem in problems:
        report.per_reason[problem["reason"]] += 1
        report.rejected.append(problem)
    clips: list[np.ndarray] = []
    rows: list[dict[str, object]] = []
    duplicates = DuplicateFinder()
    iterator: Iterable[SourceItem] = progress(items) if progress else items
    for item in iterator:
        try:
            if not item.path.is_file():
                raise AudioError("missing (named by a kit but not on disk)")
            cached = cache / f"{_cache_name(item.path, key)}.npy"
            if cached.exists():
                clip = np.load(cached)
                report.reused += 1
            else:
                clip = process_clip(item.path, model, data)
                with atomic_open(cached, fsync=False) as fh:  # a cache: rebuilt if lost
                    np.save(fh, clip)
        except AudioError as err:
            reason = str(err).split(":")[0].split(" (")[0]
            report.per_reason[reason] += 1
            report.rejected.append({"source": str(item.path), "reason": reason, "detail": str(err)})
            continue
        digest = content_hash(clip)
        original = duplicates.find(clip, digest)
        if original is not None:
            report.duplicates += 1
            report.per_reason["duplicate"] += 1
            report.rejected.append(
                {"source": str(item.path), "reason": "duplicate", "detail": f"same as {original}"}
            )
            continue
        duplicates.add(clip, digest, str(item.path))
        label = label_from_names(item.instrument, item.path.stem, item.path.parent.name)
        clips.append(clip)
        rows.append(
            {
                "label": label,
                "kit": item.kit,
                "licence": item.licence,
                "source": str(item.path),
                "instrument": item.instrument,
                "velocity": list(item.velocity) if item.velocity else None,
                "hash": digest,
            }
        )
    if not rows:
        raise DrumDiffError("no usable audio found in the sources; see the report for each file")
    kit_sizes = Counter(str(r["kit"]) for r in rows)
    assignment = split_kits(
        dict(kit_sizes),
        seed=data.split_seed,
        validation=data.validation_kits,
        test=data.test_kits,
        test_kits=test_kits,
        validation_kits=validation_kits,
    )
    with atomic_path(out / "clips.npy") as tmp:
        array = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=np.float32, shape=(len(clips), *clips[0].shape)
        )
        for i, clip in enumerate(clips):
            array[i] = clip
        array.flush()
        del array
    with atomic_open(out / "index.jsonl", "w") as fh:
        for i, row in enumerate(rows):
            row = {"id": i, "split": assignment[str(row["kit"])], **row}
            fh.write(json.dumps(row) + "\n")
            report.per_class[str(row["label"])] += 1
            report.per_split[str(row["split"])] += 1
    report.kept = len(rows)
    (out / "dataset.json").write_text(
        json.dumps({**key, "count": len(rows), "kits": assignment}, indent=2) + "\n"
    )
    (out / "report.json").write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return report


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetInfo:
    sample_rate: int
    audio_channels: int
    length: int
    count: int


class DrumDataset:
    """A prepared dataset: memory-mapped clips and their index rows, filtered by split.

    `classes` maps labels to the model's class ids; labels the model does not know fall back to
    "other" when the model has it, else the clip is left out.
    """

    def __init__(
        self, folder: str | Path, classes: Sequence[str], *, splits: Sequence[str] = ("train",)
    ) -> None:
        self.folder = Path(folder)
        clips_path = self.folder / "clips.npy"
        if not clips_path.exists():
            raise DrumDiffError(
                f"{self.folder} is not a prepared dataset (no clips.npy); run `drumdiff prepare`"
            )
        meta = json.loads((self.folder / "dataset.json").read_text())
        self.info = DatasetInfo(
            int(meta["sample_rate"]),
            int(meta["audio_channels"]),
            int(meta["length"]),
            int(meta["count"]),
        )
        self.clips = np.load(clips_path, mmap_mode="r")
        self.classes = tuple(classes)
        self.splits = tuple(splits)
        rows = [
            json.loads(line)
            for line in (self.folder / "index.jsonl").read_text().splitlines()
            if line
        ]
        lookup = {c: i for i, c in enumerate(self.classes)}
        fallback = lookup.get("other")
        if len(self.classes) == 1:
            fallback = 0  # an unconditional model takes every clip
        self.rows: list[dict[str, Any]] = []
        self.labels: list[int] = []
        for row in rows:
            if row["split"] not in splits:
                continue
            cid = lookup.get(str(row["label"]), fallback)
            if cid is None:
                continue
            self.rows.append(row)
            self.labels.append(cid)
        self.indices = np.array([int(r["id"]) for r in self.rows], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def clip(self, i: int) -> np.ndarray:
        return np.array(self.clips[self.indices[i]], dtype=np.float32)

    def check_compatible(self, model: ModelConfig) -> None:
        if (self.info.sample_rate, self.info.audio_channels, self.info.length) != (
            model.sample_rate,
            model.audio_channels,
            model.length,
        ):
            raise DrumDiffError(
                f"dataset {self.folder} holds {self.info.audio_channels}-channel clips of "
                f"{self.info.length} samples at {self.info.sample_rate} Hz, but the model wants "
                f"{model.audio_channels} x {model.length} at {model.sample_rate} Hz; re-run "
                "prepare "
                "with this config"
            )

    def class_counts(self) -> dict[str, int]:
        counts = Counter(self.labels)
        return {self.classes[i]: counts.get(i, 0) for i in range(len(self.classes))}
