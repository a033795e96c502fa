"""`drumdiff bench --checkpoint CKPT`: one model's render speed, side by side in one run.

For each runtime (torch under no_grad and inference_mode, torch.compile, OpenVINO, ONNX Runtime)
and batch size: the network's forward alone, and whole renders (finishing included) at the
model's default settings and at 12 steps of the full model. Runtimes other than torch are
adopted by the same check the daemon uses (`model.core.runtime.use_runtime`); one that is missing or
disagrees with torch is listed with its reason, not timed.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from drumdiff.model.core.checkpoint import LoadedModel
from drumdiff.model.core.runtime import RUNTIMES, use_runtime
from drumdiff.model.core.sampling import DISTILLED, network_evaluations
from drumdiff.model.render.generate import RenderSettings, render, settings_for

#: Runtime rows besides those of model.core.runtime: torch's own modes.
TORCH_MODES = ("torch-no-grad", "torch-inference", "torch-compile")


def median_ms(fn: Callable[[], object], repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def render_paths(model: LoadedModel, full_steps: int = 12) -> list[tuple[str, RenderSettings]]:
    """The model's default settings and the full model at `full_steps` (once if they agree)."""
    default = settings_for(model)
    teacher = model.distilled.teacher if model.distilled is not None else {}
    full = settings_for(
        model,
        sampler=str(teacher.get("sampler", "dpmpp-2m"))
        if default.sampler == DISTILLED
        else default.sampler,
        steps=full_steps,
    )
    paths = [("default", default)]
    if full != default:
        paths.append((f"{full_steps}-step", full))
    return paths


def _forward(
    net: Callable[..., Any], grad_mode: Callable[[], Any], x: Any, t: Any, ids: Any
) -> None:
    with grad_mode():
        net(x, t, ids)


def _variant(model: LoadedModel, runtime: str, threads: int) -> tuple[LoadedModel | None, str]:
    if runtime in ("torch-no-grad", "torch-inference"):
        return model, "reference"
    if runtime == "torch-compile":
        try:
            compiled = torch.compile(model.denoiser.net)
        except Exception as err:  # noqa: BLE001 - torch.compile fails in many ways on odd platforms
            return None, f"torch.compile failed: {type(err).__name__}: {err}"
        from drumdiff.model.core.denoiser import Denoiser

        denoiser = Denoiser(compiled)  # type: ignore[arg-type]
        return LoadedModel(
            denoiser, model.config, model.step, model.path, model.distilled
        ), "compiled"
    swapped, choice = use_runtime(model, runtime, threads=threads)
    if choice.runtime != runtime:
        return None, choice.reason
    return swapped, choice.reason


def bench_checkpoint(
    model: LoadedModel,
    *,
    runtimes: Sequence[str] = (*TORCH_MODES, *RUNTIMES[1:]),
    batches: Sequence[int] = (1, 2, 16),
    repeats: int = 3,
    warmup: int = 1,
    threads: int = 0,
    full_steps: int = 12,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Rows of {runtime, batch, forward_ms, <path>_ms_per_hit...}; skipped runtimes with reasons."""
    cfg = model.config.model
    paths = render_paths(model, full_steps)
    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for runtime in runtimes:
        variant, reason = _variant(model, runtime, threads)
        if variant is None:
            skipped[runtime] = reason
            log(f"{runtime}: skipped ({reason})")
            continue
        net = variant.denoiser.net
        grad_mode = torch.no_grad if runtime == "torch-no-grad" else torch.inference_mode
        for batch in batches:
            x = torch.randn(batch, cfg.audio_channels, cfg.length)
            t = torch.rand(batch)
            ids = torch.arange(batch) % (len(model.classes) + 1)
            forward = functools.partial(_forward, net, grad_mode, x, t, ids)
            row: dict[str, Any] = {
                "runtime": runtime,
                "batch": batch,
                "note": reason,
                "forward_ms": median_ms(forward, repeats, warmup),
            }
            classes = [model.classes[i % len(model.classes)] for i in range(batch)]
            for name, settings in paths:
                hits = functools.partial(
                    render, variant, list(range(batch)), settings, classes=classes
                )
                row[f"{name}_ms_per_hit"] = median_ms(hits, repeats, warmup) / batch
            rows.append(row)
            log(
                "  ".join(
                    f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in row.items()
                    if k != "note"
                )
            )
    return {
        "paths": {
            name: {
                **settings.__dict__,
                "network_evaluations": network_evaluations(settings.sampler, settings.steps),
            }
            for name, settings in paths
        },
        "rows": rows,
        "skipped": skipped,
        "channels_last": "not applicable: the network is 1-D (channels_last is a 4-D memory "
        "format)",
    }


def table(result: dict[str, Any]) -> str:
    names = list(result["paths"])
    head = ["runtime", "batch", "forward ms", *[f"{n} ms/hit" for n in names]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in result["rows"]:
        cells = [
            row["runtime"],
            str(row["batch"]),
            f"{row['forward_ms']:.1f}",
            *[f"{row[f'{n}_ms_per_hit']:.1f}" for n in names],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    for runtime, reason in result["skipped"].items():
        lines.append(f"| {runtime} | skipped: {reason} |")
    return "\n".join(lines)
