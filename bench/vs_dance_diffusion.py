"""Speed side by side: drumdiff's default model vs Dance Diffusion as users get it from diffusers.

Dance Diffusion here is diffusers' `DanceDiffusionPipeline` with `UNet1DModel` built by hand in
the published harmonai/maestro-150k configuration (random weights: speed does not depend on
them, and nothing is downloaded) and the pipeline's defaults: `IPNDMScheduler`, 100 steps, one
network call per step. It runs in a separate Python environment that has diffusers, so the
project's own dependencies stay lean:

  python3 -m venv /work/bench-venv
  /work/bench-venv/bin/pip install torch==2.13.0 diffusers

then, from the repository root, with the project's environment:

  .venv/bin/python bench/vs_dance_diffusion.py                      # full table, writes JSON
  .venv/bin/python bench/vs_dance_diffusion.py --checkpoint runs/x/last.pt \\
      --eval-report runs/x/eval/report.json                         # quality column too
  .venv/bin/python bench/vs_dance_diffusion.py --dd-timed-steps 10  # time 10 real DD steps
                                                                    # and scale to 100 (marked)

Same machine, same thread count, same length: 32768 samples per one-shot (drumdiff's default:
mono, 0.74 s at 44.1 kHz; Dance Diffusion: stereo as published, 2.05 s at maestro's 16 kHz: the
network cost depends on samples, not on the rate). Batch 1: one-shot latency, what a pad needs.

drumdiff's own curve: network evaluations (counted by a hook on the network, a guided step is
one batched call) vs milliseconds per one-shot at several step counts, plus quality from a
`drumdiff eval` report.json when one is given (columns `FD emb x floor` and class fidelity, by
step count; empty otherwise).

Prints a table and writes bench-results/vs_dance_diffusion.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DD_PYTHON = "/work/bench-venv/bin/python"
LENGTH = 32768

#: harmonai/maestro-150k's UNet1DModel: the 14-level DiffusionAttnUnet1D of Harmonai's
#: sample-generator (channels 128, 128, 256, 256, then 512; self-attention on the 5 deepest
#: levels and the middle) as diffusers' conversion script maps it; 8 Fourier frequencies of the
#: noise level (16 channels) are concatenated to the stereo input.
DD_UNET: dict[str, Any] = {
    "sample_size": 65536,
    "sample_rate": 16000,
    "in_channels": 2,
    "out_channels": 2,
    "extra_in_channels": 16,
    "time_embedding_type": "fourier",
    "time_embedding_dim": 16,
    "flip_sin_to_cos": True,
    "use_timestep_embedding": False,
    "freq_shift": 0.0,
    "down_block_types": ["DownBlock1DNoSkip"] + ["DownBlock1D"] * 7 + ["AttnDownBlock1D"] * 5,
    "up_block_types": ["AttnUpBlock1D"] * 5 + ["UpBlock1D"] * 7 + ["UpBlock1DNoSkip"],
    "mid_block_type": "UNetMidBlock1D",
    "block_out_channels": [128, 128, 256, 256] + [512] * 9,
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--config",
        default=str(REPO / "configs" / "default.yaml"),
        help="drumdiff model YAML (random weights)",
    )
    p.add_argument("--checkpoint", default=None, help="time this checkpoint instead of --config")
    p.add_argument("--threads", type=int, default=2, help="torch threads for both sides")
    p.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="timed drumdiff renders per point (best and median kept)",
    )
    p.add_argument(
        "--curve-steps", default="1,2,4,8,12,16,25,50", help="drumdiff step counts for the curve"
    )
    p.add_argument(
        "--eval-report", default=None, help="`drumdiff eval` report.json for the quality columns"
    )
    p.add_argument(
        "--dd-python", default=DD_PYTHON, help="Python of the environment with diffusers"
    )
    p.add_argument(
        "--dd-steps", type=int, default=100, help="Dance Diffusion steps (the pipeline's default)"
    )
    p.add_argument(
        "--dd-timed-steps",
        type=int,
        default=None,
        help="time only this many real DD steps and scale to --dd-steps (marked as extrapolated)",
    )
    p.add_argument("--skip-dd", action="store_true", help="drumdiff only")
    p.add_argument("--out", default=str(REPO / "bench-results" / "vs_dance_diffusion.json"))
    p.add_argument(
        "--dd-worker", action="store_true", help=argparse.SUPPRESS
    )  # internal: the DD side
    p.add_argument(
        "--length", type=int, default=LENGTH, help=argparse.SUPPRESS
    )  # set from drumdiff's model
    return p


# ---- the Dance Diffusion side (runs inside the diffusers environment) --------------------------


def dd_worker(args: argparse.Namespace) -> int:
    import diffusers
    import torch
    from diffusers import DanceDiffusionPipeline, IPNDMScheduler, UNet1DModel

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    unet = UNet1DModel(**DD_UNET).eval()
    pipe = DanceDiffusionPipeline(unet=unet, scheduler=IPNDMScheduler())
    pipe.set_progress_bar_config(disable=True)
    seconds = args.length / DD_UNET["sample_rate"]
    timed = args.dd_timed_steps or args.dd_steps
    with torch.inference_mode():
        pipe(batch_size=1, num_inference_steps=2, audio_length_in_s=seconds)  # warm-up
        started = time.perf_counter()
        out = pipe(
            batch_size=1,
            num_inference_steps=timed,
            audio_length_in_s=seconds,
            generator=torch.Generator().manual_seed(0),
        )
        elapsed = time.perf_counter() - started
    audio = out.audios
    result = {
        "pipeline": "diffusers DanceDiffusionPipeline + UNet1DModel (harmonai/maestro-150k "
        "configuration, random weights)",
        "diffusers": diffusers.__version__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in unet.parameters()),
        "scheduler": "IPNDMScheduler",
        "steps": args.dd_steps,
        "timed_steps": timed,
        "extrapolated": timed != args.dd_steps,
        "network_evaluations": args.dd_steps,
        "shape": list(audio.shape),  # (batch, channels, samples)
        "ms_per_step": 1e3 * elapsed / timed,
        "ms_per_one_shot": 1e3 * elapsed / timed * args.dd_steps,
    }
    print(json.dumps(result))
    return 0


def run_dd(args: argparse.Namespace, length: int) -> dict[str, Any]:
    cmd = [
        args.dd_python,
        str(Path(__file__).resolve()),
        "--dd-worker",
        "--threads",
        str(args.threads),
        "--dd-steps",
        str(args.dd_steps),
        "--length",
        str(length),
    ]
    if args.dd_timed_steps:
        cmd += ["--dd-timed-steps", str(args.dd_timed_steps)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"the Dance Diffusion run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---- the drumdiff side --------------------------------------------------------------------------


def quality_by_steps(path: str | None) -> dict[int, dict[str, Any]]:
    """FD/floor and class fidelity per step count from a `drumdiff eval` report.json."""
    if not path:
        return {}
    report = json.loads(Path(path).read_text())
    out: dict[int, dict[str, Any]] = {}
    for entry in report.get("results", []):
        if not entry.get("steps"):
            continue
        overall = entry.get("overall", {})
        out[int(entry["steps"])] = {
            "fd_emb_ratio": overall.get("distances", {}).get("embedding", {}).get("fd_ratio"),
            "class_fidelity": overall.get("fidelity", {}).get("micro"),
        }
    return out


def time_drumdiff(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from drumdiff.model.config import load_config
    from drumdiff.model.core.checkpoint import load_checkpoint, model_from_config
    from drumdiff.model.render.generate import render, settings_for

    torch.set_num_threads(args.threads)
    model = (
        load_checkpoint(args.checkpoint)
        if args.checkpoint
        else model_from_config(load_config(args.config), seed=0)
    )
    calls: list[int] = []
    # Count what the network really runs: one entry per forward call, its batch size.
    model.denoiser.net.register_forward_pre_hook(
        lambda module, inputs: calls.append(int(inputs[0].shape[0]))
    )
    default = settings_for(model)
    quality = quality_by_steps(args.eval_report)

    def point(steps: int) -> dict[str, Any]:
        settings = settings_for(model, steps=steps)
        render(model, [0], settings, classes=[model.classes[0]])  # warm-up (allocator, caches)
        times = []
        for i in range(args.repeats):
            calls.clear()
            started = time.perf_counter()
            render(model, [i + 1], settings, classes=[model.classes[0]])
            times.append(1e3 * (time.perf_counter() - started))
        return {
            "steps": steps,
            "sampler": settings.sampler,
            "guidance": settings.guidance,
            "network_evaluations": len(calls),
            "network_batch": max(calls) if calls else 0,
            "ms_best": min(times),
            "ms_median": statistics.median(times),
            **quality.get(steps, {"fd_emb_ratio": None, "class_fidelity": None}),
        }

    curve_steps = sorted({int(s) for s in args.curve_steps.split(",")} | {default.steps})
    curve = [point(s) for s in curve_steps]
    cfg = model.config.model
    return {
        "model": str(args.checkpoint) if args.checkpoint else f"random:{model.config.name}",
        "step": model.step,
        "parameters": sum(p.numel() for p in model.denoiser.parameters()),
        "channels": cfg.audio_channels,
        "length": cfg.length,
        "sample_rate": cfg.sample_rate,
        "default": {
            "steps": default.steps,
            "sampler": default.sampler,
            "schedule": default.schedule,
            "guidance": default.guidance,
        },
        "curve": curve,
        "at_default": next(p for p in curve if p["steps"] == default.steps),
    }


def environment(threads: int) -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = ""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": threads,
        "load_average": load,
        "commit": commit,
        "python": platform.python_version(),
    }


def _q(value: Any, spec: str, width: int) -> str:
    return f"{'-':>{width}}" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.dd_worker:
        return dd_worker(args)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    env_before = environment(args.threads)
    ours = time_drumdiff(args)
    dd = None if args.skip_dd else run_dd(args, ours["length"])
    report = {
        "environment": env_before,
        "load_average_after": os.getloadavg(),
        "drumdiff": ours,
        "dance_diffusion": dd,
    }
    at = ours["at_default"]
    if dd is not None:
        report["speedup_at_default"] = dd["ms_per_one_shot"] / at["ms_best"]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))

    print(
        f"same machine ({env_before['cpu']}, {args.threads} threads), {ours['length']} samples per "
        "one-shot, "
        f"batch 1; drumdiff {ours['channels']} channel(s), Dance Diffusion 2 (stereo, as published)"
    )
    print(
        f"{'system':<44} {'steps':>5} {'NFE':>4} {'ms/one-shot':>12} {'FD emb x':>9} "
        f"{'fidelity':>8}"
    )
    if dd is not None:
        mark = " (extrapolated)" if dd["extrapolated"] else ""
        print(
            f"{'Dance Diffusion (diffusers, stereo, IPNDM)':<44} {dd['steps']:>5} "
            f"{dd['network_evaluations']:>4} "
            f"{dd['ms_per_one_shot']:>12.0f} {'-':>9} {'-':>8}{mark}"
        )
    for p in ours["curve"]:
        name = f"drumdiff {ours['model']} ({p['sampler']}, g={p['guidance']:g})"
        star = " <- default" if p["steps"] == ours["default"]["steps"] else ""
        print(
            f"{name[:44]:<44} {p['steps']:>5} {p['network_evaluations']:>4} {p['ms_best']:>12.1f} "
            f"{_q(p['fd_emb_ratio'], '9.2f', 9)} {_q(p['class_fidelity'], '8.2f', 8)}{star}"
        )
    if dd is not None:
        print(
            f"speed-up at drumdiff's default: {report['speedup_at_default']:.0f}x "
            f"({dd['ms_per_one_shot']:.0f} ms vs {at['ms_best']:.1f} ms)"
        )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
