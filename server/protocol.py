"""The OSC protocol of the daemon: addresses, argument schemas, parse and format. Pure: no sockets.

Everything a frontend (Max for Live, Pure Data) relies on is defined here once; `drumdiff
protocol` turns `MESSAGES`, `RENDER_KEYS`, `PARAMS` and the reason codes into docs/protocol.md.

Conventions (scsynth/AbletonOSC style):
- every address starts with `/drumdiff/`; a reply's address is the request's plus `.reply`,
  or `/drumdiff/done` / `/drumdiff/fail` for jobs;
- numbers may arrive as int or float (Pd sends only floats), so an integer argument accepts an
  integral float; non-integral floats are rejected where an integer is needed, NaN/Inf always;
- a parse function takes the message's argument list and returns a frozen command object, or
  raises `ProtocolError` (answered with `/drumdiff/fail`).

To add a request kind (e.g. variations): define its command dataclass and parse
function, add it to `PARSERS` and its `MessageSpec` to `MESSAGES`, then teach the engine its job.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from drumdiff.model.core.sampling import DISTILLED, SAMPLERS, SCHEDULES
from drumdiff.model.render.design_defaults import DESIGN_DEFAULTS
from drumdiff.server.errors import ProtocolError, UnknownAddress

PREFIX = "/drumdiff/"

HELLO = "/drumdiff/hello"
HELLO_REPLY = "/drumdiff/hello.reply"
RENDER = "/drumdiff/render"
DONE = "/drumdiff/done"
FAIL = "/drumdiff/fail"
CHUNK = "/drumdiff/chunk"
STATUS = "/drumdiff/status"
STATUS_REPLY = "/drumdiff/status.reply"
PING = "/drumdiff/ping"
PONG = "/drumdiff/pong"
LOAD = "/drumdiff/load"
LOADED = "/drumdiff/loaded"
SET = "/drumdiff/set"
SET_REPLY = "/drumdiff/set.reply"
#: A `models` reply lists at most this many checkpoints (one UDP datagram stays small).
MAX_LISTED_MODELS = 64
CLASSES = "/drumdiff/classes"
CLASSES_REPLY = "/drumdiff/classes.reply"
STATS = "/drumdiff/stats"
MODELS = "/drumdiff/models"
# A whole kit for samplers, rendered in the background: progress messages, then one kit.done.
KIT = "/drumdiff/kit"
KIT_PROGRESS = "/drumdiff/kit.progress"
KIT_DONE = "/drumdiff/kit.done"
MODELS_REPLY = "/drumdiff/models.reply"
STATS_REPLY = "/drumdiff/stats.reply"
# Sound design: each answers with one `done` per hit, all under the request's id.
VARY = "/drumdiff/vary"
INTERPOLATE = "/drumdiff/interpolate"
INPAINT = "/drumdiff/inpaint"
MORPH = "/drumdiff/morph"
SCRUB = "/drumdiff/scrub"

#: The request id used in `fail` when a message is too broken to have one.
NO_ID = -1
#: The request-id slot of a failed `load` (agreed protocol: `/drumdiff/fail load <code> <text>`).
LOAD_ID = "load"
#: Seeds travel as OSC int32.
MAX_SEED = 2**31 - 1
#: Seeds the daemon draws itself stay below 2**24, so they survive Pd, which holds every number
#: as a 32-bit float (integers are exact only up to 2**24), and a patch can send them back.
DRAWN_SEED_LIMIT = 2**24
#: The velocity of a `render` that gives none.
DEFAULT_VELOCITY = 100
#: The key that points the replies to one request at a port of the sender's host.
REPLY_PORT_KEY = "reply_port"
#: Bytes of file data per `/drumdiff/chunk` blob: the whole datagram stays under 8 KB, which
#: python-osc's socketserver servers, macOS (9216) and most OSC libraries accept.
CHUNK_BYTES = 7168
MAX_STEPS = 1000
#: Longest render one request may ask for (seconds), and the widest repitch (semitones).
MAX_LENGTH_S = 10.0
MAX_PITCH = 24.0
#: Hits one sound-design request may ask for.
MAX_DESIGN_COUNT = 32
#: A previous hit named by this instead of a request id: the newest one (of `class`, if given).
LAST = "last"

RequestId = int | str
_ID_TEXT = re.compile(r"^[\x21-\x7e]{1,64}$")  # printable ASCII, no spaces: safe in logs and Max


# ---------------------------------------------------------------------------------------------
# Value coercion: every wire value passes through one of these.


def _number(value: Any, what: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(f"{what} must be a number, got {_show(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ProtocolError(f"{what} must be finite, got {value}")
    return value


def as_int(value: Any, what: str, lo: int | None = None, hi: int | None = None) -> int:
    """An integer from an OSC int or an integral float (Pd sends floats)."""
    number = _number(value, what)
    if isinstance(number, float):
        if not number.is_integer():
            raise ProtocolError(f"{what} must be an integer, got {number}")
        number = int(number)
    if (lo is not None and number < lo) or (hi is not None and number > hi):
        raise ProtocolError(f"{what} must be in {lo}..{hi}, got {number}")
    return number


def as_float(value: Any, what: str, lo: float | None = None, hi: float | None = None) -> float:
    number = float(_number(value, what))
    if (lo is not None and number < lo) or (hi is not None and number > hi):
        raise ProtocolError(f"{what} must be in {lo}..{hi}, got {number:g}")
    return number


def as_str(value: Any, what: str, *, max_len: int = 256) -> str:
    if not isinstance(value, str):
        raise ProtocolError(f"{what} must be a string, got {_show(value)}")
    if not value or len(value) > max_len:
        raise ProtocolError(f"{what} must be 1..{max_len} characters")
    return value


def as_flag(value: Any, what: str) -> bool:
    """0/1 (int, float or OSC true/false)."""
    if isinstance(value, bool):
        return value
    return bool(as_int(value, what, 0, 1))


def as_choice(value: Any, what: str, choices: Sequence[str]) -> str:
    text = as_str(value, what)
    if text not in choices:
        raise ProtocolError(f"unknown {what} {text!r}; expected one of {sorted(choices)}")
    return text


def as_request_id(value: Any) -> RequestId:
    """A client's request id: an int, an integral float, or a short printable string."""
    if isinstance(value, str):
        if not _ID_TEXT.match(value):
            raise ProtocolError("id must be 1..64 printable characters without spaces")
        return value
    return as_int(value, "id", -(2**31), 2**31 - 1)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# ---------------------------------------------------------------------------------------------
# Commands: what a parsed message asks for.


@dataclass(frozen=True)
class Hello:
    reply_port: int
    client_name: str | None = None


@dataclass(frozen=True)
class RenderRequest:
    """Render one hit of a class (name) or of a General MIDI drum note (int)."""

    kind: ClassVar[str] = "render"

    target: str | int  # class name, or GM note number 0..127
    velocity: int  # 0..127; 0 = release (nothing rendered, nothing replied)
    request_id: RequestId | None = None  # None: the daemon assigns an int
    seed: int | None = None
    steps: int | None = None
    sampler: str | None = None
    guidance: float | None = None
    gain_db: float | None = None
    fresh: bool = False  # True: render now; False: the pre-rendered pool may serve it
    stream: bool = False  # True: also send the file as /drumdiff/chunk blobs
    length_s: float | None = None  # seconds; None = the model's length
    pitch: float | None = None  # semitones of repitch by resampling; None = 0

    @property
    def is_release(self) -> bool:
        return self.velocity == 0


@dataclass(frozen=True)
class StatusQuery:
    pass


@dataclass(frozen=True)
class Ping:
    nonce: int | float | str | None = None


@dataclass(frozen=True)
class Load:
    path: str


@dataclass(frozen=True)
class SetParam:
    param: str
    value: int | float | str


@dataclass(frozen=True)
class ClassesQuery:
    pass


@dataclass(frozen=True)
class StatsQuery:
    pass


@dataclass(frozen=True)
class ModelsQuery:
    pass


@dataclass(frozen=True)
class KitRequest:
    """`/drumdiff/kit [key value ...]`: every field has the `drumdiff kit` default."""

    request_id: RequestId | None = None
    name: str = "drumdiff"
    round_robin: int = 2
    velocity_layers: int = 2
    length_cymbals: float = 2.5
    seed: int | None = None
    formats: tuple[str, ...] = ("sfz", "hydrogen", "decentsampler")
    steps: int | None = None


@dataclass(frozen=True)
class DesignRequest:
    """A sound-design request: vary, interpolate, inpaint, morph or scrub.

    `sources` name earlier hits by request id or LAST; `classes` are morph's two classes or
    scrub's one; the rest are the optional `key value` pairs of DESIGN_KEYS (None = default).
    """

    kind: str  # "vary", "interpolate", "inpaint", "morph" or "scrub"
    sources: tuple[RequestId, ...] = ()
    classes: tuple[str, ...] = ()
    mix: float | None = None  # morph: 0 = classes[0] .. 1 = classes[1]
    request_id: RequestId | None = None
    drum_class: str | None = None  # `class` key: condition, and which class `last` means
    level: float | None = None
    count: int | None = None
    seed: int | None = None
    steps: int | None = None
    sampler: str | None = None
    guidance: float | None = None
    start_s: float | None = None
    end_s: float | None = None
    seam_ms: float | None = None
    refine: int | None = None
    checkpoint_step: int | None = None
    checkpoint_fraction: float | None = None
    stream: bool = False


Command = (
    Hello
    | RenderRequest
    | StatusQuery
    | Ping
    | Load
    | SetParam
    | ClassesQuery
    | StatsQuery
    | ModelsQuery
    | DesignRequest
    | KitRequest
)


# ---------------------------------------------------------------------------------------------
# Schemas: the single source of the documentation and of the parsers' limits.


@dataclass(frozen=True)
class Arg:
    name: str
    type: str  # as documented: int, float, number, string, blob, "string|int"...
    doc: str
    optional: bool = False


@dataclass(frozen=True)
class MessageSpec:
    address: str
    direction: str  # "in": to the daemon; "out": from the daemon
    args: tuple[Arg, ...]
    doc: str
    replies: tuple[str, ...] = ()
    variadic: str | None = None  # trailing "key value ..." pairs or repeated values, documented


@dataclass(frozen=True)
class KeySpec:
    """One optional `key value` pair of `/drumdiff/render`."""

    name: str
    type: str
    doc: str
    parse: Callable[[Any], Any]
    field: str  # RenderRequest field it sets


@dataclass(frozen=True)
class ParamSpec:
    """A daemon parameter settable with `/drumdiff/set` (and MIDI CCs)."""

    name: str
    type: str  # "int", "float" or "choice"
    doc: str
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()

    def parse(self, value: Any) -> int | float | str:
        what = self.name
        if self.type == "int":
            return as_int(value, what, _opt_int(self.lo), _opt_int(self.hi))
        if self.type == "float":
            return as_float(value, what, self.lo, self.hi)
        return as_choice(value, what, self.choices)

    def from_unit(
        self, unit: float, lo: float | None = None, hi: float | None = None
    ) -> int | float:
        """Scale 0..1 (a MIDI CC) onto [lo, hi] (default: the param's own range)."""
        if self.type == "choice":
            raise ProtocolError(f"{self.name} is a choice and cannot follow a controller")
        low = self.lo if lo is None else lo
        high = self.hi if hi is None else hi
        assert low is not None and high is not None
        value = low + (high - low) * min(max(unit, 0.0), 1.0)
        return int(round(value)) if self.type == "int" else value


def _opt_int(value: float | None) -> int | None:
    return None if value is None else int(value)


RENDER_KEYS: dict[str, KeySpec] = {
    k.name: k
    for k in (
        KeySpec(
            "id",
            "int or string",
            "client request id, echoed in the reply (default: the daemon assigns an int)",
            as_request_id,
            "request_id",
        ),
        KeySpec(
            "seed",
            "int",
            f"noise seed 0..{MAX_SEED}; the same seed and settings give the same hit",
            lambda v: as_int(v, "seed", 0, MAX_SEED),
            "seed",
        ),
        KeySpec(
            "steps",
            "int",
            f"sampling steps 1..{MAX_STEPS} (default: `set steps`)",
            lambda v: as_int(v, "steps", 1, MAX_STEPS),
            "steps",
        ),
        KeySpec(
            "sampler",
            "string",
            f"one of {', '.join(sorted(SAMPLERS))} ({DISTILLED}: the model's few-step student, at "
            "its own steps)",
            lambda v: as_choice(v, "sampler", tuple(SAMPLERS)),
            "sampler",
        ),
        KeySpec(
            "guidance",
            "float",
            "classifier-free guidance scale 0..50",
            lambda v: as_float(v, "guidance", 0.0, 50.0),
            "guidance",
        ),
        KeySpec(
            "gain",
            "float",
            "gain in dB, -96..24, added to the velocity curve",
            lambda v: as_float(v, "gain", -96.0, 24.0),
            "gain_db",
        ),
        KeySpec(
            "fresh",
            "0/1",
            "1 = render now; 0 = the pre-rendered pool may serve it (default 0)",
            lambda v: as_flag(v, "fresh"),
            "fresh",
        ),
        KeySpec(
            "stream",
            "0/1",
            "1 = after `done`, also send the file as `/drumdiff/chunk` blobs (default 0)",
            lambda v: as_flag(v, "stream"),
            "stream",
        ),
        KeySpec(
            "length",
            "float",
            f"seconds, 0.01..{MAX_LENGTH_S:g} (default: the model's length); longer than it, the "
            "model holds its last time step",
            lambda v: as_float(v, "length", 0.01, MAX_LENGTH_S),
            "length_s",
        ),
        KeySpec(
            "pitch",
            "float",
            f"repitch by resampling, -{MAX_PITCH:g}..{MAX_PITCH:g} semitones (up is shorter); the "
            "file's `smpl` root note moves with it",
            lambda v: as_float(v, "pitch", -MAX_PITCH, MAX_PITCH),
            "pitch",
        ),
    )
}

PARAMS: dict[str, ParamSpec] = {
    p.name: p
    for p in (
        ParamSpec("steps", "int", "default sampling steps", 1, MAX_STEPS),
        ParamSpec(
            "guidance",
            "float",
            "default classifier-free guidance scale (replaces the model's per-class scales)",
            0.0,
            50.0,
        ),
        ParamSpec("sampler", "choice", "default sampler", choices=tuple(sorted(SAMPLERS))),
        ParamSpec("schedule", "choice", "default noise schedule", choices=tuple(sorted(SCHEDULES))),
        ParamSpec("eta", "float", "stochasticity of the ddim and distilled samplers", 0.0, 1.0),
        ParamSpec("gain", "float", "default gain in dB", -96.0, 24.0),
        ParamSpec(
            "variation",
            "float",
            "chance that a pooled trigger gets a new hit; otherwise the class's last hit repeats",
            0.0,
            1.0,
        ),
    )
}


def _fraction(v: Any) -> float:
    return as_float(v, "fraction", 0.0, 1.0)


#: Optional `key value` pairs of the sound-design messages (which message takes which:
#: DESIGN_ALLOWED).
DESIGN_KEYS: dict[str, KeySpec] = {
    k.name: k
    for k in (
        KeySpec(
            "id",
            "int or string",
            "client request id, echoed in every `done` of the request",
            as_request_id,
            "request_id",
        ),
        KeySpec(
            "class",
            "string",
            "class condition (`any` = none); with source `last`: the newest hit of this class",
            lambda v: as_str(v, "class", max_len=64),
            "drum_class",
        ),
        KeySpec(
            "level",
            "float",
            "vary: noise level 0..1 (0 = the same hit, 1 = a new one; default "
            f"{DESIGN_DEFAULTS.level:g})",
            lambda v: as_float(v, "level", 0.0, 1.0),
            "level",
        ),
        KeySpec(
            "count",
            "int",
            f"hits to make 1..{MAX_DESIGN_COUNT} (interpolate: 2.., endpoints included; default 1, "
            f"interpolate {DESIGN_DEFAULTS.interpolate_count})",
            lambda v: as_int(v, "count", 1, MAX_DESIGN_COUNT),
            "count",
        ),
        KeySpec(
            "seed",
            "int",
            f"first seed 0..{MAX_SEED}; hit i uses seed + i",
            lambda v: as_int(v, "seed", 0, MAX_SEED - MAX_DESIGN_COUNT),
            "seed",
        ),
        KeySpec(
            "steps",
            "int",
            f"sampling steps 1..{MAX_STEPS} (interpolate: inversion steps, default "
            f"{DESIGN_DEFAULTS.interpolate_steps})",
            lambda v: as_int(v, "steps", 1, MAX_STEPS),
            "steps",
        ),
        KeySpec(
            "sampler",
            "string",
            f"one of {', '.join(sorted(SAMPLERS))} (interpolate always uses ddim)",
            lambda v: as_choice(v, "sampler", tuple(SAMPLERS)),
            "sampler",
        ),
        KeySpec(
            "guidance",
            "float",
            "classifier-free guidance scale 0..50 (interpolate: default 1)",
            lambda v: as_float(v, "guidance", 0.0, 50.0),
            "guidance",
        ),
        KeySpec(
            "start",
            "float",
            "inpaint: seconds where the regenerated part begins (default 0)",
            lambda v: as_float(v, "start", 0.0, 60.0),
            "start_s",
        ),
        KeySpec(
            "end",
            "float",
            "inpaint: seconds where it ends (default: the end of the hit)",
            lambda v: as_float(v, "end", 0.0, 60.0),
            "end_s",
        ),
        KeySpec(
            "seam",
            "float",
            "inpaint: crossfade into the new part in ms, 0..100 (default "
            f"{DESIGN_DEFAULTS.seam_ms:g})",
            lambda v: as_float(v, "seam", 0.0, 100.0),
            "seam_ms",
        ),
        KeySpec(
            "refine",
            "int",
            "interpolate: fixed-point refinements per inversion step 0..8 (default "
            f"{DESIGN_DEFAULTS.refine})",
            lambda v: as_int(v, "refine", 0, 8),
            "refine",
        ),
        KeySpec(
            "step",
            "int",
            "render with the checkpoint of the loaded model's run nearest this training step",
            lambda v: as_int(v, "step", 0, 2**31 - 1),
            "checkpoint_step",
        ),
        KeySpec(
            "fraction",
            "float",
            "... or nearest this fraction of its training so far (0 = first kept, 1 = newest)",
            _fraction,
            "checkpoint_fraction",
        ),
        KeySpec(
            "stream",
            "0/1",
            "1 = after each `done`, also send the file as `/drumdiff/chunk` blobs",
            lambda v: as_flag(v, "stream"),
            "stream",
        ),
    )
}

_COMMON_DESIGN = (
    "id",
    "seed",
    "count",
    "steps",
    "sampler",
    "guidance",
    "step",
    "fraction",
    "stream",
)
DESIGN_ALLOWED: dict[str, tuple[str, ...]] = {
    VARY: (*_COMMON_DESIGN, "class", "level"),
    INTERPOLATE: ("id", "count", "steps", "guidance", "refine", "step", "fraction", "stream"),
    INPAINT: (*_COMMON_DESIGN, "class", "start", "end", "seam"),
    MORPH: _COMMON_DESIGN,
    SCRUB: _COMMON_DESIGN,
}

_SOURCE_DOC = (
    "a previous hit: its request id, or `last` "
    "(the newest hit; with `class`, the newest of that class)"
)


_KIT_FORMATS = ("sfz", "hydrogen", "decentsampler")


def _kit_formats(value: Any) -> tuple[str, ...]:
    text = as_str(value, "formats", max_len=64)
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    bad = [n for n in names if n not in _KIT_FORMATS]
    if not names or bad:
        raise ProtocolError(
            f"formats must be a comma-separated list of {list(_KIT_FORMATS)}, got {text!r}"
        )
    return names


KIT_KEYS: dict[str, KeySpec] = {
    k.name: k
    for k in (
        KeySpec(
            "id",
            "int or string",
            "client request id, echoed in every reply",
            as_request_id,
            "request_id",
        ),
        KeySpec(
            "name",
            "string",
            "kit name: 1-64 letters, digits, spaces or _ . + - (default drumdiff)",
            lambda v: as_str(v, "name", max_len=64),
            "name",
        ),
        KeySpec(
            "round_robin",
            "int",
            "variations per pad, 1-8 (default 2)",
            lambda v: as_int(v, "round_robin", 1, 8),
            "round_robin",
        ),
        KeySpec(
            "velocity_layers",
            "int",
            "velocity layers per pad, 1-8 (default 2; made by gain)",
            lambda v: as_int(v, "velocity_layers", 1, 8),
            "velocity_layers",
        ),
        KeySpec(
            "length_cymbals",
            "float",
            "seconds crash, ride and open hat ring out to, 0.5-10 (default 2.5)",
            lambda v: as_float(v, "length_cymbals", 0.5, MAX_LENGTH_S),
            "length_cymbals",
        ),
        KeySpec(
            "seed",
            "int",
            "base seed (default: drawn, echoed in kit.done)",
            lambda v: as_int(v, "seed", 0, MAX_SEED),
            "seed",
        ),
        KeySpec(
            "formats",
            "string",
            "comma-separated: sfz, hydrogen, decentsampler (default all)",
            _kit_formats,
            "formats",
        ),
        KeySpec(
            "steps",
            "int",
            "sampler steps (default the daemon's)",
            lambda v: as_int(v, "steps", 1, MAX_STEPS),
            "steps",
        ),
    )
}


def _design_spec(address: str, args: tuple[Arg, ...], doc: str) -> MessageSpec:
    keys = ", ".join(DESIGN_ALLOWED[address])
    return MessageSpec(
        address,
        "in",
        args,
        doc,
        replies=(DONE, FAIL, CHUNK),
        variadic=f"key value ... ({keys}; see Sound design options)",
    )


DESIGN_MESSAGES: tuple[MessageSpec, ...] = (
    _design_spec(
        VARY,
        (Arg("source", "int or string", _SOURCE_DOC),),
        "Variations of an earlier hit: noise it to `level` and denoise (`count` of them, seeds "
        "seed..seed+count-1), conditioned on `class` or else the source's class. "
        '"8 variations of the last kick": `vary last class kick count 8`.',
    ),
    _design_spec(
        INTERPOLATE,
        (
            Arg("source_a", "int or string", _SOURCE_DOC),
            Arg("source_b", "int or string", "the other hit, likewise"),
        ),
        "`count` hits from one earlier hit to another (endpoints included): deterministic DDIM "
        "inversion of both, spherical interpolation of the latents, DDIM back. No seeds: the "
        "`done` seed is the hit's index 0..count-1.",
    ),
    _design_spec(
        INPAINT,
        (Arg("source", "int or string", _SOURCE_DOC),),
        "Regenerate seconds `start`..`end` of an earlier hit and keep the rest exactly, with a "
        "`seam` ms crossfade. `start 0.05` alone keeps the attack and grows a new tail; `end "
        "0.02` alone keeps the tail and grows a new attack.",
    ),
    _design_spec(
        MORPH,
        (
            Arg("class_a", "string", "first class"),
            Arg("class_b", "string", "second class"),
            Arg("mix", "float", "0 = class_a .. 1 = class_b; blends the class embeddings"),
        ),
        "Render hits from a blend of two classes (mix 0 equals a plain render of class_a with "
        "the same seed).",
    ),
    _design_spec(
        SCRUB,
        (Arg("class", "string", "class to render (`any` = unconditional)"),),
        "Render with an earlier checkpoint of the loaded model's run, chosen with `step` or "
        "`fraction` (one of them required); a few stay loaded, so switching back is quick.",
    ),
)


MESSAGES: tuple[MessageSpec, ...] = (
    MessageSpec(
        HELLO,
        "in",
        (
            Arg("reply_port", "int", "UDP port on the sender's host where replies should go"),
            Arg("client_name", "string", "a name for the logs", optional=True),
        ),
        "Register the port on the sender's host where replies go (Max and Pd cannot receive on "
        "the port they send from; `oscsend` sends every message from a new port). It holds for "
        "later requests from this sender's address and, from any other port, for its whole host: "
        "see Reply routing. Registered clients also receive the `done` of hits triggered over "
        "MIDI.",
        replies=(HELLO_REPLY,),
    ),
    MessageSpec(
        HELLO_REPLY,
        "out",
        (
            Arg("daemon_version", "string", "drumdiff version"),
            Arg("client_id", "int", "this client's id"),
        ),
        "Answer to `hello`, sent to the registered reply port.",
    ),
    MessageSpec(
        RENDER,
        "in",
        (
            Arg(
                "class_or_note",
                "string or int",
                "a class name (`kick`, `snare`, `closed_hat`...) or a General MIDI drum note "
                "0..127",
            ),
            Arg(
                "velocity",
                "int",
                f"0..127 (default {DEFAULT_VELOCITY}); 0 is a release: nothing is rendered and "
                "nothing is replied",
                optional=True,
            ),
        ),
        "Render one hit. Without `fresh 1` (and without seed, steps, sampler or guidance) the "
        "daemon answers at once from its pool of pre-rendered hits when it has one.",
        replies=(DONE, FAIL, CHUNK),
        variadic="key value ... (see Render options)",
    ),
    MessageSpec(
        DONE,
        "out",
        (
            Arg("request_id", "int or string", "the client's `id`, or the int the daemon assigned"),
            Arg("abs_path", "string", "absolute path of the new WAV file (never overwritten)"),
            Arg("class", "string", "class rendered (`any` for an unconditional render)"),
            Arg(
                "seed",
                "int",
                "noise seed used; send it back to recall the hit (seeds the daemon draws are below "
                "2^24, so Pd's float numbers hold them exactly)",
            ),
            Arg("frames", "int", "length in sample frames"),
            Arg("sample_rate", "int", "Hz"),
        ),
        "A hit is published: the file was fsynced and renamed into place before this is sent.",
    ),
    MessageSpec(
        FAIL,
        "out",
        (
            Arg(
                "request_id",
                "int or string",
                "the client's `id` when the request gave one; else -1 for a request refused on "
                "arrival, the daemon's id for one that failed after it was accepted; `load` for a "
                "failed load",
            ),
            Arg("reason_code", "string", "see Reason codes"),
            Arg("text", "string", "human-readable reason"),
        ),
        "A request failed (or was malformed). Every malformed, unknown or out-of-range message "
        "gets one.",
    ),
    MessageSpec(
        CHUNK,
        "out",
        (
            Arg("request_id", "int or string", "the render's id"),
            Arg("seq", "int", "0-based chunk number"),
            Arg("total", "int", "number of chunks"),
            Arg("data", "blob", f"at most {CHUNK_BYTES} bytes of the WAV file"),
        ),
        "Only for `render ... stream 1`, after `done`: the WAV file's bytes for a client that "
        "cannot read the daemon's disk. Concatenate the blobs in `seq` order; UDP may drop one, "
        "so check that all `total` arrived (the file path stays the source of truth).",
    ),
    MessageSpec(
        STATUS,
        "in",
        (),
        "Ask for the daemon's state.",
        replies=(STATUS_REPLY,),
    ),
    MessageSpec(
        STATUS_REPLY,
        "out",
        (
            Arg("model", "string", "checkpoint file name (or `random:<config>`)"),
            Arg("device", "string", "cpu, cuda, cuda:1..."),
            Arg("queue_length", "int", "requests waiting for the worker"),
            Arg("pool_fill", "float", "0..1: pre-rendered hits ready over the pool's capacity"),
            Arg("uptime_s", "float", "seconds since start"),
            Arg("renders_served", "int", "hits published since start"),
        ),
        "Answer to `status`.",
    ),
    MessageSpec(
        PING,
        "in",
        (Arg("nonce", "any", "echoed", optional=True),),
        "Liveness check; answered immediately, even while the worker renders.",
        replies=(PONG,),
    ),
    MessageSpec(
        PONG,
        "out",
        (Arg("nonce", "any", "the ping's nonce, if it had one", optional=True),),
        "Answer to `ping`.",
    ),
    MessageSpec(
        LOAD,
        "in",
        (Arg("checkpoint_path", "string", "absolute, or relative to a configured model folder"),),
        "Load another checkpoint. Only files inside the server config's `model_folders` are "
        "accepted. On failure the old model stays.",
        replies=(LOADED, FAIL),
    ),
    MessageSpec(
        LOADED,
        "out",
        (
            Arg("path", "string", "absolute path of the loaded checkpoint"),
            Arg("step", "int", "its training step"),
        ),
        "The new model serves from now on; the pool was emptied and refills.",
    ),
    MessageSpec(
        SET,
        "in",
        (Arg("param", "string", "see Parameters"), Arg("value", "number or string", "new value")),
        "Set a daemon parameter (the defaults of later renders).",
        replies=(SET_REPLY, FAIL),
    ),
    MessageSpec(
        SET_REPLY,
        "out",
        (
            Arg("param", "string", "parameter"),
            Arg("value", "number or string", "the value now in force"),
        ),
        "Answer to `set`.",
    ),
    MessageSpec(
        CLASSES, "in", (), "Ask which classes the loaded model renders.", replies=(CLASSES_REPLY,)
    ),
    MessageSpec(
        KIT,
        "in",
        (),
        "Render a whole kit for samplers (what `drumdiff kit` makes: every drum class of the model "
        "on "
        "the General MIDI drum map, round robins, velocity layers made by gain, cymbals rung out "
        "by "
        "the model) into a new folder under the watched folder's `kits/`, in the background: "
        "`kit.progress` after each hit, then one `kit.done`. One kit at a time (another answers "
        "`busy`); renders of single hits go on meanwhile, sharing the CPU.",
        replies=(KIT_PROGRESS, KIT_DONE, FAIL),
        variadic="key value ... (" + ", ".join(KIT_KEYS) + ")",
    ),
    MessageSpec(
        KIT_PROGRESS,
        "out",
        (
            Arg("id", "int or string", "the kit request's id"),
            Arg("done", "int", "hits rendered"),
            Arg("total", "int", "hits to render"),
        ),
        "Progress of a kit.",
    ),
    MessageSpec(
        KIT_DONE,
        "out",
        (
            Arg("id", "int or string", "the kit request's id"),
            Arg("folder", "string", "absolute path of the kit"),
            Arg("pads", "int", "pads in the kit"),
            Arg("samples", "int", "WAV files written"),
            Arg("seed", "int", "the base seed (the kit re-renders from its kit.json)"),
        ),
        "The kit is written: WAVs, kit.json and the format files.",
    ),
    MessageSpec(
        MODELS,
        "in",
        (),
        "Ask which checkpoints `load` can read: the `.pt` files in the model folders and one "
        "folder below them (a training run's `last.pt`, a fine-tune's `model.pt`), not the "
        "numbered checkpoints inside a run's `checkpoints/`.",
        replies=(MODELS_REPLY,),
    ),
    MessageSpec(
        MODELS_REPLY,
        "out",
        (),
        "Answer to `models`: one absolute path per checkpoint, sorted, at most "
        f"{MAX_LISTED_MODELS}; "
        "each is a valid `load` argument.",
        variadic="path ...",
    ),
    MessageSpec(
        CLASSES_REPLY,
        "out",
        (),
        "Answer to `classes`: one string per class, in the model's order.",
        variadic="class ...",
    ),
    MessageSpec(
        STATS,
        "in",
        (),
        "Ask for resource and engine figures (monitoring, benchmarks).",
        replies=(STATS_REPLY,),
    ),
    MessageSpec(
        STATS_REPLY,
        "out",
        (),
        "Answer to `stats`: `key value` pairs: `rss_mb`, `peak_rss_mb`, `gpu_mb`, `gpu_peak_mb` "
        "(0 on CPU), `busy_rejections`, `mean_batch` (recent fresh batches), `pool_ready`, "
        "`pool_warm_s` (seconds from start until the pool first filled; -1 until then), "
        "`writer_pending`.",
        variadic="key value ...",
    ),
)

MESSAGES = MESSAGES + DESIGN_MESSAGES

#: How the daemon picks where a reply goes, first rule that applies (for docs/protocol.md).
REPLY_ROUTING: tuple[str, ...] = (
    (
        f"the request's own `{REPLY_PORT_KEY} <port>` pair (any request but hello; in render and "
        "sound-design "
        "messages among the options, in the others last): that port on the sender's host;"
    ),
    (
        "the port registered with `hello` from this sender address (host and source port): each "
        "Max "
        "device or Pd object keeps its own;"
    ),
    (
        "the port most recently registered with `hello` from the sender's host, whatever port that "
        "hello "
        "came from: one-shot senders such as liblo's `oscsend` use a new source port for every "
        "message;"
    ),
    (
        "`osc.reply_port` of the server config, when set (0 = off, the default), on the sender's "
        "host, "
        "as AbletonOSC answers on 11001;"
    ),
    "the sender's own address and port.",
)
SPECS: dict[str, MessageSpec] = {m.address: m for m in MESSAGES}


# ---------------------------------------------------------------------------------------------
# Parsers: argument list -> command. Each raises ProtocolError on bad input.


def _arity(address: str, args: Sequence[Any], lo: int, hi: int) -> None:
    if not lo <= len(args) <= hi:
        name = address.removeprefix(PREFIX)
        expected = str(lo) if lo == hi else f"{lo}..{hi}"
        raise ProtocolError(f"{name} takes {expected} arguments, got {len(args)}")


def parse_hello(args: Sequence[Any]) -> Hello:
    _arity(HELLO, args, 1, 2)
    port = as_int(args[0], "reply_port", 1, 65535)
    name = as_str(args[1], "client_name", max_len=64) if len(args) > 1 else None
    return Hello(port, name)


def parse_target(value: Any) -> str | int:
    """A class name or a GM note; a numeric string (a Pd symbol) counts as a note."""
    if isinstance(value, str):
        # ASCII digits only: str.isdigit() also accepts "²", which int() rejects, and a few
        # thousand digits exceed int()'s limit; both must be a bad_request, not a crash.
        if value.isascii() and value.isdigit():
            if len(value) > 3:
                raise ProtocolError(f"note must be in 0..127, got {_show(value)}")
            return as_int(int(value), "note", 0, 127)
        return as_str(value, "class", max_len=64)
    return as_int(value, "note", 0, 127)


def _render_options_start(args: Sequence[Any]) -> int:
    """Where the `key value` pairs of a render begin: the velocity may be left out."""
    if len(args) >= 2 and not isinstance(args[1], str):
        return 2
    return 1


def _key_values(
    what: str,
    options: Sequence[Any],
    specs: dict[str, KeySpec],
    allowed: Sequence[str] | None = None,
) -> dict[str, Any]:
    """`key value` pairs -> {field: parsed value}, each key known (and `allowed`) and given once."""
    options = list(options)
    if len(options) % 2:
        raise ProtocolError(f"{what} options must be key value pairs; the last key has no value")
    names = tuple(specs) if allowed is None else tuple(allowed)
    fields: dict[str, Any] = {}
    for key, value in zip(options[::2], options[1::2]):
        if not isinstance(key, str):
            raise ProtocolError(f"{what} option key must be a string, got {_show(key)}")
        if key not in names:
            raise ProtocolError(f"unknown {what} option {key!r}; expected one of {sorted(names)}")
        spec = specs[key]
        if spec.field in fields:
            raise ProtocolError(f"{what} option {key!r} given twice")
        fields[spec.field] = spec.parse(value)
    return fields


def parse_render(args: Sequence[Any]) -> RenderRequest:
    if not args:
        raise ProtocolError(
            "render takes <class_or_note> [velocity] [key value ...], got 0 arguments"
        )
    target = parse_target(args[0])
    start = _render_options_start(args)
    if start == 1 and len(args) > 1 and args[1] not in RENDER_KEYS:
        raise ProtocolError(
            f"velocity must be a number, got {_show(args[1])} (or leave it out and give key value "
            "options)"
        )
    velocity = as_int(args[1], "velocity", 0, 127) if start == 2 else DEFAULT_VELOCITY
    fields = _key_values("render", args[start:], RENDER_KEYS)
    return RenderRequest(target, velocity, **fields)


def parse_status(args: Sequence[Any]) -> StatusQuery:
    _arity(STATUS, args, 0, 0)
    return StatusQuery()


def parse_ping(args: Sequence[Any]) -> Ping:
    _arity(PING, args, 0, 1)
    if not args:
        return Ping()
    nonce = args[0]
    if isinstance(nonce, bool) or not isinstance(nonce, (int, float, str)):
        raise ProtocolError(f"ping nonce must be a number or string, got {_show(nonce)}")
    if isinstance(nonce, float) and not math.isfinite(nonce):
        raise ProtocolError("ping nonce must be finite")
    return Ping(nonce)


def parse_load(args: Sequence[Any]) -> Load:
    _arity(LOAD, args, 1, 1)
    return Load(as_str(args[0], "checkpoint_path", max_len=4096))


def parse_set(args: Sequence[Any]) -> SetParam:
    _arity(SET, args, 2, 2)
    name = as_choice(args[0], "param", tuple(PARAMS))
    return SetParam(name, PARAMS[name].parse(args[1]))


def parse_classes(args: Sequence[Any]) -> ClassesQuery:
    _arity(CLASSES, args, 0, 0)
    return ClassesQuery()


def parse_models(args: Sequence[Any]) -> ModelsQuery:
    _arity(MODELS, args, 0, 0)
    return ModelsQuery()


def parse_kit(args: Sequence[Any]) -> KitRequest:
    return KitRequest(**_key_values("kit", args, KIT_KEYS))


def parse_stats(args: Sequence[Any]) -> StatsQuery:
    _arity(STATS, args, 0, 0)
    return StatsQuery()


def _source(value: Any, what: str) -> RequestId:
    if value == LAST:
        return LAST
    try:
        return as_request_id(value)
    except ProtocolError as err:
        raise ProtocolError(f"{what}: {err}") from None


def _design_options(address: str, options: Sequence[Any]) -> dict[str, Any]:
    name = address.removeprefix(PREFIX)
    fields = _key_values(name, options, DESIGN_KEYS, DESIGN_ALLOWED[address])
    if fields.get("checkpoint_step") is not None and fields.get("checkpoint_fraction") is not None:
        raise ProtocolError(f"{name}: give step or fraction, not both")
    return fields


def _design_head(address: str, args: Sequence[Any], positional: int, usage: str) -> list[Any]:
    if len(args) < positional:
        raise ProtocolError(
            f"{address.removeprefix(PREFIX)} takes {usage}, got {len(args)} arguments"
        )
    return list(args[:positional])


def parse_vary(args: Sequence[Any]) -> DesignRequest:
    (source,) = _design_head(VARY, args, 1, "<source> [key value ...]")
    return DesignRequest(
        "vary", sources=(_source(source, "source"),), **_design_options(VARY, args[1:])
    )


def parse_interpolate(args: Sequence[Any]) -> DesignRequest:
    a, b = _design_head(INTERPOLATE, args, 2, "<source_a> <source_b> [key value ...]")
    fields = _design_options(INTERPOLATE, args[2:])
    if fields.get("count") is not None and fields["count"] < 2:
        raise ProtocolError("interpolate count must be at least 2 (the two endpoints)")
    return DesignRequest(
        "interpolate", sources=(_source(a, "source_a"), _source(b, "source_b")), **fields
    )


def parse_inpaint(args: Sequence[Any]) -> DesignRequest:
    (source,) = _design_head(INPAINT, args, 1, "<source> [key value ...]")
    fields = _design_options(INPAINT, args[1:])
    start, end = fields.get("start_s"), fields.get("end_s")
    if start is None and end is None:
        raise ProtocolError("inpaint needs start or end (or both)")
    if start is not None and end is not None and end <= start:
        raise ProtocolError(f"inpaint end ({end:g} s) must be after start ({start:g} s)")
    return DesignRequest("inpaint", sources=(_source(source, "source"),), **fields)


def parse_morph(args: Sequence[Any]) -> DesignRequest:
    a, b, mix = _design_head(MORPH, args, 3, "<class_a> <class_b> <mix> [key value ...]")
    classes = (as_str(a, "class_a", max_len=64), as_str(b, "class_b", max_len=64))
    return DesignRequest(
        "morph",
        classes=classes,
        mix=as_float(mix, "mix", 0.0, 1.0),
        **_design_options(MORPH, args[3:]),
    )


def parse_scrub(args: Sequence[Any]) -> DesignRequest:
    (name,) = _design_head(SCRUB, args, 1, "<class> step <n> | fraction <f> [key value ...]")
    fields = _design_options(SCRUB, args[1:])
    if fields.get("checkpoint_step") is None and fields.get("checkpoint_fraction") is None:
        raise ProtocolError("scrub needs step or fraction")
    return DesignRequest("scrub", classes=(as_str(name, "class", max_len=64),), **fields)


#: Incoming address -> parser. The OSC dispatcher maps exactly these addresses.
PARSERS: dict[str, Callable[[Sequence[Any]], Command]] = {
    HELLO: parse_hello,
    RENDER: parse_render,
    STATUS: parse_status,
    PING: parse_ping,
    LOAD: parse_load,
    SET: parse_set,
    CLASSES: parse_classes,
    STATS: parse_stats,
    MODELS: parse_models,
    KIT: parse_kit,
    VARY: parse_vary,
    INTERPOLATE: parse_interpolate,
    INPAINT: parse_inpaint,
    MORPH: parse_morph,
    SCRUB: parse_scrub,
}


def parse(address: str, args: Sequence[Any]) -> Command:
    """The command a message asks for; `UnknownAddress` or `ProtocolError` otherwise."""
    return parse_routed(address, args)[0]


#: Positional arguments before the `key value` pairs of each sound-design message.
_DESIGN_POSITIONAL = {VARY: 1, INTERPOLATE: 2, INPAINT: 1, MORPH: 3, SCRUB: 1}
#: Where a message's `key value` pairs begin, for every message that has them after render.
_PAIRS_AT = {**_DESIGN_POSITIONAL, KIT: 0}


def _pairs_start(address: str, args: Sequence[Any]) -> int | None:
    """Index where a message's `key value` pairs begin; None for messages without pairs."""
    if address == RENDER:
        return _render_options_start(args) if args else None
    return _PAIRS_AT.get(address)


def split_reply_port(address: str, args: Sequence[Any]) -> tuple[list[Any], int | None]:
    """The arguments without a `reply_port <port>` pair, and that port (None when absent).

    In render and sound-design messages the pair may stand among the other options; in every
    other message except hello (which names its port anyway) it comes last.
    """
    items = list(args)
    if address == HELLO:
        return items, None
    start = _pairs_start(address, items)
    if start is not None:
        positions = [i for i in range(start, len(items) - 1, 2) if items[i] == REPLY_PORT_KEY]
    else:
        positions = [len(items) - 2] if len(items) >= 2 and items[-2] == REPLY_PORT_KEY else []
    if not positions:
        return items, None
    if len(positions) > 1:
        raise ProtocolError(f"{REPLY_PORT_KEY!r} given twice")
    i = positions[0]
    port = as_int(items[i + 1], REPLY_PORT_KEY, 1, 65535)
    return items[:i] + items[i + 2 :], port


def parse_routed(address: str, args: Sequence[Any]) -> tuple[Command, int | None]:
    """The command and the `reply_port` the message carries (None: the usual routing)."""
    parser = PARSERS.get(address)
    if parser is None:
        raise UnknownAddress(f"unknown address {address[:80]!r}; see docs/protocol.md")
    rest, port = split_reply_port(address, args)
    return parser(rest), port


def reply_port_of(address: str, args: Sequence[Any]) -> int | None:
    """Best-effort `reply_port` of a message that failed to parse, so its `fail` finds the
    client."""
    try:
        return split_reply_port(address, args)[1]
    except ProtocolError:
        return None


def request_id_of(address: str, args: Sequence[Any]) -> RequestId:
    """Best-effort id of a message that failed to parse, so its `fail` can be matched."""
    start = _pairs_start(address, args)
    if start is not None:
        options = list(args[start:])
        for key, value in zip(options[::2], options[1::2]):
            if key == "id":
                try:
                    return as_request_id(value)
                except ProtocolError:
                    return NO_ID
    if address == LOAD:
        return LOAD_ID
    return NO_ID


# ---------------------------------------------------------------------------------------------
# Replies: plain (address, args) values; the transport encodes them.


@dataclass(frozen=True)
class Message:
    address: str
    args: tuple[Any, ...] = ()


def hello_reply(version: str, client_id: int) -> Message:
    return Message(HELLO_REPLY, (version, int(client_id)))


def done(
    request_id: RequestId, path: str, drum_class: str, seed: int, frames: int, sample_rate: int
) -> Message:
    return Message(DONE, (request_id, path, drum_class, int(seed), int(frames), int(sample_rate)))


def fail(request_id: RequestId | None, code: str, text: str) -> Message:
    rid: RequestId = NO_ID if request_id is None else request_id
    return Message(FAIL, (rid, code, text[:512]))


def chunks(request_id: RequestId, data: bytes) -> list[Message]:
    """The file split into `/drumdiff/chunk` messages of at most CHUNK_BYTES each."""
    pieces = [data[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)] or [b""]
    return [
        Message(CHUNK, (request_id, seq, len(pieces), piece)) for seq, piece in enumerate(pieces)
    ]


def status_reply(
    model: str,
    device: str,
    queue_length: int,
    pool_fill: float,
    uptime_s: float,
    renders_served: int,
) -> Message:
    return Message(
        STATUS_REPLY,
        (model, device, int(queue_length), float(pool_fill), float(uptime_s), int(renders_served)),
    )


def pong(nonce: int | float | str | None) -> Message:
    return Message(PONG, () if nonce is None else (nonce,))


def loaded(path: str, step: int) -> Message:
    return Message(LOADED, (path, int(step)))


def set_reply(param: str, value: int | float | str) -> Message:
    return Message(SET_REPLY, (param, value))


def classes_reply(classes: Sequence[str]) -> Message:
    return Message(CLASSES_REPLY, tuple(classes))


def kit_progress(request_id: RequestId, done: int, total: int) -> Message:
    return Message(KIT_PROGRESS, (request_id, done, total))


def kit_done(request_id: RequestId, folder: str, pads: int, samples: int, seed: int) -> Message:
    return Message(KIT_DONE, (request_id, folder, pads, samples, seed))


def models_reply(paths: Sequence[str]) -> Message:
    return Message(MODELS_REPLY, tuple(paths[:MAX_LISTED_MODELS]))


def stats_reply(values: dict[str, int | float]) -> Message:
    flat: list[Any] = []
    for key, value in values.items():
        flat += [key, value]
    return Message(STATS_REPLY, tuple(flat))
