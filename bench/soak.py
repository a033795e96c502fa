"""Soak the daemon: 100,000+ hostile datagrams and a 2,000-trigger burst, with figures.

A script, not a test (tests/stress/ holds the small versions). Each phase starts its own
`drumdiff serve` subprocess and talks to it over real UDP on 127.0.0.1 only. Everything is
bounded: a count, and a time limit per phase after which it stops and reports what it reached.

1. fuzz (tiny random model, configs/tiny-test.yaml): `--datagrams` hostile datagrams
   (bench/osc_fuzz.py: random bytes, truncated and mis-typed messages, strings and blobs up to
   64 KiB, NaN/Inf/negative numbers, unknown addresses, nested and broken bundles) in batches of
   `--batch`, a ping after each batch. Every reply is accounted for against the oracle (one `fail`
   per invalid message, never `internal`); the daemon's resident memory (VmRSS of its process)
   is read before, every 10 batches, and after.
2. load (configs/stage1-global-space.yaml with random weights, or `--checkpoint`; the server
   defaults: pool of 4 per class, queue 64, batches of 16): first the pooled latency of single
   triggers on an idle daemon with a full pool; then, with the pool full again, `--triggers`
   pad hits spread evenly over `--seconds` from `--clients` clients. Every request must get
   `done` or
   `fail busy`; reported: p50/p99 trigger-to-reply latency by source (pool or fresh, read back
   from each file's metadata), busy count, the longest queue seen by a `status` monitor, lost.

Usage (from the repository root):
  .venv/bin/python bench/soak.py                                # both phases, full size
  .venv/bin/python bench/soak.py --phase fuzz --datagrams 20000
  .venv/bin/python bench/soak.py --phase load --checkpoint runs/<run>/last.pt

Prints the figures and writes bench-results/soak.json. The machine's load average is recorded:
on a busy machine the latencies measure the machine too.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from osc_fuzz import datagrams  # bench/osc_fuzz.py (this script's folder is on sys.path)
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import build_msg

REPO = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
DONE, FAIL, PONG = "/drumdiff/done", "/drumdiff/fail", "/drumdiff/pong"


class Peer:
    """An OSC client on loopback with a large receive buffer."""

    def __init__(self, server: tuple[str, int]) -> None:
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)

    def send(self, address: str, *args: Any) -> None:
        self.sock.sendto(build_msg(address, list(args)).dgram, self.server)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.server)

    def recv(self, timeout: float) -> tuple[str, list[Any]]:
        self.sock.settimeout(timeout)
        data, _ = self.sock.recvfrom(65536)
        msg = OscMessage(data)
        return msg.address, list(msg.params)

    def ask(self, address: str, *args: Any, timeout: float = 60.0) -> list[Any]:
        self.send(address, *args)
        while True:
            reply, params = self.recv(timeout)
            if reply == address + ".reply" or (address.endswith("/ping") and reply == PONG):
                return params

    def close(self) -> None:
        self.sock.close()


class Served:
    """A `drumdiff serve` subprocess on a free loopback port; its log goes to a file."""

    def __init__(self, folder: Path, *args: str) -> None:
        self.log_path = folder / "serve.log"
        self._log = open(self.log_path, "w")
        env = {**os.environ, "JACK_NO_START_SERVER": "1"}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "drumdiff",
                "serve",
                "--port",
                "0",
                "--no-midi",
                "--folder",
                str(folder / "hits"),
                "--set",
                f"model_folders=[{folder / 'models'}]",
                *args,
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"ready on udp ([\d.]+):(\d+)", line)
        if not match:
            self.stop()
            raise RuntimeError(
                f"serve did not start: {line!r}\n{self.log_path.read_text()[-3000:]}"
            )
        self.address = (match.group(1), int(match.group(2)))
        self.folder = folder / "hits"

    def memory_mb(self) -> tuple[float, float]:
        """(VmRSS, VmHWM) of the daemon process in MiB."""
        values = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, kb = line.split()[:2]
                values[key] = int(kb) / 1024
        return values.get("VmRSS:", 0.0), values.get("VmHWM:", 0.0)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return int(self.proc.returncode)


# ---- phase 1: fuzz -------------------------------------------------------------------------


def fuzz(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    served = Served(
        work,
        "--model-config",
        str(REPO / "configs" / "tiny-test.yaml"),
        "--seed",
        "1",
        "--set",
        "engine.pool_size=0",
    )
    peer = Peer(served.address)
    rng = random.Random(args.seed)
    stream = datagrams(rng, args.datagrams)
    rss_before, _ = served.memory_mb()
    rss_series = [round(rss_before, 1)]
    codes: Counter[str] = Counter()
    sent = mismatched = internal = 0
    bytes_sent = 0
    started = time.monotonic()
    batch = 0
    try:
        while sent < args.datagrams and time.monotonic() - started < args.max_seconds:
            expected: Counter[str] = Counter()
            for data, want in stream:
                peer.send_raw(data)
                bytes_sent += len(data)
                expected += want
                sent += 1
                if sent % args.batch == 0 or sent == args.datagrams:
                    break
            nonce = f"batch-{batch}"
            peer.send("/drumdiff/ping", nonce)
            got: Counter[str] = Counter()
            while True:
                address, params = peer.recv(
                    60.0
                )  # a daemon that stopped answering ends the run here
                if address == PONG and params == [nonce]:
                    break
                got[address] += 1
                if address == FAIL:
                    codes[params[1]] += 1
                    internal += params[1] == "internal"
            mismatched += got != expected
            batch += 1
            if batch % 10 == 0:
                rss_series.append(round(served.memory_mb()[0], 1))
        seconds = time.monotonic() - started
        status = peer.ask("/drumdiff/status")
        rss_after, rss_peak = served.memory_mb()
    finally:
        peer.close()
        rc = served.stop()
    result = {
        "datagrams": sent,
        "batches": batch,
        "pings_answered": batch,
        "megabytes_sent": round(bytes_sent / 2**20, 1),
        "seconds": round(seconds, 1),
        "datagrams_per_s": round(sent / seconds, 0),
        "batches_with_unexpected_replies": mismatched,
        "internal_errors": internal,
        "fail_codes": dict(codes),
        "rss_mb_before": round(rss_before, 1),
        "rss_mb_after": round(rss_after, 1),
        "rss_mb_peak": round(rss_peak, 1),
        "rss_mb_series": rss_series,
        "status_after": status,
        "exit_code_on_sigterm": rc,
        "time_limited": sent < args.datagrams,
    }
    print(
        f"fuzz: {sent} datagrams ({result['megabytes_sent']} MB) in {result['seconds']} s, {batch} "
        "pings answered, "
        f"{mismatched} batches with unexpected replies, {internal} internal errors; "
        f"RSS {result['rss_mb_before']} -> {result['rss_mb_after']} MiB (peak "
        f"{result['rss_mb_peak']}); "
        f"fails {dict(codes)}; exit {rc}"
    )
    return result


# ---- phase 2: load -------------------------------------------------------------------------


def percentiles(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    a = np.asarray(values)
    return {
        "n": len(values),
        "p50_ms": round(float(np.percentile(a, 50)), 2),
        "p99_ms": round(float(np.percentile(a, 99)), 2),
        "max_ms": round(float(a.max()), 2),
    }


def wait_pool_full(peer: Peer, limit_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if peer.ask("/drumdiff/status")[3] >= 1.0:
            return time.monotonic() - started
        time.sleep(0.2)
    raise RuntimeError(f"the pool did not fill within {limit_s:.0f} s")


def sources_by_id(folder: Path) -> dict[str, str]:
    from drumdiff.model.wav import read_info  # the project's reader of the LIST/INFO comment

    out = {}
    for path in folder.glob("*.wav"):
        meta = json.loads(read_info(path)["ICMT"])
        out[str(meta["request_id"])] = meta["source"]
    return out


def stage_times(log_path: Path) -> dict[str, tuple[float, float]]:
    """request id -> (trigger to audio ready, publish) in ms, from `drumdiff serve -v` lines."""
    pattern = re.compile(r"id=(\S+): queued\+rendered ([\d.]+) ms, written ([\d.]+) ms")
    out = {}
    for line in log_path.read_text(errors="replace").splitlines():
        match = pattern.search(line)
        if match:
            out[match.group(1)] = (float(match.group(2)), float(match.group(3)))
    return out


def load(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    model = (
        ["--checkpoint", args.checkpoint]
        if args.checkpoint
        else ["--model-config", args.model_config]
    )
    if args.hits_parent:  # e.g. /dev/shm: a RAM-backed watched folder, where fsync costs nothing
        work = Path(tempfile.mkdtemp(prefix="drumdiff-soak-", dir=args.hits_parent))
    served = Served(
        work, *model, "--seed", "1", "-v"
    )  # -v: per-hit "queued+rendered / written" lines
    control = Peer(served.address)
    classes = control.ask("/drumdiff/classes")
    queue_size = 64  # the server default this phase runs with
    try:
        fill_s = wait_pool_full(control, args.pool_timeout)
        # (a) pooled latency on an idle daemon: one trigger at a time, each from a full pool
        pooled: list[float] = []
        for i in range(args.pooled):
            sent = time.perf_counter()
            control.send("/drumdiff/render", classes[i % len(classes)], 100, "id", f"p{i}")
            while True:
                address, params = control.recv(60.0)
                if address in (DONE, FAIL) and params[0] == f"p{i}":
                    break
            pooled.append(1e3 * (time.perf_counter() - sent))
            if (i + 1) % len(classes) == 0:
                wait_pool_full(control, args.pool_timeout)
        wait_pool_full(control, args.pool_timeout)
        rss_before = served.memory_mb()[0]

        # (b) the burst: triggers spread evenly over the window, several clients at once
        peers = [Peer(served.address) for _ in range(args.clients)]
        per_client = args.triggers // args.clients
        sent_at: dict[str, float] = {}
        replies: dict[str, tuple[str, str, float]] = {}
        duplicates = 0
        lock = threading.Lock()
        longest_queue = 0
        stop_monitor = threading.Event()

        def monitor() -> None:
            nonlocal longest_queue
            mon = Peer(served.address)
            try:
                while not stop_monitor.is_set():
                    longest_queue = max(longest_queue, int(mon.ask("/drumdiff/status")[2]))
                    time.sleep(0.05)
            finally:
                mon.close()

        def receive(n: int, peer: Peer) -> None:
            nonlocal duplicates
            wanted = per_client
            got = 0
            while got < wanted:
                try:
                    address, params = peer.recv(args.drain_timeout)
                except TimeoutError:
                    return  # what is still missing counts as lost
                arrived = time.perf_counter()
                if address not in (DONE, FAIL):
                    continue
                rid = str(params[0])
                with lock:
                    if rid in replies:
                        duplicates += 1
                        continue
                    replies[rid] = (address, params[1] if address == FAIL else "done", arrived)
                got += 1

        def send(n: int, peer: Peer, start: float) -> None:
            interval = args.seconds / per_client
            for i in range(per_client):
                due = start + i * interval + n * interval / args.clients
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                rid = f"c{n}-{i}"
                with lock:
                    sent_at[rid] = time.perf_counter()
                peer.send("/drumdiff/render", classes[(i + n) % len(classes)], 100, "id", rid)

        watcher = threading.Thread(target=monitor)
        receivers = [threading.Thread(target=receive, args=(n, p)) for n, p in enumerate(peers)]
        start = time.perf_counter() + 0.2
        senders = [threading.Thread(target=send, args=(n, p, start)) for n, p in enumerate(peers)]
        for t in (watcher, *receivers, *senders):
            t.start()
        for t in senders:
            t.join()
        send_window = time.perf_counter() - start
        for t in receivers:
            t.join()
        stop_monitor.set()
        watcher.join()
        for p in peers:
            p.close()
        stats_flat = control.ask("/drumdiff/stats")
        stats = dict(zip(stats_flat[::2], stats_flat[1::2]))
        rss_after = served.memory_mb()[0]
    finally:
        control.close()
        rc = served.stop()

    source = sources_by_id(served.folder)
    stages = stage_times(served.log_path)
    if args.hits_parent:
        shutil.rmtree(work, ignore_errors=True)
    ready_pool = [stages[r][0] for r in stages if source.get(r) == "pool" and r in replies]
    written_pool = [stages[r][1] for r in stages if source.get(r) == "pool" and r in replies]
    latency: dict[str, list[float]] = {"pool": [], "fresh": [], "busy": []}
    outcome: Counter[str] = Counter()
    for rid, (address, code, arrived) in replies.items():
        ms = 1e3 * (arrived - sent_at[rid])
        if address == DONE:
            kind = source.get(rid, "fresh")
            outcome[kind] += 1
            latency.setdefault(kind, []).append(ms)
        else:
            outcome[f"fail {code}"] += 1
            if code == "busy":
                latency["busy"].append(ms)
    total = per_client * args.clients
    lost = total - len(replies)
    result = {
        "model": args.checkpoint or f"random:{Path(args.model_config).stem}",
        "hits_folder": str(served.folder),
        "classes": len(classes),
        "pool_fill_s": round(fill_s, 1),
        "pooled_idle": percentiles(pooled),
        "burst": {
            "triggers": total,
            "clients": args.clients,
            "send_window_s": round(send_window, 2),
            "served_from_pool": outcome["pool"],
            "served_fresh": outcome["fresh"],
            "busy": outcome["fail busy"],
            "other_fails": {
                k: v for k, v in outcome.items() if k.startswith("fail ") and k != "fail busy"
            },
            "lost": lost,
            "duplicates": duplicates,
            "longest_queue_seen": longest_queue,
            "queue_size": queue_size,
            "latency_pool": percentiles(latency["pool"]),
            "latency_fresh": percentiles(latency["fresh"]),
            "latency_busy_reply": percentiles(latency["busy"]),
            # where a pooled hit's time goes, from the daemon's own log: audio ready (playback
            # starts here) and the publish (encode, write, fsync, rename, fsync of the folder)
            "pool_trigger_to_audio_ready": percentiles(ready_pool),
            "pool_publish": percentiles(written_pool),
            "daemon_busy_rejections": stats.get("busy_rejections"),
            "mean_batch": stats.get("mean_batch"),
        },
        "rss_mb_before_burst": round(rss_before, 1),
        "rss_mb_after_burst": round(rss_after, 1),
        "exit_code_on_sigterm": rc,
    }
    b = result["burst"]
    print(
        f"load: pooled trigger-to-done on an idle daemon p50 {result['pooled_idle']['p50_ms']} ms, "
        f"p99 {result['pooled_idle']['p99_ms']} ms (n={len(pooled)})"
    )
    print(
        f"load: burst of {total} triggers in {b['send_window_s']} s from {args.clients} clients: "
        f"{b['served_from_pool']} from the pool (p50 {b['latency_pool']['p50_ms']} / p99 "
        f"{b['latency_pool']['p99_ms']} ms), "
        f"{b['served_fresh']} fresh (p50 {b['latency_fresh']['p50_ms']} / p99 "
        f"{b['latency_fresh']['p99_ms']} ms), "
        f"{b['busy']} busy (reply p99 {b['latency_busy_reply']['p99_ms']} ms), other fails "
        f"{b['other_fails']}, "
        f"lost {lost}, duplicates {duplicates}, longest queue {longest_queue}/{queue_size}; "
        f"pooled: audio ready p99 {b['pool_trigger_to_audio_ready']['p99_ms']} ms, publish p50/p99 "
        f"{b['pool_publish']['p50_ms']}/{b['pool_publish']['p99_ms']} ms; "
        f"RSS {result['rss_mb_before_burst']} -> {result['rss_mb_after_burst']} MiB; exit {rc}"
    )
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--phase", choices=("fuzz", "load", "all"), default="all")
    p.add_argument("--datagrams", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=1000, help="datagrams between pings")
    p.add_argument("--max-seconds", type=float, default=900.0, help="time limit of the fuzz phase")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--checkpoint",
        default=None,
        help="serve this checkpoint in the load phase (default: random weights)",
    )
    p.add_argument(
        "--model-config",
        default=str(REPO / "configs" / "default.yaml"),
        help="load phase: random-weight model of this YAML (when no --checkpoint)",
    )
    p.add_argument("--triggers", type=int, default=2000)
    p.add_argument(
        "--seconds", type=float, default=10.0, help="window the triggers are spread over"
    )
    p.add_argument("--clients", type=int, default=4)
    p.add_argument(
        "--pooled", type=int, default=40, help="single pooled triggers timed on an idle daemon"
    )
    p.add_argument("--pool-timeout", type=float, default=600.0)
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=300.0,
        help="silence after which missing replies count as lost",
    )
    p.add_argument(
        "--hits-parent",
        default=None,
        help="load phase: make the watched folder under this folder (e.g. /dev/shm) instead of "
        "/tmp",
    )
    p.add_argument("--out", default=str(REPO / "bench-results" / "soak.json"))
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.ERROR
    )  # python-osc warns on the root logger about odd type tags
    if args.triggers % args.clients:
        p.error("--triggers must be a multiple of --clients")
    report: dict[str, Any] = {
        "load_average_before": os.getloadavg(),
        "cores": os.cpu_count(),
        "args": vars(args),
    }
    with tempfile.TemporaryDirectory(prefix="drumdiff-soak-") as tmp:
        if args.phase in ("fuzz", "all"):
            (Path(tmp) / "fuzz").mkdir()
            report["fuzz"] = fuzz(args, Path(tmp) / "fuzz")
        if args.phase in ("load", "all"):
            (Path(tmp) / "load").mkdir()
            report["load"] = load(args, Path(tmp) / "load")
    report["load_average_after"] = os.getloadavg()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    ok = True
    if "fuzz" in report:
        f = report["fuzz"]
        ok &= f["internal_errors"] == 0 and f["batches_with_unexpected_replies"] == 0
    if "load" in report:
        b = report["load"]["burst"]
        ok &= b["lost"] == 0 and b["duplicates"] == 0 and not b["other_fails"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
