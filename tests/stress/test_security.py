"""Security: loopback by default, an explicit switch and an allow-list for anything else, no
request string ever chooses a file path, a checkpoint carrying a pickle payload never runs.

Only loopback addresses are used: 127.0.0.2 and 127.0.0.3 stand in for other machines (Linux
routes all of 127.0.0.0/8 to the loopback interface).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import build_msg

from bench.osc_fuzz import message
from drumdiff.model.config import load_config, to_dict
from drumdiff.model.core.checkpoint import FORMAT, FORMAT_VERSION, LoadedModel
from drumdiff.model.errors import ConfigError
from drumdiff.server import protocol
from drumdiff.server.config import ServerConfig, load_server_config
from drumdiff.server.daemon import Daemon
from drumdiff.server.errors import ServerError
from drumdiff.server.osc import LoopbackTransport
from drumdiff.server.writer import HIT_NAME
from tests.server.conftest import REPO, TINY, make_config


class Peer:
    """A UDP OSC peer bound to a chosen loopback address."""

    def __init__(self, host: str, server: tuple[str, int]) -> None:
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()
        return host, port

    def send(self, address: str, *args: Any) -> None:
        self.sock.sendto(build_msg(address, list(args)).dgram, self.server)

    def recv(self, timeout: float) -> tuple[str, list[Any]] | None:
        self.sock.settimeout(timeout)
        try:
            data, _ = self.sock.recvfrom(65536)
        except TimeoutError:
            return None
        msg = OscMessage(data)
        return msg.address, list(msg.params)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def peers() -> Any:
    made: list[Peer] = []

    def make(host: str, server: tuple[str, int]) -> Peer:
        try:
            peer = Peer(host, server)
        except OSError as err:
            pytest.skip(f"cannot bind {host} (no 127.0.0.0/8 loopback route?): {err}")
        made.append(peer)
        return peer

    yield make
    for p in made:
        p.close()


def test_default_bind_is_loopback(daemon_factory: Any) -> None:
    assert ServerConfig().osc.host == "127.0.0.1" and not ServerConfig().osc.allow_remote
    shipped = load_server_config(REPO / "configs" / "server.yaml")
    assert (
        shipped.osc.host == "127.0.0.1" and not shipped.osc.allow_remote and shipped.osc.allow == ()
    )
    daemon = daemon_factory()  # the tests' config only changes the port
    assert daemon.osc_address is not None and daemon.osc_address[0] == "127.0.0.1"


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "fe80::1", "my-laptop.local"]
)
def test_any_other_address_needs_allow_remote(host: str) -> None:
    with pytest.raises(ConfigError, match="allow_remote"):
        load_server_config(None, [f"osc.host='{host}'"])
    assert (
        load_server_config(None, [f"osc.host='{host}'", "osc.allow_remote=true"]).osc.host == host
    )  # not bound here


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_addresses_need_no_switch(host: str) -> None:
    assert load_server_config(None, [f"osc.host='{host}'"]).osc.host == host


def test_allow_list_admits_only_listed_addresses(daemon_factory: Any, peers: Any) -> None:
    daemon = daemon_factory("osc.allow=[127.0.0.2]")
    allowed = peers("127.0.0.2", daemon.osc_address)
    strangers = [peers("127.0.0.3", daemon.osc_address), peers("127.0.0.1", daemon.osc_address)]
    allowed.send(protocol.PING, "in")
    assert allowed.recv(10.0) == (protocol.PONG, ["in"])
    for stranger in strangers:
        stranger.send(protocol.PING, "out")
        stranger.send(protocol.RENDER, "kick", 100)
        stranger.send(
            protocol.HELLO, allowed.address[1]
        )  # cannot redirect replies to the allowed peer
        stranger.sock.sendto(b"garbage", daemon.osc_address)  # no `fail` either: no reflection
    for stranger in strangers:
        assert stranger.recv(0.3) is None
    assert allowed.recv(0.3) is None
    assert daemon.osc is not None and daemon.osc.dropped == 8
    assert daemon.engine.served == 0 and not list(daemon.writer.folder.iterdir())
    # and the allowed peer is served: replies go back to its own address, on the port it names
    reply_port = peers("127.0.0.2", daemon.osc_address)
    allowed.send(protocol.HELLO, reply_port.address[1])
    assert reply_port.recv(10.0)[0] == protocol.HELLO_REPLY  # type: ignore[index]
    allowed.send(protocol.RENDER, "kick", 100, "id", "ok", "seed", 1)
    assert reply_port.recv(10.0)[0] == protocol.DONE  # type: ignore[index]


def test_an_allow_list_of_networks(daemon_factory: Any, peers: Any) -> None:
    daemon = daemon_factory("osc.allow=[127.0.0.0/30]")  # .0 - .3
    inside = peers("127.0.0.3", daemon.osc_address)
    outside = peers("127.0.0.4", daemon.osc_address)
    inside.send(protocol.PING, 1)
    outside.send(protocol.PING, 2)
    assert inside.recv(10.0) == (protocol.PONG, [1])
    assert outside.recv(0.3) is None


HOSTILE_IDS = [
    "../../../../tmp/evil",
    "/etc/cron.d/x",
    "..\\..\\win.ini",
    "~root",
    "$(touch${IFS}x)",
    "kick/..",
]


def test_request_strings_never_choose_a_file_path(
    daemon_factory: Any, client_factory: Any, tmp_path: Path
) -> None:
    daemon = daemon_factory()
    client = client_factory(daemon.osc_address)
    before = {p for p in tmp_path.rglob("*")}
    paths = []
    for rid in HOSTILE_IDS:  # valid ids: they are echoed, never used as names
        address, args = client.ask(protocol.RENDER, "kick", 100, "id", rid, "seed", 1)
        assert address == protocol.DONE and args[0] == rid
        paths.append(Path(args[1]))
    for name in [
        "../../kick",
        "kick/../snare",
        "/abs/kick",
        "..",
        ".",
        "kick\\..\\x",
        "\u202ekick",
    ]:
        address, args = client.ask(protocol.RENDER, name, 100, "id", "cls")
        assert (address, args[:2]) == (protocol.FAIL, ["cls", "bad_request"]), name
    for design in (
        (protocol.VARY, "../../x"),
        (protocol.MORPH, "../kick", "snare", 0.5),
        (protocol.SCRUB, "../../kick", "step", 1),
        (protocol.VARY, "last", "class", "../../kick"),
    ):
        address, args = client.ask(*design)
        assert address == protocol.FAIL and args[1] == "bad_request", (design, args)
    # A NUL inside an OSC string ends it: the daemon sees "kick", the rest fails to parse.
    client.send_raw(message(protocol.RENDER, b"kick\x00../../../../tmp/evil", 100, "id", "nul"))
    assert client.recv()[0] in (protocol.DONE, protocol.FAIL)
    folder = daemon.writer.folder
    for path in paths:
        assert path.parent == folder and HIT_NAME.match(path.name) and path.is_file()
    created = {p for p in tmp_path.rglob("*")} - before
    assert all(p == folder or p.parent == folder for p in created), sorted(created)
    assert not Path("/tmp/evil").exists() and not Path("/etc/cron.d/x").exists()


@pytest.mark.parametrize("target", ["kick\x00../../x", "../kick", "\x00"])
def test_nul_and_traversal_in_strings_that_bypass_osc(
    tiny_model: LoadedModel, tmp_path: Path, target: str
) -> None:
    """Strings handed to the daemon directly (MIDI maps, local callers) are checked the same way."""
    daemon = Daemon(make_config(tmp_path), tiny_model, transport=LoopbackTransport())
    daemon.start()
    try:
        with pytest.raises(ServerError) as err:
            daemon.handle(protocol.parse(protocol.RENDER, [target, 100]), ("127.0.0.1", 1))
        assert err.value.code == "bad_request"
        with pytest.raises(ServerError):
            protocol.parse(protocol.RENDER, ["kick", 100, "id", "a\x00b"])
        for path in (
            "good.pt\x00../../etc/passwd",
            "\x00",
            "../" * 50 + "etc/passwd",
            "/etc/passwd",
        ):
            with pytest.raises(ServerError) as load_err:
                daemon.checkpoint_path(path)
            assert load_err.value.code in ("not_found", "not_allowed")
    finally:
        daemon.stop()
    assert daemon.engine.served == 0


class _Payload:
    """Unpickling this calls os.mkdir(marker): a stand-in for any code an attacker would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.mkdir, (self.marker,))


def test_a_pickle_payload_checkpoint_is_refused_over_osc_without_running(
    daemon_factory: Any, client_factory: Any, tmp_path: Path, tiny_model: LoadedModel
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    marker = tmp_path / "payload-ran"
    evil = models / "evil.pt"
    torch.save(
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": to_dict(load_config(TINY)),
            "step": 1,
            "model": None,
            "ema": tiny_model.denoiser.net.state_dict(),
            "extra": _Payload(marker),
        },
        evil,
    )
    torch.load(evil, weights_only=False)  # the payload is live: an unsafe load runs it
    assert marker.is_dir()
    marker.rmdir()

    daemon = daemon_factory()
    client = client_factory(daemon.osc_address)
    address, args = client.ask(protocol.LOAD, "evil.pt")
    assert (address, args[:2]) == (protocol.FAIL, ["load", "bad_checkpoint"])
    assert "refused without running it" in args[2]
    assert not marker.exists()
    assert daemon.engine.model is tiny_model
    assert client.ask(protocol.RENDER, "kick", 100)[0] == protocol.DONE


def test_origin_of_a_reply_is_the_sender(daemon_factory: Any, peers: Any) -> None:
    """A hello names only a port: replies can never be pointed at another host."""
    daemon = daemon_factory()
    a = peers("127.0.0.2", daemon.osc_address)
    daemon.handle(protocol.parse(protocol.HELLO, [9]), a.address)
    client = daemon.clients.get(a.address)
    assert client is not None and client.reply_to == ("127.0.0.2", 9)
