"""OSC over UDP: a receive loop, a python-osc dispatcher whose handlers only parse and hand over.

Not python-osc's socketserver servers: they truncate datagrams at 8192 bytes and swallow parse
errors, and every malformed datagram here must be answered with `/drumdiff/fail`. So the loop
does its own `recvfrom(65536)`, decodes with python-osc's `OscPacket` (bundles flattened,
timetags ignored, as Pd's `oscparse` does: `Dispatcher(strict_timing=False)` never sleeps), and
calls the dispatcher's handlers. Replies leave from the same socket.

Transports follow mido's template: `ReplyTransport.send` validates, subclasses implement
`_send`; `LoopbackTransport` records messages for socket-free tests.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket, ParseError

from server import protocol
from server.errors import MalformedPacket, ServerError, UnknownAddress
from server.protocol import Command, Message, RequestId

log = logging.getLogger("drumdiff.server.osc")

Address = tuple[str, int]
#: (command, sender, time the datagram arrived) -> None; raises ServerError to answer `fail`.
CommandHandler = Callable[[Command, Address, float], None]
#: (sender, request id, error) -> None: answer a message that could not be handled.
ErrorHandler = Callable[[Address, RequestId, ServerError], None]

_PATTERN_CHARS = set("*?[]{}")
MAX_DATAGRAM = 65536


def encode(message: Message) -> bytes:
    """The OSC bytes of a reply (ints as i, floats as f, strings as s, bytes as b)."""
    builder = OscMessageBuilder(message.address)
    for value in message.args:
        if isinstance(value, bool):
            raise TypeError("booleans are not sent; use 0/1")
        if isinstance(value, bytes):
            builder.add_arg(value, OscMessageBuilder.ARG_TYPE_BLOB)
        elif isinstance(value, int):
            builder.add_arg(value, OscMessageBuilder.ARG_TYPE_INT)
        elif isinstance(value, float):
            builder.add_arg(value, OscMessageBuilder.ARG_TYPE_FLOAT)
        else:
            builder.add_arg(str(value), OscMessageBuilder.ARG_TYPE_STRING)
    return builder.build().dgram


def build_dispatcher(handle: CommandHandler, on_error: ErrorHandler) -> Dispatcher:
    """Map every address in `protocol.PARSERS`; each handler parses, then calls `handle`."""
    dispatcher = Dispatcher(strict_timing=False)

    def handler(client: Address, address: str, *args: Any) -> None:
        arrived = time.perf_counter()
        try:
            command = protocol.parse(address, args)
            handle(command, client, arrived)
        except ServerError as err:
            rid = err.request_id if err.request_id is not None else protocol.request_id_of(address, args)
            on_error(client, rid, err)

    def unknown(client: Address, address: str, *args: Any) -> None:
        on_error(client, protocol.NO_ID, UnknownAddress(f"unknown address {address[:80]!r}; see docs/protocol.md"))

    for address in protocol.PARSERS:
        dispatcher.map(address, handler, needs_reply_address=True)
    dispatcher.set_default_handler(unknown, needs_reply_address=True)
    return dispatcher


def dispatch_datagram(
    dispatcher: Dispatcher, data: bytes, client: Address, on_error: ErrorHandler
) -> None:
    """Decode one datagram and run the handlers of each message it holds."""
    try:
        messages: list[OscMessage] = [m.message for m in OscPacket(data).messages]
    except ParseError as err:
        on_error(client, protocol.NO_ID, MalformedPacket(f"not an OSC packet ({str(err)[:120]})"))
        return
    except Exception as err:  # python-osc raises other errors on some garbage (struct, Unicode)
        on_error(client, protocol.NO_ID, MalformedPacket(f"not an OSC packet ({type(err).__name__})"))
        return
    for message in messages:
        address = message.address
        if _PATTERN_CHARS.intersection(address):
            # Wildcards would fan one message out to render, load and set at once.
            on_error(client, protocol.NO_ID, MalformedPacket("OSC address patterns (wildcards) are not supported"))
            continue
        for handler in dispatcher.handlers_for_address(address):
            try:
                handler.invoke(client, message)
            except Exception as err:  # a bug must not kill the receive loop
                log.exception("handler for %s failed", address)
                on_error(client, protocol.NO_ID, ServerError(f"internal error: {type(err).__name__}"))


class ReplyTransport:
    """Sends protocol messages; subclasses implement `_send` only."""

    def send(self, dest: Address, message: Message) -> None:
        if message.address not in protocol.SPECS or protocol.SPECS[message.address].direction != "out":
            raise ValueError(f"{message.address!r} is not a reply address of the protocol")
        self._send(dest, message)

    def _send(self, dest: Address, message: Message) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class LoopbackTransport(ReplyTransport):
    """Keeps what would be sent, for tests: a list of (dest, message)."""

    def __init__(self) -> None:
        self.sent: list[tuple[Address, Message]] = []
        self._lock = threading.Lock()

    def _send(self, dest: Address, message: Message) -> None:
        with self._lock:
            self.sent.append((dest, message))


class UdpOscServer(ReplyTransport):
    """Receives on (host, port) with its own thread; replies from the same socket."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        handle: CommandHandler,
        on_error: ErrorHandler,
        allow: Sequence[str] = (),
    ) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self._sock.bind((host, port))
        except OSError as err:
            self._sock.close()
            raise OSError(err.errno, f"cannot listen on udp {host}:{port}: {err.strerror}") from None
        self._sock.settimeout(0.1)  # lets the loop notice stop() without a wake-up datagram
        self._allow = [ipaddress.ip_network(a, strict=False) for a in allow]
        self._on_error = on_error
        self.dispatcher = build_dispatcher(handle, on_error)
        self._receiving = threading.Event()
        self._thread: threading.Thread | None = None
        self._send_lock = threading.Lock()
        self.dropped = 0

    @property
    def address(self) -> Address:
        host, port = self._sock.getsockname()[:2]
        return host, port

    def start(self) -> None:
        self._receiving.set()
        self._thread = threading.Thread(target=self._loop, name="drumdiff-osc", daemon=True)
        self._thread.start()

    def stop_receiving(self) -> None:
        self._receiving.clear()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None

    def close(self) -> None:
        self.stop_receiving()
        self._sock.close()

    def _allowed(self, host: str) -> bool:
        if not self._allow:
            return True
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(ip in net for net in self._allow)

    def _loop(self) -> None:
        while self._receiving.is_set():
            try:
                data, client = self._sock.recvfrom(MAX_DATAGRAM)
            except socket.timeout:
                continue
            except OSError as err:
                if not self._receiving.is_set():
                    return
                # Linux reports an earlier send's ICMP "port unreachable" on the next recvfrom.
                log.debug("recvfrom: %s", err)
                continue
            client = (client[0], client[1])
            if not self._allowed(client[0]):
                # No reply: answering strangers would make the daemon a reflector.
                self.dropped += 1
                log.debug("dropped a datagram from %s (not in osc.allow)", client[0])
                continue
            dispatch_datagram(self.dispatcher, data, client, self._on_error)

    def _send(self, dest: Address, message: Message) -> None:
        data = encode(message)
        try:
            with self._send_lock:
                self._sock.sendto(data, dest)
        except OSError as err:  # a client went away: its loss, not the daemon's
            log.debug("sending %s to %s:%s failed: %s", message.address, dest[0], dest[1], err)
