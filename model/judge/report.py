"""The judge's HTML page: tables, plots (PNG, via matplotlib when installed) and audio players.

Only `drumdiff eval` imports this; matplotlib is imported lazily so a machine without it still
gets the page, minus its plots.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from drumdiff.model.judge.evaluate import JudgedSet, Reference
from drumdiff.model.judge.features import DESCRIPTORS, log_mel
from drumdiff.model.wav import write_wav_atomic

CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1300px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px
7px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.bad{color:#b00}.good{color:#070}
img{max-width:100%}details{margin:.5em 0}code{background:#f5f5f5;padding:0 3px}
.clips td{text-align:left;vertical-align:top}audio{width:210px}
"""


class Raw(str):
    """A table cell that is already HTML (every other string is escaped)."""


def _f(value: Any, spec: str = ".3g") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return format(value, spec)
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[Any]], cls: str = "") -> str:
    out = [
        f"<table class='{cls}'><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in header)
        + "</tr>"
    ]
    for row in rows:
        out.append(
            "<tr>"
            + "".join(f"<td>{c if isinstance(c, Raw) else _f(c)}</td>" for c in row)
            + "</tr>"
        )
    return "".join(out) + "</table>"


def _headline(name: str, entry: dict[str, Any]) -> list[Any]:
    d = entry.get("distances") or {}
    emb, hand = d.get("embedding", {}), d.get("handcrafted", {})
    div = entry.get("diversity", {})
    fid = entry.get("fidelity", {})
    share = fid.get("micro", fid.get("share"))
    ceiling = fid.get("ceiling_micro", fid.get("ceiling"))
    return [
        name,
        entry.get("generated"),
        entry.get("real"),
        emb.get("items_per_half"),
        emb.get("fd"),
        emb.get("fd_floor"),
        emb.get("fd_ratio"),
        emb.get("kid"),
        emb.get("kid_floor"),
        emb.get("mmd_ratio"),
        hand.get("fd_ratio"),
        hand.get("mmd_ratio"),
        share,
        ceiling,
        div.get("precision"),
        div.get("recall"),
        div.get("coverage"),
        div.get("pairwise_ratio"),
        (entry.get("memorisation") or {}).get("flagged"),
    ]


HEADLINE = [
    "set / class",
    "gen",
    "real",
    "per half",
    "FD emb",
    "floor",
    "FD emb x",
    "KID emb",
    "KID floor",
    "MMD emb x",
    "FD hand x",
    "MMD hand x",
    "fidelity",
    "ceiling",
    "precision",
    "recall",
    "coverage",
    "pairwise x",
    "copies",
]


#: (legend label, distance space, ratio key) of the lines in the "distance / floor" panel.
DISTANCE_LINES = [
    ("FD emb", "embedding", "fd_ratio"),
    ("MMD emb", "embedding", "mmd_ratio"),
    ("FD hand", "handcrafted", "fd_ratio"),
    ("MMD hand", "handcrafted", "mmd_ratio"),
]


def _distance_panel(
    ax: Any, xs: list[int], stepped: list[dict[str, Any]], noise: dict[str, Any] | None
) -> None:
    """Distance / real floor against steps, with the noise bursts' level dashed for scale."""
    for label, space, key in DISTANCE_LINES:
        ys = [r["overall"]["distances"][space][key] for r in stepped]
        line = ax.plot(xs, [np.nan if y is None else y for y in ys], "o-", label=label)[0]
        if noise is not None and noise["overall"]["distances"][space][key] is not None:
            ax.axhline(
                noise["overall"]["distances"][space][key],
                ls="--",
                color=line.get_color(),
                alpha=0.5,
            )
    ax.axhline(1, color="k", lw=0.8)
    ax.axhline(3, color="g", lw=0.8, ls=":")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="steps",
        title="distance / floor (dashed: noise bursts)",
    )
    ax.legend(fontsize=8)


def _fidelity_panel(ax: Any, xs: list[int], stepped: list[dict[str, Any]]) -> None:
    """Class fidelity against steps, beside the ceiling the real test hits reach."""
    ax.plot(xs, [r["overall"]["fidelity"]["micro"] for r in stepped], "o-", label="fidelity")
    ax.axhline(
        stepped[0]["overall"]["fidelity"]["ceiling_micro"] or 0,
        color="k",
        ls="--",
        label="real ceiling",
    )
    ax.set(xscale="log", ylim=(0, 1.05), xlabel="steps", title="class fidelity")
    ax.legend(fontsize=8)


def _diversity_panel(ax: Any, xs: list[int], stepped: list[dict[str, Any]]) -> None:
    """Precision, recall, coverage and the pairwise ratio against steps."""
    for key in ("precision", "recall", "coverage", "pairwise_ratio"):
        ax.plot(
            xs,
            [
                np.nan if r["overall"]["diversity"][key] is None else r["overall"]["diversity"][key]
                for r in stepped
            ],
            "o-",
            label=key,
        )
    ax.axhline(1, color="k", lw=0.8)
    ax.set(xscale="log", xlabel="steps", title="diversity (embedding)")
    ax.legend(fontsize=8)


def _steps_plot(plt: Any, out: Path, results: list[dict[str, Any]]) -> str | None:
    """metrics_vs_steps.png over the sets rendered at a step count; None when there are none."""
    stepped = [r for r in results if r.get("steps")]
    if not stepped:
        return None
    noise = next((r for r in results if r["name"] == "noise"), None)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    xs = [r["steps"] for r in stepped]
    _distance_panel(axes[0], xs, stepped, noise)
    _fidelity_panel(axes[1], xs, stepped)
    _diversity_panel(axes[2], xs, stepped)
    for ax in axes:
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.minorticks_off()
    fig.tight_layout()
    fig.savefig(out / "metrics_vs_steps.png", dpi=80)
    plt.close(fig)
    return "metrics_vs_steps.png"


def _descriptor_plot(plt: Any, out: Path, ref: Reference, focus: JudgedSet) -> str:
    """descriptors.png: a histogram per descriptor, the focus set over the real test hits."""
    fig, axes = plt.subplots(2, 4, figsize=(16, 6))
    for ax, name in zip(axes.flat, DESCRIPTORS):
        g = focus.features.descriptors[name]
        r = ref.test_features.descriptors[name]
        g, r = g[np.isfinite(g)], r[np.isfinite(r)]
        both = np.concatenate([g, r]) if len(g) + len(r) else np.zeros(1)
        bins = np.linspace(both.min(), both.max() + 1e-9, 25)
        if len(r):
            ax.hist(r, bins=bins, alpha=0.5, density=True, label=f"real ({len(r)})")
        if len(g):
            ax.hist(g, bins=bins, alpha=0.5, density=True, label=f"{focus.name} ({len(g)})")
        ax.set_title(f"{name} [{DESCRIPTORS[name][0]}]", fontsize=9)
        if len(g) or len(r):
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "descriptors.png", dpi=80)
    plt.close(fig)
    return "descriptors.png"


def _spectrogram_cell(
    ax: Any,
    ref: Reference,
    focus: JudgedSet,
    ci: int,
    j: int,
    picks: tuple[np.ndarray, np.ndarray],
    cols: int,
) -> None:
    """One log-mel image of the grid: generated hits in the first `cols` columns, then real."""
    name = ref.classes[ci]
    gi, ri = picks
    ax.set_xticks([])
    ax.set_yticks([])
    src, idx = (focus.hits.audio, gi) if j < cols else (ref.test.audio, ri)
    k = j % cols
    if k < len(idx):
        spec = log_mel(src[idx[k] : idx[k] + 1], ref.sample_rate)[0].numpy()
        ax.imshow(spec, origin="lower", aspect="auto", vmin=-100, vmax=0, cmap="magma")
    if ci == 0:
        ax.set_title(("generated" if j < cols else "real") + f" {k + 1}", fontsize=9)
    if j == 0:
        ax.set_ylabel(name, fontsize=9)


def _spectrogram_plot(plt: Any, out: Path, ref: Reference, focus: JudgedSet) -> str:
    """spectrograms.png: a row per class, a few generated hits beside a few real ones."""
    classes = ref.classes
    cols = 2
    fig, axes = plt.subplots(
        len(classes), 2 * cols, figsize=(3 * 2 * cols, 1.9 * len(classes)), squeeze=False
    )
    for ci in range(len(classes)):
        gi = np.nonzero(focus.hits.labels == ci)[0][:cols]
        ri = np.nonzero(ref.test.labels == ci)[0][:cols]
        for j in range(2 * cols):
            _spectrogram_cell(axes[ci, j], ref, focus, ci, j, (gi, ri), cols)
    fig.tight_layout()
    fig.savefig(out / "spectrograms.png", dpi=70)
    plt.close(fig)
    return "spectrograms.png"


def _plots(
    out: Path, report: dict[str, Any], ref: Reference, focus: JudgedSet, judged: list[JudgedSet]
) -> dict[str, str]:
    """Write the PNGs; returns name -> file name, empty when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return {}
    files: dict[str, str] = {}
    steps = _steps_plot(plt, out, report["results"])
    if steps is not None:
        files["steps"] = steps
    files["descriptors"] = _descriptor_plot(plt, out, ref, focus)
    files["spectrograms"] = _spectrogram_plot(plt, out, ref, focus)
    return files


def _audio(out: Path, ref: Reference, focus: JudgedSet, per_class: int) -> str:
    """WAVs of a few hits per class beside the page, and a table of players."""
    folder = out / "audio"
    folder.mkdir(exist_ok=True)
    rows = []
    for ci, name in enumerate(ref.classes):
        cells: list[Any] = [name]
        for label, audio, idx, tags in (
            (
                "gen",
                focus.hits.audio,
                np.nonzero(focus.hits.labels == ci)[0][:per_class],
                focus.hits.seeds,
            ),
            (
                "real",
                ref.test.audio,
                np.nonzero(ref.test.labels == ci)[0][:per_class],
                ref.test.ids,
            ),
        ):
            players = []
            for i in idx:
                tag = (
                    f"seed{tags[i]}"
                    if label == "gen" and tags
                    else f"id{tags[i]}"
                    if tags
                    else f"{i}"
                )
                fname = f"{name}_{label}_{tag}.wav"
                write_wav_atomic(folder / fname, audio[i], ref.sample_rate, subtype="PCM_16")
                players.append(
                    f"<div>{html.escape(tag)}<br><audio controls preload='none' "
                    f"src='audio/{html.escape(fname)}'></audio></div>"
                )
            cells.append(Raw("".join(players) or "-"))
        rows.append(cells)
    return _table(["class", f"generated ({focus.name})", "real (test kits)"], rows, "clips")


def _intro(report: dict[str, Any]) -> str:
    """The paragraph saying what was judged: model, data, classifier, renders, thresholds."""
    model = report.get("model") or {}
    model_name = model.get("checkpoint") or model.get("config") or "none (noise baseline only)"
    clf = report["classifier"]
    test_acc = clf["on_this_test_set"].get("accuracy")
    proto = report["protocol"]
    return (
        "<p>"
        + "<br>".join(
            [
                "model: "
                f"<code>{_f(model_name)}</code>"
                f" (step {_f(model.get('step'))}, default steps {_f(model.get('default_steps'))})",
                f"dataset: <code>{_f(report['dataset']['path'])}</code>, test kits "
                f"{_f(', '.join(report['dataset']['test_kits']))}",
                f"classifier: <code>{_f(clf['path'])}</code>, accuracy on these test hits "
                f"{_f(test_acc)}",
                f"renders: {proto['n_per_class']} per class per step count, seeds "
                f"{proto['seeds'][0]}..{proto['seeds'][-1]} (same for "
                "every class and step count)",
                f"distances: {_f(proto['distances'])}",
                "copy threshold (highest real test to train log-mel similarity): "
                f"{_f(proto['copy_threshold'], '.4f')}"
                f" (test id {_f(proto['copy_threshold_from'].get('test_id'))}, train "
                "id "
                f"{_f(proto['copy_threshold_from'].get('train_id'))})",
                f"created {_f(report['created'])} by <code>{_f(report['command'])}</code>",
            ]
        )
        + "</p>"
    )


OVERALL_NOTE = (
    "<p>x = ratio to the real-vs-real floor (1 = as close as two halves of the real test set). "
    "KID is the unbiased kernel distance; its floor between halves of one finite set is often "
    "below zero, so the kernel ratio (MMD x) uses the biased MMD^2 at the same set sizes. "
    "Fidelity = share of hits rendered for class c that the classifier puts in c; ceiling = "
    "the "
    "same on real test hits.</p>"
)


def _headline_target_rows(t: dict[str, Any]) -> list[list[Any]]:
    """The overall targets: distance, copies, fidelity and descriptor medians per class."""
    rows: list[list[Any]] = [
        [
            "FD emb / floor <= 3",
            t["fd_embedding_ratio"]["value"],
            t["fd_embedding_ratio"]["met"],
        ],
        ["copies = 0", t["copies"]["value"], t["copies"]["met"]],
    ]
    for name, v in t["class_fidelity"]["classes"].items():
        rows.append([f"fidelity {name} / ceiling >= 0.9", v["ratio"], v["met"]])
    for name, v in t["descriptor_medians"]["descriptors"].items():
        rows.append([f"median {name} generated / real within 0.8-1.2", v["ratio"], v["met"]])
    return rows


def _sanity_rows(s: dict[str, Any]) -> list[list[Any]]:
    """The artefact checks (DC, clipping, pre-onset noise, tails, patch grid) against real."""
    rows: list[list[Any]] = [
        [
            f"hits with DC over -60 dBFS (of {s['count']}; real: {s['real_dc_over_-60dBFS']})",
            s["dc_over_-60dBFS"],
            s["dc_over_-60dBFS"] == 0,
        ],
        [
            f"hits with a clipped flat top (real: {s['real_clipped']})",
            s["clipped"],
            s["clipped"] == 0,
        ],
        [
            "hits with pre-onset audio over -60 dBFS",
            s["pre_onset_over_-60dBFS"],
            s["pre_onset_over_-60dBFS"] == 0,
        ],
        [
            "tail median vs real (dBFS)",
            f"{_f(s['tail_median_db'])} vs {_f(s['real_tail_median_db'])}",
            not s["tail_above_real"],
        ],
    ]
    if s.get("grid_peaks_db") is not None and s.get("real_grid_peaks_db") is not None:
        # Shown beside the distances so a patch-rate buzz cannot hide behind good ones.
        rows.append(
            [
                f"patch-grid peaks at multiples of sr/{s['grid_period']} vs real (dB, no more "
                "than 1 above)",
                f"{_f(s['grid_peaks_db'])} vs {_f(s['real_grid_peaks_db'])}",
                s["grid_peaks_db"] <= s["real_grid_peaks_db"] + 1.0,
            ]
        )
    return rows


def _class_target_rows(t: dict[str, Any]) -> list[list[Any]]:
    """The per-class targets: distance, body descriptors, kick start level, patch grid."""
    rows: list[list[Any]] = []
    for name, v in t.get("class_distance", {}).get("classes", {}).items():
        rows.append([f"{name}: distance / floor <= 2 (by {v['measure']})", v["value"], v["met"]])
    for name, checks in t.get("body_descriptors", {}).get("classes", {}).items():
        for desc, v in checks.items():
            rows.append(
                [f"{name}: median {desc} generated / real within 0.8-1.2", v["ratio"], v["met"]]
            )
    if "kick_start_level" in t:
        k = t["kick_start_level"]
        rows.append(
            [
                f"kick: median first sample / peak {k['target']} (real {_f(k['real'])})",
                k["value"],
                k["met"],
            ]
        )
    for name, v in t.get("grid_peaks", {}).get("classes", {}).items():
        rows.append(
            [
                f"{name}: patch-grid lines above the real kits' <= 2 dB",
                v["above_real_db"],
                v["met"],
            ]
        )
    return rows


def _finishing_rows(finishing: dict[str, Any]) -> list[list[Any]]:
    """Per step count: how much worse the unfinished renders are."""
    return [
        [
            f"{steps} steps without finishing: FD / floor at most 15 % worse",
            f"{_f(v['raw'])} vs {_f(v['finished'])}",
            v["met"],
        ]
        for steps, v in finishing.items()
    ]


def _targets(report: dict[str, Any], focus: JudgedSet) -> list[str]:
    """The targets table of the focus set."""
    res = next(r for r in report["results"] if r["name"] == focus.name)
    t = res["targets"]
    rows = _headline_target_rows(t)
    rows += _sanity_rows(res["overall"]["sanity"])
    rows += _class_target_rows(t)
    rows += _finishing_rows(report.get("finishing", {}))
    return [
        f"<h2>Targets at {html.escape(focus.name)}</h2>",
        _table(["target", "value", "met"], rows),
    ]


DESCRIPTOR_HEADER = [
    "descriptor",
    "unit",
    "gen median",
    "real median",
    "ratio / delta",
    "gen p10-p90",
    "real p10-p90",
]


def _descriptor_table(desc: dict[str, Any]) -> str:
    """Generated against real medians and p10-p90 spreads, per descriptor."""
    return _table(
        DESCRIPTOR_HEADER,
        [
            [
                n,
                d["unit"],
                d["generated_median"],
                d["real_median"],
                d.get("ratio", d.get("delta_db", d.get("generated_share"))),
                f"{_f(d['generated_p10'])} .. {_f(d['generated_p90'])}",
                f"{_f(d['real_p10'])} .. {_f(d['real_p90'])}",
            ]
            for n, d in desc.items()
        ],
    )


def _details(r: dict[str, Any], open_: bool) -> list[str]:
    """One set's fold-out section: per class, descriptors, confusion and copies."""
    parts = [
        f"<details{' open' if open_ else ''}>"
        f"<summary><b>{html.escape(r['name'])}</b>: per class, descriptors, confusion</summary>"
    ]
    if r.get("render"):
        parts.append(
            "<p>render: " + ", ".join(f"{k} {_f(v)}" for k, v in r["render"].items()) + "</p>"
        )
    parts.append(_table(HEADLINE, [_headline(c, e) for c, e in r["per_class"].items()]))
    parts.append(
        "<p>Per-class distances with fewer than 8 items per half are noisy; below 3 per half "
        "they are not reported (-).</p>"
    )
    parts.append(_descriptor_table(r["overall"]["descriptors"]))
    conf = r["overall"]["fidelity"]["confusion"]
    parts.append("<p>Confusion (rows: class asked for, columns: classifier's answer)</p>")
    parts.append(
        _table(
            ["asked \\ heard", *conf["columns"]],
            [[row, *vals] for row, vals in zip(conf["rows"], conf["matrix"])],
        )
    )
    if r["copies"]:
        parts.append(
            _table(
                ["class", "seed", "train id", "similarity"],
                [[c["class"], c["seed"], c["train_id"], c["similarity"]] for c in r["copies"]],
            )
        )
    parts.append("</details>")
    return parts


def _focus_plots(plots: dict[str, str], focus: JudgedSet | None) -> list[str]:
    """The descriptor and spectrogram images (drawn only for a focus set), or why not."""
    parts = []
    if "descriptors" in plots:
        assert focus is not None  # plots are drawn only for a focus set
        parts.append(
            f"<h2>Descriptors: {html.escape(focus.name)} vs real</h2><img "
            f"src='{plots['descriptors']}'>"
        )
    if "spectrograms" in plots:
        assert focus is not None
        parts.append(
            f"<h2>Log-mel spectrograms: {html.escape(focus.name)} vs real</h2><img "
            f"src='{plots['spectrograms']}'>"
        )
    if not plots:
        parts.append("<p>(plots skipped: matplotlib is not installed)</p>")
    return parts


def write_html(
    out: Path,
    report: dict[str, Any],
    ref: Reference,
    judged: list[JudgedSet],
    *,
    audio_per_class: int = 3,
) -> Path:
    """Write index.html (plus PNGs and audio/) into `out`; returns the page's path."""
    out = Path(out)
    default_steps = (report.get("model") or {}).get("default_steps")
    # The set at the model's default step count gets the targets, plots and players.
    focus = next((j for j in judged if j.steps == default_steps), judged[0] if judged else None)
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>drumdiff eval</title>"
        f"<style>{CSS}</style></head><body><h1>drumdiff quality judge</h1>",
        _intro(report),
    ]
    results = report["results"]
    parts.append("<h2>Overall</h2>")
    parts.append(_table(HEADLINE, [_headline(r["name"], r["overall"]) for r in results]))
    parts.append(OVERALL_NOTE)
    if focus is not None:
        parts += _targets(report, focus)
    plots = _plots(out, report, ref, focus, judged) if focus is not None else {}
    if "steps" in plots:
        parts.append(f"<h2>Metrics vs steps</h2><img src='{plots['steps']}'>")
    for r in results:
        parts += _details(r, focus is not None and r["name"] == focus.name)
    parts += _focus_plots(plots, focus)
    if focus is not None:
        parts.append(f"<h2>Listen</h2>{_audio(out, ref, focus, audio_per_class)}")
    parts.append("</body></html>")
    page = out / "index.html"
    page.write_text("\n".join(parts))
    return page
