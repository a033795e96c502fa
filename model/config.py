"""Typed, frozen configuration: every default lives here, YAML only overrides it.

`load_config(path, overrides)` merges a YAML file over the dataclass defaults and rejects
unknown keys and wrong types. Library code receives these dataclasses, never YAML.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from drumdiff.model.errors import ConfigError

#: The drum classes every model knows unless its config says otherwise. Order is the id.
DRUM_CLASSES: tuple[str, ...] = (
    "kick",
    "snare",
    "clap",
    "closed_hat",
    "open_hat",
    "tom",
    "crash",
    "ride",
    "percussion",
    "other",
)


@dataclass(frozen=True)
class ModelConfig:
    """The network: a patched 1D U-Net with class and noise-level conditioning."""

    sample_rate: int = 44100  # Hz; the rate the model is trained and renders at
    audio_channels: int = 1  # 1 = mono, 2 = stereo
    length: int = 32768  # samples per clip (32768 at 44.1 kHz = 0.743 s)
    patch_size: int = 32  # P samples become one frame of P*audio_channels values
    widths: tuple[int, ...] = (64, 128, 128, 256)  # channels per U-Net level
    blocks_per_level: int = 1  # residual blocks per level, on each side
    attention_levels: tuple[int, ...] = (3,)  # levels (0-based) with self-attention
    head_dim: int = 64  # channels per attention head
    kernel_size: int = 5  # temporal kernel of the residual convolutions
    embed_dim: int = 256  # noise-level + class embedding width
    fourier_features: int = 64  # random Fourier features of the noise level
    positional: bool = True  # learned embedding of absolute time in the clip
    dropout: float = 0.0
    # A residual stage at the full sample rate after unpatching: it sees the U-Net's output and
    # the noisy input sample by sample, across patch borders, where the per-frame output layer
    # alone leaves lines at multiples of sample_rate / patch_size. 0 channels = none.
    refiner_channels: int = 0
    refiner_kernel: int = 33  # odd; taps of each refiner convolution
    classes: tuple[str, ...] = DRUM_CLASSES  # an unconditional model has one class

    @property
    def frames(self) -> int:
        """Frames after patching."""
        return self.length // self.patch_size

    @property
    def duration_s(self) -> float:
        return self.length / self.sample_rate


@dataclass(frozen=True)
class DiffusionConfig:
    """v-objective diffusion on the cosine schedule (alpha = cos(t*pi/2))."""

    condition_dropout: float = 0.1  # share of training items with the null class (for CFG)
    # Model space = audio * data_scale / envelope(time). v-prediction's "know nothing" answer is
    # v = 0 only for unit-variance data; one-shots decay ~30 dB over a clip (head RMS ~0.3,
    # tails ~0.01), so without the envelope the network must first learn a large, time- and
    # noise-level-dependent gain in the tails and renders hiss meanwhile.
    data_scale: float = 1.0
    # Likewise in frequency: diffusion noise is white, drums are not (most energy below 1 kHz,
    # ~40 dB less at 10 kHz). Dividing by the training set's amplitude spectrum makes the data
    # white too, so v = 0 (x0 = alpha * x) is already the Wiener filter and residual errors come
    # back shaped like drums instead of as hiss. Applied before the envelope.
    spectrum: tuple[
        float, ...
    ] = ()  # amplitude per band, bands evenly spaced 0..Nyquist; () = none
    spectrum_bands: int = 513  # bands measured (43 Hz apart at 44.1 kHz)
    spectrum_floor_db: float = -60.0  # bands quieter than the loudest by more are raised to this
    learn_spectrum: bool = True  # the trainer measures `spectrum` on the train split if empty
    envelope: tuple[float, ...] = ()  # RMS of training clips per envelope_block; () = none
    envelope_block: int = 1024  # samples per envelope value
    envelope_floor: float = 0.003  # lower bound on the envelope, bounding the gain (~-50 dBFS)
    learn_envelope: bool = True  # the trainer measures `envelope` on the train split if empty
    loss_weighting: str = "uniform"  # "uniform" or "snr-clamp"
    # The model space is white, so a plain MSE spends its weight evenly per Hz: the 30-100 Hz
    # body of a kick is 0.3 % of the bins. This share of the loss weight is instead spread
    # evenly per octave (weight ~ 1 / f above `loss_octave_floor_hz`), as hearing does.
    loss_octave_share: float = 0.0  # 0 = flat per Hz; 1 = flat per octave
    loss_octave_floor_hz: float = 40.0  # below this the per-octave weight stays constant
    # Per-class model spaces: each class gets its own measured spectrum and envelope, so a kick
    # is whitened and flattened by kick statistics and the network's residual errors come back
    # kick-shaped (not average-cymbal-shaped). Blends of classes use the weighted geometric mean;
    # unconditional items use the global space above. Measured by the trainer when empty.
    class_spaces: bool = False
    class_spectra: tuple[tuple[float, ...], ...] = ()  # per class, like `spectrum`
    class_envelopes: tuple[tuple[float, ...], ...] = ()  # per class, like `envelope`


#: The fields measured on the data rather than chosen (model spaces, finishing envelopes): a
#: checkpoint stores them beside its config as tensors, so the config stays a short record.
MEASURED_TABLES: tuple[tuple[str, str], ...] = (
    ("diffusion", "spectrum"),
    ("diffusion", "envelope"),
    ("diffusion", "class_spectra"),
    ("diffusion", "class_envelopes"),
    ("finish", "class_envelopes"),
)


@dataclass(frozen=True)
class SamplingConfig:
    """Defaults for rendering; every field can be overridden per request."""

    sampler: str = "dpmpp-2m"
    schedule: str = "karras"
    steps: int = 12
    guidance: float = 2.0
    eta: float = 0.0  # stochasticity of the ddim and distilled samplers (0 = deterministic)
    # Per-class guidance scales ("snare=3"), used where a request names no guidance of its own;
    # classes not listed use `guidance`.
    class_guidance: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.guidance_by_class()  # a malformed entry is an error at load, not at the first render

    def guidance_by_class(self) -> tuple[tuple[str, float], ...]:
        return class_values("sampling.class_guidance", self.class_guidance, "SCALE", 0.0, 50.0)


def class_values(
    key: str, entries: tuple[str, ...], what: str, low: float, high: float
) -> tuple[tuple[str, float], ...]:
    """Per-class settings written "CLASS=VALUE" (e.g. "snare=3") as (class, value) pairs; a
    malformed entry, a value outside low..high or a class named twice is a ConfigError."""
    pairs: list[tuple[str, float]] = []
    for entry in entries:
        name, sep, text = entry.partition("=")
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not sep or not name.strip() or not low <= value <= high:
            raise ConfigError(
                f"{key}: {entry!r} is not CLASS={what} with a {what.lower()} in {low:g}..{high:g}"
            )
        if any(name.strip() == seen for seen, _ in pairs):
            raise ConfigError(f"{key}: {name.strip()!r} is named twice")
        pairs.append((name.strip(), value))
    return tuple(pairs)


@dataclass(frozen=True)
class AugmentConfig:
    """On-the-fly training augmentations (paper section 6.3); probabilities and ranges."""

    phase_flip_p: float = 0.5
    pitch_p: float = 0.3
    pitch_semitones: float = 1.0  # uniform in +-this
    saturation_p: float = 0.2
    saturation_drive: tuple[float, float] = (1.0, 3.0)
    gain_p: float = 0.5
    gain_db: tuple[float, float] = (-6.0, 0.0)


@dataclass(frozen=True)
class DataConfig:
    """How source files become training clips."""

    peak: float = 0.95  # peak level after normalisation
    fade_out_s: float = 0.01  # fade at the cut end
    onset_threshold_db: float = -40.0  # relative to the file's peak
    max_source_s: float = 30.0  # longer files are rejected as not one-shots
    split_seed: int = 0
    validation_kits: float = 0.15  # share of kits held out for validation
    test_kits: float = 0.15  # share of kits held out for testing
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping of a training run."""

    batch_size: int = 16
    lr: float = 2e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.99)
    warmup_steps: int = 500
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    ema_warmup: bool = True  # decay ramps up with the step so early EMA is useful
    max_steps: int = 200000
    checkpoint_every: int = 2000
    log_every: int = 50
    validate_every: int = 1000
    demo_every: int = 5000  # render a few hits per class into TensorBoard
    seed: int = 0
    precision: str = "fp32"  # "fp32", "bf16" or "fp16" (autocast on GPU)
    grad_accumulation: int = 1
    # Processes that read and augment the next batches while the current one trains (0 = inline).
    # Batches are identical either way; on a GPU they keep the card fed (14 fed an H200 here).
    num_workers: int = 0
    # On a GPU, find the largest micro-batch that fits its memory (doubling sizes with a real
    # step), then accumulate gradients up to `target_batch`. On a CPU, batch_size is the
    # micro-batch and accumulation still reaches `target_batch`.
    auto_batch: bool = False
    target_batch: int = 0  # effective batch for auto_batch (0 = batch_size * grad_accumulation)
    # Draw each batch with per-class inverse-frequency weights (with replacement) instead of
    # shuffled epochs, so rare classes are seen as often as common ones.
    balance_classes: bool = False


#: Fields added after the first training runs, with their defaults. `run_name` leaves them out
#: of its hash while they hold these values, so an existing run keeps its folder name (and a
#: re-run of the same command resumes it) after an upgrade.
ADDED_DEFAULTS: dict[tuple[str, str], object] = {
    ("train", "auto_batch"): False,
    ("train", "target_batch"): 0,
    ("train", "balance_classes"): False,
    ("diffusion", "class_spaces"): False,
    ("diffusion", "class_spectra"): [],  # compared with to_dict output, where tuples are lists
    ("diffusion", "class_envelopes"): [],
    ("diffusion", "loss_octave_share"): 0.0,
    ("diffusion", "loss_octave_floor_hz"): 40.0,
    ("model", "refiner_channels"): 0,
    ("model", "refiner_kernel"): 33,
    ("sampling", "class_guidance"): [],
}


@dataclass(frozen=True)
class FinishConfig:
    """What every render goes through after the sampler (see model/render/finish.py)."""

    # Per class, the loudest plausible envelope: the `envelope_percentile` of block RMS (dB
    # relative to the clip's peak) over the training clips of that class. Renders are turned down
    # wherever they exceed it, which removes the faint noise bed a model leaves under short hits.
    class_envelopes: tuple[tuple[float, ...], ...] = ()  # () = no limit
    learn_envelopes: bool = True  # the trainer (or `drumdiff export --data`) measures them if empty
    envelope_percentile: float = 75.0
    # Per-class percentiles ("snare=50") in place of `envelope_percentile`: a class whose renders
    # ring on longer than its training clips (snares) gets a tighter bound.
    class_percentiles: tuple[str, ...] = ()
    # 5.8 ms blocks: fine enough to turn down a late bump under the onset; levels come from the
    # analytic signal, so a kick's cycles are not flattened one by one.
    envelope_block: int = 256  # samples per envelope value
    envelope_margin_db: float = 0.0  # headroom above the measured envelope
    # A patched network leaves a buzz at sample_rate / patch and its multiples. What repeats every
    # patch (measured over `grid_window_s`) is removed with its least-squares weight in the audio
    # (over `grid_smooth_s`), less `grid_threshold` times what broadband sound shares with it by
    # chance (see finish.suppress_patch_grid). 0 = off.
    grid_threshold: float = 0.5
    grid_window_s: float = 0.093
    grid_smooth_s: float = 0.023
    dc_cutoff_hz: float = 10.0  # one-pole DC blocker (0 = off)
    # A render whose first sample is already near its peak starts with a click; training clips
    # start where they first reach -40 dB re peak. A raised-cosine ramp this long (much shorter
    # than any drum's attack, which is judged separately) removes the step. 0 = off.
    fade_in_s: float = 0.001
    # After the last moment the render is louder than this (block RMS re its peak), fade it to
    # digital silence, as kit makers trim their samples: a model's faint noise bed under a dead
    # tail then ends as a real one-shot does. 0 = off. At -60 the limited snare and percussion
    # beds (-58 to -60) stayed; -55 trims them and leaves every decay (to -30 dB) as it was.
    tail_gate_db: float = -55.0
    tail_gate_block: int = 256  # samples per level measurement (5.8 ms at 44.1 kHz)
    tail_gate_release_s: float = 0.01  # length of the fade that starts after the last loud block
    # Normalise every render to this peak, as prepare does the training clips (0: only keep it
    # under 0.999).
    peak: float = 0.95

    def __post_init__(self) -> None:
        self.percentile_by_class()  # a malformed entry is an error at load

    def percentile_by_class(self) -> tuple[tuple[str, float], ...]:
        return class_values(
            "finish.class_percentiles", self.class_percentiles, "PERCENTILE", 0, 100
        )

    def percentiles_for(
        self, classes: tuple[str, ...], *, ignore_unknown: bool = False
    ) -> tuple[float, ...]:
        """The envelope percentile of each of `classes`. Naming a class not among them is an
        error unless `ignore_unknown` (a fine-tune's own class list may leave some out)."""
        by_class = dict(self.percentile_by_class())
        unknown = sorted(set(by_class) - set(classes))
        if unknown and not ignore_unknown:
            raise ConfigError(
                f"finish.class_percentiles names {unknown}, which this model does not have"
            )
        return tuple(by_class.get(name, self.envelope_percentile) for name in classes)


@dataclass(frozen=True)
class Config:
    """Everything a training run or a checkpoint needs to rebuild itself."""

    name: str = "drumdiff"
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    finish: FinishConfig = field(default_factory=FinishConfig)

    def __post_init__(self) -> None:
        # Tables measured in other blocks would be read at the wrong times without a word.
        d, f, length = self.diffusion, self.finish, self.model.length
        tables = [("diffusion.envelope", d.envelope_block, d.envelope)]
        tables += [("diffusion.class_envelopes", d.envelope_block, e) for e in d.class_envelopes]
        tables += [("finish.class_envelopes", f.envelope_block, e) for e in f.class_envelopes]
        for name, block, table in tables:
            if table and len(table) != length // block:
                raise ConfigError(
                    f"{name} holds {len(table)} blocks, but {length}-sample clips in blocks of "
                    f"{block} make {length // block}: it was measured with another block; empty "
                    "it to measure it again"
                )


T = TypeVar("T")


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads YAML 1.2 floats such as `1e-4` (PyYAML's 1.1 makes them
    strings)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check `value` against a field's annotation, converting lists to tuples."""
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return from_dict(annotation, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} matches none of {args}")
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if annotation is Any:
        return value
    raise ConfigError(f"{where}: unsupported annotation {annotation!r}")


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass `cls` from a (possibly partial) mapping; unknown keys are errors."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown config key {prefix}{unknown[0]!r}; expected one of {sorted(names)}"
        )
    kwargs = {
        key: _coerce(value, hints[key], f"{where}.{key}" if where else key)
        for key, value in data.items()
    }
    return cls(**kwargs)


def to_dict(config: Any) -> dict[str, Any]:
    """A plain, YAML- and JSON-friendly dict (tuples become lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(dataclasses.asdict(config))


#: The tables measured on the data under each setting: an override that changes the setting
#: clears them, so that they are measured again (by `train`, or `export --data`) rather than read
#: in blocks or bands they were not measured in.
MEASURED_UNDER: dict[str, tuple[tuple[str, str], ...]] = {
    "diffusion.spectrum_bands": (
        ("diffusion", "spectrum"),
        ("diffusion", "class_spectra"),
        ("diffusion", "envelope"),  # measured on clips whitened by the spectrum
        ("diffusion", "class_envelopes"),
    ),
    "diffusion.envelope_block": (("diffusion", "envelope"), ("diffusion", "class_envelopes")),
    "finish.envelope_block": (("finish", "class_envelopes"),),
    "finish.envelope_percentile": (("finish", "class_envelopes"),),
    "finish.class_percentiles": (("finish", "class_envelopes"),),
}


def apply_override(data: dict[str, Any], override: str) -> None:
    """Set `section.key=value` (a YAML value) in config data; a setting that measured tables
    depend on (MEASURED_UNDER) clears them when it changes."""
    if "=" not in override:
        raise ConfigError(f"override {override!r} is not of the form section.key=value")
    dotted, raw = override.split("=", 1)
    dotted = dotted.strip()
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {override!r}: {key!r} is not a section")
    value = yaml.load(raw, Loader=_Loader)
    if dotted in MEASURED_UNDER and (keys[-1] not in node or node[keys[-1]] != value):
        for section, table in MEASURED_UNDER[dotted]:
            if isinstance(data.get(section), dict) and data[section].get(table):
                data[section][table] = []
    node[keys[-1]] = value


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; values of `update` win."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err.strerror}") from err
    try:
        data = yaml.load(text, Loader=_Loader) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def load_config(
    path: str | Path | None = None, overrides: tuple[str, ...] | list[str] = ()
) -> Config:
    """Load a training/model config: YAML over defaults, then `section.key=value` overrides."""
    data = read_yaml(path) if path is not None else {}
    for override in overrides:
        apply_override(data, override)
    try:
        return from_dict(Config, data)
    except ConfigError as err:
        raise ConfigError(f"{path or 'config'}: {err}") from None


def config_from_dict(data: dict[str, Any]) -> Config:
    """Rebuild a Config from `to_dict` output (used by checkpoints)."""
    return from_dict(Config, data)
