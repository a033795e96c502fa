"""The server config: the shipped YAML loads, mistakes are refused with a clear message."""

from __future__ import annotations

import pytest

from drumdiff.model.errors import ConfigError
from drumdiff.server.config import GM_DRUM_MAP, ServerConfig, load_server_config
from tests.server.conftest import REPO


def test_shipped_server_yaml_loads() -> None:
    config = load_server_config(REPO / "configs" / "server.yaml")
    assert config.osc.host == "127.0.0.1" and config.osc.port == 9000
    assert config.note_map() == GM_DRUM_MAP
    assert {m.param for m in config.midi.cc} == {"steps", "guidance", "variation"}


def test_defaults_bind_loopback_and_use_the_gm_map() -> None:
    config = ServerConfig()
    assert config.osc.host == "127.0.0.1"
    assert config.note_map()[36] == "kick" and config.note_map()[42] == "closed_hat"


def test_binding_elsewhere_must_be_explicit() -> None:
    with pytest.raises(ConfigError, match="allow_remote"):
        load_server_config(None, ["osc.host=0.0.0.0"])
    config = load_server_config(
        None, ["osc.host=0.0.0.0", "osc.allow_remote=true", "osc.allow=[192.168.1.0/24]"]
    )
    assert config.osc.allow == ("192.168.1.0/24",)
    with pytest.raises(ConfigError, match="not an IP"):
        load_server_config(None, ["osc.allow=[somewhere]"])


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("osc.prot=9000", "unknown config key"),
        ("engine.queue_size=0", "queue_size"),
        ("engine.precision=fp8", "precision"),
        ("writer.subtype=MP3", "subtype"),
        ("midi.api=coreaudio", "midi.api"),
        ("midi.channel=17", "channel"),
        ("midi.cc=[{cc: 200, param: steps}]", "out of range"),
        ("midi.cc=[{cc: 1, param: sampler}]", "cannot follow"),
        ("notes={36: 5}", "class name"),
        ("notes={300: kick}", "MIDI note"),
    ],
)
def test_mistakes_are_refused(override: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_server_config(None, [override])


def test_custom_note_map_replaces_the_gm_map() -> None:
    config = load_server_config(None, ["notes={36: snare, 37: kick}"])
    assert config.note_map() == {36: "snare", 37: "kick"}


def test_builtin_cc_map_is_the_documented_one() -> None:
    from drumdiff.model.config import read_yaml
    from drumdiff.server.config import CCMapping, load_server_config

    built_in = load_server_config(None).midi.cc
    assert built_in == (
        CCMapping(20, "steps", 2, 50),
        CCMapping(21, "guidance", 0.0, 12.0),
        CCMapping(22, "variation"),
    )
    shipped = read_yaml(REPO / "configs" / "server.yaml")["midi"]["cc"]
    assert tuple(CCMapping(**m) for m in shipped) == built_in
    assert load_server_config(None, ["midi.cc=[]"]).midi.cc == ()
