"""Real Max 8 objects with their inlet and outlet counts, for validating .maxpat/.amxd patchers.

Counts are what Max 8 saves in `numinlets`/`numoutlets` for a box with the given arguments,
checked against the Max reference and patchers saved by Max (udpreceive 1/1, udpsend 1/0,
buffer~ 1/2, mono play~ 1/2, plugout~ 2/2, notein 1/3, stripnote 2/2, live.thisdevice 1/3,
route with N arguments N+1/N+1, gate N 2/N, sprintf with K `%` slots K/1...). A class missing
here is an error: add it only with counts checked against a patcher saved by Max.
"""

from __future__ import annotations

import re
from collections.abc import Callable

Counts = tuple[int, int]  # (inlets, outlets)


def _fixed(inlets: int, outlets: int) -> Callable[[list[str]], Counts]:
    return lambda args: (inlets, outlets)


def _plain(args: list[str]) -> list[str]:
    """Arguments without `@attribute value...` pairs."""
    out = []
    for arg in args:
        if arg.startswith("@"):
            break
        out.append(arg)
    return out


def _route(args: list[str]) -> Counts:  # Max 8: one inlet per argument to change it
    n = max(len(_plain(args)), 1)
    return (n + 1, n + 1)


def _select(args: list[str]) -> Counts:
    n = max(len(_plain(args)), 1)
    return (2 if n == 1 else 1, n + 1)


def _trigger(args: list[str]) -> Counts:
    return (1, max(len(_plain(args)), 1))


def _pack(args: list[str]) -> Counts:
    return (max(len(_plain(args)), 2), 1)


def _unpack(args: list[str]) -> Counts:
    return (1, max(len(_plain(args)), 2))


def _gate(args: list[str]) -> Counts:
    plain = _plain(args)
    return (2, int(plain[0]) if plain else 1)


def _play(args: list[str]) -> Counts:  # play~ <buffer> [channels]: channels signals + bang
    plain = _plain(args)
    channels = int(plain[1]) if len(plain) > 1 else 1
    return (1, channels + 1)


def _sprintf(args: list[str]) -> Counts:
    slots = len(re.findall(r"%[-+ #0-9.]*l?[a-zA-Z]", " ".join(_plain(args)).replace("%%", "")))
    return (max(slots, 1), 1)


def _binop(args: list[str]) -> Counts:
    return (2, 1)


#: `newobj` classes: the first word of the box text -> counts from the arguments.
NEWOBJ: dict[str, Callable[[list[str]], Counts]] = {
    # MIDI and Live
    "notein": _fixed(1, 3),
    "stripnote": _fixed(2, 2),
    "live.thisdevice": _fixed(1, 3),
    # network
    "udpsend": _fixed(1, 0),
    "udpreceive": _fixed(1, 1),
    # MSP
    "buffer~": _fixed(1, 2),
    "play~": _play,
    "plugout~": _fixed(2, 2),
    "*~": _binop,
    "+~": _binop,
    "dbtoa": _fixed(1, 1),
    # control
    "loadbang": _fixed(1, 1),
    "deferlow": _fixed(1, 1),
    "metro": _fixed(2, 1),
    "delay": _fixed(2, 1),
    "route": _route,
    "select": _select,
    "sel": _select,
    "trigger": _trigger,
    "t": _trigger,
    "pack": _pack,
    "unpack": _unpack,
    "gate": _gate,
    "prepend": _fixed(1, 1),
    "sprintf": _sprintf,
    "split": _fixed(3, 2),
    "zl": _fixed(2, 2),
    "i": _fixed(2, 1),
    "int": _fixed(2, 1),
    "f": _fixed(2, 1),
    "float": _fixed(2, 1),
    "print": _fixed(1, 0),
    **{
        op: _binop for op in ("+", "-", "*", "/", "%", "!-", "!/", "<", ">", "==", "!=", ">=", "<=")
    },
}

#: Boxes whose class is their `maxclass` (UI objects, message, comment): fixed counts.
UI: dict[str, Counts] = {
    "message": (2, 1),
    "comment": (1, 0),
    "panel": (1, 0),
    "button": (1, 1),
    "toggle": (1, 1),
    "number": (1, 2),
    "flonum": (1, 2),
    "inlet": (0, 1),
    "outlet": (1, 0),
    "live.dial": (1, 2),
    "live.numbox": (1, 2),
    "live.toggle": (1, 1),
    "live.menu": (1, 3),
    "live.text": (1, 2),
    "live.comment": (1, 0),
}


def counts(box: dict) -> Counts:
    """(inlets, outlets) Max gives this box; KeyError for an unknown class."""
    maxclass = box["maxclass"]
    if maxclass == "newobj":
        words = box["text"].split()
        if words[0] not in NEWOBJ:
            raise KeyError(f"{box['id']}: {words[0]!r} is not in the table of known Max objects")
        return NEWOBJ[words[0]](words[1:])
    if maxclass not in UI:
        raise KeyError(
            f"{box['id']}: maxclass {maxclass!r} is not in the table of known Max objects"
        )
    return UI[maxclass]
