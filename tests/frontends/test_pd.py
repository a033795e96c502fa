"""The Pure Data frontend: static checks of every patch, then real Pd against a fake and the real
daemon.

The real-Pd tests need Debian's `puredata-core` (`pd`); they run `pd -nogui -nosound` with DSP
on, so the signal outlet is checked too. The daemon test starts `drumdiff serve` with a
random-weight tiny model on a free port.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pdfile
import pytest
import soundfile as sf
from drumdiff_testkit import serve_command
from pd_harness import PD_PATCHES, REPO, harness_patch, pd_binary, run_pd
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import build_msg

from drumdiff.server import protocol

PATCHES = sorted(PD_PATCHES.glob("*.pd"))
ABSTRACTIONS = {p.stem: p for p in PATCHES if not p.stem.endswith("-help")}
needs_pd = pytest.mark.skipif(
    pd_binary() is None, reason="Pure Data not installed (apt-get install puredata-core)"
)


def unescape(text: str) -> str:
    """A symbol as Pd prints it (`\\ ` for a space) back to plain text."""
    return re.sub(r"\\(.)", r"\1", text)


# ---------------------------------------------------------------------------------------------
# Static checks


def test_patches_exist() -> None:
    assert {p.name for p in PATCHES} >= {"drumdiff.pd", "drumdiff-help.pd"}


@pytest.mark.parametrize("patch", PATCHES, ids=lambda p: p.name)
def test_connects_name_existing_boxes_and_ports(patch: Path) -> None:
    """Every `#X connect` joins existing boxes, within their outlet and inlet counts."""
    for canvas in pdfile.parse(patch, ABSTRACTIONS):
        seen = set()
        for a, outlet, b, inlet in canvas.connects:
            where = f"{patch.name}: #X connect {a} {outlet} {b} {inlet}"
            assert 0 <= a < len(canvas.boxes) and 0 <= b < len(canvas.boxes), (
                f"{where}: no such box"
            )
            src, dst = canvas.boxes[a], canvas.boxes[b]
            assert src.kind != "text" and dst.kind != "text", (
                f"{where}: a comment cannot be connected"
            )
            assert outlet < src.outlets, (
                f"{where}: {' '.join(src.text[:3])} has {src.outlets} outlets"
            )
            assert inlet < dst.inlets, f"{where}: {' '.join(dst.text[:3])} has {dst.inlets} inlets"
            assert (a, outlet, b, inlet) not in seen, f"{where}: duplicate connection"
            seen.add((a, outlet, b, inlet))


def test_abstraction_interface() -> None:
    """drumdiff.pd: inlets class/note, velocity, parameters; outlets signal then messages."""
    top = pdfile.parse(ABSTRACTIONS["drumdiff"])[0]

    def ports(names: tuple[str, ...]) -> list[str]:
        boxes = [b for b in top.boxes if b.kind == "obj" and b.text[0] in names]
        return [b.text[0] for b in sorted(boxes, key=lambda b: b.x)]

    assert ports(("inlet", "inlet~")) == ["inlet", "inlet", "inlet"]
    assert ports(("outlet", "outlet~")) == ["outlet~", "outlet"]
    text = ABSTRACTIONS["drumdiff"].read_text()
    assert "array define \\$0-" in text and "soundfiler" in text and "tabplay~ \\$0-" in text
    assert "netsend -u -b" in text and "oscparse" in text


# ---------------------------------------------------------------------------------------------
# Real Pd: the object table agrees with Pd, the patches load cleanly


def _used_objects() -> set[tuple[str, ...]]:
    used = set()
    for patch in PATCHES:
        for canvas in pdfile.parse(patch, ABSTRACTIONS):
            for box in canvas.boxes:
                if box.kind == "obj":
                    used.add(tuple(box.text))
    return used


@needs_pd
def test_object_table_matches_real_pd(tmp_path: Path) -> None:
    """Pd takes the last inlet and outlet of each object the patches use, and refuses one more."""
    lines = ["#N canvas 0 50 800 600 12;", "#X msg 10 10 0;", "#X obj 10 40 *~;"]
    connects, expected_failures = [], set()
    for n, atoms in enumerate(sorted(_used_objects())):
        index = n + 2
        lines.append(f"#X obj 10 {80 + 20 * n} {' '.join(atoms)};")
        ins, outs = (
            pdfile.VANILLA[atoms[0]](list(atoms[1:]))
            if atoms[0] in pdfile.VANILLA
            else pdfile.abstraction_ports(ABSTRACTIONS[atoms[0]])
        )
        if ins:
            connects.append(f"#X connect 0 0 {index} {ins - 1};")
        if outs:
            connects.append(f"#X connect {index} {outs - 1} 1 0;")
        connects.append(f"#X connect 0 0 {index} {ins};")
        connects.append(f"#X connect {index} {outs} 1 0;")
        expected_failures |= {f"0 0 {index} {ins}", f"{index} {outs} 1 0"}
    probe = tmp_path / "probe.pd"
    probe.write_text("\n".join(lines + connects) + "\n")
    proc = subprocess.run(
        [
            str(pd_binary()),
            "-nogui",
            "-nosound",
            "-noprefs",
            "-stderr",
            "-path",
            str(PD_PATCHES),
            "-send",
            "pd quit",
            str(probe),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert "couldn't create" not in proc.stderr, proc.stderr
    failed = set(re.findall(r"probe\.pd (\d+ \d+ \d+ \d+) \(.*?\) connection failed", proc.stderr))
    assert failed == expected_failures, proc.stderr


@needs_pd
@pytest.mark.parametrize("patch", PATCHES, ids=lambda p: p.name)
def test_patch_loads_in_pd_without_errors(patch: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            str(pd_binary()),
            "-nogui",
            "-nosound",
            "-noprefs",
            "-stderr",
            "-path",
            str(PD_PATCHES),
            "-send",
            "pd quit",
            str(patch),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    # A reply port taken by another program is expected noise (the next one is tried).
    log = [line for line in proc.stderr.splitlines() if "setting source port" not in line]
    for bad in ("couldn't create", "connection failed", "no method", "error"):
        assert not [line for line in log if bad in line], proc.stderr


# ---------------------------------------------------------------------------------------------
# Real Pd against a fake daemon: message format, id filtering, several instances, velocity


class FakeDaemon:
    """Answers like the daemon, from a thread: `done` with a fixed WAV, `fail` for class `snare`.

    Before every answer to a render it also sends a `done` and two `fail`s with ids of other
    clients to every registered client; an instance must ignore them.
    """

    def __init__(self, wav: Path, frames: int) -> None:
        self.wav, self.frames = wav, frames
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received: list[tuple[str, list[Any], tuple[str, int]]] = []
        self.clients: dict[tuple[str, int], tuple[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FakeDaemon:  # noqa: PYI034
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def send(self, to: tuple[str, int], address: str, *args: Any) -> None:
        self.sock.sendto(build_msg(address, list(args)).dgram, to)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, sender = self.sock.recvfrom(8192)
            except TimeoutError:
                continue
            msg = OscMessage(data)
            params = list(msg.params)
            self.received.append((msg.address, params, sender))
            reply_to = self.clients.get(sender, sender)
            if msg.address == protocol.HELLO:
                self.clients[sender] = (sender[0], int(params[0]))
                self.send(self.clients[sender], protocol.HELLO_REPLY, "0.0-fake", len(self.clients))
            elif msg.address == protocol.RENDER:
                rid = int(params[params.index("id") + 1])
                for client in self.clients.values():
                    self.send(
                        client, protocol.DONE, 7, str(self.wav), "kick", 1, self.frames, 44100
                    )
                    self.send(client, protocol.FAIL, "someone", "busy", "not yours")
                    self.send(client, protocol.FAIL, 77, "busy", "not yours either")
                if params[0] == "snare":
                    self.send(
                        reply_to, protocol.FAIL, rid, "unknown_class", "no snare in this model"
                    )
                else:
                    self.send(
                        reply_to, protocol.DONE, rid, str(self.wav), "kick", 123, self.frames, 44100
                    )
            elif msg.address == protocol.STATUS:
                self.send(reply_to, protocol.STATUS_REPLY, "fake", "cpu", 0, 0.5, 1.0, 3)
            elif msg.address == protocol.SET:
                self.send(reply_to, protocol.SET_REPLY, *params)


@needs_pd
def test_two_instances_against_fake_daemon(tmp_path: Path) -> None:
    frames, level = 4410, 0.5
    wav = tmp_path / "a hit.wav"  # a space in the path: Pd must keep it one symbol
    samples = np.zeros(frames, np.float32)
    samples[100:200] = level
    sf.write(str(wav), samples, 44100, subtype="PCM_24")
    with FakeDaemon(wav, frames) as fake:
        patch = tmp_path / "harness.pd"
        patch.write_text(harness_patch(["A", "B"], daemon_port=fake.port, expected=2))
        run = run_pd(
            patch,
            [
                "A-p steps 8",
                "A-p seed 42",
                "A-p sampler heun",
                "B-p status",
                "B-p variation 0.25",
                "A-t kick 100",
                "B-t snare 90",
            ],
        )
        received = list(fake.received)
    assert "harness: timeout" not in run.stderr, run.stderr

    hellos = [(params, sender) for address, params, sender in received if address == protocol.HELLO]
    assert len(hellos) == 2
    assert {int(p[0]) for p, s in hellos} == {s[1] for p, s in hellos}, "reply port = source port"
    assert all(p[1] == "pd-drumdiff" for p, s in hellos)

    renders = {p[0]: (p, s) for address, p, s in received if address == protocol.RENDER}
    kick, kick_from = renders["kick"]
    snare, snare_from = renders["snare"]
    assert kick_from != snare_from
    # <class> 127 id <id> [key value ...]: full-level render, velocity carried in the id.
    options = dict(zip(kick[2::2], kick[3::2]))
    assert kick[1] == 127 and options == {
        "id": options["id"],
        "seed": 42,
        "steps": 8,
        "sampler": "heun",
    }
    assert int(-options["id"]) % 128 == 100
    assert int(-snare[3]) % 128 == 90 and int(-snare[3]) // 128 != int(-options["id"]) // 128
    protocol.parse_render(kick)  # the daemon's own parser accepts what Pd sent
    protocol.parse_render(snare)
    assert (protocol.SET, ["variation", 0.25]) in [(a, p) for a, p, s in received]

    a_lines = [unescape(line) for line in run.lines("A")]
    b_lines = [unescape(line) for line in run.lines("B")]
    assert [line for line in a_lines if line.startswith("loaded")] == [
        f"loaded {frames} {wav} kick 123"
    ]
    assert not [line for line in a_lines if line.startswith("fail")], (
        "foreign fails must be ignored"
    )
    assert [line for line in b_lines if line.startswith("fail")] == [
        "fail unknown_class no snare in this model"
    ]
    assert not [line for line in b_lines if line.startswith("loaded")], (
        "foreign dones must be ignored"
    )
    assert (
        "connected 0.0-fake 1" in a_lines + b_lines and "connected 0.0-fake 2" in a_lines + b_lines
    )
    assert "status fake cpu 0 0.5 1 3" in b_lines
    assert "set variation 0.25" in b_lines
    # The signal outlet played the file at velocity 100.
    assert run.peaks("A") == [pytest.approx(level * 100 / 127, rel=1e-4)]


# ---------------------------------------------------------------------------------------------
# Real Pd against the real daemon (random-weight tiny model)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    pytest.importorskip(
        "drumdiff.server.daemon", reason="the daemon (server/daemon.py) is not there yet"
    )
    folder = tmp_path / "hits"
    cmd = serve_command(
        "--model-config",
        str(REPO / "configs" / "tiny-test.yaml"),
        "--port",
        "0",
        "--folder",
        str(folder),
        "--no-midi",
        "--seed",
        "1",
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "drumdiff serve: ready on udp 127.0.0.1:PORT, ..." (or EOF)
        match = re.search(r"ready on udp [0-9.]+:(\d+)", line)
        if match is None:
            proc.kill()
            pytest.fail(
                f"drumdiff serve did not start: {line!r} {proc.communicate(timeout=30)[1][-2000:]}"
            )
        yield int(match.group(1)), folder
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()


@needs_pd
@pytest.mark.pd
def test_pd_against_real_daemon(tmp_path: Path, daemon: tuple[int, Path]) -> None:
    """Pd renders through `drumdiff serve`, loads each file and plays it: sample count = frames."""
    port, folder = daemon
    patch = tmp_path / "harness.pd"
    patch.write_text(harness_patch(["A", "B"], daemon_port=port, expected=2, timeout_ms=40000))
    run = run_pd(patch, ["B-p fresh 1", "B-p steps 3", "A-t kick 100", "B-t 36 90"], timeout=90)
    assert "harness: timeout" not in run.stderr, run.stderr
    for name, velocity in (("A", 100), ("B", 90)):
        loaded = [unescape(line) for line in run.lines(name) if line.startswith("loaded")]
        assert len(loaded) == 1, run.stderr
        _, samples, rest = loaded[0].split(" ", 2)  # loaded <samples> <path> <class> <seed>
        path, drum_class, _seed = rest.rsplit(" ", 2)
        info = sf.info(path)
        assert int(samples) == info.frames > 0
        assert Path(path).parent == folder.resolve() and drum_class == "kick"
        data, _ = sf.read(path, dtype="float32")
        peak = float(np.max(data)) * velocity / 127
        assert run.peaks(name) == [pytest.approx(peak, rel=1e-3, abs=1e-6)]
