"""Shared fixtures for the daemon tests: a tiny random-weight model, a daemon on a free UDP port,
an OSC client, and a JACK server (dummy driver) for the MIDI and audio-out tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import build_msg

from drumdiff.model.config import load_config
from drumdiff.model.core.checkpoint import LoadedModel, model_from_config
from drumdiff.server.config import ServerConfig, load_server_config
from drumdiff.server.daemon import Daemon

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "tiny-test.yaml"

# libjack must never start a server behind our back (the fixture decides).
os.environ.setdefault("JACK_NO_START_SERVER", "1")


@pytest.fixture(scope="session")
def tiny_model() -> LoadedModel:
    return model_from_config(load_config(TINY), seed=0)


def make_config(tmp_path: Path, *overrides: str) -> ServerConfig:
    base = [
        "osc.port=0",
        f"writer.folder={tmp_path / 'hits'}",
        "midi.enabled=false",
        "engine.seed=1",
        "engine.pool_size=0",
        "engine.warmup=false",
        "engine.runtime=torch",
        f"model_folders=[{tmp_path / 'models'}]",
    ]
    return load_server_config(None, base + list(overrides))


@pytest.fixture
def daemon_factory(tmp_path: Path, tiny_model: LoadedModel) -> Iterator[Any]:
    started: list[Daemon] = []

    def make(*overrides: str, model: LoadedModel | None = None, **kwargs: Any) -> Daemon:
        d = Daemon(make_config(tmp_path, *overrides), model or tiny_model, **kwargs)
        d.start()
        started.append(d)
        return d

    yield make
    for d in started:
        d.stop()


class OscClient:
    """A UDP OSC client that, like Max and Pd, may receive on a port other than its sending one."""

    def __init__(self, server: tuple[str, int], *, separate_reply_port: bool = False) -> None:
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.rx = self.sock
        if separate_reply_port:
            self.rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.rx.bind(("127.0.0.1", 0))
        self.rx.settimeout(10.0)

    @property
    def reply_port(self) -> int:
        return self.rx.getsockname()[1]

    def send(self, address: str, *args: Any) -> None:
        self.sock.sendto(build_msg(address, list(args)).dgram, self.server)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.server)

    def recv(self, timeout: float = 10.0) -> tuple[str, list[Any]]:
        self.rx.settimeout(timeout)
        data, _ = self.rx.recvfrom(65536)
        msg = OscMessage(data)
        return msg.address, list(msg.params)

    def ask(self, address: str, *args: Any) -> tuple[str, list[Any]]:
        self.send(address, *args)
        return self.recv()

    def expect_nothing(self, within: float = 0.3) -> None:
        self.rx.settimeout(within)
        try:
            data, _ = self.rx.recvfrom(65536)
        except TimeoutError:
            return
        raise AssertionError(
            f"unexpected reply {OscMessage(data).address} {OscMessage(data).params}"
        )

    def close(self) -> None:
        self.sock.close()
        if self.rx is not self.sock:
            self.rx.close()


@pytest.fixture
def client_factory() -> Iterator[Any]:
    clients: list[OscClient] = []

    def make(server: tuple[str, int], **kwargs: Any) -> OscClient:
        c = OscClient(server, **kwargs)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


# ---- JACK ------------------------------------------------------------------------------------


def _jack_running() -> bool:
    try:
        import jack
    except (ImportError, OSError):
        return False
    jack.set_error_function(lambda message: None)  # "cannot connect" is the answer, not noise
    try:
        client = jack.Client("drumdiff-probe", no_start_server=True)
    except jack.JackError:
        return False
    client.close()
    return True


@pytest.fixture(scope="session")
def jack_server() -> Iterator[None]:
    """A JACK server with the dummy driver: reuse a running one, else start jackd and stop it."""
    try:
        import jack  # noqa: F401
    except (ImportError, OSError) as err:
        pytest.skip(f"JACK-Client unavailable: {err}")
    if _jack_running():
        yield
        return
    jackd = shutil.which("jackd")
    if jackd is None:
        pytest.skip("jackd is not installed (Debian: jackd2)")
    proc = subprocess.Popen(
        [jackd, "--no-realtime", "-d", "dummy", "-r", "44100", "-p", "256"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10.0
    while not _jack_running():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.skip("jackd did not start")
        time.sleep(0.1)
    yield
    # PortAudio must let go of the server first: its exit handler asserts if JACK vanished.
    import sys

    if "sounddevice" in sys.modules:
        sd = sys.modules["sounddevice"]
        while getattr(sd, "_initialized", 0) > 0:
            sd._terminate()
    proc.terminate()
    try:
        proc.wait(5.0)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
