"""Benchmark the daemon end to end (a script, not a test): prints a table and writes JSON.

Each section starts its own `drumdiff serve` subprocess and talks to it over real UDP:

- trigger-to-`done` latency (p50/p99) of pooled and fresh renders (OSC on loopback);
- MIDI note-on to first sample at the audio output, through a JACK server (dummy driver): one
  JACK client sends the note and captures the daemon's output, so both ends share JACK's frame
  clock (needs jackd; started and stopped here when none is running);
- throughput with 1/4/16/64 concurrent fresh requests, batched (max_batch 64) vs one by one;
- memory (resident, and GPU when serving on CUDA) from `/drumdiff/stats`.

Usage:
  python bench/daemon_latency.py                       # tiny random model (configs/tiny-test.yaml)
  python bench/daemon_latency.py --full-size           # random weights, full-size default config
  python bench/daemon_latency.py --checkpoint model/weights/default.pt --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import build_msg

REPO = Path(__file__).resolve().parent.parent


class Client:
    """A minimal OSC client that matches replies to request ids."""

    def __init__(self, server: tuple[str, int]) -> None:
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)

    def send(self, address: str, *args: Any) -> None:
        self.sock.sendto(build_msg(address, list(args)).dgram, self.server)

    def recv(self, timeout: float = 120.0) -> tuple[str, list[Any]]:
        self.sock.settimeout(timeout)
        data, _ = self.sock.recvfrom(65536)
        msg = OscMessage(data)
        return msg.address, list(msg.params)

    def ask(self, address: str, *args: Any) -> list[Any]:
        self.send(address, *args)
        reply, params = self.recv()
        if reply == "/drumdiff/fail":
            raise RuntimeError(f"{address} failed: {params}")
        return params

    def wait_done(self, ids: set[Any], timeout: float = 600.0) -> dict[Any, float]:
        """perf_counter time at which each id's `done` arrived."""
        arrived: dict[Any, float] = {}
        deadline = time.monotonic() + timeout
        while len(arrived) < len(ids):
            address, args = self.recv(max(0.1, deadline - time.monotonic()))
            if address == "/drumdiff/done" and args[0] in ids:
                arrived[args[0]] = time.perf_counter()
            elif address == "/drumdiff/fail" and args[0] in ids:
                raise RuntimeError(f"request {args[0]} failed: {args[1:]}")
        return arrived

    def wait_pool_full(self, timeout: float = 600.0) -> None:
        deadline = time.monotonic() + timeout
        while self.ask("/drumdiff/status")[3] < 1.0:
            if time.monotonic() > deadline:
                raise RuntimeError("the pool never filled")
            time.sleep(0.01)

    def stats(self) -> dict[str, Any]:
        flat = self.ask("/drumdiff/stats")
        return dict(zip(flat[::2], flat[1::2]))


class Serve:
    """`drumdiff serve` in a subprocess on a free port."""

    def __init__(self, model_args: list[str], folder: Path, *sets: str, device: str) -> None:
        cmd = [
            sys.executable,
            "-m",
            "drumdiff",
            "serve",
            *model_args,
            "--port",
            "0",
            "--folder",
            str(folder),
            "--seed",
            "1",
            "--set",
            f"engine.device={device}",
        ]
        for item in sets:
            cmd += ["--set", item]
        env = {**os.environ, "JACK_NO_START_SERVER": "1"}
        self.log = open(folder.parent / f"serve-{time.monotonic_ns()}.log", "w")
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=self.log, text=True, env=env
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"ready on udp ([\d.]+):(\d+)", line)
        if not match:
            self.close()
            raise RuntimeError(f"drumdiff serve did not start; see {self.log.name}")
        self.address = (match.group(1), int(match.group(2)))
        self.client = Client(self.address)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def summary(values_ms: list[float]) -> dict[str, float]:
    arr = np.asarray(values_ms)
    return {
        "n": int(arr.size),
        "p50_ms": round(float(np.percentile(arr, 50)), 2),
        "p99_ms": round(float(np.percentile(arr, 99)), 2),
        "mean_ms": round(float(arr.mean()), 2),
        "min_ms": round(float(arr.min()), 2),
        "max_ms": round(float(arr.max()), 2),
    }


def bench_osc_latency(
    args: argparse.Namespace, model_args: list[str], work: Path
) -> dict[str, Any]:
    serve = Serve(
        model_args,
        work / "hits-latency",
        "midi.enabled=false",
        f"engine.pool_size={args.pool_size}",
        "engine.warmup=false",
        *args.engine_sets,
        device=args.device,
    )
    try:
        c = serve.client
        classes = c.ask("/drumdiff/classes")
        # From start with an empty pool (and no warm-up render) until every class has pool_size
        # hits.
        c.wait_pool_full()
        pool_warm_s = float(c.stats()["pool_warm_s"])
        pooled: list[float] = []
        for i in range(args.trials):
            c.wait_pool_full()
            t0 = time.perf_counter()
            c.send("/drumdiff/render", classes[i % len(classes)], 100, "id", f"p{i}")
            pooled.append(1e3 * (c.wait_done({f"p{i}"})[f"p{i}"] - t0))
        fresh: list[float] = []
        for i in range(args.fresh_trials):
            c.wait_pool_full()  # the refill must not compete with the fresh render
            t0 = time.perf_counter()
            c.send("/drumdiff/render", classes[i % len(classes)], 100, "id", f"f{i}", "fresh", 1)
            fresh.append(1e3 * (c.wait_done({f"f{i}"})[f"f{i}"] - t0))
        # The same fresh renders at the full model's step count, in the same daemon.
        full: list[float] = []
        for i in range(args.full_trials):
            c.wait_pool_full()
            t0 = time.perf_counter()
            c.send(
                "/drumdiff/render",
                classes[i % len(classes)],
                100,
                "id",
                f"s{i}",
                "fresh",
                1,
                "steps",
                args.full_steps,
            )
            full.append(1e3 * (c.wait_done({f"s{i}"})[f"s{i}"] - t0))
        stats = c.stats()
    finally:
        serve.close()
    return {
        "pool_warm_s": pool_warm_s,
        "pooled": summary(pooled),
        "fresh": summary(fresh),
        f"fresh_{args.full_steps}_steps": summary(full) if full else None,
        "stats": stats,
    }


def bench_throughput(args: argparse.Namespace, model_args: list[str], work: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    top = max(args.concurrency)
    for mode, max_batch in (("batched", min(top, 64)), ("one_by_one", 1)):
        serve = Serve(
            model_args,
            work / f"hits-{mode}",
            "midi.enabled=false",
            "engine.pool_size=0",
            *args.engine_sets,
            f"engine.max_batch={max_batch}",
            f"engine.queue_size={max(top, 1) + 8}",
            device=args.device,
        )
        try:
            c = serve.client
            c.send("/drumdiff/render", "kick", 100, "id", "warm", "fresh", 1)
            c.wait_done({"warm"})
            rows = []
            for k in args.concurrency:
                ids = {f"{mode}-{k}-{i}" for i in range(k)}
                t0 = time.perf_counter()
                for rid in sorted(ids):
                    c.send("/drumdiff/render", "snare", 100, "id", rid, "fresh", 1)
                arrived = c.wait_done(ids)
                elapsed = max(arrived.values()) - t0
                rows.append(
                    {
                        "concurrent": k,
                        "seconds": round(elapsed, 3),
                        "hits_per_s": round(k / elapsed, 2),
                        "last_done_ms": round(1e3 * elapsed, 1),
                    }
                )
            results[mode] = {"max_batch": max_batch, "rows": rows, "stats": c.stats()}
        finally:
            serve.close()
    return results


class JackProbe:
    """A JACK client that sends MIDI note-ons and timestamps the first sample that comes back."""

    def __init__(self) -> None:
        import jack

        self.client = jack.Client("drumdiff-bench", no_start_server=True)
        self.midi_out = self.client.midi_outports.register("notes")
        self.audio_in = self.client.inports.register("in")
        self.pending_note: int | None = None
        self.sent_frame: int | None = None
        self.heard_frame: int | None = None
        self.heard = threading.Event()

        @self.client.set_process_callback
        def process(frames: int) -> None:
            self.midi_out.clear_buffer()
            start = self.client.last_frame_time
            if self.pending_note is not None:
                self.midi_out.write_midi_event(0, bytes([0x99, self.pending_note, 100]))
                self.sent_frame = start
                self.pending_note = None
            if self.sent_frame is not None and self.heard_frame is None:
                hits = np.flatnonzero(self.audio_in.get_array())
                if hits.size:
                    self.heard_frame = start + int(hits[0])
                    self.heard.set()

        self.client.activate()

    def trigger(self, note: int, timeout: float = 60.0) -> float:
        """Latency in frames from the note-on's frame to the first non-zero output sample."""
        self.sent_frame = None
        self.heard_frame = None
        self.heard.clear()
        self.pending_note = note
        if not self.heard.wait(timeout):
            raise RuntimeError("no sound arrived")
        assert self.sent_frame is not None and self.heard_frame is not None
        return float(self.heard_frame - self.sent_frame)

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


def jack_running() -> bool:
    try:
        import jack

        jack.set_error_function(lambda message: None)  # "cannot connect" is the answer, not noise

        jack.Client("drumdiff-bench-probe", no_start_server=True).close()
        return True
    except Exception:
        return False


def bench_midi_audio(args: argparse.Namespace, model_args: list[str], work: Path) -> dict[str, Any]:
    jackd = None
    if not jack_running():
        binary = shutil.which("jackd")
        if binary is None:
            return {"skipped": "jackd not installed"}
        jackd = subprocess.Popen(
            [binary, "--no-realtime", "-d", "dummy", "-r", "44100", "-p", str(args.jack_period)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not jack_running():
            if time.monotonic() > deadline:
                jackd.kill()
                return {"skipped": "jackd did not start"}
            time.sleep(0.1)
    results: dict[str, Any] = {}
    try:
        import jack

        patch = jack.Client("drumdiff-bench-patch", no_start_server=True)
        results["jack"] = {"sample_rate": patch.samplerate, "period_frames": patch.blocksize}
        for mode, pool in (("pooled", args.pool_size), ("fresh", 0)):
            port = f"drumdiff-bench-{mode}"
            serve = Serve(
                model_args,
                work / f"hits-midi-{mode}",
                "midi.api=jack",
                f"midi.virtual_port={port}",
                "audio_out.enabled=true",
                "audio_out.device='system, JACK'",
                "audio_out.channels=1",
                f"engine.pool_size={pool}",
                device=args.device,
            )
            probe = JackProbe()
            try:
                time.sleep(0.5)  # let the daemon's ports appear
                patch.connect("drumdiff-bench:notes", f"{port}:{port}")
                outs = patch.get_ports("PortAudio", is_audio=True, is_output=True)
                patch.connect(outs[-1], "drumdiff-bench:in")
                sr = patch.samplerate
                trials = args.trials if mode == "pooled" else args.fresh_trials
                frames: list[float] = []
                for _ in range(trials):
                    if pool:
                        serve.client.wait_pool_full()
                    frames.append(probe.trigger(36))
                    time.sleep(0.05 + args.hit_seconds)  # let the hit ring out before the next
                    # the probe needs silence before the next trigger
                results[mode] = summary([1e3 * f / sr for f in frames])
            finally:
                probe.close()
                serve.close()
        patch.close()
    finally:
        if jackd is not None:
            jackd.terminate()
            jackd.wait(10)
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", help="serve this checkpoint")
    p.add_argument(
        "--model-config",
        default=str(REPO / "configs" / "tiny-test.yaml"),
        help="random-weight model of this config (default: the tiny test model)",
    )
    p.add_argument(
        "--full-size", action="store_true", help="random weights of the full-size default config"
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--trials", type=int, default=50, help="pooled trials")
    p.add_argument("--fresh-trials", type=int, default=20)
    p.add_argument(
        "--full-trials", type=int, default=10, help="fresh trials at --full-steps (0: none)"
    )
    p.add_argument(
        "--full-steps", type=int, default=12, help="step count of the full-model fresh trials"
    )
    p.add_argument(
        "--runtime", default=None, help="engine.runtime for every daemon (default: the config's)"
    )
    p.add_argument("--pool-size", type=int, default=4)
    p.add_argument("--concurrency", default="1,4,16,64")
    p.add_argument(
        "--jack-period",
        type=int,
        default=256,
        help="frames per JACK period if jackd is started here",
    )
    p.add_argument("--sections", default="latency,midi,throughput")
    p.add_argument("--out", default=str(REPO / "bench-results" / "daemon_latency.json"))
    args = p.parse_args(argv)
    args.concurrency = [int(k) for k in args.concurrency.split(",")]
    sections = set(args.sections.split(","))
    args.engine_sets = [f"engine.runtime={args.runtime}"] if args.runtime else []

    work = Path(tempfile.mkdtemp(prefix="drumdiff-bench-"))
    if args.checkpoint:
        model_args = ["--checkpoint", args.checkpoint]
        label = args.checkpoint
    elif args.full_size:
        cfg = work / "full-size.yaml"
        cfg.write_text("name: full-size-random\n")
        model_args = ["--model-config", str(cfg)]
        label = "random weights, full-size default config"
    else:
        model_args = ["--model-config", args.model_config]
        label = f"random weights, {Path(args.model_config).name}"
    args.hit_seconds = 0.8  # longest default clip is 0.74 s

    import torch

    report: dict[str, Any] = {
        "model": label,
        "device": args.device,
        "host": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "omp_threads": os.environ.get("OMP_NUM_THREADS"),
        },
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    try:
        if "latency" in sections:
            report["osc_latency"] = bench_osc_latency(args, model_args, work)
            r = report["osc_latency"]
            print(
                f"trigger -> done over OSC ({label}); pool full {r['pool_warm_s']:.1f} s after "
                "start:"
            )
            for kind in ("pooled", "fresh", f"fresh_{args.full_steps}_steps"):
                s = r[kind]
                if s is not None:
                    print(
                        f"  {kind:<14} p50 {s['p50_ms']:8.2f} ms   p99 {s['p99_ms']:8.2f} ms   "
                        f"(n={s['n']})"
                    )
            print(
                f"  memory: rss {r['stats']['rss_mb']:.0f} MB, peak "
                f"{r['stats']['peak_rss_mb']:.0f} MB, "
                f"gpu {r['stats']['gpu_mb']:.0f} MB (peak {r['stats']['gpu_peak_mb']:.0f} MB)"
            )
        if "midi" in sections:
            report["midi_to_audio"] = bench_midi_audio(args, model_args, work)
            r = report["midi_to_audio"]
            if "skipped" in r:
                print(f"MIDI -> audio: skipped ({r['skipped']})")
            else:
                print(
                    "MIDI note-on -> first sample at the JACK output (period "
                    f"{r['jack']['period_frames']} "
                    f"frames at {r['jack']['sample_rate']} Hz):"
                )
                for kind in ("pooled", "fresh"):
                    s = r[kind]
                    print(
                        f"  {kind:<7} p50 {s['p50_ms']:8.2f} ms   p99 {s['p99_ms']:8.2f} ms   "
                        f"(n={s['n']})"
                    )
        if "throughput" in sections:
            report["throughput"] = bench_throughput(args, model_args, work)
            print("throughput, fresh renders sent at once:")
            print("  concurrent   batched hits/s   one-by-one hits/s")
            rows = zip(
                report["throughput"]["batched"]["rows"], report["throughput"]["one_by_one"]["rows"]
            )
            for b, o in rows:
                print(
                    f"  {b['concurrent']:>10}   {b['hits_per_s']:>14.2f}   {o['hits_per_s']:>17.2f}"
                )
            s = report["throughput"]["batched"]["stats"]
            print(
                f"  memory after batched run: rss {s['rss_mb']:.0f} MB, peak "
                f"{s['peak_rss_mb']:.0f} MB, "
                f"gpu peak {s['gpu_peak_mb']:.0f} MB"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
