"""Judge a checkpoint's sound quality on the test kits: distances to real hits beside the
real-vs-real floor, class fidelity, diversity, copies of training hits and producer descriptors,
at several step counts. Writes report.json and index.html (with plots and audio) to --out.

--n is the number of renders PER CLASS (total = n x classes, per step count).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from drumdiff.common import fail, parser, pick_device, resolve_model
from drumdiff.model import DEFAULT_CLASSIFIER, __version__
from drumdiff.model.config import DRUM_CLASSES
from drumdiff.model.errors import DrumDiffError

# The judge loads torch; only its type names are needed here, so `drumdiff eval --help` answers
# without it. Each step imports what it runs.
if TYPE_CHECKING:
    from drumdiff.model.core.checkpoint import LoadedModel
    from drumdiff.model.judge.classifier import DrumClassifierModel
    from drumdiff.model.judge.evaluate import HitSet, JudgedSet, Reference


def build_parser() -> argparse.ArgumentParser:
    p = parser(__doc__, "eval")
    p.add_argument("checkpoint", nargs="?", help="checkpoint to judge (default: the shipped model)")
    p.add_argument("--config", help="judge a random-weight model of this config instead (tests)")
    p.add_argument(
        "--data", required=True, help="prepared dataset folder (its test split is judged)"
    )
    p.add_argument("--out", help="report folder (report.json, index.html, audio/)")
    p.add_argument("--n", type=int, default=200, help="renders PER CLASS at each step count")
    p.add_argument(
        "--steps", type=int, nargs="+", default=[4, 8, 12, 25, 50, 100], help="step counts"
    )
    p.add_argument("--seed", type=int, default=0, help="render i of every class uses seed+i")
    p.add_argument("--classifier", default=str(DEFAULT_CLASSIFIER), help="drum classifier file")
    p.add_argument(
        "--train-classifier",
        metavar="PATH",
        help="train the classifier on --data's train split, save it to PATH and judge with it",
    )
    p.add_argument("--classifier-epochs", type=int, default=30)
    p.add_argument(
        "--reference-noise",
        action="store_true",
        help="also judge white-noise bursts (alone when no checkpoint or --config is given)",
    )
    p.add_argument(
        "--unfinished",
        action="store_true",
        help="also judge every step count without the class envelope limit, patch-grid "
        "suppression and tail gate",
    )
    p.add_argument(
        "--reference-real",
        action="store_true",
        help="also judge --n real hits per class of the training kits, as if rendered: what "
        "real drums from other kits score (they are all flagged as copies, by design)",
    )
    p.add_argument("--sampler", default=None, help="override the model's sampler")
    p.add_argument("--guidance", type=float, default=None, help="override the guidance scale")
    p.add_argument(
        "--eta",
        type=float,
        default=None,
        help="override the stochasticity of the ddim and distilled samplers",
    )
    p.add_argument(
        "--repeats", type=int, default=10, help="random half-splits averaged per distance"
    )
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument(
        "--audio-per-class", type=int, default=3, help="hits per class written as WAV for the page"
    )
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    return p


def _fmt(value: Any, spec: str = ".2f") -> str:
    if value is None:  # as wide as a number would be ("7.2f": 7)
        return "-".rjust(int(spec.partition(".")[0] or 0))
    return format(value, spec)


def summary_rows(results: list[dict[str, Any]]) -> list[str]:
    """A fixed-width table of the headline numbers, one row per judged set."""
    head = (
        f"{'set':<10} {'FDemb':>7} {'x floor':>7} {'KIDemb':>8} {'floor':>8} {'MMDemb x':>8} "
        f"{'FDhand x':>8} "
        f"{'MMDhand x':>9} "
        f"{'fidel':>6} {'ceil':>6} {'recall':>6} {'cover':>6} {'pairw x':>7} {'copies':>6}"
    )
    lines = [head]
    for r in results:
        o = r["overall"]
        emb, hand = o["distances"]["embedding"], o["distances"]["handcrafted"]
        div, fid = o["diversity"], o["fidelity"]
        lines.append(
            f"{r['name']:<10} {_fmt(emb['fd'], '7.2f')} {_fmt(emb['fd_ratio'], '7.2f')} "
            f"{_fmt(emb['kid'], '8.4f')} {_fmt(emb['kid_floor'], '8.4f')} "
            f"{_fmt(emb['mmd_ratio'], '8.2f')} "
            f"{_fmt(hand['fd_ratio'], '8.2f')} {_fmt(hand['mmd_ratio'], '9.2f')} "
            f"{_fmt(fid['micro'], '6.2f')} {_fmt(fid['ceiling_micro'], '6.2f')} "
            f"{_fmt(div['recall'], '6.2f')} "
            f"{_fmt(div['coverage'], '6.2f')} {_fmt(div['pairwise_ratio'], '7.2f')} "
            f"{len(r['copies']):>6}"
        )
    return lines


def class_rows(result: dict[str, Any]) -> list[str]:
    """Per class: distance x floor (Frechet, or nearest-neighbour where a class has few test
    hits), fidelity, and the body descriptors and grid lines against the test kits."""
    from drumdiff.model.judge.evaluate import class_distance

    head = (
        f"{'class':<11} {'dist x':>6} {'by':>7} {'fidel':>6} {'centr x':>7} {'dec20 x':>7} "
        f"{'attack x':>8} {'start':>6} {'real':>6} {'grid dB':>7} {'real':>6}"
    )
    lines = [f"per class, {result['name']}:", head]
    for name, entry in result["per_class"].items():
        if "distances" not in entry:
            continue
        d = class_distance(entry)
        desc, sanity = entry.get("descriptors", {}), entry.get("sanity", {})
        start = desc.get("start_level", {})
        lines.append(
            f"{name:<11} {_fmt(d['value'], '6.2f')} {d['measure']:>7} "
            f"{_fmt(entry['fidelity']['share'], '6.2f')} "
            f"{_fmt(desc.get('centroid_hz', {}).get('ratio'), '7.2f')} "
            f"{_fmt(desc.get('decay20_s', {}).get('ratio'), '7.2f')} "
            f"{_fmt(desc.get('attack_s', {}).get('ratio'), '8.2f')} "
            f"{_fmt(start.get('generated_median'), '6.2f')} "
            f"{_fmt(start.get('real_median'), '6.2f')} "
            f"{_fmt(sanity.get('grid_peaks_db'), '7.1f')} "
            f"{_fmt(sanity.get('real_grid_peaks_db'), '6.1f')}"
        )
    return lines


def target_rows(result: dict[str, Any]) -> list[str]:
    """Which per-class targets one judged set meets, and by how much the others miss."""
    targets = result.get("targets") or {}

    def split(checks: dict[str, dict[str, Any]], key: str, spec: str) -> str:
        met = [name for name, v in checks.items() if v.get("met")]
        short = [
            f"{name} {format(v[key], spec)}" for name, v in checks.items() if v.get("met") is False
        ]
        return f"met: {' '.join(met) or 'none'}; not met: {', '.join(short) or 'none'}"

    lines = [f"targets, {result['name']}:"]
    distance = targets.get("class_distance", {})
    if distance.get("classes"):
        lines.append(
            f"  distance {distance['target']}: {split(distance['classes'], 'value', '.2f')}"
        )
    body = targets.get("body_descriptors", {})
    for name, checks in body.get("classes", {}).items():
        named = {desc.removesuffix("_s").removesuffix("_hz"): v for desc, v in checks.items()}
        lines.append(f"  {name} {body['target']}: {split(named, 'ratio', '.2f')}")
    start = targets.get("kick_start_level", {})
    if start.get("value") is not None:
        lines.append(
            f"  kick first sample / peak {start['target']}: {start['value']:.3f} "
            f"({'met' if start['met'] else 'not met'})"
        )
    grid = targets.get("grid_peaks", {})
    if grid.get("classes"):
        lines.append(
            f"  patch grid {grid['target']}: {split(grid['classes'], 'above_real_db', '+.1f')}"
        )
    return lines if len(lines) > 1 else []


@dataclass(frozen=True)
class _Real:
    """The real side of the judge: the test and training hits and the reference built on them."""

    test: HitSet
    train: HitSet
    ref: Reference
    test_kits: list[str]
    sample_rate: int


def _train_classifier(args: argparse.Namespace) -> Path:
    """Train the classifier on --data's train split, save it to --train-classifier, say how
    well it does; the path it was saved to."""
    import torch

    from drumdiff.model.judge.classifier import train_classifier

    started = time.perf_counter()
    with tqdm(total=args.classifier_epochs, unit="epoch", desc="classifier") as bar:

        def tick(epoch: int, total: int, loss: float) -> None:
            bar.set_postfix(loss=f"{loss:.3f}")
            bar.update(1)

        clf = train_classifier(
            args.data, DRUM_CLASSES, epochs=args.classifier_epochs, seed=args.seed, progress=tick
        )
    clf.metrics["training"]["seconds"] = round(time.perf_counter() - started, 1)
    clf.metrics["training"]["torch_threads"] = torch.get_num_threads()
    path = clf.save(args.train_classifier)
    for split in ("train", "validation", "test"):
        m = clf.metrics.get(split)
        if m:
            kits = f" (kits {', '.join(m['kits'])})" if m.get("kits") else ""
            print(f"classifier {split} accuracy: {m['accuracy']:.3f} on {m['count']} clips{kits}")
    print(f"classifier written to {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return Path(args.train_classifier)


def _real(
    args: argparse.Namespace,
    model: LoadedModel | None,
    classes: tuple[str, ...],
    classifier: DrumClassifierModel,
) -> _Real:
    """The dataset's test and training hits (checked against the model) and their reference."""
    from drumdiff.model.judge.evaluate import build_reference, real_hits

    test = real_hits(args.data, classes, "test")
    train = real_hits(args.data, classes, "train")
    meta = json.loads((Path(args.data) / "dataset.json").read_text())
    sample_rate = int(meta["sample_rate"])
    if model is not None:
        from drumdiff.model.data.dataset import DrumDataset

        DrumDataset(args.data, classes, splits=("test",)).check_compatible(model.config.model)
    test_kits = sorted(k for k, s in meta.get("kits", {}).items() if s == "test")
    print(
        f"real test hits: {len(test.labels)} from kits {test_kits}; training hits: "
        f"{len(train.labels)}",
        flush=True,
    )
    ref = build_reference(
        test,
        train,
        classifier,
        sample_rate,
        dataset=str(Path(args.data).resolve()),
        kits=test_kits,
    )
    return _Real(test, train, ref, test_kits, sample_rate)


def _render_and_judge(
    args: argparse.Namespace,
    model: LoadedModel,
    ref: Reference,
    steps: int,
    *,
    finished: bool,
) -> JudgedSet:
    """--n renders per class at `steps` steps, finished or raw, judged against `ref`."""
    from drumdiff.model.judge.evaluate import judge, render_hits

    total = len(model.classes) * args.n * steps
    desc = f"render {steps:>3} steps" if finished else f"unfinished {steps:>3}"
    with tqdm(total=total, unit="hit-step", desc=desc, file=sys.stderr) as bar:
        hits, info = render_hits(
            model,
            args.n,
            steps,
            seed=args.seed,
            batch_size=args.batch_size,
            overrides={"sampler": args.sampler, "guidance": args.guidance, "eta": args.eta},
            progress=bar.update,
            finished=finished,
        )
    return judge(
        ref,
        f"steps={steps}" if finished else f"raw={steps}",
        hits,
        repeats=args.repeats,
        seed=args.seed,
        render_info=info,
        steps=steps,
        grid_period=model.config.model.patch_size,
    )


def _judge_model(args: argparse.Namespace, model: LoadedModel, ref: Reference) -> list[JudgedSet]:
    """The model at every step count (and unfinished too with --unfinished)."""
    judged = []
    for steps in args.steps:
        result = _render_and_judge(args, model, ref, steps, finished=True)
        judged.append(result)
        print("\n".join(summary_rows([{"name": result.name, **result.scores}])[-1:]), flush=True)
        if args.unfinished:
            judged.append(_render_and_judge(args, model, ref, steps, finished=False))
    return judged


def _judge_references(
    args: argparse.Namespace, classes: tuple[str, ...], real: _Real, grid_period: int | None
) -> list[JudgedSet]:
    """The reference sets asked for: white-noise bursts and real training hits."""
    from drumdiff.model.judge.evaluate import noise_bursts, sample_per_class

    judged = []
    if args.reference_noise:
        audio = real.test.audio
        noise = noise_bursts(
            classes,
            args.n,
            int(audio.shape[-1]),
            real.sample_rate,
            channels=audio.shape[1],
            seed=args.seed,
        )
        judged.append(_judge_reference(args, real.ref, "noise", noise, grid_period))
    if args.reference_real:
        hits = sample_per_class(real.train, args.n, seed=args.seed)
        judged.append(_judge_reference(args, real.ref, "real-train", hits, grid_period))
    return judged


def _judge_reference(
    args: argparse.Namespace, ref: Reference, name: str, hits: HitSet, grid_period: int | None
) -> JudgedSet:
    from drumdiff.model.judge.evaluate import judge

    return judge(ref, name, hits, repeats=args.repeats, seed=args.seed, grid_period=grid_period)


def _model_entry(args: argparse.Namespace, model: LoadedModel | None) -> dict[str, Any] | None:
    if model is None:
        return None
    return {
        "checkpoint": str(model.path) if model.path else None,
        "config": args.config,
        "name": model.config.name,
        "step": model.step,
        "classes": list(model.classes),
        "default_steps": model.config.sampling.steps,
    }


def _report(
    args: argparse.Namespace,
    argv: list[str] | None,
    model: LoadedModel | None,
    classes: tuple[str, ...],
    real: _Real,
    classifier: tuple[Path, DrumClassifierModel],
    judged: list[JudgedSet],
) -> dict[str, Any]:
    """report.json's content, before `json_safe` and the finishing comparison."""
    from drumdiff.model.judge.evaluate import classifier_accuracy_on, json_safe

    classifier_path, clf = classifier
    ref, test = real.ref, real.test
    return {
        "drumdiff": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "drumdiff eval " + " ".join(argv if argv is not None else sys.argv[2:]),
        "model": _model_entry(args, model),
        "dataset": {
            "path": ref.dataset,
            "test_kits": real.test_kits,
            "test_per_class": {c: int((test.labels == i).sum()) for i, c in enumerate(classes)},
            "train_clips": int(len(real.train.labels)),
        },
        "classifier": {
            "path": str(classifier_path.resolve()),
            "classes": list(clf.classes),
            "trained": json_safe(clf.metrics),
            "on_this_test_set": classifier_accuracy_on(ref),
        },
        "protocol": {
            "n_per_class": args.n,
            "n_meaning": "renders per class at every step count; total = n x classes",
            "seeds": list(range(args.seed, args.seed + args.n)),
            "seeds_meaning": "render i of every class, at every step count, uses seeds[i]",
            "repeats": args.repeats,
            "distances": "mean over repeats of d(generated subset, real half B) beside floor "
            "d(real half A, "
            "real half B); halves stratified by class, generated subset drawn with half A's "
            "class composition; ratio = distance / floor",
            "kid": "unbiased MMD^2, kernel (x.y/D+1)^3; its floor between two halves of one "
            "finite set "
            "is negative on average, so the ratio is given on the biased MMD^2 (mmd_ratio)",
            "copy_threshold": ref.copy_threshold,
            "copy_threshold_from": ref.copy_reference,
            "noise_bursts": "white noise, instant onset, exponential decay with time constant "
            "log-uniform in 20-400 ms, peak 0.95"
            if args.reference_noise
            else None,
        },
        "real": {"fidelity_ceiling": ref.ceiling},
        "results": [
            {"name": j.name, "steps": j.steps, "render": j.render, **j.scores} for j in judged
        ],
    }


def _finishing(args: argparse.Namespace, results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per step count with --unfinished: how much worse (FD x floor) the raw renders are."""
    scored = {r["name"]: r["overall"]["distances"]["embedding"]["fd_ratio"] for r in results}
    finishing = {}
    for steps in args.steps if args.unfinished else []:
        done, raw = scored.get(f"steps={steps}"), scored.get(f"raw={steps}")
        if done and raw:
            finishing[str(steps)] = {
                "finished": done,
                "raw": raw,
                "worse_by": raw / done - 1,
                "met": raw / done - 1 <= 0.15,
            }
    return finishing


def _evaluate(
    args: argparse.Namespace, argv: list[str] | None, classifier_path: Path
) -> tuple[dict[str, Any], Path, Path]:
    """Judge what was asked and write the report; the report, its folder and its page."""
    from drumdiff.model.judge.classifier import load_classifier
    from drumdiff.model.judge.evaluate import json_safe

    classifier = load_classifier(classifier_path)
    device = pick_device(args.device)
    model = None
    if args.checkpoint or args.config or not args.reference_noise:
        model = resolve_model(args.checkpoint, args.config, device, seed=args.seed)
    classes = tuple(model.classes) if model is not None else tuple(DRUM_CLASSES)
    real = _real(args, model, classes, classifier)
    # The patch-grid buzz check looks at the model's patch rate; noise bursts are judged there
    # too.
    grid_period = model.config.model.patch_size if model is not None else None
    judged = _judge_model(args, model, real.ref) if model is not None else []
    judged += _judge_references(args, classes, real, grid_period)
    report = _report(args, argv, model, classes, real, (classifier_path, classifier), judged)
    report["finishing"] = _finishing(args, report["results"])
    report = json_safe(report)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    from drumdiff.model.judge.report import write_html

    html = write_html(out, report, real.ref, judged, audio_per_class=args.audio_per_class)
    return report, out, html


def _print_summary(report: dict[str, Any], out: Path, html: Path) -> None:
    print("\n".join(summary_rows(report["results"])))
    for steps, row in report.get("finishing", {}).items():
        print(
            f"finishing off at {steps} steps: FD x floor {row['raw']:.2f} vs {row['finished']:.2f} "
            "finished "
            f"({100 * row['worse_by']:+.0f} %; target <= +15 %: "
            f"{'met' if row['met'] else 'not met'})"
        )
    for result in report["results"]:
        print("\n".join(class_rows(result) + target_rows(result)))
    print(
        "(dist x = distance to the test kits x its real-vs-real floor, by Frechet distance or, for "
        "classes "
        "with few test hits, by nearest neighbours; centr/dec20/attack x = median / the test "
        "kits'; start = "
        "median |first sample| / peak; grid dB = patch-rate lines above their neighbourhood)"
    )
    print(
        "(x = ratio to the real-vs-real floor; KID is unbiased, so its floor can be <= 0 and its "
        "ratio is "
        "given on the biased MMD^2; fidel = class "
        "fidelity, ceil = the same on real test hits; pairw x = mean pairwise embedding distance / "
        "real's)"
    )
    print(f"report: {(out / 'report.json').resolve()}\npage:   {html.resolve()}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.n < 2:
        return fail("--n must be at least 2 (renders per class)")
    if any(s < 1 for s in args.steps):
        return fail("--steps must all be at least 1")
    try:
        if args.train_classifier:
            classifier_path = _train_classifier(args)
            if not (args.checkpoint or args.config or args.reference_noise):
                return 0
        else:
            classifier_path = Path(args.classifier)
        if not args.out:
            return fail("--out is required to write a report")
        report, out, html = _evaluate(args, argv, classifier_path)
    except (DrumDiffError, ValueError) as err:
        return fail(str(err))
    _print_summary(report, out, html)
    return 0
