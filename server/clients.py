"""Who gets the replies: the clients that said hello, and the routing rules for every other
request (`protocol.REPLY_ROUTING`). Only a port is ever chosen; the host is always the
sender's, so no message can point replies at another machine."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from drumdiff.server.osc import Address


@dataclass(frozen=True)
class Client:
    client_id: int
    reply_to: Address
    name: str | None


class Clients:
    """The clients registered by `hello`, by sender address and by host (thread-safe)."""

    def __init__(self, default_reply_port: int = 0) -> None:
        self.default_reply_port = default_reply_port  # osc.reply_port; 0: none
        self._by_address: dict[Address, Client] = {}
        self._by_host: dict[str, Client] = {}  # the newest hello from each host
        self._next_id = 1
        self._lock = threading.Lock()

    def register(self, sender: Address, reply_port: int, name: str | None) -> Client:
        """Register (or re-register, keeping its id) the client at `sender`."""
        with self._lock:
            known = self._by_address.get(sender)
            client_id = known.client_id if known else self._next_id
            if known is None:
                self._next_id += 1
            client = Client(client_id, (sender[0], reply_port), name)
            self._by_address[sender] = client
            self._by_host[sender[0]] = client
            return client

    def get(self, sender: Address) -> Client | None:
        with self._lock:
            return self._by_address.get(sender)

    def reply_address(self, sender: Address, reply_port: int | None) -> Address:
        """Where the replies to a request from `sender` go, by the routing rules in order: the
        request's own reply_port, its sender's (or host's) hello, osc.reply_port, the sender."""
        host = sender[0]
        if reply_port is not None:
            return host, reply_port
        with self._lock:
            client = self._by_address.get(sender) or self._by_host.get(host)
        if client is not None:
            return client.reply_to
        if self.default_reply_port:
            return host, self.default_reply_port
        return sender

    def everyone(self) -> set[Address]:
        """The reply addresses of every registered client (for hits triggered over MIDI)."""
        with self._lock:
            return {c.reply_to for c in self._by_address.values()}
