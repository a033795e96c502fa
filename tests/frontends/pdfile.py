"""A small reader for Pure Data patch files (.pd) and the inlet/outlet counts of vanilla objects.

Only what the frontend tests need: split a patch into records, number the boxes of each canvas
in creation order (every `#X obj/msg/text/floatatom/symbolatom/listbox` and every subpatch
`#X restore` takes an index, comments included), and know how many inlets and outlets a box
has. Counts follow Pd 0.51+ vanilla; creation arguments matter for a few objects (`route`,
`select`, `trigger`, `pack`...). An object missing from `VANILLA` is an error: either the patch
uses an external (not allowed) or the table needs the object added, with its counts checked
against the object's help patch.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

Counts = tuple[int, int]  # (inlets, outlets)


def _fixed(inlets: int, outlets: int) -> Callable[[list[str]], Counts]:
    return lambda args: (inlets, outlets)


def _route(args: list[str]) -> Counts:  # route, select: one argument keeps a right inlet
    return (2 if len(args) <= 1 else 1, max(len(args), 1) + 1)


def _trigger(args: list[str]) -> Counts:  # no arguments: "bang bang"
    return (1, len(args) or 2)


def _pack(args: list[str]) -> Counts:  # no arguments: two floats
    return (len(args) or 2, 1)


def _unpack(args: list[str]) -> Counts:
    return (1, len(args) or 2)


def _list(args: list[str]) -> Counts:
    kind = args[0] if args and not _is_number(args[0]) else "append"
    return {
        "append": (2, 1),
        "prepend": (2, 1),
        "split": (2, 3),
        "trim": (1, 1),
        "length": (1, 1),
        "fromsymbol": (1, 1),
        "tosymbol": (1, 1),
        "store": (2, 2),
    }[kind]


def _binop(args: list[str]) -> Counts:
    return (2, 1)


def _array(args: list[str]) -> Counts:
    return {
        "define": (1, 1),
        "max": (2, 2),
        "min": (2, 2),
        "size": (2, 1),
        "get": (3, 1),
        "set": (3, 0),
    }[args[0]]


def _value(args: list[str]) -> Counts:
    return (2 if not args else 1, 1)


def _send(args: list[str]) -> Counts:
    return (2 if not args else 1, 0)


def _receive(args: list[str]) -> Counts:
    return (1 if not args else 0, 1)


def _notein(args: list[str]) -> Counts:
    return (0, 2 if args else 3)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


#: Vanilla objects (Pd 0.51+) -> counts from their creation arguments.
VANILLA: dict[str, Callable[[list[str]], Counts]] = {
    "inlet": _fixed(0, 1),
    "inlet~": _fixed(0, 1),
    "outlet": _fixed(1, 0),
    "outlet~": _fixed(1, 0),
    "loadbang": _fixed(0, 1),
    "bang": _fixed(1, 1),
    "b": _fixed(1, 1),
    "float": _fixed(2, 1),
    "f": _fixed(2, 1),
    "symbol": _fixed(2, 1),
    "int": _fixed(2, 1),
    "i": _fixed(2, 1),
    "value": _value,
    "v": _value,
    "send": _send,
    "s": _send,
    "receive": _receive,
    "r": _receive,
    "print": _fixed(1, 0),
    "route": _route,
    "select": _route,
    "sel": _route,
    "trigger": _trigger,
    "t": _trigger,
    "pack": _pack,
    "unpack": _unpack,
    "list": _list,
    "spigot": _fixed(2, 1),
    "moses": _fixed(2, 2),
    "until": _fixed(2, 1),
    "clip": _fixed(3, 1),
    "delay": _fixed(2, 1),
    "del": _fixed(2, 1),
    "metro": _fixed(2, 1),
    "makefilename": _fixed(1, 1),
    "netsend": _fixed(1, 2),
    "netreceive": _fixed(1, 2),
    "oscformat": _fixed(1, 1),
    "oscparse": _fixed(1, 1),
    "soundfiler": _fixed(1, 2),
    "samplerate~": _fixed(1, 1),
    "tabplay~": _fixed(1, 2),
    "tabwrite~": _fixed(1, 0),
    "array": _array,
    "notein": _notein,
    "dac~": lambda args: (max(len(args), 2), 0),
    "*~": _binop,
    "+~": _binop,
    "bng": _fixed(1, 1),
    "tgl": _fixed(1, 1),
    **{
        op: _binop
        for op in (
            "+",
            "-",
            "*",
            "/",
            "div",
            "mod",
            "%",
            "==",
            "!=",
            ">",
            "<",
            ">=",
            "<=",
            "&&",
            "||",
            "max",
            "min",
            "pow",
        )
    },
}


@dataclass
class Box:
    index: int
    kind: str  # obj, msg, text, floatatom, symbolatom, listbox, subpatch
    text: list[str]  # the atoms after the position (for obj: class then arguments)
    inlets: int
    outlets: int
    x: int = 0  # position on the canvas (Pd orders an abstraction's inlets and outlets by x)


@dataclass
class Canvas:
    boxes: list[Box] = field(default_factory=list)
    connects: list[tuple[int, int, int, int]] = field(default_factory=list)
    subpatch_ports: Counts = (0, 0)  # inlets/outlets it shows when it is a subpatch


def records(text: str) -> list[list[str]]:
    """The patch's `;`-terminated records as atom lists (`\\;` and `\\,` kept as atoms)."""
    out: list[list[str]] = []
    current: list[str] = []
    for token in re.findall(r"(?:\\.|[^\s;\\])+|;", text):
        if token == ";":
            out.append(current)
            current = []
        else:
            current.append(token)
    if current:
        raise ValueError("patch ends inside a record (missing ';')")
    return out


def abstraction_ports(path: Path) -> Counts:
    """Inlets and outlets an abstraction shows: its top canvas's inlet(~)/outlet(~) objects."""
    top = parse(path)[0]
    ins = sum(1 for b in top.boxes if b.kind == "obj" and b.text[:1] in (["inlet"], ["inlet~"]))
    outs = sum(1 for b in top.boxes if b.kind == "obj" and b.text[:1] in (["outlet"], ["outlet~"]))
    return ins, outs


def parse(path: Path, abstractions: dict[str, Path] | None = None) -> list[Canvas]:
    """Every canvas of a patch (the top one first), with boxes numbered per canvas."""
    abstractions = abstractions or {}
    canvases: list[Canvas] = []
    stack: list[Canvas] = []
    for rec in records(path.read_text()):
        if not rec:
            continue
        head = rec[:2]
        if head == ["#N", "canvas"]:
            canvas = Canvas()
            canvases.append(canvas)
            stack.append(canvas)
            continue
        if rec[0] != "#X" or not stack:
            continue  # #A (array data), #N struct...
        canvas = stack[-1]
        kind = rec[1]
        if kind == "connect":
            a, o, b, i = (int(v) for v in rec[2:6])
            canvas.connects.append((a, o, b, i))
        elif kind == "restore":
            inner = stack.pop()
            ins = sum(
                1 for b in inner.boxes if b.kind == "obj" and b.text[:1] in (["inlet"], ["inlet~"])
            )
            outs = sum(
                1
                for b in inner.boxes
                if b.kind == "obj" and b.text[:1] in (["outlet"], ["outlet~"])
            )
            parent = stack[-1]
            parent.boxes.append(Box(len(parent.boxes), "subpatch", rec[4:], ins, outs, int(rec[2])))
        elif kind in ("obj", "msg", "text", "floatatom", "symbolatom", "listbox"):
            atoms = _strip_width(rec[4:])
            if kind == "obj":
                name = atoms[0] if atoms else ""
                if name in abstractions:
                    ins, outs = abstraction_ports(abstractions[name])
                elif name in VANILLA:
                    ins, outs = VANILLA[name](atoms[1:])
                else:
                    raise KeyError(f"{path.name}: object {name!r} is not a known vanilla object")
            elif kind == "msg":
                ins, outs = 1, 1
            elif kind == "text":
                ins, outs = 0, 0
            else:
                ins, outs = 1, 1
            canvas.boxes.append(Box(len(canvas.boxes), kind, atoms, ins, outs, int(rec[2])))
        elif kind in ("array", "coords"):
            continue  # part of a graph canvas
    if stack[1:]:
        raise ValueError(f"{path.name}: {len(stack) - 1} subpatch(es) never restored")
    return canvases


def _strip_width(atoms: list[str]) -> list[str]:
    """Drop a trailing `\\, f N` box-width suffix."""
    if len(atoms) >= 3 and atoms[-3] == "\\," and atoms[-2] == "f":
        return atoms[:-3]
    return atoms
