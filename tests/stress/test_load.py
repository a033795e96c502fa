"""Load: a burst of triggers from several clients; every request gets `done` or `fail busy`.

The pytest-sized version of `bench/soak.py`'s load phase (2,000 triggers in 10 s with latency
percentiles): 300 triggers from 4 clients as fast as they can send, pooled and fresh mixed.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from typing import Any

from drumdiff.model.wav import read_info
from drumdiff.server import protocol
from drumdiff.server.writer import HIT_NAME

CLIENTS = 4
PER_CLIENT = 75


def wait_for(predicate: Any, what: str, limit_s: float = 120.0) -> None:
    """Poll until `predicate()`; a bounded wait, not a timing assertion."""
    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def test_burst_from_several_clients_loses_nothing(daemon_factory: Any, client_factory: Any) -> None:
    queue_size = 16
    daemon = daemon_factory(
        "engine.pool_size=4",
        f"engine.queue_size={queue_size}",
        "engine.max_batch=8",
        "engine.refill_batch=4",
    )
    classes = list(daemon.engine.model.classes)
    wait_for(lambda: daemon.engine.pool_fill() == 1.0, "the pool to fill")
    clients = [client_factory(daemon.osc_address) for _ in range(CLIENTS)]
    for c in clients:
        c.rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)

    longest_queue = 0
    sampling = threading.Event()

    def sample_queue() -> None:
        nonlocal longest_queue
        while not sampling.is_set():
            longest_queue = max(longest_queue, daemon.engine.queue_length)
            time.sleep(0.0005)

    sampler = threading.Thread(target=sample_queue)
    sampler.start()
    go = threading.Barrier(CLIENTS)

    def fire(n: int) -> None:
        client = clients[n]
        go.wait()
        for i in range(PER_CLIENT):
            rid = f"c{n}-{i}"
            if i % 3 == 2:  # a third ask for a fresh render: queued, batched, or busy
                client.send(protocol.RENDER, classes[i % len(classes)], 100, "id", rid, "fresh", 1)
            else:  # a pad hit: the pool serves it while it lasts
                client.send(protocol.RENDER, classes[i % len(classes)], 100, "id", rid)

    senders = [threading.Thread(target=fire, args=(n,)) for n in range(CLIENTS)]
    for t in senders:
        t.start()
    for t in senders:
        t.join()

    replies: dict[str, tuple[str, list[Any]]] = {}
    duplicates = []
    for n, client in enumerate(clients):
        wanted = {f"c{n}-{i}" for i in range(PER_CLIENT)}
        mine: set[str] = set()
        while mine != wanted:
            address, args = client.recv(timeout=60.0)
            assert address in (protocol.DONE, protocol.FAIL), (address, args)
            if args[0] in replies:
                duplicates.append(args[0])
            replies[args[0]] = (address, args)
            mine.add(args[0])
        client.expect_nothing(0.2)  # and nothing more
    sampling.set()
    sampler.join()

    assert not duplicates and len(replies) == CLIENTS * PER_CLIENT  # none lost, none twice
    done = [args for address, args in replies.values() if address == protocol.DONE]
    failed = [args for address, args in replies.values() if address == protocol.FAIL]
    assert {args[1] for args in failed} <= {"busy"}, Counter(args[1] for args in failed)
    assert done and failed, "the burst should both be served and overflow the queue"
    assert longest_queue <= queue_size
    assert daemon.engine.busy_rejections == len(failed)

    files = {p.name for p in daemon.writer.folder.iterdir()}
    assert files == {p.split("/")[-1] for _, p, *_ in done}, (
        "every done names a file, every file a done"
    )
    assert all(HIT_NAME.match(name) for name in files)
    sources = Counter(json.loads(read_info(args[1])["ICMT"])["source"] for args in done)
    assert sources["pool"] >= 4 and sources["fresh"] >= 1, sources
    # still serving afterwards
    assert clients[0].ask(protocol.PING, "after") == (protocol.PONG, ["after"])
