"""MIDI input (mido + python-rtmidi): note-ons trigger renders, mapped CCs set parameters.

The rtmidi callback runs on rtmidi's own thread and only enqueues (message, arrival time); a
small thread turns messages into protocol commands (`midi_to_command`, pure) and hands them to
the daemon. Opening MIDI can fail in many ordinary ways (no ALSA sequencer in a container, no
JACK server, Windows without loopMIDI): that is one clear log line, and OSC keeps working.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from drumdiff.server.config import MidiConfig
from drumdiff.server.protocol import PARAMS, Command, RenderRequest, SetParam

log = logging.getLogger("drumdiff.server.midi")

#: midi.api in the YAML -> mido's rtmidi backend API names.
RTMIDI_APIS: dict[str, str | None] = {
    "auto": None,
    "alsa": "LINUX_ALSA",
    "jack": "UNIX_JACK",
    "macos": "MACOSX_CORE",
    "windows": "WINDOWS_MM",
}
#: rtmidi API -> the name a user knows it by.
API_LABELS: dict[str, str] = {
    "LINUX_ALSA": "ALSA",
    "UNIX_JACK": "JACK",
    "MACOSX_CORE": "CoreMIDI",
    "WINDOWS_MM": "Windows MM",
}


def midi_to_command(msg: Any, config: MidiConfig) -> Command | None:
    """The command a mido message asks for, or None (note-off, other channels, unmapped CCs)."""
    channel = getattr(msg, "channel", None)
    if config.channel is not None and channel is not None and channel != config.channel - 1:
        return None
    if msg.type == "note_on":
        if msg.velocity == 0:  # running-status note-off
            return None
        return RenderRequest(int(msg.note), int(msg.velocity))
    if msg.type == "control_change":
        for mapping in config.cc:
            if mapping.cc == msg.control:
                spec = PARAMS[mapping.param]
                return SetParam(
                    mapping.param, spec.from_unit(msg.value / 127.0, mapping.low, mapping.high)
                )
    return None


class MidiInput:
    """Opens the virtual port and/or named ports; `handle(command, arrived)` gets the commands."""

    def __init__(self, config: MidiConfig, handle: Callable[[Command, float], None]) -> None:
        self.config = config
        self._handle = handle
        self._inbox: queue.SimpleQueue[tuple[Any, float] | None] = queue.SimpleQueue()
        self._ports: list[Any] = []
        self._thread: threading.Thread | None = None
        self.port_names: list[str] = []
        self.summary = "not started"  # the ports open, or why none are (for the ready line)

    def _callback(self, msg: Any) -> None:
        # rtmidi's thread: no work here, only hand over (mido#640: a slow callback stalls input)
        self._inbox.put((msg, time.perf_counter()))

    def start(self) -> bool:
        """Open the ports; False (after one log line) when none can be opened.

        `midi.api: auto` tries each API rtmidi was built with (ALSA, then JACK on Linux) until
        one opens every configured port it can: a container without an ALSA sequencer but with
        a JACK server still gets MIDI. `summary` says which ports opened, or why none did.
        Each port is tried on its own: Windows has no virtual ports, yet its loopMIDI ports work.
        """
        # libjack would otherwise try to start a JACK server of its own.
        os.environ.setdefault("JACK_NO_START_SERVER", "1")
        if not self.config.virtual_port and not self.config.ports:
            self.summary = "none (no ports configured)"
            log.info("MIDI input: no ports configured")
            return False
        try:
            import mido

            apis = self._apis(mido)
        except Exception as err:  # ImportError (no rtmidi), unknown API
            self.summary = f"none ({type(err).__name__}: {err})"
            log.warning(
                "MIDI input unavailable (%s: %s); OSC keeps working", type(err).__name__, err
            )
            return False
        failures: list[str] = []
        reasons: list[str] = []  # one short reason per API, for the ready line
        for api in apis:
            label = API_LABELS.get(api, api)
            backend = mido.Backend(f"mido.backends.rtmidi/{api}", load=True)
            errors = self._open_all(backend, label)
            if self._ports:
                for error in errors:
                    log.warning("%s; OSC keeps working", error)
                break
            failures += errors
            if errors:
                # rtmidi says "MidiInAlsa::initialize: error creating ..."; keep what follows.
                short = errors[0].rsplit(": ", 1)[-1].rstrip(").")
                reasons.append(f"{label}: {short}")
        if not self._ports:
            reason = "; ".join(failures) or "no MIDI API"
            self.summary = f"none ({'; '.join(reasons) or reason})"
            log.warning("MIDI input unavailable: %s; OSC keeps working", reason)
            return False
        self._thread = threading.Thread(target=self._work, name="drumdiff-midi", daemon=True)
        self._thread.start()
        self.summary = ", ".join(self.port_names)
        log.info("MIDI input on %s", self.summary)
        return True

    def _apis(self, mido: Any) -> list[str]:
        """The rtmidi APIs to try, in order."""
        wanted = RTMIDI_APIS[self.config.api]
        if wanted is not None:
            return [wanted]
        compiled = mido.Backend("mido.backends.rtmidi", load=True).module.get_api_names()
        return [a for a in compiled if a in API_LABELS] or list(compiled)

    def _open_all(self, backend: Any, label: str) -> list[str]:
        """Open the configured ports with one API; the errors of those that failed."""
        errors: list[str] = []
        if self.config.virtual_port:
            name = self.config.virtual_port
            try:
                port = backend.open_input(
                    name, virtual=True, client_name=name, callback=self._callback
                )
            except Exception as err:  # rtmidi's SystemError/OSError: no ALSA sequencer, no JACK...
                errors.append(
                    f"MIDI virtual port {name!r} unavailable on {label} ({type(err).__name__}: "
                    f"{err})"
                )
            else:
                self._ports.append(port)
                self.port_names.append(f"{name} (virtual, {label})")
        for wanted in self.config.ports:
            try:
                match = _match_port(wanted, backend.get_input_names())
                port = backend.open_input(match, callback=self._callback)
            except Exception as err:
                errors.append(
                    f"MIDI input {wanted!r} unavailable on {label} ({type(err).__name__}: {err})"
                )
                continue
            self._ports.append(port)
            self.port_names.append(f"{match} ({label})")
        return errors

    def _work(self) -> None:
        while True:
            item = self._inbox.get()
            if item is None:
                return
            msg, arrived = item
            try:
                command = midi_to_command(msg, self.config)
                if command is not None:
                    self._handle(command, arrived)
            except Exception:
                log.exception("MIDI message %s failed", msg)

    def close(self) -> None:
        for port in self._ports:
            try:
                port.close()
            except Exception as err:
                log.debug("closing MIDI port: %s", err)
        self._ports.clear()
        if self._thread is not None:
            self._inbox.put(None)
            self._thread.join(2.0)
            self._thread = None


def _match_port(wanted: str, available: list[str]) -> str:
    if wanted in available:
        return wanted
    hits = [name for name in available if wanted.lower() in name.lower()]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise OSError(f"no MIDI input port matches {wanted!r}; available: {available}")
    raise OSError(f"MIDI port {wanted!r} is ambiguous: {hits}")
