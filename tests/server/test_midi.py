"""MIDI: the pure note/CC mapping, a real note-on through JACK, and life without MIDI."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import mido
import pytest

from drumdiff.server import protocol
from drumdiff.server.config import CCMapping, MidiConfig
from drumdiff.server.midi import midi_to_command
from drumdiff.server.protocol import RenderRequest, SetParam


def test_note_on_renders_note_off_does_not() -> None:
    config = MidiConfig()
    assert midi_to_command(mido.Message("note_on", note=36, velocity=90), config) == RenderRequest(
        36, 90
    )
    assert midi_to_command(mido.Message("note_on", note=36, velocity=0), config) is None
    assert midi_to_command(mido.Message("note_off", note=36, velocity=64), config) is None
    assert midi_to_command(mido.Message("program_change", program=3), config) is None


def test_channel_filter() -> None:
    config = MidiConfig(channel=10)
    assert (
        midi_to_command(mido.Message("note_on", channel=9, note=38, velocity=1), config) is not None
    )
    assert midi_to_command(mido.Message("note_on", channel=0, note=38, velocity=1), config) is None


def test_control_changes_follow_the_yaml_mapping() -> None:
    config = MidiConfig(cc=(CCMapping(20, "steps", 2, 50), CCMapping(22, "variation")))
    assert midi_to_command(
        mido.Message("control_change", control=20, value=127), config
    ) == SetParam("steps", 50)
    assert midi_to_command(mido.Message("control_change", control=20, value=0), config) == SetParam(
        "steps", 2
    )
    cmd = midi_to_command(mido.Message("control_change", control=22, value=64), config)
    assert (
        isinstance(cmd, SetParam)
        and cmd.param == "variation"
        and abs(float(cmd.value) - 64 / 127) < 1e-9
    )
    assert midi_to_command(mido.Message("control_change", control=1, value=64), config) is None


def test_without_midi_one_log_line_and_osc_keeps_working(
    daemon_factory: Any, client_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="drumdiff.server.midi"):
        daemon = daemon_factory(
            "midi.enabled=true", "midi.virtual_port=null", "midi.ports=[no-such-port-xyz]"
        )
    lines = [r for r in caplog.records if r.name == "drumdiff.server.midi"]
    assert len(lines) == 1 and "unavailable" in lines[0].getMessage()
    assert "OSC keeps working" in lines[0].getMessage()
    client = client_factory(daemon.osc_address)
    assert client.ask(protocol.PING, 1) == (protocol.PONG, [1])


@pytest.mark.jack
def test_note_on_through_jack_produces_a_file_and_done(
    jack_server: None, daemon_factory: Any, client_factory: Any
) -> None:
    import jack

    port = f"drumdiff-test-{time.monotonic_ns() % 100000}"
    daemon = daemon_factory(
        "midi.enabled=true",
        "midi.api=jack",
        f"midi.virtual_port={port}",
        "midi.cc=[{cc: 20, param: steps, low: 2, high: 50}]",
    )
    assert daemon.midi is not None and daemon.midi.port_names
    client = client_factory(daemon.osc_address, separate_reply_port=True)
    client.send(protocol.HELLO, client.reply_port, "midi-test")
    assert client.recv()[0] == protocol.HELLO_REPLY

    backend = mido.Backend("mido.backends.rtmidi/UNIX_JACK", load=True)
    sender = backend.open_output("pads", client_name="drumdiff-test-sender")  # a virtual port
    patchbay = jack.Client("drumdiff-test-patchbay", no_start_server=True)
    try:
        patchbay.connect("drumdiff-test-sender:pads", f"{port}:{port}")
        # the new connection takes effect within a JACK cycle or two: resend until it carries
        for _ in range(20):
            sender.send(mido.Message("control_change", control=20, value=127))
            try:
                reply = client.recv(timeout=0.5)
                break
            except TimeoutError:
                continue
        assert reply == (protocol.SET_REPLY, ["steps", 50])
        while True:  # drop the answers to any resent controller messages
            try:
                assert client.recv(timeout=0.3) == (protocol.SET_REPLY, ["steps", 50])
            except TimeoutError:
                break
        sender.send(mido.Message("control_change", control=20, value=0))
        assert client.recv() == (protocol.SET_REPLY, ["steps", 2])
        sender.send(mido.Message("note_on", note=38, velocity=100))
        address, args = client.recv()
        sender.send(mido.Message("note_on", note=38, velocity=0))  # its note-off: nothing
        client.expect_nothing()
    finally:
        sender.close()
        patchbay.close()
    assert address == protocol.DONE, args
    assert args[2] == "snare" and Path(args[1]).exists()
    assert Path(args[1]).name.startswith("snare_n038_v100_")
    assert isinstance(args[0], int)


@pytest.mark.jack
def test_auto_api_falls_back_to_jack_and_names_the_port(
    jack_server: None, daemon_factory: Any
) -> None:
    port = f"drumdiff-auto-{time.monotonic_ns() % 100000}"
    daemon = daemon_factory("midi.enabled=true", "midi.api=auto", f"midi.virtual_port={port}")
    assert daemon.midi is not None and daemon.midi.port_names
    summary = daemon.midi.summary
    assert summary.startswith(f"{port} (virtual, ")
    if not Path("/dev/snd/seq").exists():  # no ALSA sequencer here: JACK must have been tried next
        assert summary == f"{port} (virtual, JACK)"


def test_no_midi_says_why_in_the_summary(daemon_factory: Any) -> None:
    daemon = daemon_factory(
        "midi.enabled=true",
        "midi.api=alsa",
        "midi.virtual_port=null",
        "midi.ports=[no-such-port-xyz]",
    )
    assert daemon.midi is not None and not daemon.midi.port_names
    summary = daemon.midi.summary
    assert summary.startswith("none (ALSA: ") and summary.endswith(")"), summary
