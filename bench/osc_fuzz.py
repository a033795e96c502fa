"""Hostile OSC datagrams for the daemon, and the replies each one must get.

Shared by `tests/stress/test_fuzz.py` (a few thousand datagrams) and `bench/soak.py` (100,000+).
Pure: no sockets, no daemon; randomness comes from the `random.Random` the caller passes.

Every datagram produced is one of:
- not OSC at all (random bytes, truncations, broken bundles): one `/drumdiff/fail` expected;
- OSC whose every message is invalid (unknown address, wrong arity or types, NaN/Inf, out of
  range, huge strings and blobs, wildcards, paths in class names): one `fail` per message;
- now and then a valid read-only query (ping, status, classes, stats): its normal reply.

A message that happens to be a valid request with side effects (render, hello, set, the sound
design requests) is never emitted: a valid `hello` would redirect the fuzzing client's replies
and a valid render would start real work, which is what the load test measures, not this one.
`expected_replies` is the oracle: it decodes a datagram the way the daemon does and names the
reply address each message must get.
"""

from __future__ import annotations

import math
import random
import struct
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from pythonosc.osc_message import OscMessage

from drumdiff.server import protocol
from drumdiff.server.osc import MalformedPacket, decode_datagram

#: Largest UDP payload over IPv4 (65535 - 8 UDP - 20 IP header bytes).
MAX_UDP = 65507
_BUNDLE = b"#bundle\x00"

#: Valid queries without side effects, and the reply each gets.
SAFE_QUERIES = {
    protocol.PING: protocol.PONG,
    protocol.STATUS: protocol.STATUS_REPLY,
    protocol.CLASSES: protocol.CLASSES_REPLY,
    protocol.STATS: protocol.STATS_REPLY,
}


class Unsafe(Exception):
    """The datagram holds a valid request that would change the daemon's state."""


# ---- OSC encoding by hand: python-osc's builder refuses much of what we want to send ----------


def _pad(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 4)


def osc_string(text: str | bytes) -> bytes:
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    return raw + b"\x00" * (4 - len(raw) % 4)


def osc_blob(data: bytes) -> bytes:
    return struct.pack(">i", len(data)) + _pad(data)


def encode_arg(value: Any) -> tuple[str, bytes]:
    """(type tag, bytes) of one argument; tuples ("d", x) etc. force a tag."""
    if isinstance(value, tuple):
        tag, inner = value
        if tag == "d":
            return "d", struct.pack(">d", inner)
        if tag == "h":
            return "h", struct.pack(">q", inner)
        if tag == "f":
            return "f", struct.pack(">f", inner)
        if tag == "c":
            return "c", struct.pack(">I", inner)
        if tag == "m":
            return "m", bytes(inner)
        if tag == "r":
            return "r", struct.pack(">I", inner)
        if tag == "t":
            return "t", struct.pack(">Q", inner)
        if tag == "[":
            tags, data = "[", b""
            for item in inner:
                t, d = encode_arg(item)
                tags, data = tags + t, data + d
            return tags + "]", data
        raise ValueError(f"unknown forced tag {tag!r}")
    if value is None:
        return "N", b""
    if value is True:
        return "T", b""
    if value is False:
        return "F", b""
    if isinstance(value, bytes):
        return "b", osc_blob(value)
    if isinstance(value, int):
        if -(2**31) <= value < 2**31:
            return "i", struct.pack(">i", value)
        return "h", struct.pack(">q", value)
    if isinstance(value, float):
        return "f", struct.pack(">f", value)
    return "s", osc_string(str(value))


def message(address: str | bytes, *args: Any) -> bytes:
    tags, data = ",", b""
    for arg in args:
        t, d = encode_arg(arg)
        tags, data = tags + t, data + d
    return osc_string(address) + osc_string(tags) + data


def bundle(*elements: bytes, timetag: int = 1) -> bytes:
    return (
        _BUNDLE
        + struct.pack(">Q", timetag)
        + b"".join(struct.pack(">i", len(e)) + e for e in elements)
    )


# ---- the oracle ------------------------------------------------------------------------------


def expected_replies(data: bytes) -> Counter[str]:
    """Reply addresses the daemon must send for this datagram (raises Unsafe, see above)."""
    try:
        messages = decode_datagram(data)
    except MalformedPacket:
        return Counter({protocol.FAIL: 1})
    replies: Counter[str] = Counter()
    for msg in messages:
        replies[_reply_to(msg)] += 1
    return replies


def _reply_to(msg: OscMessage) -> str:
    address = msg.address
    if set("*?[]{}").intersection(address) or address not in protocol.PARSERS:
        return protocol.FAIL
    try:
        protocol.parse(address, list(msg.params))
    except Exception:  # a ServerError; anything else the daemon answers `internal` (a bug the
        return protocol.FAIL  # callers catch by asserting that no `internal` code comes back)
    if address in SAFE_QUERIES:
        return SAFE_QUERIES[address]
    if address == protocol.LOAD:
        return protocol.FAIL  # the fuzzed daemon's model folders hold no checkpoint
    raise Unsafe(address)


# ---- generators ------------------------------------------------------------------------------

_ADDRESSES = tuple(protocol.PARSERS)
_NASTY_STRINGS = (
    "",
    " ",
    "\x00",
    "kick\x00../../etc/passwd",
    "../../../../etc/passwd",
    "/etc/passwd",
    "..\\..\\windows\\system32",
    "~root/.ssh/id_rsa",
    "~nosuchuser/x.pt",
    "C:\\x.pt",
    "%s%s%n",
    "{0}{1}",
    "kick/../snare",
    "κικ",
    "\udcff",
    "\u202e",
    "²",
    "٣",
    "9" * 5000,
    "-1",
    "1e309",
    "nan",
    "inf",
    "last",
    "any",
)
_NASTY_NUMBERS: tuple[Any, ...] = (
    math.nan,
    math.inf,
    -math.inf,
    -1,
    -1.0,
    -0.0,
    0.5,
    1e-45,
    3.4e38,
    -(2**31),
    2**31 - 1,
    ("h", 2**63 - 1),
    ("h", -(2**63)),
    ("h", 2**40),
    ("d", 1e300),
    ("d", -1e300),
    ("d", math.nan),
    ("d", math.inf),
    ("d", 5e-324),
    128,
    65536,
    1001,
)
_ODD_VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    b"",
    b"\x00" * 17,
    ("c", 65),
    ("m", (1, 144, 36, 100)),
    ("r", 0xFF00FF00),
    ("t", 1),
    ("[", (1, "kick", 2.0)),
    ("[", ()),
    ("[", (("[", (("[", (1,)),)),)),
)


def _random_value(rng: random.Random) -> Any:
    pick = rng.random()
    if pick < 0.35:
        return rng.choice(_NASTY_NUMBERS)
    if pick < 0.6:
        return rng.choice(_NASTY_STRINGS)
    if pick < 0.8:
        return rng.choice(_ODD_VALUES)
    if pick < 0.9:
        return rng.randint(-(2**31), 2**31 - 1)
    return rng.uniform(-1e6, 1e6)


def random_bytes(rng: random.Random) -> bytes:
    n = rng.choice((0, 1, 3, 4, 7, 8, 16, 31, 64, 255, 512, rng.randint(0, 2048)))
    head = rng.choice((b"", b"/", b"#bundle\x00", b"/drumdiff/", b","))
    return (head + rng.randbytes(n))[:MAX_UDP]


def valid_looking(rng: random.Random) -> bytes:
    """A message the daemon would act on (used as a base for truncation and mutation)."""
    choice = rng.randrange(6)
    if choice == 0:
        return message(
            protocol.RENDER, "kick", 100, "id", rng.randint(0, 999), "seed", 3, "steps", 2
        )
    if choice == 1:
        return message(protocol.SET, "guidance", 1.5)
    if choice == 2:
        return message(protocol.HELLO, 9999, "fuzz")
    if choice == 3:
        return message(protocol.PING, "nonce")
    if choice == 4:
        return message(protocol.MORPH, "kick", "snare", 0.5, "seed", 1)
    return message(protocol.LOAD, "x.pt")


def truncated(rng: random.Random) -> bytes:
    data = valid_looking(rng)
    return data[: rng.randrange(0, len(data))]


def mutated(rng: random.Random) -> bytes:
    """Random bytes of a valid message flipped."""
    data = bytearray(valid_looking(rng))
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def mistyped(rng: random.Random) -> bytes:
    """A known address with random arity and hostile argument values."""
    address = rng.choice(_ADDRESSES)
    args: list[Any] = []
    if address == protocol.RENDER and rng.random() < 0.6:
        args = [
            rng.choice(("kick", 36, 36.0, _random_value(rng))),
            rng.choice((100, _random_value(rng))),
        ]
        for _ in range(rng.randint(0, 4)):
            args += [
                rng.choice((*protocol.RENDER_KEYS, "bogus", _random_value(rng))),
                _random_value(rng),
            ]
    elif address == protocol.SET and rng.random() < 0.7:
        args = [rng.choice((*protocol.PARAMS, _random_value(rng))), _random_value(rng)]
    else:
        args = [_random_value(rng) for _ in range(rng.randint(0, 6))]
    return message(address, *args)


def huge(rng: random.Random) -> bytes:
    """Strings and blobs up to the largest datagram: 64 KiB class names, ids, paths, blobs."""
    size = rng.choice((300, 4096, 9000, 32768, 65000))
    address = rng.choice(_ADDRESSES + ("/drumdiff/" + "x" * size,))
    filler = rng.choice(("s", "b", "path"))
    if filler == "b":
        arg: Any = rng.randbytes(size)
    elif filler == "path":
        arg = "../" * (size // 3)
    else:
        arg = rng.choice("ak\u00e9/") * size
    if address == protocol.PING:
        args: list[Any] = [arg, 1] if rng.random() < 0.5 else [b"blob"]  # a lone string is valid
    elif address == protocol.RENDER:
        args = rng.choice(([arg, 100], ["kick", 100, "id", arg], ["kick", 100, "sampler", arg]))
    else:
        args = [arg]
    data = message(address, *args)
    return data if len(data) <= MAX_UDP else data[:MAX_UDP]


def unknown_address(rng: random.Random) -> bytes:
    address = rng.choice(
        (
            "/drumdiff/explode",
            "/drumdiff/render/",
            "/drumdiff//render",
            "/drumdiff/../render",
            "/DRUMDIFF/RENDER",
            "/drumdiff/ping\u00e9",
            "/",
            "//",
            "/drumdiff/*",
            "/drumdiff/{render,load}",
            "/drumdiff/rend?r",
            "/drumdiff/[a-z]*",
            "/other/app",
            "/drumdiff/done",
            "/drumdiff/fail",
            "/drumdiff/pong",
            "/" + "a" * rng.randint(1, 300),
        )
    )
    return message(address, *[_random_value(rng) for _ in range(rng.randint(0, 3))])


def nested_bundle(rng: random.Random) -> bytes:
    """Bundles of invalid messages, nested, empty, deep, or with lying element sizes."""
    kind = rng.randrange(7)
    if kind == 0:  # a bundle of a few invalid messages, some nested
        inner = [rng.choice((mistyped, unknown_address))(rng) for _ in range(rng.randint(1, 4))]
        if rng.random() < 0.5:
            inner.append(bundle(*[unknown_address(rng) for _ in range(rng.randint(1, 3))]))
        return bundle(*inner, timetag=rng.choice((1, 0, 2**63, 2**64 - 1)))
    if kind == 1:  # deep nesting around one message
        depth = rng.choice((2, 8, 40, 500, 3000))
        data = unknown_address(rng)
        for _ in range(depth):
            data = bundle(data)
            if len(data) > MAX_UDP:
                break
        return data[:MAX_UDP]
    if kind == 2:  # an element size that lies: negative, zero, past the end, unaligned
        size = rng.choice((-4, -8, -20, -(2**31), 0, 1, 3, 2**31 - 1, 1000))
        return _BUNDLE + struct.pack(">Q", 1) + struct.pack(">i", size) + unknown_address(rng)
    if kind == 3:  # empty bundle (no messages, so no reply) or one with only a header
        return rng.choice((bundle(), _BUNDLE + b"\x00" * rng.randint(0, 7)))
    if kind == 4:  # an element that is neither message nor bundle
        return bundle(rng.randbytes(rng.randint(1, 40)))
    if kind == 5:  # a bundle holding a truncated message
        return bundle(truncated(rng))
    return bundle(mistyped(rng), unknown_address(rng), mutated(rng))


def safe_query(rng: random.Random) -> bytes:
    address = rng.choice(tuple(SAFE_QUERIES))
    if address == protocol.PING:
        return message(
            address,
            rng.choice((1, 2.5, "n", "x" * rng.randint(1, 2000), ("h", 2**40), ("d", 1e300))),
        )
    return message(address)


GENERATORS = (
    random_bytes,
    truncated,
    mutated,
    mistyped,
    huge,
    unknown_address,
    nested_bundle,
    safe_query,
)


def datagrams(
    rng: random.Random, count: int, kinds: Sequence[Any] = GENERATORS
) -> Iterator[tuple[bytes, Counter[str]]]:
    """`count` datagrams with their expected replies; those that would act (Unsafe) are redrawn."""
    produced = 0
    while produced < count:
        make = kinds[produced % len(kinds)]
        data = make(rng)
        try:
            expected = expected_replies(data)
        except Unsafe:
            continue
        produced += 1
        yield data, expected
