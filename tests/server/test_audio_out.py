"""Audio out: the voice mixer, and what the daemon plays captured through JACK."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from drumdiff.server import protocol
from drumdiff.server.audio_out import Mixer


def test_mixer_sums_voices_and_spreads_mono() -> None:
    mixer = Mixer(channels=2, voices=4)
    a = mixer.prepare(np.full((1, 5), 0.25, dtype=np.float32))
    b = mixer.prepare(np.full((1, 3), 0.5, dtype=np.float32), gain=0.5)
    mixer.play(a)
    mixer.play(b)
    out = np.ones((4, 2), dtype=np.float32)
    mixer.mix(out)
    np.testing.assert_allclose(out[:, 0], [0.5, 0.5, 0.5, 0.25])
    np.testing.assert_array_equal(out[:, 0], out[:, 1])
    mixer.mix(out)
    np.testing.assert_allclose(out[:, 0], [0.25, 0, 0, 0])
    assert mixer.active == 0


def test_mixer_steals_the_oldest_voice() -> None:
    mixer = Mixer(channels=1, voices=2)
    for level in (0.1, 0.2, 0.4):
        mixer.play(mixer.prepare(np.full((1, 8), level, dtype=np.float32)))
    out = np.zeros((2, 1), dtype=np.float32)
    mixer.mix(out)
    np.testing.assert_allclose(out[:, 0], [0.6, 0.6])  # 0.1 was stolen by 0.4


def test_mixer_places_stereo_channels() -> None:
    mixer = Mixer(channels=2, voices=1)
    mixer.play(mixer.prepare(np.array([[0.1, 0.1], [0.3, 0.3]], dtype=np.float32)))
    out = np.zeros((2, 2), dtype=np.float32)
    mixer.mix(out)
    np.testing.assert_allclose(out, [[0.1, 0.3], [0.1, 0.3]])


class Capture:
    """A JACK client that records two input ports into preallocated buffers."""

    def __init__(self, seconds: float = 4.0) -> None:
        import jack

        self.client = jack.Client("drumdiff-test-capture", no_start_server=True)
        self.ins = [self.client.inports.register(f"in_{i}") for i in range(2)]
        self.buffer = np.zeros((int(self.client.samplerate * seconds), 2), dtype=np.float32)
        self.written = 0
        self.recording = threading.Event()

        @self.client.set_process_callback
        def process(frames: int) -> None:
            if not self.recording.is_set():
                return
            n = min(frames, len(self.buffer) - self.written)
            for i, port in enumerate(self.ins):
                self.buffer[self.written : self.written + n, i] = port.get_array()[:n]
            self.written += n

        self.client.activate()

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


@pytest.mark.jack
def test_what_the_daemon_plays_matches_the_file_sample_for_sample(
    jack_server: None, daemon_factory: Any, client_factory: Any
) -> None:
    capture = Capture()
    try:
        daemon = daemon_factory(
            "audio_out.enabled=true", "audio_out.device='system, JACK'", "writer.subtype=FLOAT"
        )
        assert daemon.audio is not None and daemon.audio._stream is not None, (
            "audio out did not open"
        )
        outputs = capture.client.get_ports("PortAudio", is_audio=True, is_output=True)
        assert len(outputs) >= 2
        for src, dst in zip(outputs[-2:], capture.ins):
            capture.client.connect(src, dst)
        capture.recording.set()
        client = client_factory(daemon.osc_address)
        address, args = client.ask(protocol.RENDER, "kick", 127, "seed", 5, "fresh", 1)
        assert address == protocol.DONE
        expected, _ = sf.read(args[1], dtype="float32")
        deadline = time.monotonic() + 10.0
        while True:  # wait until the whole hit went through
            captured = capture.buffer[: capture.written].copy()
            nonzero = np.flatnonzero(captured[:, 0])
            if len(nonzero) and capture.written - nonzero[0] > len(expected) + 4096:
                break
            assert time.monotonic() < deadline, "the hit never arrived at the JACK input"
            time.sleep(0.05)
    finally:
        capture.close()
    first_expected = int(np.flatnonzero(expected)[0])
    start = int(nonzero[0]) - first_expected
    played = captured[start : start + len(expected)]
    np.testing.assert_array_equal(played[:, 0], expected)
    np.testing.assert_array_equal(played[:, 1], expected)
    assert not captured[start + len(expected) :].any()  # and nothing after it
