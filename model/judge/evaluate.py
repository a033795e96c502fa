"""The quality judge: how close rendered hits are to real hits from kits the model never saw.

Every number is measured on the dataset's test split and reported beside a floor measured the
same way between two disjoint halves of the real test set, so "3x the floor" means the same thing
whatever the feature space. The pieces:

- distances: Fréchet distance and unbiased KID (cubic polynomial kernel MMD^2) in the drum
  classifier's embedding and in a fixed hand-made feature space (`features.handcrafted_features`);
- class fidelity: the share of hits rendered for class c that the classifier puts in c, against
  the same share on real test hits (the ceiling);
- diversity: precision/recall (Kynkäänniemi et al. 2019) and coverage (Naeem et al. 2020) in the
  embedding, and mean pairwise distance against the real set's;
- memorisation: each render's nearest training hit by log-mel cosine similarity; renders above
  the highest real test->train similarity are flagged as copies;
- producer descriptors (`features.descriptors`): medians generated vs real, and sanity checks.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from drumdiff.model.core.checkpoint import LoadedModel
from drumdiff.model.errors import DrumDiffError
from drumdiff.model.judge.classifier import DrumClassifierModel, accuracy_report
from drumdiff.model.judge.features import (
    DESCRIPTORS,
    copy_vectors,
    descriptors,
    handcrafted_features,
)

#: Classes whose fidelity the default model must keep.
KEY_CLASSES = ("kick", "snare", "closed_hat", "clap")
#: A half-set smaller than this gives distances too noisy to read much into; they are marked.
RELIABLE_HALF = 8
#: Below this many items per half no distance is reported: with two, a covariance is one line and
#: a near-duplicate pair (two velocity layers of one drum) makes the floor ~0 and the ratio absurd.
MIN_HALF = 3


def json_safe(value: Any) -> Any:
    """A report value made JSON-safe: NaN/inf become null, numpy scalars Python numbers."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class EvaluationError(DrumDiffError, ValueError):
    """The judge cannot run on what it was given."""


@dataclass(frozen=True)
class HitSet:
    """Hits with their class: audio float32 (N, C, T), labels (N,) indices into `classes`."""

    audio: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    seeds: tuple[int, ...] | None = None  # per hit, for renders
    ids: tuple[int, ...] | None = None  # dataset row ids, for real hits

    def __post_init__(self) -> None:
        if self.audio.ndim != 3 or len(self.audio) != len(self.labels):
            raise EvaluationError(
                f"hits need audio (N, C, T) and N labels, got {self.audio.shape} and "
                f"{len(self.labels)}"
            )


@dataclass(frozen=True)
class HitFeatures:
    """What the judge measures about each hit of a HitSet."""

    embedding: np.ndarray  # (N, D) classifier penultimate features
    proba: np.ndarray  # (N, K) classifier probabilities over the classifier's classes
    hand: np.ndarray  # (N, H) hand-made features, standardised by the real test set
    copy: np.ndarray  # (N, F) unit log-mel vectors for the copy detector
    descriptors: dict[str, np.ndarray]  # name -> (N,)


def real_hits(dataset_dir: str | Path, classes: Sequence[str], split: str) -> HitSet:
    """The clips of one split of a prepared dataset, labelled with the model's class ids."""
    from drumdiff.model.data.dataset import DrumDataset  # the daemon never needs dataset code

    ds = DrumDataset(dataset_dir, classes, splits=(split,))
    if len(ds) == 0:
        raise EvaluationError(f"{dataset_dir} has no {split} clips for classes {list(classes)}")
    audio = np.stack([ds.clip(i) for i in range(len(ds))])
    return HitSet(
        audio,
        np.asarray(ds.labels, dtype=np.int64),
        tuple(classes),
        ids=tuple(int(i) for i in ds.indices),
    )


def sample_per_class(hits: HitSet, n_per_class: int, seed: int = 0) -> HitSet:
    """Up to `n_per_class` hits of every class, drawn without replacement (a reference set)."""
    rng = np.random.default_rng(seed)
    keep = []
    for ci in range(len(hits.classes)):
        idx = np.nonzero(hits.labels == ci)[0]
        keep.extend(sorted(rng.choice(idx, min(n_per_class, len(idx)), replace=False).tolist()))
    rows = np.asarray(keep, dtype=np.int64)
    ids = tuple(hits.ids[i] for i in rows) if hits.ids is not None else None
    return HitSet(hits.audio[rows], hits.labels[rows], hits.classes, ids=ids)


# --- distances -------------------------------------------------------------------------------


def _sqrtm_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to a (N, D) and b (M, D).

    tr(sqrt(S_a S_b)) is computed as tr(sqrt(S_a^1/2 S_b S_a^1/2)), a symmetric PSD matrix, so
    eigh suffices and rank-deficient covariances (fewer items than dimensions) are fine.
    """
    if len(a) < 2 or len(b) < 2:
        raise EvaluationError("the Fréchet distance needs at least two items per set")
    mu = a.mean(0) - b.mean(0)
    sa = np.atleast_2d(np.cov(a, rowvar=False))
    sb = np.atleast_2d(np.cov(b, rowvar=False))
    root = _sqrtm_psd(sa)
    cross = np.linalg.eigvalsh(root @ sb @ root)
    value = float(
        mu @ mu + np.trace(sa) + np.trace(sb) - 2 * np.sqrt(np.clip(cross, 0, None)).sum()
    )
    return max(value, 0.0)


def kernel_distance(a: np.ndarray, b: np.ndarray, *, unbiased: bool = True) -> float:
    """MMD^2 with the KID kernel k(x, y) = (x.y / D + 1)^3 (Bińkowski et al. 2018).

    The unbiased estimate (KID) drops the diagonals, so it can dip below zero when the sets
    match; between two halves of one finite set it is negative on average (the halves are
    drawn without replacement). The biased estimate (`unbiased=False`) keeps them: it is never
    negative, and at equal set sizes its bias is the same for generated-vs-real and the floor,
    which makes it the one to divide by a floor.
    """
    n, m = len(a), len(b)
    if n < 2 or m < 2:
        raise EvaluationError("the kernel distance needs at least two items per set")
    d = a.shape[1]
    kaa = (a @ a.T / d + 1) ** 3
    kbb = (b @ b.T / d + 1) ** 3
    kab = (a @ b.T / d + 1) ** 3
    if not unbiased:
        return float(max(kaa.mean() + kbb.mean() - 2 * kab.mean(), 0.0))
    return float(
        (kaa.sum() - np.trace(kaa)) / (n * (n - 1))
        + (kbb.sum() - np.trace(kbb)) / (m * (m - 1))
        - 2 * kab.mean()
    )


def stratified_halves(
    labels: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint index sets with floor(n_c / 2) items of every class c each (equal sizes)."""
    a: list[int] = []
    b: list[int] = []
    for c in np.unique(labels):
        idx = rng.permutation(np.nonzero(labels == c)[0])
        half = len(idx) // 2
        a += idx[:half].tolist()
        b += idx[half : 2 * half].tolist()
    return np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)


def matched_subset(
    labels: np.ndarray, composition: Counter, rng: np.random.Generator
) -> np.ndarray:
    """Indices with `composition[c]` items of each class c (without replacement when possible)."""
    out: list[int] = []
    for c, count in composition.items():
        pool = np.nonzero(labels == c)[0]
        if len(pool) == 0:
            raise EvaluationError(f"no generated hits of class id {c} to compare")
        out += rng.choice(pool, size=count, replace=len(pool) < count).tolist()
    return np.asarray(out, dtype=np.int64)


def _ratio(value: float | None, floor: float | None) -> float | None:
    if value is None or floor is None or not floor > 0:
        return None  # an unbiased KID floor can be <= 0; a ratio to it means nothing
    return float(value / floor)


def distances_with_floor(
    real: np.ndarray,
    real_labels: np.ndarray,
    gen: np.ndarray,
    gen_labels: np.ndarray,
    *,
    repeats: int,
    seed: int,
) -> dict[str, Any]:
    """FD and KID of generated vs real beside the real-vs-real floor, at equal set sizes.

    Each repeat splits the real set into stratified halves A and B, draws generated hits with
    A's class composition, and measures d(generated, B) and the floor d(A, B). Means over the
    repeats are reported; ratio = mean distance / mean floor. KID (unbiased) is reported with its
    floor, which can be <= 0, so its ratio is taken on the biased MMD^2 ("mmd_ratio").
    """
    rng = np.random.default_rng(seed)
    fd: list[float] = []
    fd_floor: list[float] = []
    kid: list[float] = []
    kid_floor: list[float] = []
    mmd: list[float] = []
    mmd_floor: list[float] = []
    half = 0
    for _ in range(repeats):
        ia, ib = stratified_halves(real_labels, rng)
        half = len(ia)
        if half < MIN_HALF:
            break
        ig = matched_subset(gen_labels, Counter(real_labels[ia].tolist()), rng)
        a, b, g = real[ia], real[ib], gen[ig]
        fd.append(frechet_distance(g, b))
        fd_floor.append(frechet_distance(a, b))
        kid.append(kernel_distance(g, b))
        kid_floor.append(kernel_distance(a, b))
        mmd.append(kernel_distance(g, b, unbiased=False))
        mmd_floor.append(kernel_distance(a, b, unbiased=False))
    if not fd:
        return {
            "items_per_half": half,
            "reliable": False,
            "fd": None,
            "fd_floor": None,
            "fd_ratio": None,
            "kid": None,
            "kid_floor": None,
            "kid_ratio": None,
            "mmd": None,
            "mmd_floor": None,
            "mmd_ratio": None,
        }
    out: dict[str, Any] = {"items_per_half": half, "reliable": half >= RELIABLE_HALF}
    for name, values, floors in (
        ("fd", fd, fd_floor),
        ("kid", kid, kid_floor),
        ("mmd", mmd, mmd_floor),
    ):
        out[name] = float(np.mean(values))
        out[f"{name}_std"] = float(np.std(values))
        out[f"{name}_floor"] = float(np.mean(floors))
        out[f"{name}_ratio"] = _ratio(out[name], out[f"{name}_floor"])
    return out


# --- diversity -------------------------------------------------------------------------------


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T
    return np.sqrt(np.clip(sq, 0, None))


def nearest_neighbour_ratio(
    real: np.ndarray, gen: np.ndarray, *, repeats: int = 10, seed: int = 0
) -> dict[str, Any]:
    """How far renders sit from real hits, beside how far real hits sit from each other.

    For a handful of real hits (a test kit holds ~7 kicks) a Frechet distance between halves of
    3 is noise; nearest neighbours are not. Both ways, count-matched to the floor: each render's
    distance to its nearest of n - 1 real hits, and each real hit's to its nearest of n - 1
    renders, over each real hit's distance to its nearest other real hit. 1 = renders are as
    close to the kit as its own hits are to each other; it grows with both missing and made-up
    sounds. Mean over `repeats` random subsets.
    """
    n = len(real)
    if n < 3 or len(gen) < n - 1:
        return {"ratio": None, "distance": None, "floor": None, "real": n}
    rr = _pairwise(real, real)
    np.fill_diagonal(rr, np.inf)
    floor = float(rr.min(axis=1).mean())
    rg = _pairwise(real, gen)  # (R, G)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(repeats):
        keep_real = rng.choice(n, n - 1, replace=False)
        keep_gen = rng.choice(len(gen), n - 1, replace=False)
        to_real = rg[keep_real].min(axis=0).mean()  # every render to its nearest of n - 1 real
        to_gen = (
            rg[:, keep_gen].min(axis=1).mean()
        )  # every real hit to its nearest of n - 1 renders
        values.append(0.5 * (to_real + to_gen))
    distance = float(np.mean(values))
    return {"ratio": _ratio(distance, floor), "distance": distance, "floor": floor, "real": n}


def mean_pairwise_distance(x: np.ndarray) -> float | None:
    if len(x) < 2:
        return None
    d = _pairwise(x, x)
    return float(d.sum() / (len(x) * (len(x) - 1)))


def precision_recall_coverage(
    real: np.ndarray, gen: np.ndarray, k: int = 5
) -> dict[str, float | None]:
    """k-NN manifold precision and recall, and coverage; None when a set is too small for k."""
    k = min(k, len(real) - 1, len(gen) - 1)
    if k < 1:
        return {"precision": None, "recall": None, "coverage": None, "k": None}
    rr = _pairwise(real, real)
    gg = _pairwise(gen, gen)
    rg = _pairwise(real, gen)  # (R, G)
    r_radius = np.sort(rr, axis=1)[:, k]  # column 0 is the point itself
    g_radius = np.sort(gg, axis=1)[:, k]
    precision = float((rg <= r_radius[:, None]).any(axis=0).mean())  # gen inside real manifold
    recall = float((rg <= g_radius[None, :]).any(axis=1).mean())  # real inside gen manifold
    coverage = float((rg.min(axis=1) <= r_radius).mean())  # real whose k-ball holds a gen hit
    return {"precision": precision, "recall": recall, "coverage": coverage, "k": k}


# --- the reference: real test hits, training hits, the classifier ----------------------------


@dataclass
class Reference:
    """Everything measured once about the real data, shared by every judged set."""

    test: HitSet
    test_features: HitFeatures
    train_copy: np.ndarray  # (N_train, F) copy-detector vectors of the training hits
    train_ids: tuple[int, ...]
    copy_threshold: float  # highest real test -> train similarity
    hand_mean: np.ndarray
    hand_scale: np.ndarray
    classifier: DrumClassifierModel
    sample_rate: int
    dataset: str = ""
    kits: tuple[str, ...] = ()
    ceiling: dict[str, Any] = field(default_factory=dict)
    copy_reference: dict[str, Any] = field(
        default_factory=dict
    )  # where the copy threshold comes from

    @property
    def classes(self) -> tuple[str, ...]:
        return self.test.classes


def _classifier_targets(classes: Sequence[str], classifier: DrumClassifierModel) -> np.ndarray:
    """For each model class id, the classifier's index of the same name, or -1."""
    return np.array(
        [classifier.classes.index(c) if c in classifier.classes else -1 for c in classes]
    )


def featurize(
    hits: HitSet,
    classifier: DrumClassifierModel,
    sample_rate: int,
    hand_mean: np.ndarray,
    hand_scale: np.ndarray,
) -> HitFeatures:
    hand = (handcrafted_features(hits.audio, sample_rate) - hand_mean) / hand_scale
    return HitFeatures(
        embedding=classifier.embed(hits.audio, sample_rate).astype(np.float64),
        proba=classifier.predict_proba(hits.audio, sample_rate),
        hand=hand,
        copy=copy_vectors(hits.audio, sample_rate),
        descriptors=descriptors(hits.audio, sample_rate),
    )


def nearest_train(
    copy: np.ndarray, train_copy: np.ndarray, chunk: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """(similarity, index) of each query's nearest training hit by cosine similarity."""
    sims = np.empty(len(copy))
    idx = np.empty(len(copy), dtype=np.int64)
    for start in range(0, len(copy), chunk):
        s = copy[start : start + chunk] @ train_copy.T
        idx[start : start + chunk] = s.argmax(axis=1)
        sims[start : start + chunk] = s.max(axis=1)
    return sims, idx


def build_reference(
    test: HitSet,
    train: HitSet,
    classifier: DrumClassifierModel,
    sample_rate: int,
    *,
    dataset: str = "",
    kits: Sequence[str] = (),
) -> Reference:
    """Measure the real test hits, and index the training hits for the copy detector."""
    raw_hand = handcrafted_features(test.audio, sample_rate)
    mean = raw_hand.mean(0)
    # Hand features are all in dB-like units; a 1 dB floor on the scale keeps a dimension that is
    # constant in the real set (a silent segment) from blowing up by 1/epsilon.
    scale = np.maximum(raw_hand.std(0), 1.0)
    feats = featurize(test, classifier, sample_rate, mean, scale)
    train_copy = copy_vectors(train.audio, sample_rate)
    sims, nearest = nearest_train(feats.copy, train_copy)
    top = int(sims.argmax())
    train_ids = train.ids or tuple(range(len(train.audio)))
    ref = Reference(
        test=test,
        test_features=feats,
        train_copy=train_copy,
        train_ids=train_ids,
        copy_threshold=float(sims.max()),
        copy_reference={
            "test_id": test.ids[top] if test.ids else top,
            "train_id": int(train_ids[int(nearest[top])]),
            "real_test_to_train_percentiles": dict(
                zip(("p50", "p90", "p99"), np.percentile(sims, [50, 90, 99]).tolist())
            ),
        },
        hand_mean=mean,
        hand_scale=scale,
        classifier=classifier,
        sample_rate=sample_rate,
        dataset=dataset,
        kits=tuple(kits),
    )
    ref.ceiling = class_fidelity(test, feats, classifier)
    return ref


# --- scoring one set of hits -----------------------------------------------------------------


def class_fidelity(
    hits: HitSet, feats: HitFeatures, classifier: DrumClassifierModel
) -> dict[str, Any]:
    """Per model class: share of its hits the classifier puts in that class; confusion matrix."""
    targets = _classifier_targets(hits.classes, classifier)
    pred = feats.proba.argmax(axis=1)
    confusion = np.zeros((len(hits.classes), len(classifier.classes)), dtype=np.int64)
    for label, p in zip(hits.labels, pred):
        confusion[int(label), int(p)] += 1
    per_class: dict[str, float | None] = {}
    for ci, name in enumerate(hits.classes):
        mask = hits.labels == ci
        per_class[name] = (
            float((pred[mask] == targets[ci]).mean()) if mask.any() and targets[ci] >= 0 else None
        )
    known = targets[hits.labels] >= 0
    micro = float((pred[known] == targets[hits.labels][known]).mean()) if known.any() else None
    return {
        "per_class": per_class,
        "micro": micro,
        "confusion": {
            "rows": list(hits.classes),
            "columns": list(classifier.classes),
            "matrix": confusion.tolist(),
        },
    }


def _quantiles(x: np.ndarray) -> tuple[float | None, float | None, float | None]:
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return None, None, None
    p10, p50, p90 = np.percentile(x, [10, 50, 90])
    return float(p10), float(p50), float(p90)


def descriptor_summary(gen: dict[str, np.ndarray], real: dict[str, np.ndarray]) -> dict[str, Any]:
    """Medians (and 10th/90th percentiles) generated vs real, with ratio or dB difference."""
    out: dict[str, Any] = {}
    for name, (unit, compare) in DESCRIPTORS.items():
        g10, g50, g90 = _quantiles(gen[name])
        r10, r50, r90 = _quantiles(real[name])
        row: dict[str, Any] = {
            "unit": unit,
            "generated_median": g50,
            "generated_p10": g10,
            "generated_p90": g90,
            "real_median": r50,
            "real_p10": r10,
            "real_p90": r90,
            "generated_measured": int(np.isfinite(gen[name]).sum()),
        }
        if name == "clipped":
            row["generated_share"] = float(np.nanmean(gen[name])) if len(gen[name]) else None
            row["real_share"] = float(np.nanmean(real[name])) if len(real[name]) else None
        elif compare == "ratio":
            row["ratio"] = float(g50 / r50) if g50 is not None and r50 else None
        else:
            row["delta_db"] = float(g50 - r50) if g50 is not None and r50 is not None else None
        out[name] = row
    return out


def sanity(gen: dict[str, np.ndarray], real: dict[str, np.ndarray]) -> dict[str, Any]:
    """Listen-free checks: DC, clipping, silence before the onset, tail no louder than real."""
    n = max(1, len(gen["peak"]))
    pre = gen["pre_onset_db"]
    real_tail = _quantiles(real["tail_db"])[1]
    gen_tail = _quantiles(gen["tail_db"])[1]
    return {
        "dc_over_-60dBFS": int((gen["dc_db"] > -60).sum()),
        "real_dc_over_-60dBFS": int((real["dc_db"] > -60).sum()),
        "clipped": int(np.nansum(gen["clipped"])),
        "real_clipped": int(np.nansum(real["clipped"])),
        "pre_onset_over_-60dBFS": int((np.nan_to_num(pre, nan=-200.0) > -60).sum()),
        "tail_median_db": gen_tail,
        "real_tail_median_db": real_tail,
        "tail_above_real": bool(
            gen_tail is not None and real_tail is not None and gen_tail > real_tail
        ),
        "count": n,
    }


def grid_peaks_db(audio: np.ndarray, period: int, harmonics: int = 7) -> float | None:
    """How far the set's average spectrum rises at multiples of sample_rate / `period`, in dB.

    A patched network can leave a pattern that repeats every patch (`period` samples): a buzz at
    the patch rate and its multiples. For each of the first `harmonics` multiples, the peak
    (within 2 bins) over the median of its neighbourhood (5 to 40 bins away); their mean.
    Real kits score near 0 (the Hydrogen test kits: 1.4 dB); hits with a patch-rate buzz score
    well above (white-noise bursts: 0.4 dB; a pattern at a third of the level: > 6 dB).
    """
    x = np.asarray(audio, dtype=np.float64)
    if x.shape[0] == 0 or period < 2:
        return None
    length = x.shape[-1]
    power = np.square(np.abs(np.fft.rfft(x.reshape(-1, length), axis=-1))).mean(axis=0)
    heights = []
    for k in range(1, harmonics + 1):
        centre = int(round(k * length / period))
        if centre + 40 >= len(power):
            break
        neighbours = np.concatenate(
            [power[centre - 40 : centre - 4], power[centre + 5 : centre + 41]]
        )
        heights.append(
            10 * np.log10(power[centre - 2 : centre + 3].max() / max(np.median(neighbours), 1e-30))
        )
    return float(np.mean(heights)) if heights else None


def _subset(d: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[mask] for k, v in d.items()}


def score(
    ref: Reference,
    hits: HitSet,
    feats: HitFeatures,
    *,
    repeats: int = 10,
    seed: int = 0,
    k: int = 5,
    grid_period: int | None = None,
) -> dict[str, Any]:
    """Every measure of one set of generated hits against the reference, overall and per class.

    `grid_period` (the model's patch size) adds the patch-grid buzz check to the sanity block.
    """
    if hits.classes != ref.classes:
        raise EvaluationError(
            f"hits are labelled with {hits.classes}, the reference with {ref.classes}"
        )
    real, rf = ref.test, ref.test_features
    sims, nearest = nearest_train(feats.copy, ref.train_copy)
    flagged = sims > ref.copy_threshold
    fidelity = class_fidelity(hits, feats, ref.classifier)

    def block(gmask: np.ndarray, rmask: np.ndarray) -> dict[str, Any]:
        glab, rlab = hits.labels[gmask], real.labels[rmask]
        out: dict[str, Any] = {"generated": int(gmask.sum()), "real": int(rmask.sum())}
        if gmask.sum() == 0 or rmask.sum() == 0:
            return out
        out["distances"] = {
            space: distances_with_floor(
                getattr(rf, attr)[rmask],
                rlab,
                getattr(feats, attr)[gmask],
                glab,
                repeats=repeats,
                seed=seed,
            )
            for space, attr in (("embedding", "embedding"), ("handcrafted", "hand"))
        }
        out["nearest"] = {
            space: nearest_neighbour_ratio(
                getattr(rf, attr)[rmask], getattr(feats, attr)[gmask], repeats=repeats, seed=seed
            )
            for space, attr in (("embedding", "embedding"), ("handcrafted", "hand"))
        }
        pg = mean_pairwise_distance(feats.embedding[gmask])
        pr = mean_pairwise_distance(rf.embedding[rmask])
        out["diversity"] = {
            **precision_recall_coverage(rf.embedding[rmask], feats.embedding[gmask], k),
            "pairwise_generated": pg,
            "pairwise_real": pr,
            "pairwise_ratio": _ratio(pg, pr),
        }
        out["memorisation"] = {
            "max_similarity": float(sims[gmask].max()),
            "flagged": int(flagged[gmask].sum()),
        }
        gd, rd = _subset(feats.descriptors, gmask), _subset(rf.descriptors, rmask)
        out["descriptors"] = descriptor_summary(gd, rd)
        out["sanity"] = sanity(gd, rd)
        if grid_period:
            out["sanity"]["grid_period"] = grid_period
            out["sanity"]["grid_peaks_db"] = grid_peaks_db(hits.audio[gmask], grid_period)
            out["sanity"]["real_grid_peaks_db"] = grid_peaks_db(real.audio[rmask], grid_period)
        return out

    overall = block(np.ones(len(hits.labels), bool), np.ones(len(real.labels), bool))
    shares = [v for v in fidelity["per_class"].values() if v is not None]
    overall["fidelity"] = {
        "micro": fidelity["micro"],
        "macro": float(np.mean(shares)) if shares else None,
        "ceiling_micro": ref.ceiling["micro"],
        "confusion": fidelity["confusion"],
    }
    per_class: dict[str, Any] = {}
    for ci, name in enumerate(hits.classes):
        entry = block(hits.labels == ci, real.labels == ci)
        share, ceiling = fidelity["per_class"][name], ref.ceiling["per_class"].get(name)
        entry["fidelity"] = {"share": share, "ceiling": ceiling, "ratio": _ratio(share, ceiling)}
        per_class[name] = entry
    copies = [
        {
            "class": hits.classes[int(hits.labels[i])],
            "seed": hits.seeds[i] if hits.seeds else None,
            "item": int(i),
            "train_id": int(ref.train_ids[int(nearest[i])]),
            "similarity": float(sims[i]),
        }
        for i in np.nonzero(flagged)[0]
    ]
    return {
        "overall": overall,
        "per_class": per_class,
        "copies": copies,
        "copy_threshold": ref.copy_threshold,
    }


#: Classes whose body, attack and decay the default model must get right.
BODY_CLASSES = ("kick", "snare", "tom")
CLASS_DISTANCE_TARGET = 2.0  # every class's distance to the test kits, x its floor
BODY_DESCRIPTORS = ("centroid_hz", "decay20_s", "attack_s")
GRID_MARGIN_DB = 2.0  # patch-grid lines at most this far above the real kits'
START_LEVEL_TARGET = (
    0.1  # a kick's first sample below this share of its peak (unless real ones are not)
)


def class_distance(entry: dict[str, Any]) -> dict[str, Any]:
    """One class's distance x floor: the Frechet ratio when its halves are big enough to trust,
    else the nearest-neighbour ratio (see `nearest_neighbour_ratio`)."""
    fd = entry.get("distances", {}).get("embedding", {})
    if fd.get("reliable") and fd.get("fd_ratio") is not None:
        return {"value": fd["fd_ratio"], "measure": "fd"}
    nn = entry.get("nearest", {}).get("embedding", {})
    return {"value": nn.get("ratio"), "measure": "nearest"}


def targets(result: dict[str, Any]) -> dict[str, Any]:
    """The default model's targets, checked on one scored set."""
    overall = result["overall"]
    fd_ratio = overall.get("distances", {}).get("embedding", {}).get("fd_ratio")
    fidelity = {}
    for name in KEY_CLASSES:
        entry = result["per_class"].get(name)
        if entry is not None:
            ratio = entry["fidelity"]["ratio"]
            fidelity[name] = {"ratio": ratio, "met": None if ratio is None else ratio >= 0.9}
    descs = {}
    for name, row in overall.get("descriptors", {}).items():
        if "ratio" in row:
            r = row["ratio"]
            descs[name] = {"ratio": r, "met": None if r is None else abs(r - 1) <= 0.2}
    distances: dict[str, Any] = {}
    grid: dict[str, Any] = {}
    for name, entry in result["per_class"].items():
        if "distances" not in entry:
            continue
        d = class_distance(entry)
        distances[name] = {
            **d,
            "met": None if d["value"] is None else d["value"] <= CLASS_DISTANCE_TARGET,
        }
        gen_db = entry.get("sanity", {}).get("grid_peaks_db")
        real_db = entry.get("sanity", {}).get("real_grid_peaks_db")
        if gen_db is not None and real_db is not None:
            above = gen_db - real_db
            grid[name] = {"above_real_db": above, "met": above <= GRID_MARGIN_DB}
    body: dict[str, Any] = {}
    for name in BODY_CLASSES:
        rows = result["per_class"].get(name, {}).get("descriptors", {})
        checks = {}
        for desc in BODY_DESCRIPTORS:
            r = rows.get(desc, {}).get("ratio")
            checks[desc] = {"ratio": r, "met": None if r is None else abs(r - 1) <= 0.2}
        if rows:
            body[name] = checks
    kick_start = result["per_class"].get("kick", {}).get("descriptors", {}).get("start_level", {})
    gen_start, real_start = kick_start.get("generated_median"), kick_start.get("real_median")
    limit = max(START_LEVEL_TARGET, real_start or 0.0)
    return {
        "fd_embedding_ratio": {
            "value": fd_ratio,
            "target": "<= 3",
            "met": None if fd_ratio is None else fd_ratio <= 3,
        },
        "class_fidelity": {"target": ">= 0.9 of ceiling", "classes": fidelity},
        "copies": {"value": len(result["copies"]), "met": len(result["copies"]) == 0},
        "descriptor_medians": {"target": "within 20% of real", "descriptors": descs},
        "class_distance": {"target": f"<= {CLASS_DISTANCE_TARGET} x floor", "classes": distances},
        "body_descriptors": {"target": "medians within 20% of the test kits'", "classes": body},
        "kick_start_level": {
            "value": gen_start,
            "real": real_start,
            "target": f"< {limit:.3g}",
            "met": None if gen_start is None else gen_start < limit,
        },
        "grid_peaks": {"target": f"<= {GRID_MARGIN_DB} dB above the real kits'", "classes": grid},
    }


# --- sets to judge ---------------------------------------------------------------------------


def render_hits(
    model: LoadedModel,
    n_per_class: int,
    steps: int,
    *,
    seed: int = 0,
    batch_size: int = 16,
    overrides: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
    finished: bool = True,
) -> tuple[HitSet, dict[str, Any]]:
    """Render `n_per_class` hits of every model class with seeds seed..seed+n-1 (the same seeds
    for every class and step count, so step counts are compared on the same starting noise).

    `progress(k)` is called after each sampler step with the number of hits in the batch.
    `finished=False` renders without the class envelope limit, the patch-grid suppression and
    the tail gate, to judge what the network makes before finishing polishes it. Returns the
    hits and the render settings used.
    """
    from drumdiff.model.render.generate import render, settings_for

    if not finished:
        raw = replace(model.config.finish, class_envelopes=(), grid_threshold=0.0, tail_gate_db=0.0)
        model = replace(model, config=replace(model.config, finish=raw))

    settings = settings_for(model, steps=steps, **(overrides or {}))
    classes = tuple(model.classes)
    labels = np.repeat(np.arange(len(classes)), n_per_class)
    seeds = [seed + i for _ in classes for i in range(n_per_class)]
    chunks = []
    started = time.perf_counter()
    for start in range(0, len(seeds), batch_size):
        batch = seeds[start : start + batch_size]
        names = [classes[int(c)] for c in labels[start : start + batch_size]]

        def advance(i: int, n: int, b: int = len(batch)) -> None:  # b: this batch's size
            assert progress is not None  # passed to render only when there is one
            progress(b)

        chunks.append(
            render(
                model,
                batch,
                settings,
                classes=names,
                progress=advance if progress else None,
            )
        )
    seconds = time.perf_counter() - started
    info = {
        **settings.describe(),
        "seconds": seconds,
        "seconds_per_hit": seconds / len(seeds),
        "finished": finished,
    }
    return HitSet(np.concatenate(chunks), labels, classes, seeds=tuple(seeds)), info


def noise_bursts(
    classes: Sequence[str],
    n_per_class: int,
    length: int,
    sample_rate: int,
    *,
    channels: int = 1,
    seed: int = 0,
    decay_s: tuple[float, float] = (0.02, 0.4),
) -> HitSet:
    """The baseline every model must beat: white noise with an instant onset and an exponential
    decay (time constant log-uniform in `decay_s`), peak 0.95, labelled as each class in turn."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / sample_rate
    audio = np.empty((len(classes) * n_per_class, channels, length), np.float32)
    for i in range(len(audio)):
        tau = float(np.exp(rng.uniform(np.log(decay_s[0]), np.log(decay_s[1]))))
        hit = rng.standard_normal((channels, length)) * np.exp(-t / tau)
        audio[i] = 0.95 * hit / np.abs(hit).max()
    labels = np.repeat(np.arange(len(classes)), n_per_class)
    return HitSet(
        audio,
        labels,
        tuple(classes),
        seeds=tuple(seed + i for _ in classes for i in range(n_per_class)),
    )


@dataclass
class JudgedSet:
    """One judged set: its hits and features (for plots and audio) and its scores (for JSON)."""

    name: str
    hits: HitSet
    features: HitFeatures
    scores: dict[str, Any]
    render: dict[str, Any] = field(default_factory=dict)
    steps: int | None = None


def judge(
    ref: Reference,
    name: str,
    hits: HitSet,
    *,
    repeats: int = 10,
    seed: int = 0,
    k: int = 5,
    render_info: dict[str, Any] | None = None,
    steps: int | None = None,
    grid_period: int | None = None,
) -> JudgedSet:
    """Featurize and score one set of hits."""
    feats = featurize(hits, ref.classifier, ref.sample_rate, ref.hand_mean, ref.hand_scale)
    scores = score(ref, hits, feats, repeats=repeats, seed=seed, k=k, grid_period=grid_period)
    scores["targets"] = targets(scores)
    return JudgedSet(name, hits, feats, scores, render_info or {}, steps)


def classifier_accuracy_on(ref: Reference) -> dict[str, Any]:
    """The classifier's own accuracy on the reference's real test hits (by classifier class)."""
    targets_ = _classifier_targets(ref.classes, ref.classifier)
    keep = targets_[ref.test.labels] >= 0
    return accuracy_report(
        ref.test_features.proba[keep], targets_[ref.test.labels][keep], ref.classifier.classes
    )
