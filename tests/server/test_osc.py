"""OSC round trips over real UDP on loopback, plus the socket-free datagram path."""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import build_msg

from drumdiff.model.config import load_config
from drumdiff.model.core.checkpoint import LoadedModel, save_checkpoint
from drumdiff.model.render.generate import render, settings_for
from drumdiff.server import protocol
from drumdiff.server.osc import LoopbackTransport
from tests.server.conftest import TINY


def test_render_by_class_replies_done_with_a_published_file(
    daemon_factory: Any, client_factory: Any, tiny_model: LoadedModel
) -> None:
    daemon = daemon_factory()
    client = client_factory(daemon.osc_address)
    address, args = client.ask(protocol.RENDER, "kick", 127, "seed", 11, "id", "k1")
    assert address == protocol.DONE
    rid, path, drum_class, seed, frames, sr = args
    assert (rid, drum_class, seed, frames, sr) == ("k1", "kick", 11, 2048, 44100)
    assert Path(path).is_absolute() and Path(path).parent == daemon.writer.folder
    data, file_sr = sf.read(path, dtype="float32")
    assert file_sr == 44100 and len(data) == frames
    expected = render(tiny_model, [11], settings_for(tiny_model), classes=["kick"])[0, 0]
    np.testing.assert_allclose(data, expected, atol=2**-22)  # 24-bit file, velocity 127 = 0 dB


def test_pd_style_floats_and_a_gm_note(daemon_factory: Any, client_factory: Any) -> None:
    daemon = daemon_factory()
    client = client_factory(daemon.osc_address)
    address, args = client.ask(protocol.RENDER, 38.0, 64.0, "seed", 3.0, "gain", -6.0)
    assert address == protocol.DONE
    assert args[2] == "snare" and args[3] == 3 and isinstance(args[0], int)
    assert Path(args[1]).name.startswith("snare_n038_v064_s3_")


def test_release_gets_no_reply(daemon_factory: Any, client_factory: Any) -> None:
    daemon = daemon_factory()
    client = client_factory(daemon.osc_address)
    client.send(protocol.RENDER, "kick", 0)
    client.expect_nothing()
    assert not list(daemon.writer.folder.iterdir())


def test_status_ping_classes_set(daemon_factory: Any, client_factory: Any) -> None:
    daemon = daemon_factory()
    client = client_factory(daemon.osc_address)
    assert client.ask(protocol.PING, 42) == (protocol.PONG, [42])
    assert client.ask(protocol.PING) == (protocol.PONG, [])
    address, args = client.ask(protocol.STATUS)
    assert address == protocol.STATUS_REPLY
    model, device, queue_length, pool_fill, uptime, served = args
    assert (model, device, queue_length, served) == ("random:tiny-test", "cpu", 0, 0)
    assert 0.0 <= pool_fill <= 1.0 and uptime >= 0.0
    assert client.ask(protocol.CLASSES) == (
        protocol.CLASSES_REPLY,
        ["kick", "snare", "closed_hat", "clap"],
    )
    assert client.ask(protocol.SET, "steps", 2.0) == (protocol.SET_REPLY, ["steps", 2])
    assert client.ask(protocol.SET, "sampler", "ddim") == (protocol.SET_REPLY, ["sampler", "ddim"])
    assert daemon.engine.defaults.sampling.steps == 2
    client.ask(protocol.RENDER, "kick", 100, "seed", 1)
    assert client.ask(protocol.STATUS)[1][5] == 1
    address, flat = client.ask(protocol.STATS)
    stats = dict(zip(flat[::2], flat[1::2]))
    assert address == protocol.STATS_REPLY and stats["peak_rss_mb"] > 0 and stats["gpu_mb"] == 0
    assert stats["mean_batch"] == 1.0


def test_hello_registers_a_separate_reply_port(daemon_factory: Any, client_factory: Any) -> None:
    daemon = daemon_factory()
    client = client_factory(daemon.osc_address, separate_reply_port=True)  # like Max and Pd
    client.send(protocol.HELLO, float(client.reply_port), "maxdevice")
    address, args = client.recv()
    assert address == protocol.HELLO_REPLY and args[1] == 1
    assert client.ask(protocol.PING, "x") == (protocol.PONG, ["x"])
    # a second client gets another id; saying hello again keeps the id
    other = client_factory(daemon.osc_address)
    assert other.ask(protocol.HELLO, other.reply_port)[1][1] == 2
    client.send(protocol.HELLO, client.reply_port)
    assert client.recv()[1][1] == 1


def test_errors_are_answered_never_crash(daemon_factory: Any, client_factory: Any) -> None:
    daemon = daemon_factory()
    client = client_factory(daemon.osc_address)

    def fail_of(*message: Any) -> list[Any]:
        address, args = client.ask(*message)
        assert address == protocol.FAIL, (message, address, args)
        return args

    assert fail_of(protocol.RENDER, "kik", 100)[:2] == [-1, "bad_request"]
    assert "unknown class 'kik'" in fail_of(protocol.RENDER, "kik", 100)[2]
    assert fail_of(protocol.RENDER, "kick", 100, "id", 9, "steps", 0)[:2] == [9, "bad_request"]
    assert fail_of(protocol.RENDER, "kick", 100.5)[1] == "bad_request"
    assert fail_of(protocol.RENDER, "kick", math.nan)[1] == "bad_request"
    assert fail_of(protocol.RENDER)[1] == "bad_request"
    assert fail_of(protocol.SET, "volume", 3)[1] == "bad_request"
    assert fail_of("/drumdiff/explode", 1)[:2] == [-1, "unknown_address"]
    assert fail_of("/other/app")[1] == "unknown_address"
    assert fail_of("/drumdiff/*", 1)[1] == "malformed"
    client.send_raw(b"\x00\x01garbage")
    assert client.recv()[1][1] == "malformed"
    client.send_raw(b"/drumdiff/render\x00\x00\x00\x00,ii\x00\x00\x00")  # arguments missing
    assert client.recv()[1][1] == "malformed"
    # more than python-osc's socketserver 8192-byte limit: read whole, answered precisely
    big_id = "x" * 64
    client.send(protocol.RENDER, "kick", 100, "id", big_id, "sampler", "y" * 9000)
    assert client.recv()[1][:2] == [big_id, "bad_request"]
    # still alive and serving
    assert client.ask(protocol.PING, 1) == (protocol.PONG, [1])


def test_bundles_are_flattened(daemon_factory: Any, client_factory: Any) -> None:
    daemon = daemon_factory()
    client = client_factory(daemon.osc_address)
    bundle = OscBundleBuilder(IMMEDIATELY)
    bundle.add_content(build_msg(protocol.PING, [1]))
    bundle.add_content(build_msg(protocol.PING, [2]))
    client.send_raw(bundle.build().dgram)
    assert sorted([client.recv()[1][0], client.recv()[1][0]]) == [1, 2]


def test_stream_sends_the_file_in_chunks(daemon_factory: Any, client_factory: Any) -> None:
    daemon = daemon_factory("writer.subtype=FLOAT")
    client = client_factory(daemon.osc_address)
    client.send(protocol.RENDER, "snare", 100, "id", 5, "stream", 1, "seed", 2)
    address, args = client.recv()
    assert address == protocol.DONE
    pieces: dict[int, bytes] = {}
    total = None
    while total is None or len(pieces) < total:
        address, chunk = client.recv()
        assert address == protocol.CHUNK and chunk[0] == 5
        pieces[chunk[1]] = chunk[3]
        total = chunk[2]
    assert b"".join(pieces[i] for i in range(total)) == Path(args[1]).read_bytes()


def test_load_only_from_model_folders_and_keeps_the_old_model_on_failure(
    daemon_factory: Any, client_factory: Any, tmp_path: Path, tiny_model: LoadedModel
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    daemon = daemon_factory()
    client = client_factory(daemon.osc_address)
    outside = tmp_path / "outside.pt"
    outside.write_bytes(b"x")
    assert client.ask(protocol.LOAD, str(outside))[1][:2] == ["load", "not_allowed"]
    assert client.ask(protocol.LOAD, "../outside.pt")[1][:2] == ["load", "not_allowed"]
    assert client.ask(protocol.LOAD, "missing.pt")[1][:2] == ["load", "not_found"]
    (models / "broken.pt").write_bytes(b"not a checkpoint")
    assert client.ask(protocol.LOAD, "broken.pt")[1][:2] == ["load", "bad_checkpoint"]
    assert daemon.engine.model is tiny_model
    # a symlink inside the folder that points outside is refused
    (models / "link.pt").symlink_to(outside)
    assert client.ask(protocol.LOAD, "link.pt")[1][:2] == ["load", "not_allowed"]
    config = load_config(TINY)
    good = save_checkpoint(
        models / "good.pt",
        config,
        model_state=tiny_model.denoiser.net.state_dict(),
        ema_state=None,
        step=17,
    )
    address, args = client.ask(protocol.LOAD, "good.pt")
    assert (address, args) == (protocol.LOADED, [str(good.resolve()), 17])
    assert daemon.engine.model.step == 17
    assert client.ask(protocol.STATUS)[1][0] == "good.pt"
    assert client.ask(protocol.RENDER, "kick", 100)[0] == protocol.DONE


def test_models_lists_what_load_can_read(
    daemon_factory: Any, client_factory: Any, tmp_path: Path, tiny_model: LoadedModel
) -> None:
    models = tmp_path / "models"
    (models / "finetune_mine" / "checkpoints").mkdir(parents=True)
    config = load_config(TINY)
    state = tiny_model.denoiser.net.state_dict()
    top = save_checkpoint(models / "good.pt", config, model_state=state, ema_state=None, step=1)
    tuned = save_checkpoint(
        models / "finetune_mine" / "model.pt", config, model_state=state, ema_state=None, step=2
    )
    save_checkpoint(
        models / "finetune_mine" / "checkpoints" / "step-0000002.pt",
        config,
        model_state=state,
        ema_state=None,
        step=2,
    )
    outside = tmp_path / "outside.pt"
    outside.write_bytes(b"x")
    (models / "link.pt").symlink_to(outside)
    daemon = daemon_factory()
    client = client_factory(daemon.osc_address)
    address, paths = client.ask(protocol.MODELS)
    assert address == protocol.MODELS_REPLY
    assert str(top.resolve()) in paths and str(tuned.resolve()) in paths
    assert not any("checkpoints" in p or p == str(outside) for p in paths)
    assert any(
        p.endswith("default.pt") for p in paths
    )  # the shipped model's folder is always there
    # Every listed path is one `load` accepts.
    assert client.ask(protocol.LOAD, str(tuned.resolve())) == (
        protocol.LOADED,
        [str(tuned.resolve()), 2],
    )


def test_kit_renders_in_the_background_with_progress(
    daemon_factory: Any, client_factory: Any
) -> None:
    daemon = daemon_factory()
    client = client_factory(daemon.osc_address)
    client.send(
        protocol.KIT,
        "id",
        "k1",
        "name",
        "Tiny Kit",
        "round_robin",
        2,
        "velocity_layers",
        1,
        "formats",
        "sfz",
        "length_cymbals",
        0.5,
        "steps",
        2,
        "seed",
        7,
    )
    # Single hits are served while the kit renders.
    client.send(protocol.PING, 5)
    progress, final, pong = [], None, False
    while final is None:
        address, args = client.recv(timeout=60)
        if address == protocol.KIT_PROGRESS:
            progress.append(args)
        elif address == protocol.PONG:
            pong = True
        else:
            final = (address, args)
    assert pong
    address, (rid, folder, pads, samples, seed) = final
    assert (address, rid, seed) == (protocol.KIT_DONE, "k1", 7)
    assert progress and all(p[0] == "k1" for p in progress) and progress[-1][1] == progress[-1][2]
    kit = Path(folder)
    assert kit.parent == daemon.writer.folder / "kits" and kit.name.startswith("Tiny Kit-")
    assert (kit / "kit.json").is_file() and list(kit.glob("*.sfz"))
    assert len(list(kit.rglob("*.wav"))) == samples == pads * 2


def test_kit_refuses_bad_options_with_the_clients_id(
    daemon_factory: Any, client_factory: Any
) -> None:
    daemon = daemon_factory()
    client = client_factory(daemon.osc_address)
    assert client.ask(protocol.KIT, "id", 9, "name", "../escape")[1][:2] == [9, "bad_request"]
    assert client.ask(protocol.KIT, "id", 10, "formats", "wav")[1][:2] == [10, "bad_request"]
    assert client.ask(protocol.KIT, "round_robin", 99)[1][:2] == [protocol.NO_ID, "bad_request"]
    assert not (daemon.writer.folder / "kits").exists()


def test_busy_over_udp(daemon_factory: Any, client_factory: Any) -> None:
    daemon = daemon_factory("engine.queue_size=1", "engine.max_batch=1")
    client = client_factory(daemon.osc_address)
    n = 12
    for i in range(n):
        client.send(protocol.RENDER, "kick", 100, "id", i, "fresh", 1, "steps", 40)
    replies = [client.recv() for _ in range(n)]
    done = [a for a, _ in replies if a == protocol.DONE]
    busy = [args for a, args in replies if a == protocol.FAIL]
    assert len(done) + len(busy) == n
    assert busy and all(args[1] == "busy" and args[2] == "queue full" for args in busy)


def test_allow_list_drops_strangers(daemon_factory: Any, client_factory: Any) -> None:
    daemon = daemon_factory("osc.allow=[10.0.0.0/8]")
    client = client_factory(daemon.osc_address)
    client.send(protocol.PING, 1)
    client.expect_nothing()
    assert daemon.osc.dropped == 1


def test_socket_free_datagrams_through_the_dispatcher(
    tiny_model: LoadedModel, tmp_path: Path
) -> None:
    from drumdiff.server.daemon import Daemon
    from tests.server.conftest import make_config

    transport = LoopbackTransport()
    daemon = Daemon(make_config(tmp_path), tiny_model, transport=transport)
    daemon.start()
    try:
        sender = ("127.0.0.1", 5555)
        daemon.feed(build_msg(protocol.PING, [7.0]).dgram, sender)
        daemon.feed(build_msg(protocol.HELLO, [6000]).dgram, sender)
        daemon.feed(build_msg(protocol.RENDER, ["bass", 1]).dgram, sender)
        daemon.feed(struct.pack(">i", 5), sender)
    finally:
        daemon.stop()
    sent = [(dest, m.address, m.args[:2]) for dest, m in transport.sent]
    assert sent == [
        (sender, protocol.PONG, (7.0,)),
        (("127.0.0.1", 6000), protocol.HELLO_REPLY, (protocol_version(), 1)),
        (("127.0.0.1", 6000), protocol.FAIL, (-1, "bad_request")),
        (("127.0.0.1", 6000), protocol.FAIL, (-1, "malformed")),
    ]


def protocol_version() -> str:
    from drumdiff.model import __version__

    return __version__


def test_reply_routing_rules_in_order(tiny_model: LoadedModel, tmp_path: Path) -> None:
    from drumdiff.server.daemon import Daemon
    from tests.server.conftest import make_config

    transport = LoopbackTransport()
    daemon = Daemon(make_config(tmp_path, "osc.reply_port=7000"), tiny_model, transport=transport)
    daemon.start()
    try:
        pd_a, pd_b, shell = ("127.0.0.1", 5001), ("127.0.0.1", 5002), ("127.0.0.1", 5003)
        stranger = ("127.0.0.9", 5004)
        daemon.feed(
            build_msg(protocol.PING, ["before"]).dgram, shell
        )  # nobody said hello: osc.reply_port
        daemon.feed(build_msg(protocol.HELLO, [6001]).dgram, pd_a)
        daemon.feed(build_msg(protocol.HELLO, [6002]).dgram, pd_b)
        daemon.feed(build_msg(protocol.PING, ["a"]).dgram, pd_a)  # its own hello, not the newest
        daemon.feed(build_msg(protocol.PING, ["shell"]).dgram, shell)  # the host's newest hello
        daemon.feed(build_msg(protocol.PING, ["own", "reply_port", 6100]).dgram, pd_a)
        daemon.feed(
            build_msg(protocol.RENDER, ["kik", "reply_port", 6101]).dgram, shell
        )  # a fail, too
        daemon.feed(
            build_msg(protocol.PING, ["far"]).dgram, stranger
        )  # another host: its own rules
    finally:
        daemon.stop()
    sent = [(dest, m.address, m.args[0]) for dest, m in transport.sent]
    assert sent == [
        (("127.0.0.1", 7000), protocol.PONG, "before"),
        (("127.0.0.1", 6001), protocol.HELLO_REPLY, protocol_version()),
        (("127.0.0.1", 6002), protocol.HELLO_REPLY, protocol_version()),
        (("127.0.0.1", 6001), protocol.PONG, "a"),
        (("127.0.0.1", 6002), protocol.PONG, "shell"),
        (("127.0.0.1", 6100), protocol.PONG, "own"),
        (("127.0.0.1", 6101), protocol.FAIL, -1),
        (("127.0.0.9", 7000), protocol.PONG, "far"),
    ]


def test_requests_while_stopping_are_answered_shutting_down(
    daemon_factory: Any, client_factory: Any
) -> None:
    daemon = daemon_factory()
    client = client_factory(daemon.osc_address)
    daemon._stopping = True  # what stop() sets while the work in flight finishes
    address, args = client.ask(protocol.PING, 1)
    assert (address, args[:2]) == (protocol.FAIL, [-1, "shutting_down"])
    daemon._stopping = False
    assert client.ask(protocol.PING, 2) == (protocol.PONG, [2])


def test_render_length_and_pitch(daemon_factory: Any, client_factory: Any) -> None:
    from drumdiff.model.wav import read_root_note

    daemon = daemon_factory()
    client = client_factory(daemon.osc_address)
    address, args = client.ask(protocol.RENDER, "kick", 100, "length", 0.1, "seed", 2)
    assert address == protocol.DONE and args[4] == round(0.1 * 44100)
    assert read_root_note(args[1]) == 36
    address, args = client.ask(protocol.RENDER, "snare", 100, "pitch", 12, "seed", 2)
    assert address == protocol.DONE and args[4] == 2048 // 2  # an octave up is half as long
    assert read_root_note(args[1]) == 38 + 12
    data, _ = sf.read(args[1])
    assert len(data) == args[4]


def test_status_counts_only_published_files(daemon_factory: Any, client_factory: Any) -> None:
    daemon = daemon_factory("writer.folder=/proc")  # every write fails there, even as root
    client = client_factory(daemon.osc_address)
    address, args = client.ask(protocol.RENDER, "kick", 100, "seed", 1, "id", "w")
    assert (address, args[:2]) == (protocol.FAIL, ["w", "render_error"])
    assert client.ask(protocol.STATUS)[1][5] == 0


def test_load_finds_the_shipped_model_from_any_working_directory(
    daemon_factory: Any, client_factory: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    from drumdiff.model import SHIPPED_WEIGHTS

    monkeypatch.chdir(tmp_path)  # not the repository
    daemon = daemon_factory()
    assert SHIPPED_WEIGHTS in daemon.config.model_dirs()
    shipped = SHIPPED_WEIGHTS / "default.pt"
    if shipped.exists():
        assert daemon.checkpoint_path("default.pt") == shipped.resolve()
        assert daemon.checkpoint_path(str(shipped)) == shipped.resolve()
    client = client_factory(daemon.osc_address)
    assert client.ask(protocol.LOAD, str(tmp_path / "x.pt"))[1][:2] == ["load", "not_allowed"]
