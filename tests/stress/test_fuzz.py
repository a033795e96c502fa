"""OSC fuzzing: hostile datagrams get exactly the replies they must, and the daemon keeps serving.

The pytest-sized version of `bench/soak.py`'s fuzz phase (100,000 datagrams, RSS before and
after). Generators and the reply oracle live in `bench/osc_fuzz.py`.
"""

from __future__ import annotations

import random
import socket
import struct
from collections import Counter
from typing import Any

import pytest
from pythonosc.osc_message import OscMessage

from bench import osc_fuzz
from bench.osc_fuzz import GENERATORS, bundle, datagrams, message
from drumdiff.model.core.checkpoint import LoadedModel
from drumdiff.server import protocol
from drumdiff.server.daemon import Daemon
from drumdiff.server.osc import LoopbackTransport, encode
from tests.server.conftest import make_config

SENDER = ("127.0.0.1", 5555)


@pytest.fixture
def fed(tiny_model: LoadedModel, tmp_path: Any) -> Any:
    """A daemon without sockets: datagrams go in through `feed`, replies are recorded."""
    transport = LoopbackTransport()
    daemon = Daemon(make_config(tmp_path), tiny_model, transport=transport)
    daemon.start()
    yield daemon, transport
    daemon.stop()


def replies_to(daemon: Daemon, transport: LoopbackTransport, data: bytes) -> list[Any]:
    transport.sent.clear()
    daemon.feed(data, SENDER)
    return [m for _, m in transport.sent]


@pytest.mark.parametrize("kind", GENERATORS, ids=lambda g: g.__name__)
def test_every_datagram_gets_exactly_its_replies(fed: Any, kind: Any) -> None:
    """Socket-free, per datagram: one `fail` per invalid message, never `internal`."""
    daemon, transport = fed
    rng = random.Random(f"fuzz-{kind.__name__}")
    seen: Counter[str] = Counter()
    for data, expected in datagrams(rng, 250, kinds=(kind,)):
        got = replies_to(daemon, transport, data)
        assert Counter(m.address for m in got) == expected, data[:200]
        for m in got:
            if m.address == protocol.FAIL:
                seen[m.args[1]] += 1
                assert m.args[1] != "internal", (data[:200], m.args)
                assert len(m.args[2]) <= 512  # reasons stay short whatever came in
    assert daemon.engine.queue_length == 0 and daemon.engine.served == 0  # nothing was rendered


def test_fuzz_over_udp_keeps_serving_with_a_ping_after_each_batch(
    daemon_factory: Any, client_factory: Any
) -> None:
    """Real UDP on loopback: 3,000 datagrams in batches, a ping answered after every batch.

    Batches are small so that even a kernel with small socket buffers (rmem_max) holds a whole
    batch of up-to-64 KiB datagrams; bench/soak.py sends 1,000 per ping.
    """
    daemon = daemon_factory()
    client = client_factory(daemon.osc_address)
    client.rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    rng = random.Random(7)
    stream = datagrams(rng, 3000)
    totals: Counter[str] = Counter()
    for batch in range(120):
        expected: Counter[str] = Counter()
        for _ in range(25):
            data, want = next(stream)
            client.send_raw(data)
            expected += want
        client.send(protocol.PING, f"batch-{batch}")
        got: Counter[str] = Counter()
        while True:
            address, args = client.recv()
            if address == protocol.PONG and args == [f"batch-{batch}"]:
                break
            got[address] += 1
            if address == protocol.FAIL:
                totals[args[1]] += 1
                assert args[1] != "internal", args
        # The loop answers datagrams in order from one socket, so everything of the batch
        # arrived before its pong (loopback UDP keeps order and drops nothing at this rate).
        assert got == expected, batch
    assert totals["malformed"] and totals["bad_request"] and totals["unknown_address"]
    assert client.ask(protocol.STATUS)[0] == protocol.STATUS_REPLY
    assert (
        daemon.osc is not None and daemon.osc._thread is not None and daemon.osc._thread.is_alive()
    )


# ---- regressions: each of these crashed or hung the daemon before it was fixed ---------------


def test_a_negative_bundle_element_size_is_refused_not_looped_on(
    daemon_factory: Any, client_factory: Any
) -> None:
    """python-osc's OscBundle walked back by -4 forever: one 20-byte datagram hung the OSC
    thread."""
    daemon = daemon_factory()
    client = client_factory(daemon.osc_address)
    for size in (-4, -8, -(2**31), 0, 3, 2**31 - 1):
        client.send_raw(
            b"#bundle\x00"
            + struct.pack(">Q", 1)
            + struct.pack(">i", size)
            + b"/x\x00\x00,\x00\x00\x00"
        )
        address, args = client.recv()  # a hang would end in the 10 s receive timeout
        assert address == protocol.FAIL and args[1] == "malformed" and "element size" in args[2]
    assert client.ask(protocol.PING, 1) == (protocol.PONG, [1])


def test_deep_and_nested_bundles(fed: Any) -> None:
    daemon, transport = fed
    inner = message(protocol.PING, 1)
    nested = bundle(message(protocol.PING, 2), bundle(inner, bundle(message("/nope"))))
    got = replies_to(daemon, transport, nested)
    assert [m.address for m in got] == [protocol.PONG, protocol.PONG, protocol.FAIL]  # in order
    deep = inner
    for _ in range(3000):
        deep = bundle(deep)
    got = replies_to(daemon, transport, deep[: osc_fuzz.MAX_UDP])
    assert [(m.address, m.args[1]) for m in got] == [(protocol.FAIL, "malformed")]
    assert "nested deeper" in got[0].args[2] or "element size" in got[0].args[2]
    assert replies_to(daemon, transport, bundle()) == []  # an empty bundle asks nothing


@pytest.mark.parametrize(
    "target",
    ["²", "٣٣", "9" * 5000, "0" * 4, "128", "-1"],
)
def test_odd_numeric_class_strings_are_bad_requests(fed: Any, target: str) -> None:
    """str.isdigit() accepts '²', which int() rejects; 5000 digits exceed int()'s limit."""
    daemon, transport = fed
    (reply,) = replies_to(daemon, transport, message(protocol.RENDER, target, 100))
    assert reply.address == protocol.FAIL and reply.args[1] == "bad_request", reply.args


@pytest.mark.parametrize(
    "path", ["k" * 4000, "~nosuchuser/x.pt", "~root/x.pt", "\u00e9" * 3000, "a/" * 2000, "k" * 5000]
)
def test_odd_load_paths_are_refused_not_crashed_on(fed: Any, path: str) -> None:
    daemon, transport = fed
    (reply,) = replies_to(daemon, transport, message(protocol.LOAD, path))
    assert reply.address == protocol.FAIL and reply.args[1] in (
        "not_found",
        "not_allowed",
        "bad_request",
    ), reply.args


@pytest.mark.parametrize("nonce", [("h", 2**40), ("h", -(2**63)), ("d", 1e300), ("d", -1e39), 3.0])
def test_ping_echoes_wide_numbers(fed: Any, nonce: Any) -> None:
    """int64 and double nonces used to fail to encode as 'i'/'f' (an `internal` instead of pong)."""
    daemon, transport = fed
    (reply,) = replies_to(daemon, transport, message(protocol.PING, nonce))
    value = nonce[1] if isinstance(nonce, tuple) else nonce
    assert reply.address == protocol.PONG and reply.args == (value,)
    assert OscMessage(encode(reply)).params == [value]
