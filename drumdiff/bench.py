"""Measure each model config: parameters, training clips/s, render time per hit, peak memory.

For every model config in configs/ (or those given): a random-weight model is built and timed
on synthetic data, so no dataset or checkpoint is needed. Training steps are the real recipe
minus data loading (v-loss forward, backward, gradient clipping, AdamW, EMA update); renders go
through `model.render.generate.render` with the config's sampler and guidance. Prints a table
and writes JSON. Peak memory is the process's peak RSS during each phase on CPU (reset between
phases through /proc/self/clear_refs where Linux allows it), CUDA max-allocated on a GPU.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from drumdiff.common import REPO, fail, parser, pick_device
from drumdiff.model.config import Config, load_config, read_yaml
from drumdiff.model.core.checkpoint import LoadedModel, build_model
from drumdiff.model.core.loss import configured_frequency_weights, v_loss
from drumdiff.model.core.sampling import SAMPLERS, network_evaluations
from drumdiff.model.core.unet import count_parameters
from drumdiff.model.errors import DrumDiffError
from drumdiff.model.render.generate import render, settings_for

#: Top-level sections of a model/training config; YAML with other keys (server.yaml) is skipped.
MODEL_SECTIONS = frozenset(f.name for f in dataclasses.fields(Config))


def is_model_config(data: object) -> bool:
    """True for a mapping whose top-level keys are Config sections (and name a model part)."""
    return (
        isinstance(data, dict)
        and bool(data)
        and set(data) <= MODEL_SECTIONS
        and bool(set(data) & {"model", "diffusion", "train"})
    )


def model_configs(folder: Path) -> list[Path]:
    """The model configs directly in `folder`, sorted."""
    paths = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
    return [p for p in paths if is_model_config(read_yaml(p))]


# -- memory -----------------------------------------------------------------------------------


class PeakMemory:
    """Peak memory of one phase: CUDA max-allocated, or the process's peak RSS (VmHWM)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.method = "cuda_max_allocated" if device.type == "cuda" else "rss"
        self.resettable = False

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:  # Linux >= 4.0: "5" resets the peak RSS of this process to its current RSS
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            self.resettable = True
        except OSError:
            self.resettable = False

    def peak_mb(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        # ru_maxrss: kilobytes on Linux, bytes on macOS; the whole process's lifetime peak.
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024


# -- measurements -----------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_train(
    config: Config, device: torch.device, *, batch: int, steps: int, warmup: int, seed: int = 0
) -> dict[str, Any]:
    """Clips per second of full training steps on random clips (no data loading)."""
    from drumdiff.model.train.trainer import EMA  # training-only code stays off the render path

    memory = PeakMemory(device)
    memory.reset()
    torch.manual_seed(seed)
    net = build_model(config).net.to(device).train()
    ema = EMA(net, config.train.ema_decay, config.train.ema_warmup)
    optimizer = torch.optim.AdamW(
        net.parameters(),
        lr=config.train.lr,
        betas=config.train.betas,
        weight_decay=config.train.weight_decay,
    )
    m = config.model
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(batch, m.audio_channels, m.length, generator=gen) * 0.3).to(device)
    y = torch.randint(0, len(m.classes), (batch,), generator=gen).to(device)
    precision = config.train.precision
    use_amp = device.type == "cuda" and precision in ("bf16", "fp16")
    amp_dtype = torch.bfloat16 if precision == "bf16" else torch.float16

    def step(i: int) -> float:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
            loss = v_loss(
                net,
                x,
                y,
                condition_dropout=config.diffusion.condition_dropout,
                weighting=config.diffusion.loss_weighting,
                frequency_weighting=configured_frequency_weights(config, x.shape[-1]),
                generator=torch.Generator().manual_seed(seed + i),
            )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), config.train.grad_clip)
        optimizer.step()
        ema.update(net, i + 1)
        return float(loss.detach())

    for i in range(warmup):
        step(i)
    times = []
    loss = float("nan")
    for i in range(steps):
        _sync(device)
        start = time.perf_counter()
        loss = step(warmup + i)
        _sync(device)
        times.append(time.perf_counter() - start)
    total = sum(times)
    return {
        "batch": batch,
        "steps": steps,
        "warmup": warmup,
        "precision": precision if use_amp else "fp32",
        "s_per_step": total / steps,
        "s_per_step_min": min(times),
        "clips_per_s": batch * steps / total,
        "last_loss": loss,
        "peak_mem_mb": memory.peak_mb(),
        "peak_mem_method": memory.method,
        "peak_mem_reset": memory.resettable or device.type == "cuda",
    }


def bench_render(
    model: LoadedModel,
    *,
    steps: int,
    batch: int,
    repeats: int,
    warmup: int,
    sampler: str | None = None,
    guidance: float | None = None,
) -> dict[str, Any]:
    """Milliseconds per hit of a batch render at the config's length (best of `repeats`)."""
    device = next(model.denoiser.parameters()).device
    memory = PeakMemory(device)
    memory.reset()
    settings = settings_for(model, steps=steps, sampler=sampler, guidance=guidance)
    seeds = list(range(batch))
    classes = [model.classes[i % len(model.classes)] for i in range(batch)]
    for _ in range(warmup):
        render(model, seeds, dataclasses.replace(settings, steps=1), classes=classes)
    times = []
    for r in range(repeats):
        _sync(device)
        start = time.perf_counter()
        render(model, [s + 1000 * (r + 1) for s in seeds], settings, classes=classes)
        times.append(time.perf_counter() - start)
    best = min(times)
    duration_s = model.config.model.length / model.sample_rate
    nfe = network_evaluations(settings.sampler, steps)
    guided = settings.guidance != 1.0
    return {
        "steps": steps,
        "batch": batch,
        "sampler": settings.sampler,
        "schedule": settings.schedule,
        "guidance": settings.guidance,
        "network_evaluations": nfe,
        "network_batch": batch * (2 if guided else 1),
        "repeats": repeats,
        "ms_per_batch": best * 1000,
        "ms_per_hit": best * 1000 / batch,
        "ms_per_hit_median": statistics.median(times) * 1000 / batch,
        "realtime_factor": duration_s / (best / batch),
        "peak_mem_mb": memory.peak_mb(),
        "peak_mem_method": memory.method,
    }


def bench_config(
    path: Path,
    device: torch.device,
    *,
    overrides: Sequence[str] = (),
    train_batch: int = 16,
    steps_list: Sequence[int] = (12, 50),
    batches: Sequence[int] = (1, 16),
    repeats: int = 3,
    warmup: int = 1,
    skip_train: bool = False,
    skip_render: bool = False,
    sampler: str | None = None,
    log: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Any]:
    """Every measurement for one config, as a JSON-ready dict."""
    config = load_config(path, tuple(overrides))
    m = config.model
    torch.manual_seed(0)
    denoiser = build_model(config).eval().to(device)
    result: dict[str, Any] = {
        "config": _display(path),
        "name": config.name,
        "parameters": count_parameters(denoiser.net),
        "sample_rate": m.sample_rate,
        "length": m.length,
        "duration_s": m.length / m.sample_rate,
        "patch_size": m.patch_size,
        "widths": list(m.widths),
        "train": None,
        "render": [],
    }
    log(f"{config.name}: {result['parameters'] / 1e6:.2f} M parameters")
    if not skip_train:
        result["train"] = bench_train(
            config, device, batch=train_batch, steps=repeats, warmup=warmup
        )
        log(
            f"{config.name}: train {result['train']['clips_per_s']:.2f} clips/s at batch "
            f"{train_batch}"
        )
    if not skip_render:
        model = LoadedModel(denoiser, config, 0, None)
        for steps in steps_list:
            for batch in batches:
                entry = bench_render(
                    model, steps=steps, batch=batch, repeats=repeats, warmup=warmup, sampler=sampler
                )
                result["render"].append(entry)
                log(
                    f"{config.name}: render {steps} steps batch {batch}: "
                    f"{entry['ms_per_hit']:.1f} ms per hit"
                )
    peaks = [e["peak_mem_mb"] for e in result["render"]]
    if result["train"]:
        peaks.append(result["train"]["peak_mem_mb"])
    result["peak_mem_mb"] = max(peaks) if peaks else None
    return result


# -- report -----------------------------------------------------------------------------------


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: torch.device) -> dict[str, Any]:
    """Where the numbers were taken."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    return {
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": str(device),
        "device_name": name,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "git_commit": _git_commit(),
    }


def table(results: Sequence[dict[str, Any]]) -> str:
    """A plain-text table: one row per config."""
    cols = sorted({(e["steps"], e["batch"]) for r in results for e in r.get("render", [])})
    batches = sorted({r["train"]["batch"] for r in results if r.get("train")})
    train_head = f"train clips/s (b{batches[0]})" if len(batches) == 1 else "train clips/s"
    head = ["config", "params", train_head]
    head += [f"{s} steps b{b} ms/hit" for s, b in cols] + ["peak MB"]
    rows = []
    for r in results:
        if r.get("error"):
            rows.append([r["config"], "-", f"error: {r['error']}"] + [""] * (len(head) - 3))
            continue
        by_key = {(e["steps"], e["batch"]): e for e in r["render"]}
        row = [r["name"], f"{r['parameters'] / 1e6:.2f}M"]
        row.append(f"{r['train']['clips_per_s']:.2f}" if r.get("train") else "-")
        row += [f"{by_key[c]['ms_per_hit']:.1f}" if c in by_key else "-" for c in cols]
        row.append(f"{r['peak_mem_mb']:.0f}" if r.get("peak_mem_mb") is not None else "-")
        rows.append(row)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(head, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise ValueError(f"expected integers separated by commas, got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"expected positive integers, got {text!r}")
    return values


def build_parser():  # type: ignore[no-untyped-def]
    p = parser(__doc__.strip().splitlines()[0], "bench")
    p.add_argument(
        "--configs",
        nargs="+",
        default=None,
        help="config files (default: every model config in configs/)",
    )
    p.add_argument("--batch", type=int, default=16, help="training batch size")
    p.add_argument("--steps", default="12,50", help="sampling step counts to time")
    p.add_argument("--render-batches", default="1,16", help="render batch sizes to time")
    p.add_argument(
        "--repeats", type=int, default=3, help="timed training steps and renders per measurement"
    )
    p.add_argument("--warmup", type=int, default=1, help="untimed runs before each measurement")
    p.add_argument(
        "--sampler", choices=sorted(SAMPLERS), default=None, help="(default: each config's)"
    )
    p.add_argument("--skip-train", action="store_true", help="only time rendering")
    p.add_argument("--skip-render", action="store_true", help="only time training")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override applied to every config",
    )
    p.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument(
        "--checkpoint",
        help="time this trained model instead of the configs: its default and "
        "12-step renders on each runtime (see drumdiff/bench_checkpoint.py)",
    )
    p.add_argument(
        "--runtimes",
        default=None,
        help="with --checkpoint: comma-separated runtimes "
        "(default: torch-no-grad,torch-inference,torch-compile,openvino,onnxruntime)",
    )
    p.add_argument("--out", default="bench-results/bench.json", help="JSON output file")
    return p


def checkpoint_main(args: Any, batches: list[int], device: torch.device) -> int:
    from drumdiff.bench_checkpoint import bench_checkpoint
    from drumdiff.bench_checkpoint import table as checkpoint_table
    from drumdiff.model.core.checkpoint import load_checkpoint

    try:
        model = load_checkpoint(args.checkpoint, device=device)
    except DrumDiffError as err:
        return fail(str(err))
    kwargs: dict[str, Any] = {}
    if args.runtimes:
        kwargs["runtimes"] = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    result = bench_checkpoint(
        model,
        batches=batches,
        repeats=args.repeats,
        warmup=args.warmup,
        threads=args.threads or 0,
        log=lambda m: print(m, file=sys.stderr, flush=True),
        **kwargs,
    )
    report = {"environment": environment(device), "checkpoint": str(args.checkpoint), **result}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(checkpoint_table(result))
    print(f"\nwrote {out.resolve()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        steps_list = _int_list(args.steps)
        batches = _int_list(args.render_batches)
    except ValueError as err:
        return fail(str(err))
    if args.batch < 1 or args.repeats < 1 or args.warmup < 0:
        return fail("--batch and --repeats must be at least 1, --warmup at least 0")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    if args.checkpoint:
        return checkpoint_main(args, batches, device)
    paths = [Path(p) for p in args.configs] if args.configs else model_configs(REPO / "configs")
    if not paths:
        return fail("no model configs to measure")
    missing = [p for p in paths if not p.is_file()]
    if missing:
        return fail(f"config {missing[0]} does not exist")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    log(f"bench on {device} with {torch.get_num_threads()} threads: {', '.join(map(str, paths))}")
    results: list[dict[str, Any]] = []
    for path in paths:
        try:
            results.append(
                bench_config(
                    path,
                    device,
                    overrides=args.set,
                    train_batch=args.batch,
                    steps_list=steps_list,
                    batches=batches,
                    repeats=args.repeats,
                    warmup=args.warmup,
                    skip_train=args.skip_train,
                    skip_render=args.skip_render,
                    sampler=args.sampler,
                    log=log,
                )
            )
        except (DrumDiffError, ValueError, RuntimeError) as err:  # e.g. out of memory: go on
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            log(f"{path}: failed: {first}")
            results.append({"config": _display(path), "error": first[:300]})
        if device.type == "cuda":
            torch.cuda.empty_cache()
    report = {
        "environment": environment(device),
        "settings": {
            "train_batch": args.batch,
            "steps": steps_list,
            "render_batches": batches,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "overrides": args.set,
            "sampler": args.sampler,
        },
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(results))
    print(f"\nwrote {out.resolve()}")
    return 1 if any(r.get("error") for r in results) else 0
