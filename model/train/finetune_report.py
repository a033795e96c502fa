"""The fine-tune's report page and model card, from its report.json dict."""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

#: A class needs this many files before one of them is held out for judging (the card says so).
MIN_FILES_TO_HOLD_OUT = 3


def _f(value: Any, spec: str = ".2f") -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, spec)
    return str(value)


def class_rows(report: dict[str, Any]) -> list[list[str]]:
    """Per judged class: train and held-out hits, floor, base, fine-tuned, change (dB)."""
    rows = []
    per = report["data"]["per_class"]
    base = report["results"]["base"]["per_class_db"]
    tuned = report["results"]["fine-tuned"]["per_class_db"]
    for c in report["judge"]["judged_classes"]:
        b, t = base.get(c), tuned.get(c)
        change = None if b is None or t is None else t - b
        counts = per.get(c, {"train": 0, "validation": 0})
        rows.append(
            [
                c,
                str(counts["train"]),
                str(counts["validation"]),
                _f(report["judge"]["floor_db"].get(c)),
                _f(b),
                _f(t),
                _f(change, "+.2f"),
            ]
        )
    b, t = report["results"]["base"]["mean_db"], report["results"]["fine-tuned"]["mean_db"]
    rows.append(
        [
            "mean over classes",
            "",
            "",
            _f(_mean(report["judge"]["floor_db"].values())),
            _f(b),
            _f(t),
            _f(None if b is None or t is None else t - b, "+.2f"),
        ]
    )
    return rows


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


CLASS_HEADER = [
    "class",
    "train hits",
    "held-out hits",
    "floor (dB)",
    "base (dB)",
    "fine-tuned (dB)",
    "change",
]
TIMELINE_HEADER = [
    "step",
    "trained (min)",
    "checkpoint",
    "mean distance (dB)",
    "copies",
    "max similarity",
]


def timeline_rows(report: dict[str, Any]) -> list[list[str]]:
    return [
        [
            str(r["step"]),
            _f(r["trained_s"] / 60, ".1f"),
            r["checkpoint"],
            _f(r["mean_db"]),
            f"{r['copies']} of {r['renders']}",
            _f(r["max_similarity"], ".4f"),
        ]
        for r in report["timeline"]
    ]


def copy_sentence(report: dict[str, Any]) -> str:
    start = report["copying_starts"]
    tuned = report["results"]["fine-tuned"]["copies"]
    if start is None and not tuned:
        return "No render was flagged as a copy of your hits at any checkpoint."
    parts = []
    if start is not None:
        parts.append(
            f"Copying starts at step {start['step']} ({start['checkpoint']}): pick an earlier "
            "checkpoint "
            "(`drumdiff design scrub` or the daemon's `scrub`) if you want new sounds rather than "
            "your own."
        )
    if tuned:
        parts.append(
            f"{tuned} of the final model's {report['results']['fine-tuned']['renders']} report "
            "renders are copies."
        )
    return " ".join(parts)


PAGE_HEAD = (
    "<!doctype html><html><head><meta charset='utf-8'><title>drumdiff fine-tune</title><style>"
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid "
    "#ccc;padding:3px 7px;text-align:right}"
    "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}audio{width:200px}.copy{color:#b00}"
    "</style></head><body><h1>Fine-tune report</h1>"
)


def _table(header: list[str], rows: list[list[str]]) -> str:
    """An HTML table; every cell is escaped."""
    esc = html.escape
    out = ["<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>" for row in rows]
    return "".join(out) + "</table>"


def _summary(report: dict[str, Any]) -> str:
    """The paragraph naming the folder, both models, the classes and the renders."""
    t = report["training"]
    return (
        "<p>"
        + "<br>".join(
            html.escape(x)
            for x in [
                f"folder: {report['folder']}",
                f"base model: {report['base']['path']} (step {report['base']['step']})",
                f"fine-tuned: {report['model']['path']} (step {report['model']['step']}, "
                f"{t['trained_s'] / 60:.1f} min of training incl. {t['judge_s'] / 60:.1f} min of "
                "judging)",
                f"classes: {', '.join(report['classes'])}"
                + (f" (new: {', '.join(report['new_classes'])})" if report["new_classes"] else ""),
                f"renders: {report['judge']['renders_per_class']} per class per model, seeds "
                f"{report['judge']['seeds'][0]}.."
                f"{report['judge']['seeds'][1]}; {report['model']['render_steps']} sampler steps",
                f"created {report['created']}",
            ]
        )
        + "</p>"
    )


def _distance_section(report: dict[str, Any]) -> list[str]:
    """The per-class distance table and how to read it."""
    stand_in = report["base"]["stand_in_for_new_classes"] or "unconditional"
    return [
        "<h2>Distance to your held-out hits, per class</h2>",
        _table(CLASS_HEADER, class_rows(report)),
        "<p>Log-mel distance in dB (each hit relative to its own peak, 80 dB range): half the mean "
        "distance "
        "from each render to its nearest held-out hit of the class, half from each held-out hit to "
        "its nearest "
        "render. Floor: the same from each held-out hit to your other (training) hits of the "
        "class. Lower is "
        "closer; the base model renders a class it lacks as "
        f"{html.escape(str(stand_in))}.</p>",
    ]


def _copies_section(report: dict[str, Any]) -> list[str]:
    """Whether renders copy the training hits: the verdict, the threshold, counts, each copy."""
    judge = report["judge"]
    parts = [
        "<h2>Copies of your hits</h2>",
        f"<p class='{'copy' if report['copying_starts'] else ''}'>"
        f"{html.escape(copy_sentence(report))}</p>",
        "<p>A render is a copy when its log-mel cosine similarity to one of your training hits "
        "exceeds "
        f"{judge['copy_threshold']:.4f}, the highest similarity of any held-out hit to a "
        "training hit "
        f"({html.escape(json.dumps(judge['copy_threshold_from']))}).</p>",
        _table(
            ["model", "copies", "renders", "max similarity"],
            [
                [k, str(v["copies"]), str(v["renders"]), _f(v["max_similarity"], ".4f")]
                for k, v in report["results"].items()
            ],
        ),
    ]
    copies = [(k, c) for k, v in report["results"].items() for c in v["copy_list"]]
    if copies:
        parts.append(
            _table(
                ["model", "class", "seed", "similarity", "nearest training hit"],
                [
                    [k, c["class"], str(c["seed"]), _f(c["similarity"], ".4f"), c["train"]]
                    for k, c in copies
                ],
            )
        )
    return parts


def _timeline_section(report: dict[str, Any]) -> list[str]:
    """The cheap judge at every kept checkpoint."""
    return [
        "<h2>Checkpoints</h2>",
        _table(TIMELINE_HEADER, timeline_rows(report)),
        f"<p>The cheap judge: {report['training']['settings']['judge_per_class']} renders per "
        "class at each "
        "kept checkpoint (step 0 = the base weights).</p>",
    ]


FULL_JUDGE_HEADER = [
    "model",
    "FD embedding",
    "floor",
    "x floor",
    "items per half",
    "class fidelity",
    "ceiling",
]


def _full_judge_section(full: dict[str, Any]) -> list[str]:
    """The project judge's embedding distance and class fidelity for both models."""
    return [
        "<h2>The project judge</h2>",
        _table(
            FULL_JUDGE_HEADER,
            [
                [
                    k,
                    _f(v["fd_embedding"]),
                    _f(v["fd_floor"]),
                    _f(v["fd_ratio"]),
                    _f(v["items_per_half"], "d"),
                    _f(v["fidelity_micro"]),
                    _f(v["fidelity_ceiling"]),
                ]
                for k, v in full.items()
            ],
        ),
        "<p>Fréchet distance in the drum classifier's embedding to the held-out hits, beside "
        "the floor "
        "between two halves of them (fewer than 8 items per half is noisy).</p>",
    ]


def _listen_section(audio: dict[str, dict[str, list[str]]]) -> str:
    """Players per class: base, fine-tuned and held-out hits side by side."""
    esc = html.escape
    rows = []
    for cname, entry in audio.items():
        cells = [esc(cname)]
        for tag in ("base", "fine-tuned", "held-out"):
            cells.append(
                "".join(
                    f"<audio controls preload='none' src='audio/{esc(f)}'></audio>"
                    for f in entry.get(tag, [])
                )
                or "-"
            )
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (
        "<h2>Listen</h2><table><tr><th>class</th><th>base</th><th>fine-tuned</th><th>held-out</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def report_html(report: dict[str, Any], audio: dict[str, dict[str, list[str]]]) -> str:
    """The comparison page: per-class distances, copies, the checkpoint timeline, audio."""
    parts = [PAGE_HEAD, _summary(report)]
    parts += _distance_section(report)
    parts += _copies_section(report)
    parts += _timeline_section(report)
    full = report.get("full_judge")
    # A failed project judge is recorded as {"error": ...}; the page then leaves it out.
    if full and "error" not in full:
        parts += _full_judge_section(full)
    if audio:
        parts.append(_listen_section(audio))
    parts.append("</body></html>")
    return "\n".join(parts)


def _md(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _card_data(report: dict[str, Any]) -> list[str]:
    """The card's title, provenance and Data section."""
    d = report["data"]
    return [
        f"# {Path(report['model']['path']).parent.name}: drumdiff fine-tuned model",
        "",
        f"Fine-tuned from `{report['base']['path']}` (step {report['base']['step']}) on "
        f"`{report['folder']}` with "
        f"`{' '.join(report['command'] or []) or 'drumdiff finetune'}`. Created "
        f"{report['created']}.",
        "",
        "## Data",
        "",
        f"{d['kept']} hits kept; rejected: {json.dumps(d['per_reason'])}. Held out by file for "
        "judging: "
        f"{report['training']['settings']['holdout']:.0%} of each class with at least "
        f"{MIN_FILES_TO_HOLD_OUT} files.",
        "",
        _md(
            ["class", "train", "held out"],
            [[c, str(v["train"]), str(v["validation"])] for c, v in d["per_class"].items()],
        ),
        "",
        f"Classes of the model: {', '.join(report['classes'])}"
        + (
            f"; added for this folder: {', '.join(report['new_classes'])}."
            if report["new_classes"]
            else "."
        ),
        "",
    ]


def _card_training(t: dict[str, Any]) -> list[str]:
    """The card's Training section: steps, time, sessions and the settings that matter."""
    sessions = "; ".join(
        f"steps {s.get('from_step')}->{s.get('to_step')} in {s.get('seconds')} s"
        for s in t["sessions"]
    )
    return [
        "## Training",
        "",
        f"{t['steps']} steps, {t['trained_s'] / 60:.1f} minutes (of which {t['judge_s'] / 60:.1f} "
        f"judging); sessions: {sessions}.",
        f"lr {t['train']['lr']}, warm-up {t['train']['warmup_steps']}, batch "
        f"{t['train']['batch_size']}, EMA "
        f"{t['train']['ema_decay']}, class-balanced draws {t['train']['balance_classes']}; "
        "augmentation "
        f"{json.dumps(t['augment'])}; overrides: {' '.join(t['overrides']) or 'none'}.",
        "",
    ]


def _card_figures(report: dict[str, Any]) -> list[str]:
    """The card's Figures section: distances per class, copies, the timeline, the judge."""
    lines = [
        "## Figures (held-out hits)",
        "",
        f"{report['judge']['renders_per_class']} renders per class per model at "
        f"{report['model']['render_steps']} steps; "
        "log-mel distance in dB to the held-out hits (see report.html for the definition).",
        "",
        _md(CLASS_HEADER, class_rows(report)),
        "",
        f"Copies (similarity above {report['judge']['copy_threshold']:.4f}): base "
        f"{report['results']['base']['copies']}, fine-tuned "
        f"{report['results']['fine-tuned']['copies']} of "
        f"{report['results']['fine-tuned']['renders']}. {copy_sentence(report)}",
        "",
        _md(TIMELINE_HEADER, timeline_rows(report)),
        "",
    ]
    full = report.get("full_judge")
    if full and "error" not in full:
        lines += [
            _md(
                ["model", "FD embedding", "floor", "x floor", "class fidelity"],
                [
                    [
                        k,
                        _f(v["fd_embedding"]),
                        _f(v["fd_floor"]),
                        _f(v["fd_ratio"]),
                        _f(v["fidelity_micro"]),
                    ]
                    for k, v in full.items()
                ],
            ),
            "",
        ]
    return lines


def model_card(report: dict[str, Any]) -> str:
    """MODEL_CARD.md: data, training, figures."""
    lines = _card_data(report)
    lines += _card_training(report["training"])
    lines += _card_figures(report)
    lines += [
        "Serve it with `drumdiff serve --checkpoint model.pt`; earlier checkpoints are in "
        "`checkpoints/`.",
        "",
    ]
    return "\n".join(lines)
