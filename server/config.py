"""The daemon's configuration: frozen dataclasses with every default here; YAML only overrides.

Loaded with the project's own helpers (`model.config.read_yaml` / `from_dict`), so unknown keys
and wrong types are rejected the same way as in training configs. Relative paths are taken
relative to the working directory the daemon starts in.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drumdiff.model import SHIPPED_WEIGHTS
from drumdiff.model.config import apply_override, from_dict, read_yaml
from drumdiff.model.errors import ConfigError
from drumdiff.model.labels import GM_DRUM_MAP
from drumdiff.model.wav import SUBTYPES


@dataclass(frozen=True)
class OscConfig:
    """UDP OSC endpoint."""

    host: str = "127.0.0.1"  # loopback by default; anything else needs allow_remote
    port: int = 9000  # 0 = any free port (tests)
    allow_remote: bool = False  # binding a non-loopback address must be switched on explicitly
    allow: tuple[
        str, ...
    ] = ()  # client IPs or networks (CIDR) allowed; empty = any that can reach us
    # Where replies go for a sender that gave no reply_port and whose host never said hello, on
    # the sender's host (AbletonOSC answers on 11001); 0 = back to the sender's own port.
    reply_port: int = 0

    def __post_init__(self) -> None:
        try:
            loopback = ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            loopback = self.host == "localhost"
        if not loopback and not self.allow_remote:
            raise ConfigError(
                f"osc.host {self.host!r} is not a loopback address; set osc.allow_remote: true "
                "to accept clients from other machines (and consider osc.allow)"
            )
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"osc.port must be 0..65535, got {self.port}")
        if not 0 <= self.reply_port <= 65535:
            raise ConfigError(f"osc.reply_port must be 0..65535 (0 = off), got {self.reply_port}")
        for entry in self.allow:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ConfigError(f"osc.allow: {entry!r} is not an IP address or network") from None


@dataclass(frozen=True)
class EngineConfig:
    """The inference worker, its queue, batching and the pre-rendered pool."""

    device: str = "auto"  # auto (CUDA when present), cpu, cuda, cuda:1...
    precision: str = "auto"  # auto (bf16/fp16 autocast on CUDA, fp32 on CPU), fp32, bf16, fp16
    # torch, openvino, onnxruntime, or auto: OpenVINO where it is installed and matches torch
    # (its forward pass was 3-4x torch's speed on two cores), else torch. CPU only.
    runtime: str = "auto"
    queue_size: int = 64  # requests waiting for the worker; more are answered "busy"
    max_batch: int = 16  # requests rendered together at most
    pool_size: int = 4  # pre-rendered hits kept ready per class; 0 = no pool
    refill_batch: int = 4  # hits rendered per background refill round (keeps it preemptible)
    seed: int | None = None  # seed of the daemon's seed sequence; None = random (logged)
    warmup: bool = True  # one throwaway render at start so the first hit is not slow
    gain_db: float = 0.0  # default gain of every hit
    velocity_exponent: float = 1.0  # amplitude = (velocity / 127) ** exponent
    velocity_to_file: bool = True  # False: files keep full level, velocity only scales playback

    def __post_init__(self) -> None:
        if self.runtime not in ("torch", "openvino", "onnxruntime", "auto"):
            raise ConfigError(
                f"engine.runtime must be torch, openvino, onnxruntime or auto, got {self.runtime!r}"
            )
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ConfigError(
                f"engine.precision must be auto, fp32, bf16 or fp16, got {self.precision!r}"
            )
        for name in ("queue_size", "max_batch", "refill_batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"engine.{name} must be at least 1")
        if self.pool_size < 0:
            raise ConfigError("engine.pool_size must be 0 or more")
        if self.velocity_exponent <= 0:
            raise ConfigError("engine.velocity_exponent must be positive")


@dataclass(frozen=True)
class CCMapping:
    """A MIDI control change driving a daemon parameter (see PARAMS in server/protocol.py)."""

    cc: int  # controller number 0..127
    param: str  # steps, guidance, eta, gain, variation
    low: float | None = None  # value at CC 0 (default: the parameter's minimum)
    high: float | None = None  # value at CC 127 (default: the parameter's maximum)


#: The controllers of a plain `drumdiff serve` (the README's and configs/server.yaml's): CC 20
#: steps 2..50, CC 21 guidance 0..12 (the default model renders at 8), CC 22 variation 0..1.
DEFAULT_CC_MAP: tuple[CCMapping, ...] = (
    CCMapping(20, "steps", 2, 50),
    CCMapping(21, "guidance", 0.0, 12.0),
    CCMapping(22, "variation"),
)


@dataclass(frozen=True)
class MidiConfig:
    """MIDI input (mido + python-rtmidi)."""

    enabled: bool = True
    api: str = (
        "auto"  # auto (each API rtmidi was built with until one opens), alsa, jack, macos, windows
    )
    virtual_port: str | None = "drumdiff"  # a virtual input port, where the platform has them
    ports: tuple[str, ...] = ()  # existing input ports to open too (name or unique substring)
    channel: int | None = None  # 1..16; None = omni
    cc: tuple[CCMapping, ...] = DEFAULT_CC_MAP  # [] = no controllers

    def __post_init__(self) -> None:
        if self.api not in ("auto", "alsa", "jack", "macos", "windows"):
            raise ConfigError(
                f"midi.api must be auto, alsa, jack, macos or windows, got {self.api!r}"
            )
        if self.channel is not None and not 1 <= self.channel <= 16:
            raise ConfigError(f"midi.channel must be 1..16 or null, got {self.channel}")
        from drumdiff.server.protocol import (
            PARAMS,
        )  # late: protocol imports the sampler registry (torch)

        for m in self.cc:
            if not 0 <= m.cc <= 127:
                raise ConfigError(f"midi.cc: controller {m.cc} out of range 0..127")
            spec = PARAMS.get(m.param)
            if spec is None or spec.type == "choice":
                numeric = sorted(p for p, s in PARAMS.items() if s.type != "choice")
                raise ConfigError(
                    f"midi.cc: {m.param!r} cannot follow a controller; expected one of {numeric}"
                )


@dataclass(frozen=True)
class WriterConfig:
    """The watched folder."""

    folder: str = "hits"
    subtype: str = "PCM_24"  # PCM_16, PCM_24 or FLOAT
    keep: int = 0  # retention: keep the newest N hits the daemon wrote; 0 = keep all

    def __post_init__(self) -> None:
        if self.subtype not in SUBTYPES:
            raise ConfigError(
                f"writer.subtype must be one of {list(SUBTYPES)}, got {self.subtype!r}"
            )
        if self.keep < 0:
            raise ConfigError("writer.keep must be 0 or more")


@dataclass(frozen=True)
class AudioOutConfig:
    """Optional playback of every hit (sounddevice / PortAudio)."""

    enabled: bool = False
    device: int | str | None = None  # PortAudio device index or name; None = the default output
    channels: int = 2  # mono hits go to every channel
    voices: int = 16  # polyphony; the oldest voice is stolen beyond it
    blocksize: int = 0  # frames per callback; 0 = the backend's choice
    latency: str = "low"  # PortAudio suggested latency: low or high

    def __post_init__(self) -> None:
        if self.channels < 1 or self.voices < 1:
            raise ConfigError("audio_out.channels and audio_out.voices must be at least 1")
        if self.latency not in ("low", "high"):
            raise ConfigError("audio_out.latency must be low or high")


@dataclass(frozen=True)
class ServerConfig:
    """Everything `drumdiff serve` needs; see configs/server.yaml for a commented example."""

    checkpoint: str | None = None  # None: --checkpoint, else the shipped default model
    model_folders: tuple[str, ...] = ("model/weights", "runs")  # `load` only reads from these
    notes: Any = None  # {note: class}; None = the General MIDI drum map (GM_DRUM_MAP)
    osc: OscConfig = field(default_factory=OscConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    midi: MidiConfig = field(default_factory=MidiConfig)
    writer: WriterConfig = field(default_factory=WriterConfig)
    audio_out: AudioOutConfig = field(default_factory=AudioOutConfig)

    def __post_init__(self) -> None:
        # YAML mappings are not hashable or frozen; keep the note map as sorted pairs.
        notes = GM_DRUM_MAP if self.notes is None else self.notes
        if isinstance(notes, (list, tuple)):
            notes = dict(notes)
        if not isinstance(notes, dict):
            raise ConfigError("notes must be a mapping of MIDI note to class name")
        pairs = []
        for note, name in notes.items():
            if isinstance(note, bool) or not isinstance(note, int) or not 0 <= note <= 127:
                raise ConfigError(f"notes: {note!r} is not a MIDI note 0..127")
            if not isinstance(name, str) or not name:
                raise ConfigError(f"notes: note {note} must map to a class name, got {name!r}")
            pairs.append((note, name))
        object.__setattr__(self, "notes", tuple(sorted(pairs)))

    def note_map(self) -> dict[int, str]:
        return dict(self.notes)

    def model_dirs(self) -> tuple[Path, ...]:
        """The folders `load` may read: the configured ones (relative to the working directory)
        and always the shipped model's, wherever the daemon was started."""
        folders = [Path(p).expanduser().resolve() for p in self.model_folders]
        if SHIPPED_WEIGHTS not in folders:
            folders.append(SHIPPED_WEIGHTS)
        return tuple(folders)


def loadable_checkpoints(folders: Sequence[Path]) -> tuple[Path, ...]:
    """The `.pt` files `load` can read in `folders` and one folder below them, resolved, sorted.

    A run's numbered checkpoints (its `checkpoints/` folder) are left out: `last.pt` and a
    fine-tune's `model.pt` stand for the run; `design scrub` reaches the rest. Files that
    resolve outside every folder (a link pointing elsewhere) are left out, as `load` refuses them.
    """
    found: set[Path] = set()
    for folder in folders:
        if not folder.is_dir():
            continue
        for pattern in ("*.pt", "*/*.pt"):
            for path in folder.glob(pattern):
                try:
                    resolved = path.resolve()
                except (OSError, RuntimeError):
                    continue
                if resolved.is_file() and any(resolved.is_relative_to(f) for f in folders):
                    found.add(resolved)
    return tuple(sorted(found))


def load_server_config(
    path: str | Path | None = None, overrides: tuple[str, ...] | list[str] = ()
) -> ServerConfig:
    """YAML over the defaults, then `section.key=value` overrides (as `load_config` does)."""
    data = read_yaml(path) if path is not None else {}
    for override in overrides:
        apply_override(data, override)
    try:
        return from_dict(ServerConfig, data)
    except ConfigError as err:
        raise ConfigError(f"{path or 'server config'}: {err}") from None
