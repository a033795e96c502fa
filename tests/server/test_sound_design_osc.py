"""Sound design over real UDP: vary, interpolate, inpaint, morph and scrub, answered with `done`
(one per hit, under the request's id) or `fail`, with the files and metadata they promise."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

from drumdiff.model.config import load_config
from drumdiff.model.core.checkpoint import (
    LoadedModel,
    build_model,
    load_checkpoint,
    save_checkpoint,
)
from drumdiff.model.wav import read_info
from drumdiff.server import protocol
from drumdiff.server.errors import ProtocolError

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny-test.yaml"


def _random_state(seed: int) -> dict[str, torch.Tensor]:
    """Seeded non-zero weights: a fresh U-Net predicts v = 0 whatever the class, which would
    make every comparison between two renders pass trivially."""
    torch.manual_seed(0)
    net = build_model(load_config(TINY)).net
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in net.parameters():
            param.copy_(torch.randn(param.shape, generator=gen) * 0.2)
    return net.state_dict()


@pytest.fixture(scope="module")
def run_model(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    """A run folder with checkpoints at steps 10, 20 and 40 under models/; step 40 loaded."""
    models = tmp_path_factory.mktemp("shared") / "models"
    config = load_config(TINY)
    for step in (10, 20, 40):
        save_checkpoint(
            models / "run" / "checkpoints" / f"step-{step:07d}.pt",
            config,
            model_state=_random_state(step),
            ema_state=None,
            step=step,
        )
    return load_checkpoint(models / "run" / "checkpoints" / "step-0000040.pt")


@pytest.fixture
def served(daemon_factory: Any, client_factory: Any, run_model: LoadedModel) -> Any:
    daemon = daemon_factory(model=run_model)
    return daemon, client_factory(daemon.osc_address)


def _dones(client: Any, n: int) -> list[list[Any]]:
    out = []
    for _ in range(n):
        address, args = client.recv()
        assert address == protocol.DONE, (address, args)
        out.append(args)
    return out


def _audio(path: str) -> np.ndarray:
    data, _ = sf.read(path, dtype="float32", always_2d=True)
    return data.T


def _meta(path: str) -> dict[str, Any]:
    return json.loads(read_info(path)["ICMT"])


def _render(client: Any, name: str, seed: int, rid: int | str) -> list[Any]:
    client.send(protocol.RENDER, name, 127, "id", rid, "seed", seed, "fresh", 1)
    (done,) = _dones(client, 1)
    return done


def test_vary_the_last_kick_eight_times(served: Any) -> None:
    daemon, client = served
    source = _render(client, "kick", 5, 1)
    _render(client, "snare", 6, 2)  # newer, but not a kick
    client.send(
        protocol.VARY, "last", "class", "kick", "count", 8, "seed", 100, "level", 0.4, "id", "v"
    )
    dones = _dones(client, 8)
    assert {d[0] for d in dones} == {"v"}
    assert sorted(d[3] for d in dones) == list(range(100, 108))
    assert all(d[2] == "kick" for d in dones)
    meta = _meta(dones[0][1])
    assert meta["design"]["op"] == "vary" and meta["design"]["level"] == pytest.approx(
        0.4
    )  # OSC float32
    assert meta["design"]["sources"] == [1]
    hits = [_audio(d[1]) for d in dones]
    assert not np.allclose(hits[0], hits[1])
    assert all(h.shape == _audio(source[1]).shape for h in hits)
    # the same request again gives the same hits (seeded)
    client.send(protocol.VARY, 1, "count", 1, "seed", 100, "level", 0.4)
    (again,) = _dones(client, 1)
    by_seed = {d[3]: d[1] for d in dones}
    np.testing.assert_allclose(_audio(again[1]), _audio(by_seed[100]), atol=1e-5)


def test_vary_level_zero_returns_the_source(served: Any) -> None:
    _, client = served
    source = _render(client, "clap", 9, "src")
    client.send(protocol.VARY, "src", "level", 0.0, "seed", 1)
    (done,) = _dones(client, 1)
    np.testing.assert_allclose(_audio(done[1]), _audio(source[1]), atol=1e-6)


def test_interpolate_between_two_hits(served: Any) -> None:
    _, client = served
    a = _render(client, "kick", 1, "a")
    b = _render(client, "snare", 2, "b")
    client.send(protocol.INTERPOLATE, "a", "b", "count", 3, "steps", 16, "id", "i")
    dones = sorted(_dones(client, 3), key=lambda d: d[3])
    assert [d[3] for d in dones] == [0, 1, 2] and {d[0] for d in dones} == {"i"}
    assert [_meta(d[1])["design"]["fraction"] for d in dones] == [0.0, 0.5, 1.0]
    # endpoints come back close to their sources (DDIM inversion with refinement)
    for done, src in ((dones[0], a), (dones[-1], b)):
        ref, got = _audio(src[1]), _audio(done[1])
        snr = 10 * np.log10((ref**2).sum() / ((ref - got) ** 2).sum())
        assert snr > 10.0


def test_inpaint_keeps_the_attack_and_grows_a_new_tail(served: Any) -> None:
    daemon, client = served
    source = _render(client, "snare", 4, "s")
    sr = daemon.engine.model.sample_rate
    start_s = 0.02
    client.send(protocol.INPAINT, "s", "start", start_s, "seed", 3, "count", 2, "id", "p")
    dones = _dones(client, 2)
    start = int(round(start_s * sr))
    ref = _audio(source[1])
    for done in dones:
        got = _audio(done[1])
        assert np.abs(got[:, :start] - ref[:, :start]).max() < 1e-3
        assert np.abs(got[:, start:] - ref[:, start:]).max() > 1e-2
    assert _meta(dones[0][1])["design"]["start"] == start


def test_morph_at_zero_equals_the_pure_class_render(served: Any) -> None:
    _, client = served
    pure = _render(client, "kick", 42, "k")
    client.send(protocol.MORPH, "kick", "snare", 0.0, "seed", 42, "id", "m0")
    (zero,) = _dones(client, 1)
    np.testing.assert_allclose(_audio(zero[1]), _audio(pure[1]), atol=1e-6)
    client.send(protocol.MORPH, "kick", "snare", 0.5, "seed", 42, "id", "m5")
    (half,) = _dones(client, 1)
    assert half[2] == "kick+snare"
    assert _meta(half[1])["design"]["mix"] == {"kick": 0.5, "snare": 0.5}
    assert not np.allclose(_audio(half[1]), _audio(pure[1]), atol=1e-4)


def test_scrub_renders_with_an_earlier_checkpoint(served: Any) -> None:
    daemon, client = served
    loaded = _render(client, "snare", 3, "now")
    client.send(protocol.SCRUB, "snare", "step", 40, "seed", 3, "id", "s40")
    (same,) = _dones(client, 1)
    np.testing.assert_allclose(_audio(same[1]), _audio(loaded[1]), atol=1e-6)
    client.send(protocol.SCRUB, "snare", "fraction", 0.0, "seed", 3, "id", "s10")
    (early,) = _dones(client, 1)
    assert _meta(early[1])["design"]["checkpoint"] == "step-0000010.pt"
    assert not np.allclose(_audio(early[1]), _audio(loaded[1]), atol=1e-4)
    # step/fraction also choose the checkpoint of other requests
    client.send(protocol.MORPH, "snare", "kick", 0.0, "seed", 3, "step", 12)
    (morphed,) = _dones(client, 1)
    np.testing.assert_allclose(_audio(morphed[1]), _audio(early[1]), atol=1e-6)
    assert len(daemon.design.cache) == 2  # steps 10 and 40 resident


@pytest.mark.parametrize(
    ("address", "args", "match"),
    [
        (protocol.VARY, ["nope", "id", 7], "no hit with id"),
        (protocol.VARY, ["last", "class", "tom", "id", 7], "unknown class"),
        (protocol.MORPH, ["kick", "cowbell", 0.5, "id", 7], "unknown class"),
        (protocol.SCRUB, ["kick", "id", 7], "step or fraction"),
        (protocol.INPAINT, ["last", "id", 7], "start or end"),
        (protocol.VARY, ["last", "level", 2.0, "id", 7], "level"),
        (protocol.INTERPOLATE, ["a", "b", "count", 1, "id", 7], "at least 2"),
        (protocol.SCRUB, ["kick", "step", 1, "fraction", 0.5, "id", 7], "not both"),
    ],
)
def test_bad_requests_are_answered_with_fail(
    served: Any, address: str, args: list[Any], match: str
) -> None:
    _, client = served
    client.send(address, *args)
    reply, fail = client.recv()
    assert reply == protocol.FAIL
    assert fail[0] == 7 and fail[1] == "bad_request" and match in fail[2]


def test_scrub_needs_a_model_from_a_run_folder(daemon_factory: Any, client_factory: Any) -> None:
    daemon = daemon_factory()  # a random-weight model with no file
    client = client_factory(daemon.osc_address)
    client.send(protocol.SCRUB, "kick", "step", 10, "id", 3)
    reply, fail = client.recv()
    assert reply == protocol.FAIL and fail[:2] == [3, "bad_request"]


def test_design_messages_parse_pd_floats() -> None:
    req = protocol.parse(protocol.VARY, ["last", "count", 8.0, "seed", 3.0, "class", "kick"])
    assert req.count == 8 and req.seed == 3 and req.sources == ("last",)
    with pytest.raises(ProtocolError, match="given twice"):
        protocol.parse(protocol.MORPH, ["kick", "tom", 0.5, "seed", 1, "seed", 2])
    assert protocol.request_id_of(protocol.INPAINT, ["x", "id", "q1", "start", "bad"]) == "q1"


def test_an_empty_inpaint_range_is_told_in_seconds(
    daemon_factory: Any, client_factory: Any
) -> None:
    daemon = daemon_factory()
    client = client_factory(daemon.osc_address)
    assert client.ask(protocol.RENDER, "kick", 100, "seed", 1, "id", "src")[0] == protocol.DONE
    address, args = client.ask(protocol.INPAINT, "src", "start", 5.0, "id", "p")
    assert (address, args[:2]) == (protocol.FAIL, ["p", "bad_request"])
    assert "inpaint range 5.000..0.046 s is empty within the 0.046 s hit" in args[2]


def test_a_refused_design_request_fails_under_the_clients_id_or_minus_one(
    daemon_factory: Any, client_factory: Any
) -> None:
    daemon = daemon_factory()
    client = client_factory(daemon.osc_address)
    assert client.ask(protocol.VARY, "nope")[1][:2] == [-1, "bad_request"]  # as a refused render
    assert client.ask(protocol.VARY, "nope", "id", "mine")[1][:2] == ["mine", "bad_request"]
