"""The pure protocol layer: parsing, coercion of Pd floats, limits, reply formats."""

from __future__ import annotations

import math

import pytest
from pythonosc.osc_message import OscMessage

from drumdiff.server import protocol
from drumdiff.server.errors import ProtocolError, UnknownAddress
from drumdiff.server.osc import encode
from drumdiff.server.protocol import PARAMS, RenderRequest


def test_render_by_class_and_by_note_accepts_pd_floats() -> None:
    assert protocol.parse(protocol.RENDER, ["kick", 100]) == RenderRequest("kick", 100)
    assert protocol.parse(protocol.RENDER, [36.0, 127.0]) == RenderRequest(36, 127)
    assert protocol.parse(protocol.RENDER, ["38", 64]) == RenderRequest(38, 64)  # a Pd symbol


def test_render_options() -> None:
    req = protocol.parse_render(
        [
            "snare",
            90,
            "id",
            "pad-1",
            "seed",
            42.0,
            "steps",
            8,
            "sampler",
            "ddim",
            "guidance",
            3,
            "gain",
            -6.5,
            "fresh",
            1.0,
            "stream",
            1,
        ]
    )
    assert req == RenderRequest(
        "snare",
        90,
        request_id="pad-1",
        seed=42,
        steps=8,
        sampler="ddim",
        guidance=3.0,
        gain_db=-6.5,
        fresh=True,
        stream=True,
    )
    assert isinstance(req.seed, int) and isinstance(req.guidance, float)


def test_velocity_may_be_left_out() -> None:
    assert protocol.parse(protocol.RENDER, ["kick"]) == RenderRequest(
        "kick", protocol.DEFAULT_VELOCITY
    )
    assert protocol.parse(protocol.RENDER, ["kick", "seed", 3]) == RenderRequest(
        "kick", protocol.DEFAULT_VELOCITY, seed=3
    )
    assert protocol.request_id_of(protocol.RENDER, ["kick", "id", "k", "seed", -1]) == "k"


def test_length_and_pitch_render_keys() -> None:
    req = protocol.parse(protocol.RENDER, ["crash", 100, "length", 2.5, "pitch", -3])
    assert (req.length_s, req.pitch) == (2.5, -3.0)
    for bad in (
        ["crash", 100, "length", 0],
        ["crash", 100, "length", 60],
        ["crash", 100, "pitch", 48],
    ):
        with pytest.raises(ProtocolError):
            protocol.parse(protocol.RENDER, bad)


def test_reply_port_pair_on_any_request() -> None:
    split = protocol.split_reply_port
    assert split(protocol.RENDER, ["kick", 100, "reply_port", 9120.0, "seed", 3]) == (
        ["kick", 100, "seed", 3],
        9120,
    )
    assert split(protocol.RENDER, ["kick", "reply_port", 9120]) == (["kick"], 9120)
    assert split(protocol.STATUS, ["reply_port", 9120]) == ([], 9120)
    assert split(protocol.PING, ["reply_port", "reply_port", 9120]) == (
        ["reply_port"],
        9120,
    )  # a nonce
    assert split(protocol.VARY, ["last", "count", 2, "reply_port", 9121]) == (
        ["last", "count", 2],
        9121,
    )
    assert split(protocol.HELLO, [9120]) == ([9120], None)
    command, port = protocol.parse_routed(protocol.SET, ["steps", 4, "reply_port", 9122])
    assert command == protocol.SetParam("steps", 4) and port == 9122
    for bad in (["reply_port", 0], ["reply_port", 70000], ["reply_port", "x"]):
        with pytest.raises(ProtocolError, match="reply_port"):
            protocol.parse_routed(protocol.STATUS, bad)
    with pytest.raises(ProtocolError, match="twice"):
        protocol.parse_routed(protocol.RENDER, ["kick", 1, "reply_port", 1, "reply_port", 2])
    assert protocol.reply_port_of(protocol.RENDER, ["kick", 500, "reply_port", 9123]) == 9123


def test_velocity_zero_is_a_release() -> None:
    assert protocol.parse_render(["kick", 0.0]).is_release


@pytest.mark.parametrize(
    "args, fragment",
    [
        ([], "takes"),
        (["kick", 128], "velocity must be in 0..127"),
        (["kick", -1], "velocity"),
        (["kick", 100.5], "must be an integer"),
        (["kick", math.nan], "finite"),
        (["kick", math.inf], "finite"),
        ([36.5, 100], "integer"),
        ([128, 100], "note"),
        ([b"\x00", 100], "note must be a number"),
        (["kick", "loud"], "velocity must be a number"),
        (["kick", 100, "seed"], "key value pairs"),
        (["kick", 100, "colour", 3], "unknown render option 'colour'"),
        (["kick", 100, "seed", 1, "seed", 2], "given twice"),
        (["kick", 100, 5, 1], "key must be a string"),
        (["kick", 100, "seed", -1], "seed"),
        (["kick", 100, "seed", 2**31], "seed"),
        (["kick", 100, "steps", 0], "steps"),
        (["kick", 100, "sampler", "warp"], "unknown sampler 'warp'"),
        (["kick", 100, "guidance", math.nan], "finite"),
        (["kick", 100, "fresh", 2], "fresh"),
        (["kick", 100, "id", "has space"], "printable"),
        (["kick", 100, "id", 1.5], "integer"),
    ],
)
def test_render_rejects(args: list, fragment: str) -> None:
    with pytest.raises(ProtocolError, match=fragment.replace("(", r"\(").replace(".", r"\.")):
        protocol.parse_render(args)


def test_booleans_are_not_numbers_but_are_flags() -> None:
    with pytest.raises(ProtocolError):
        protocol.as_int(True, "x")
    assert protocol.as_flag(True, "fresh") is True


def test_other_messages() -> None:
    assert protocol.parse(protocol.HELLO, [9001.0, "max"]) == protocol.Hello(9001, "max")
    assert protocol.parse(protocol.HELLO, [9001]) == protocol.Hello(9001)
    assert protocol.parse(protocol.STATUS, []) == protocol.StatusQuery()
    assert protocol.parse(protocol.PING, []) == protocol.Ping()
    assert protocol.parse(protocol.PING, ["abc"]) == protocol.Ping("abc")
    assert protocol.parse(protocol.LOAD, ["a.pt"]) == protocol.Load("a.pt")
    assert protocol.parse(protocol.SET, ["steps", 8.0]) == protocol.SetParam("steps", 8)
    assert protocol.parse(protocol.SET, ["sampler", "heun"]) == protocol.SetParam("sampler", "heun")
    assert protocol.parse(protocol.CLASSES, []) == protocol.ClassesQuery()
    assert protocol.parse(protocol.MODELS, []) == protocol.ModelsQuery()
    with pytest.raises(ProtocolError):
        protocol.parse(protocol.MODELS, ["extra"])


@pytest.mark.parametrize(
    "address, args",
    [
        (protocol.HELLO, []),
        (protocol.HELLO, [0]),
        (protocol.HELLO, [70000]),
        (protocol.STATUS, [1]),
        (protocol.PING, [1, 2]),
        (protocol.LOAD, []),
        (protocol.LOAD, [3]),
        (protocol.SET, ["steps"]),
        (protocol.SET, ["steps", 0]),
        (protocol.SET, ["volume", 1]),
        (protocol.SET, ["sampler", 3]),
        (protocol.SET, ["variation", 1.5]),
    ],
)
def test_other_messages_reject(address: str, args: list) -> None:
    with pytest.raises(ProtocolError):
        protocol.parse(address, args)


def test_unknown_address() -> None:
    with pytest.raises(UnknownAddress):
        protocol.parse("/drumdiff/explode", [])


def test_request_id_recovered_for_fail() -> None:
    assert protocol.request_id_of(protocol.RENDER, ["kik", 100, "id", 7]) == 7
    assert protocol.request_id_of(protocol.RENDER, ["kik"]) == protocol.NO_ID
    assert protocol.request_id_of(protocol.LOAD, [1]) == "load"


def test_param_from_unit_scales_controllers() -> None:
    assert PARAMS["steps"].from_unit(0.0, 2, 50) == 2
    assert PARAMS["steps"].from_unit(1.0, 2, 50) == 50
    assert PARAMS["variation"].from_unit(0.5) == 0.5
    with pytest.raises(ProtocolError):
        PARAMS["sampler"].from_unit(0.5)


def test_replies_encode_and_decode() -> None:
    msg = protocol.done("pad-1", "/tmp/x.wav", "kick", 42, 2048, 44100)
    decoded = OscMessage(encode(msg))
    assert decoded.address == protocol.DONE
    assert list(decoded.params) == ["pad-1", "/tmp/x.wav", "kick", 42, 2048, 44100]
    status = OscMessage(encode(protocol.status_reply("m.pt", "cpu", 3, 0.5, 1.5, 9)))
    assert list(status.params) == ["m.pt", "cpu", 3, 0.5, 1.5, 9]
    assert list(OscMessage(encode(protocol.fail(None, "busy", "queue full"))).params) == [
        -1,
        "busy",
        "queue full",
    ]
    assert list(OscMessage(encode(protocol.pong(None))).params) == []


def test_chunks_stay_under_8_kb_and_reassemble() -> None:
    data = bytes(range(256)) * 100  # 25.6 kB
    pieces = protocol.chunks(3, data)
    assert [m.args[1] for m in pieces] == list(range(len(pieces)))
    assert all(m.args[2] == len(pieces) for m in pieces)
    assert all(len(encode(m)) <= 8192 for m in pieces)
    assert b"".join(m.args[3] for m in pieces) == data


def test_every_reply_address_is_documented_as_outgoing() -> None:
    for message in (
        protocol.hello_reply("0", 1),
        protocol.done(1, "p", "kick", 1, 1, 1),
        protocol.fail(1, "busy", "x"),
        *protocol.chunks(1, b"x"),
        protocol.status_reply("m", "cpu", 0, 0.0, 0.0, 0),
        protocol.pong(1),
        protocol.loaded("p", 1),
        protocol.set_reply("steps", 1),
        protocol.classes_reply(["kick"]),
    ):
        assert protocol.SPECS[message.address].direction == "out"
