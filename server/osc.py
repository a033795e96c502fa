"""OSC over UDP: a receive loop, a python-osc dispatcher whose handlers only parse and hand over.

Not python-osc's socketserver servers: they truncate datagrams at 8192 bytes and swallow parse
errors, and every malformed datagram here must be answered with `/drumdiff/fail`. So the loop
does its own `recvfrom(65536)`, walks bundles itself (flattened in order, timetags ignored, as
Pd's `oscparse` does: `Dispatcher(strict_timing=False)` never sleeps), decodes each message with
python-osc's `OscMessage`, and calls the dispatcher's handlers. Replies leave from the same socket.

Bundles are not left to python-osc's `OscBundle`: its element loop steps back by a negative
element size and never ends, so one 20-byte datagram would stop the daemon from listening.

Transports follow mido's template: `ReplyTransport.send` validates, subclasses implement
`_send`; `LoopbackTransport` records messages for socket-free tests.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from drumdiff.server import protocol
from drumdiff.server.errors import MalformedPacket, ServerError, UnknownAddress
from drumdiff.server.protocol import Command, Message, RequestId

log = logging.getLogger("drumdiff.server.osc")

Address = tuple[str, int]
#: (command, sender, time the datagram arrived, the message's `reply_port` or None) -> None;
#: raises ServerError to answer `fail`.
CommandHandler = Callable[[Command, Address, float, "int | None"], None]
#: (sender, request id, error, the message's `reply_port` or None) -> None: answer a message
#: that could not be handled.
ErrorHandler = Callable[[Address, RequestId, ServerError, "int | None"], None]

_PATTERN_CHARS = set("*?[]{}")
MAX_DATAGRAM = 65536
#: Bundles inside bundles deeper than this are refused (no client nests them; recursion is finite).
MAX_BUNDLE_DEPTH = 16
#: The receive buffer asked of the kernel, so a burst of triggers from several clients waits
#: in the socket instead of being dropped while the loop answers (Linux caps it at rmem_max).
RECEIVE_BUFFER = 4 << 20
_BUNDLE = b"#bundle\x00"
_INT32 = (-(2**31), 2**31 - 1)
_FLOAT32_MAX = 3.4028234663852886e38


def encode(message: Message) -> bytes:
    """The OSC bytes of a reply (ints as i, floats as f, strings as s, bytes as b)."""
    builder = OscMessageBuilder(message.address)
    for value in message.args:
        if isinstance(value, bool):
            raise TypeError("booleans are not sent; use 0/1")
        if isinstance(value, bytes):
            builder.add_arg(value, OscMessageBuilder.ARG_TYPE_BLOB)
        elif isinstance(value, int):
            # A ping nonce is echoed as it came: an int64 ('h') does not fit an 'i'.
            small = _INT32[0] <= value <= _INT32[1]
            builder.add_arg(
                value, OscMessageBuilder.ARG_TYPE_INT if small else OscMessageBuilder.ARG_TYPE_INT64
            )
        elif isinstance(value, float):
            # Likewise a double ('d') beyond float32's range: struct cannot pack it as 'f'.
            small = not math.isfinite(value) or abs(value) <= _FLOAT32_MAX
            builder.add_arg(
                value,
                OscMessageBuilder.ARG_TYPE_FLOAT if small else OscMessageBuilder.ARG_TYPE_DOUBLE,
            )
        else:
            builder.add_arg(str(value), OscMessageBuilder.ARG_TYPE_STRING)
    return builder.build().dgram


def build_dispatcher(handle: CommandHandler, on_error: ErrorHandler) -> Dispatcher:
    """Map every address in `protocol.PARSERS`; each handler parses, then calls `handle`."""
    dispatcher = Dispatcher(strict_timing=False)

    def handler(client: Address, address: str, *args: Any) -> None:
        arrived = time.perf_counter()
        reply_port: int | None = None
        try:
            command, reply_port = protocol.parse_routed(address, args)
            handle(command, client, arrived, reply_port)
        except ServerError as err:
            rid = (
                err.request_id
                if err.request_id is not None
                else protocol.request_id_of(address, args)
            )
            if reply_port is None:
                reply_port = protocol.reply_port_of(address, args)
            on_error(client, rid, err, reply_port)

    def unknown(client: Address, address: str, *args: Any) -> None:
        on_error(
            client,
            protocol.NO_ID,
            UnknownAddress(f"unknown address {address[:80]!r}; see docs/protocol.md"),
            None,
        )

    for address in protocol.PARSERS:
        dispatcher.map(address, handler, needs_reply_address=True)
    dispatcher.set_default_handler(unknown, needs_reply_address=True)
    return dispatcher


def decode_datagram(data: bytes) -> list[OscMessage]:
    """The messages of one datagram, bundles flattened in order; raises MalformedPacket."""
    messages: list[OscMessage] = []
    _collect(data, 0, messages)
    return messages


def _collect(data: bytes, depth: int, out: list[OscMessage]) -> None:
    if data.startswith(_BUNDLE):
        if depth >= MAX_BUNDLE_DEPTH:
            raise MalformedPacket(
                f"not an OSC packet (bundles nested deeper than {MAX_BUNDLE_DEPTH})"
            )
        if len(data) < 16:
            raise MalformedPacket("not an OSC packet (bundle shorter than its 16-byte header)")
        pos = 16  # "#bundle\0" and the timetag, which is ignored
        while pos < len(data):
            if pos + 4 > len(data):
                raise MalformedPacket("not an OSC packet (bundle element size cut off)")
            (size,) = struct.unpack_from(">i", data, pos)
            pos += 4
            # OSC 1.0: an element is a whole message or bundle, so its size is positive and a
            # multiple of 4; anything else would make the walk step backwards or off the end.
            if size <= 0 or size % 4 or pos + size > len(data):
                raise MalformedPacket(
                    f"not an OSC packet (bundle element size {size} at byte {pos - 4})"
                )
            _collect(data[pos : pos + size], depth + 1, out)
            pos += size
        return
    if not data.startswith(b"/"):
        raise MalformedPacket("not an OSC packet (neither a message nor a bundle)")
    try:
        out.append(OscMessage(data))
    except Exception as err:  # ParseError, and struct/Unicode errors on some garbage
        detail = str(err).strip().splitlines()[0][:120] if str(err).strip() else type(err).__name__
        raise MalformedPacket(f"not an OSC packet ({detail})") from None


def dispatch_datagram(
    dispatcher: Dispatcher, data: bytes, client: Address, on_error: ErrorHandler
) -> None:
    """Decode one datagram and run the handlers of each message it holds."""
    try:
        messages = decode_datagram(data)
    except MalformedPacket as err:
        on_error(client, protocol.NO_ID, err, None)
        return
    for message in messages:
        address = message.address
        if _PATTERN_CHARS.intersection(address):
            # Wildcards would fan one message out to render, load and set at once.
            on_error(
                client,
                protocol.NO_ID,
                MalformedPacket("OSC address patterns (wildcards) are not supported"),
                None,
            )
            continue
        for handler in dispatcher.handlers_for_address(address):
            try:
                handler.invoke(client, message)
            except Exception as err:  # a bug must not kill the receive loop
                log.exception("handler for %s failed", address)
                on_error(
                    client,
                    protocol.NO_ID,
                    ServerError(f"internal error: {type(err).__name__}"),
                    None,
                )


class ReplyTransport:
    """Sends protocol messages; subclasses implement `_send` only."""

    def send(self, dest: Address, message: Message) -> None:
        if (
            message.address not in protocol.SPECS
            or protocol.SPECS[message.address].direction != "out"
        ):
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


def bind_udp(host: str, port: int) -> socket.socket:
    """A UDP socket bound to (host, port); OSError with a one-line reason (e.g. port in use).

    `drumdiff serve` binds before it loads the model, so a busy port fails in milliseconds, not
    after the load; datagrams that arrive meanwhile wait in the socket.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise OSError(err.errno, f"cannot listen on udp {host}:{port}: {err.strerror}") from None
    return sock


class UdpOscServer(ReplyTransport):
    """Receives on (host, port), or on an already bound `sock`, with its own thread; replies
    from the same socket."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        handle: CommandHandler,
        on_error: ErrorHandler,
        allow: Sequence[str] = (),
        sock: socket.socket | None = None,
    ) -> None:
        self._sock = sock if sock is not None else bind_udp(host, port)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        except OSError:  # some platforms refuse large buffers; the default still works
            pass
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
            except TimeoutError:
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
