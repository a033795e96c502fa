"""Replies reach stock one-shot OSC clients: liblo's own `oscsend` and `oscdump` against the daemon.

`oscsend` sends every message from a new source port and cannot receive; `oscdump` listens on a
port of its own. This is how a shell script, TouchOSC-style apps and many first tries drive
the daemon, so it is tested with those very tools (Debian: liblo-tools).
"""

from __future__ import annotations

import queue
import shlex
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drumdiff.server import protocol

OSCSEND = shutil.which("oscsend")
OSCDUMP = shutil.which("oscdump")
pytestmark = pytest.mark.skipif(
    OSCSEND is None or OSCDUMP is None,
    reason="liblo's oscsend/oscdump are not installed (Debian: liblo-tools)",
)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OscDump:
    """`oscdump -L <port>` in the background; `next()` returns (address, args) of each line."""

    def __init__(self, port: int) -> None:
        assert OSCDUMP is not None
        self.port = port
        self.proc = subprocess.Popen(
            [OSCDUMP, "-L", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def next(self, timeout: float = 20.0) -> tuple[str, list[str]]:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"oscdump on port {self.port} received nothing") from None
        # "<timetag> /address [<types> arg arg ...]", strings in double quotes
        _, address, *rest = shlex.split(line)
        return address, rest[1:]

    def empty(self) -> bool:
        return self.lines.empty()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


@pytest.fixture
def dump() -> Iterator[Any]:
    dumps: list[OscDump] = []

    def make(port: int | None = None) -> OscDump:
        d = OscDump(port or free_udp_port())
        dumps.append(d)
        return d

    yield make
    for d in dumps:
        d.close()


def oscsend(daemon_port: int, address: str, types: str = "", *args: Any) -> None:
    assert OSCSEND is not None
    subprocess.run(
        [OSCSEND, "127.0.0.1", str(daemon_port), address, types, *map(str, args)],
        check=True,
        timeout=20,
    )


def wait_listening(daemon_port: int, out: OscDump, *, hello: bool) -> None:
    """oscdump takes a moment to bind: send until its first reply shows, then drain."""
    for _ in range(50):
        if hello:
            oscsend(daemon_port, protocol.HELLO, "is", out.port, "shell")
        else:
            oscsend(daemon_port, protocol.PING, "si", protocol.REPLY_PORT_KEY, out.port)
        try:
            out.next(timeout=0.2)
        except AssertionError:
            continue
        while not out.empty():
            out.next()
        return
    raise AssertionError("oscdump never answered")


def test_hello_then_one_shot_renders_reach_oscdump(daemon_factory: Any, dump: Any) -> None:
    daemon = daemon_factory()
    port = daemon.osc_address[1]
    out = dump()
    wait_listening(port, out, hello=True)
    # every oscsend below comes from a new source port, yet the replies find oscdump
    oscsend(port, protocol.RENDER, "s", "kick")  # no velocity: the default
    address, args = out.next()
    assert address == protocol.DONE, (address, args)
    rid, path, drum_class = args[0], Path(args[1]), args[2]
    assert drum_class == "kick" and path.is_file() and path.parent == daemon.writer.folder
    assert f"_v{protocol.DEFAULT_VELOCITY:03d}_" in path.name
    oscsend(port, protocol.RENDER, "si", "kik", 100)
    address, args = out.next()
    assert address == protocol.FAIL and args[:2] == ["-1", "bad_request"]
    oscsend(port, protocol.STATUS)
    address, args = out.next()
    assert address == protocol.STATUS_REPLY and args[5] == "1"  # one file published
    assert int(rid) >= 1


def test_reply_port_key_without_hello(daemon_factory: Any, dump: Any) -> None:
    daemon = daemon_factory()
    port = daemon.osc_address[1]
    out = dump()
    wait_listening(port, out, hello=False)
    oscsend(port, protocol.RENDER, "sisisi", "snare", 90, "reply_port", out.port, "seed", 5)
    address, args = out.next()
    assert address == protocol.DONE and args[2:4] == ["snare", "5"]


def test_configured_default_reply_port(daemon_factory: Any, dump: Any) -> None:
    out = dump()
    daemon = daemon_factory(f"osc.reply_port={out.port}")
    port = daemon.osc_address[1]
    for _ in range(50):  # oscdump binds in the background
        oscsend(port, protocol.PING, "s", "up")
        try:
            assert out.next(timeout=0.2) == (protocol.PONG, ["up"])
            break
        except AssertionError:
            continue
    while not out.empty():
        out.next()
    oscsend(port, protocol.CLASSES)
    assert out.next() == (protocol.CLASSES_REPLY, ["kick", "snare", "closed_hat", "clap"])
