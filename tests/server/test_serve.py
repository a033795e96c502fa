"""`drumdiff serve` as a subprocess: it starts, serves, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from drumdiff_testkit import serve_command

from drumdiff.server import protocol
from tests.server.conftest import REPO, TINY


def start_serve(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, tuple[str, int]]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "JACK_NO_START_SERVER": "1"}
    proc = subprocess.Popen(
        serve_command(
            "--model-config",
            str(TINY),
            "--port",
            "0",
            "--folder",
            str(tmp_path / "hits"),
            "--no-midi",
            "--seed",
            "3",
            *extra,
        ),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    proc.ready_line = line  # type: ignore[attr-defined]
    match = re.search(r"ready on udp ([\d.]+):(\d+)", line)
    if not match:
        proc.kill()
        raise AssertionError(f"no ready line: {line!r} {proc.stderr.read() if proc.stderr else ''}")
    return proc, (match.group(1), int(match.group(2)))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_finishes_in_flight_work_and_leaves_no_temporaries(
    tmp_path: Path, client_factory: Any, sig: signal.Signals
) -> None:
    proc, address = start_serve(
        tmp_path, "--set", "engine.pool_size=0", "--set", "engine.max_batch=1"
    )
    try:
        client = client_factory(address)
        n = 6
        for i in range(n):
            client.send(protocol.RENDER, "kick", 100, "id", i, "fresh", 1, "steps", 12)
        # the OSC loop handles datagrams in order: after the pong, all renders were taken in
        assert client.ask(protocol.PING, "sync")[0] in (protocol.PONG, protocol.DONE)
        proc.send_signal(sig)
        replies = {}
        while len(replies) < n:
            address_, args = client.recv(timeout=30.0)
            if address_ in (protocol.DONE, protocol.FAIL):
                replies[args[0]] = (address_, args)
        try:
            assert proc.wait(60.0) == 0
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)  # faulthandler: where is it stuck?
            time.sleep(1.0)
            proc.kill()
            raise AssertionError(f"serve did not exit:\n{proc.communicate()[1][-6000:]}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    done = [args for a, args in replies.values() if a == protocol.DONE]
    failed = [args for a, args in replies.values() if a == protocol.FAIL]
    assert done, "the render in progress should have finished"
    assert all(args[1] == "shutting_down" for args in failed)
    files = sorted((tmp_path / "hits").iterdir())
    assert not [p for p in files if p.name.startswith(".")], "temporary files left behind"
    assert sorted(Path(args[1]) for args in done) == files
    assert proc.stderr is not None
    log = proc.stderr.read()
    assert "stopping" in log and "Traceback" not in log
    assert len(re.findall(r"render id=\d+ kick .* ms -> ", log)) == len(done)  # one line per hit


def test_bad_checkpoint_is_one_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        serve_command(
            "--checkpoint",
            str(tmp_path / "none.pt"),
            "--no-midi",
            "--port",
            "0",
        ),
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=120,
    )
    assert result.returncode == 1
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_a_busy_port_fails_before_the_model_is_loaded(tmp_path: Path) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = subprocess.run(
            # the checkpoint does not exist: had it been loaded first, that would be the error
            serve_command(
                "--port",
                str(port),
                "--no-midi",
                "--checkpoint",
                str(tmp_path / "none.pt"),
                "--folder",
                str(tmp_path / "hits"),
            ),
            cwd=REPO,
            capture_output=True,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            timeout=120,
        )
    assert result.returncode == 1
    assert (
        f"cannot listen on udp 127.0.0.1:{port}" in result.stderr
        and "another drumdiff serve" in result.stderr
    )
    assert "none.pt" not in result.stderr and "Traceback" not in result.stderr


def test_ready_line_names_midi_and_the_pool(tmp_path: Path) -> None:
    proc, address = start_serve(
        tmp_path, "--set", "engine.pool_size=1", "--set", "engine.warmup=false"
    )
    try:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60.0) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stderr is not None
    log = proc.stderr.read()
    assert "Traceback" not in log
    assert proc.ready_line.endswith("MIDI off, pool of 1 per class filling (logged when warm)\n")  # type: ignore[attr-defined]
