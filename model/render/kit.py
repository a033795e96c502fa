"""Whole drum kits from a model: pads on the General MIDI drum map, round robins, velocity layers
and cymbals that ring out, written as WAVs plus SFZ, Hydrogen and Decent Sampler files.

A kit is planned first (`plan_kit`: which pad plays which class, with which seeds, layers and
lengths), then rendered (`render_kit`) and written (`write_kit`). The plan is plain data and is
saved as `kit.json` beside the kit, so `kit_from_json` + `render_kit` + `write_kit` re-render the
same kit byte for byte from the same model.

Velocity layers: the model has no strike-velocity condition, so a layer is the pad's render at a
lower gain (`layer_method="gain"`), and every kit file says so. The plan keeps a per-layer method
so that a model-made layer (a softer strike, not a quieter copy) can slot in later.

Cymbals (crash, ride, open hat) are rendered at the model's length and then grown to
`length_cymbals_s` by outpainting with the model itself (`ring_out`): the model continues the
tail window by window, so the decay past the trained length is the model's, not a fade.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import re
import tarfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import torch

from drumdiff.model import __version__
from drumdiff.model.audio import apply_fade_out, peak_safe
from drumdiff.model.core.checkpoint import LoadedModel
from drumdiff.model.core.space import audio_to_model, space_weights
from drumdiff.model.errors import DrumDiffError
from drumdiff.model.files import write_bytes_atomic
from drumdiff.model.labels import FALLBACK_CLASSES, gm_note_class, playable_class
from drumdiff.model.render.generate import FADE_OUT_S, RenderSettings, class_index, render
from drumdiff.model.render.sound_design import inpaint, pitch_shift
from drumdiff.model.wav import write_wav_atomic

KIT_FORMAT = "drumdiff-kit"
KIT_VERSION = 1
FORMATS = ("sfz", "hydrogen", "decentsampler")
#: How a velocity layer is made. Only "gain" exists today (see the module docstring); a model
#: with a strike-velocity condition would add "model".
LAYER_METHODS = ("gain",)
GAIN_LAYER_NOTE = (
    "velocity layers are gain-scaled copies of one render (layer_method=gain): the model has no "
    "strike-velocity condition yet, so a soft layer is quieter, not darker or softer in attack"
)
#: Classes whose pads ring out past the model's length.
CYMBAL_CLASSES = ("crash", "ride", "open_hat")
#: The General MIDI drum-kit notes a kit covers by default: 36 (C1) to 59 (B2), contiguous, so a
#: sampler or Hydrogen that maps notes from 36 upwards finds every pad on its GM key.
DEFAULT_NOTES = tuple(range(36, 60))
#: Toms, low to high, share their renders and are spread in pitch (semitones) by resampling.
TOM_SEMITONES: dict[int, float] = {41: -6.0, 43: -4.0, 45: -2.0, 47: 0.0, 48: 2.0, 50: 4.0}
#: Hi-hat notes: the closed (42) and pedal (44) hats choke the open hat (46).
CHOKING_NOTES = (42, 44)
CHOKED_NOTES = (46,)
#: Hydrogen keeps at most this many layers per instrument component (InstrumentComponent's
#: default maximum), and a layer there is one (velocity band, round robin) pair.
HYDROGEN_MAX_LAYERS = 16
#: Level at a ring-out joint is compared over this much audio on each side (seconds).
JOINT_S = 0.03

GM_NAMES: dict[int, str] = {
    35: "Acoustic Bass Drum",
    36: "Bass Drum 1",
    37: "Side Stick",
    38: "Acoustic Snare",
    39: "Hand Clap",
    40: "Electric Snare",
    41: "Low Floor Tom",
    42: "Closed Hi-Hat",
    43: "High Floor Tom",
    44: "Pedal Hi-Hat",
    45: "Low Tom",
    46: "Open Hi-Hat",
    47: "Low-Mid Tom",
    48: "Hi-Mid Tom",
    49: "Crash Cymbal 1",
    50: "High Tom",
    51: "Ride Cymbal 1",
    52: "Chinese Cymbal",
    53: "Ride Bell",
    54: "Tambourine",
    55: "Splash Cymbal",
    56: "Cowbell",
    57: "Crash Cymbal 2",
    58: "Vibraslap",
    59: "Ride Cymbal 2",
}


class KitError(DrumDiffError, ValueError):
    """A kit request or a kit.json is malformed."""


# ---------------------------------------------------------------------------------------------
# The plan


@dataclass(frozen=True)
class Layer:
    """One velocity band of every pad: MIDI velocities lovel..hivel (inclusive)."""

    index: int  # 1 = softest
    lovel: int
    hivel: int
    gain_db: float  # applied by the sampler (format files), not baked into the WAVs
    method: str = "gain"


@dataclass(frozen=True)
class Extension:
    """How a cymbal is grown past the model's length (see `ring_out`)."""

    length_s: float
    lead: float = (
        0.135  # share of the model's window regenerated and thrown away (an attack goes here)
    )
    context: float = 0.34  # share of the window: the tail audio the model continues from
    trim_s: float = 0.01  # cut from the end of a render or window before continuing (its end fade)


@dataclass(frozen=True)
class Hit:
    """One round robin of one pad: a seed and the file it is written to."""

    round_robin: int  # 1-based
    seed: int
    file: str  # relative to the kit folder
    extension_seeds: tuple[int, ...] = ()


@dataclass(frozen=True)
class Pad:
    note: int
    name: str
    gm_class: str  # the class the GM map gives the note
    drum_class: str  # the model class rendered
    semitones: float = 0.0
    extension: Extension | None = None
    hits: tuple[Hit, ...] = ()

    @property
    def choke_group(self) -> int | None:
        if self.note in CHOKING_NOTES:
            return 1
        if self.note in CHOKED_NOTES:
            return 2
        return None

    @property
    def off_by(self) -> int | None:
        return 1 if self.note in CHOKED_NOTES else None


@dataclass(frozen=True)
class KitPlan:
    name: str
    seed: int
    round_robin: int
    layers: tuple[Layer, ...]
    pads: tuple[Pad, ...]
    settings: RenderSettings
    formats: tuple[str, ...]
    subtype: str = "PCM_24"
    model: Mapping[str, Any] = field(default_factory=dict)  # where the model came from
    skipped: tuple[tuple[int, str], ...] = ()  # (note, why)

    @property
    def layer_method(self) -> str:
        methods = {layer.method for layer in self.layers}
        return methods.pop() if len(methods) == 1 else "mixed"


def _check_name(name: str) -> str:
    if (
        not name
        or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 _.+-]{0,63}", name)
        or name.endswith(".")
    ):
        raise KitError(
            f"kit name {name!r} must be 1-64 letters, digits, spaces or _ . + - and start with a "
            "letter or digit (it becomes file and folder names)"
        )
    return name


def velocity_layers(count: int, span_db: float = 12.0) -> tuple[Layer, ...]:
    """`count` bands splitting MIDI velocities 1..127 evenly; gains from -span_db (softest) to 0."""
    if not 1 <= count <= 16:
        raise KitError(f"velocity layers must be 1..16, got {count}")
    if not math.isfinite(span_db) or not 0 <= span_db <= 60:
        raise KitError(f"layer span must be 0..60 dB, got {span_db}")
    edges = np.linspace(0, 127, count + 1).round().astype(int)
    layers = []
    for i in range(count):
        gain = 0.0 if count == 1 else -span_db * (count - 1 - i) / (count - 1)
        # + 0.0 turns -0.0 into 0.0, so the loudest layer reads "0" and not "-0" in the files.
        layers.append(Layer(i + 1, int(edges[i]) + 1, int(edges[i + 1]), round(gain, 3) + 0.0))
    return tuple(layers)


def _voice_seed(base: int, voice: str, round_robin: int) -> int:
    """A seed per (voice, round robin) that does not move when other pads are added or dropped."""
    return int((base + zlib.crc32(f"{voice}:{round_robin}".encode())) % 2**31)


def plan_kit(
    model: LoadedModel,
    *,
    name: str = "drumdiff",
    notes: Sequence[int] = DEFAULT_NOTES,
    classes: Sequence[str] | None = None,
    round_robin: int = 4,
    velocity_layers_count: int = 3,
    layer_span_db: float = 12.0,
    length_cymbals_s: float = 2.5,
    seed: int = 0,
    settings: RenderSettings,
    formats: Sequence[str] = FORMATS,
    subtype: str = "PCM_24",
    model_source: Mapping[str, Any] | None = None,
) -> KitPlan:
    """Which pad plays what: GM note -> class (model/labels.py's map), seeds, layers, lengths.

    `classes` keeps only the pads whose GM class is listed. A note whose class the model lacks
    falls back to "percussion", then "other", else it is skipped (listed in `plan.skipped`).
    """
    _check_name(name)
    if not 1 <= round_robin <= 16:
        raise KitError(f"round robin must be 1..16, got {round_robin}")
    fmts = tuple(dict.fromkeys(formats))
    unknown = [f for f in fmts if f not in FORMATS]
    if unknown:
        raise KitError(f"unknown format(s) {unknown}; expected some of {list(FORMATS)}")
    layers = velocity_layers(velocity_layers_count, layer_span_db)
    if "hydrogen" in fmts and round_robin * len(layers) > HYDROGEN_MAX_LAYERS:
        raise KitError(
            f"Hydrogen holds at most {HYDROGEN_MAX_LAYERS} layers per instrument; "
            f"{round_robin} round robins x {len(layers)} velocity layers = "
            f"{round_robin * len(layers)}"
        )
    if not math.isfinite(length_cymbals_s) or not 0 < length_cymbals_s <= 10:
        raise KitError(f"cymbal length must be in (0, 10] seconds, got {length_cymbals_s}")
    model_len_s = model.config.model.length / model.sample_rate
    if classes is not None:
        gm_classes = {gm_note_class(n) for n in range(128)}
        bad = [c for c in classes if c not in gm_classes]
        if bad:
            raise KitError(f"unknown class(es) {bad}; the GM map has {sorted(gm_classes)}")
    pads: list[Pad] = []
    skipped: list[tuple[int, str]] = []
    for note in sorted(dict.fromkeys(int(n) for n in notes)):
        if not 0 <= note <= 127:
            raise KitError(f"MIDI note {note} out of range 0..127")
        gm_class = gm_note_class(note)
        if classes is not None and gm_class not in classes:
            continue
        drum_class = playable_class(gm_class, model.classes)
        if drum_class is None:
            skipped.append(
                (note, f"the model has no class {gm_class!r} (nor {', '.join(FALLBACK_CLASSES)})")
            )
            continue
        semitones = TOM_SEMITONES.get(note, 0.0) if gm_class == "tom" else 0.0
        extension = None
        if gm_class in CYMBAL_CLASSES and length_cymbals_s > model_len_s:
            extension = Extension(float(length_cymbals_s))
        # Toms share their renders (one drum tuned to six pitches), every other pad has its own.
        voice = "tom" if gm_class == "tom" and note in TOM_SEMITONES else f"n{note}"
        label = re.sub(r"[^a-z0-9]+", "-", GM_NAMES.get(note, gm_class).lower()).strip("-")
        hits = []
        for rr in range(1, round_robin + 1):
            s = _voice_seed(seed, voice, rr)
            ext_seeds: tuple[int, ...] = ()
            if extension is not None:
                ext_seeds = tuple(
                    _voice_seed(seed, f"{voice}:ring", rr * 100 + k)
                    for k in range(_hops(model, extension))
                )
            hits.append(Hit(rr, s, f"samples/rr{rr}/n{note:03d}-{label}.wav", ext_seeds))
        pads.append(
            Pad(
                note,
                GM_NAMES.get(note, f"Note {note}"),
                gm_class,
                drum_class,
                semitones,
                extension,
                tuple(hits),
            )
        )
    if not pads:
        raise KitError("no pads to render: no note of the kit maps to a class this model has")
    return KitPlan(
        name=name,
        seed=int(seed),
        round_robin=round_robin,
        layers=layers,
        pads=tuple(pads),
        settings=replace(settings, length=None),
        formats=fmts,
        subtype=subtype,
        model=dict(model_source or {}),
        skipped=tuple(skipped),
    )


# ---------------------------------------------------------------------------------------------
# Rendering


def _hops(model: LoadedModel, ext: Extension) -> int:
    """How many outpainting windows grow a render to `ext.length_s`."""
    sr = model.sample_rate
    window = model.config.model.length
    lead, context, trim = int(ext.lead * window), int(ext.context * window), int(ext.trim_s * sr)
    new = window - lead - context - trim  # inpaint fades a window's last 5 ms: never kept
    if new <= 0 or lead < 0 or trim < 0:
        raise KitError("cymbal extension: lead + context must be shorter than the model's length")
    have = window - int(ext.trim_s * sr)
    need = round(ext.length_s * sr)
    return max(0, -(-(need - have) // new))


def _model_space_rms(
    model: LoadedModel, window: np.ndarray, drum_class: str, region: slice
) -> float:
    """RMS over `region` of a window (C, T) mapped into the model space of `drum_class`."""
    cid = class_index(model, drum_class)
    weights = space_weights(len(model.classes), class_ids=torch.tensor([cid]))
    x = audio_to_model(
        torch.as_tensor(window[None], dtype=torch.float32), model.config.diffusion, weights
    )
    return float(x[0, :, region].pow(2).mean().sqrt())


def ring_out(
    model: LoadedModel,
    audio: np.ndarray,
    seeds: Sequence[int],
    settings: RenderSettings,
    *,
    drum_class: str,
    extension: Extension,
) -> np.ndarray:
    """Grow a hit (C, T) to `extension.length_s` by outpainting its tail with the model.

    Each step puts the last `context` (a share of the model's window; 0.25 s for the shipped
    model) of the audio so far into a fresh model-length window, after `lead` (0.1 s) the model
    regenerates (an attack, discarded), and lets the model
    regenerate everything after it (`render.sound_design.inpaint` with a keep mask), drawing
    from the next seed. The context is scaled so that it sits at the level the model's space
    expects at that place in a hit (a quiet tail would otherwise read as near-silence), and the
    continuation is scaled back; where it starts louder than the tail it continues, it is turned
    down (as a whole) to meet it. So the decay past the trained length is the model's
    continuation of the class's decay, step by step; only the last 5 ms are faded.
    """
    sr = model.sample_rate
    window = model.config.model.length
    lead, context = int(extension.lead * window), int(extension.context * window)
    trim = int(extension.trim_s * sr)
    target = round(extension.length_s * sr)
    joint = max(1, min(int(JOINT_S * sr), context))
    block = max(1, int(0.01 * sr))
    hops = _hops(model, extension)
    if len(seeds) < hops:
        raise KitError(f"ring_out needs {hops} seeds for {extension.length_s} s, got {len(seeds)}")
    out = np.asarray(audio, np.float32)
    out = out[:, : max(context, out.shape[-1] - trim)]
    kept = slice(lead, lead + context)
    keep = np.zeros(window, bool)
    keep[kept] = True
    target_rms = float(model.config.diffusion.data_scale)
    base = replace(settings, length=None)
    for hop in range(hops):
        if out.shape[-1] >= target:
            break
        frame = np.zeros((out.shape[0], window), np.float32)
        frame[:, kept] = out[:, -context:]
        level = _model_space_rms(model, frame, drum_class, kept)
        if level < 1e-6 or not math.isfinite(level):
            break  # the tail has died out: nothing for the model to continue
        # Bounded so the window stays well inside full scale (inpaint's peak safety would
        # otherwise turn the whole continuation down and leave a step at the joint).
        gain = min(target_rms / level, 0.5 / max(float(np.abs(frame).max()), 1e-9))
        grown = inpaint(
            model,
            frame * gain,
            [int(seeds[hop])],
            base,
            keep_mask=keep,
            drum_class=drum_class,
            seam=0,
        )
        new = grown[0][:, lead + context : window - trim] / gain
        # A continuation may come in louder than the tail it continues (a step up a real
        # cymbal never makes): turn it down so that no 10 ms of its first 100 ms is louder than
        # the tail's last 30 ms. It is only ever turned down, as a whole, so its own decay
        # stays the model's.
        before = float(np.sqrt(np.square(out[:, -joint:]).mean()))
        head = new[:, : 10 * block]
        blocks = max(1, head.shape[-1] // block)
        power = np.square(head[:, : blocks * block]).reshape(head.shape[0], blocks, -1)
        after = float(np.sqrt(power.mean(axis=(0, 2)).max()))
        if after > before > 0:
            new = new * (before / after)
        out = np.concatenate([out, new], axis=-1)
    if out.shape[-1] < target:
        out = np.concatenate(
            [out, np.zeros((out.shape[0], target - out.shape[-1]), np.float32)], axis=-1
        )
    out = np.ascontiguousarray(out[:, :target])
    apply_fade_out(out, int(FADE_OUT_S * sr))
    return peak_safe(out).astype(np.float32)


@dataclass(frozen=True)
class RenderedKit:
    plan: KitPlan
    audio: dict[str, np.ndarray]  # relative file -> (C, T) float32


def render_kit(
    model: LoadedModel,
    plan: KitPlan,
    *,
    batch_size: int = 8,
    progress: Callable[[int, int, str], None] | None = None,
) -> RenderedKit:
    """Render every hit of a plan: one render per (voice, round robin), toms repitched from theirs,
    cymbals grown by `ring_out`. `progress(done, total, what)` is called after each hit."""
    if batch_size < 1:
        raise KitError(f"batch size must be at least 1, got {batch_size}")
    settings = plan.settings
    # Unique (seed, class) renders at the model's length; toms share theirs.
    jobs: dict[tuple[int, str], None] = {}
    for pad in plan.pads:
        for hit in pad.hits:
            jobs[(hit.seed, pad.drum_class)] = None
    keys = list(jobs)
    total = len(keys) + sum(len(p.hits) for p in plan.pads if p.extension is not None)
    done = 0
    base: dict[tuple[int, str], np.ndarray] = {}
    for first in range(0, len(keys), batch_size):
        batch = keys[first : first + batch_size]
        audio = render(model, [s for s, _ in batch], settings, classes=[c for _, c in batch])
        for key, item in zip(batch, audio):
            base[key] = item
            done += 1
            if progress is not None:
                progress(done, total, f"{key[1]} seed {key[0]}")
    out: dict[str, np.ndarray] = {}
    for pad in plan.pads:
        for hit in pad.hits:
            item = base[(hit.seed, pad.drum_class)]
            if pad.extension is not None:
                item = ring_out(
                    model,
                    item,
                    hit.extension_seeds,
                    settings,
                    drum_class=pad.drum_class,
                    extension=pad.extension,
                )
                done += 1
                if progress is not None:
                    progress(done, total, f"ring out n{pad.note} rr{hit.round_robin}")
            if pad.semitones:
                item = peak_safe(pitch_shift(item, model.sample_rate, pad.semitones))
            out[hit.file] = np.ascontiguousarray(item, dtype=np.float32)
    return RenderedKit(plan, out)


# ---------------------------------------------------------------------------------------------
# kit.json


def plan_to_dict(plan: KitPlan) -> dict[str, Any]:
    return {
        "format": KIT_FORMAT,
        "version": KIT_VERSION,
        "name": plan.name,
        "software": f"drumdiff {__version__}",
        "seed": plan.seed,
        "round_robin": plan.round_robin,
        "layer_method": plan.layer_method,
        "layer_note": GAIN_LAYER_NOTE if plan.layer_method == "gain" else "",
        "layers": [asdict(layer) for layer in plan.layers],
        "settings": asdict(plan.settings),
        "formats": list(plan.formats),
        "subtype": plan.subtype,
        "model": dict(plan.model),
        "skipped": [{"note": n, "why": why} for n, why in plan.skipped],
        "pads": [
            {
                "note": pad.note,
                "name": pad.name,
                "gm_class": pad.gm_class,
                "class": pad.drum_class,
                "semitones": pad.semitones,
                "choke_group": pad.choke_group,
                "off_by": pad.off_by,
                "extension": asdict(pad.extension) if pad.extension else None,
                "hits": [
                    {
                        "round_robin": hit.round_robin,
                        "seed": hit.seed,
                        "file": hit.file,
                        "extension_seeds": list(hit.extension_seeds),
                    }
                    for hit in pad.hits
                ],
            }
            for pad in plan.pads
        ],
    }


def _get(d: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in d:
        raise KitError(f"kit.json: {where} has no {key!r}")
    value = d[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise KitError(f"kit.json: {where}.{key} has the wrong type ({type(value).__name__})")
    return value


def plan_from_dict(data: Mapping[str, Any]) -> KitPlan:
    """The plan a kit.json records (validated: a hand-edited file gives a one-line error)."""
    if not isinstance(data, Mapping) or data.get("format") != KIT_FORMAT:
        raise KitError(f'not a drumdiff kit.json (no "format": "{KIT_FORMAT}")')
    if data.get("version") != KIT_VERSION:
        raise KitError(
            f"kit.json version {data.get('version')!r}; this drumdiff reads {KIT_VERSION}"
        )
    try:
        layers = tuple(Layer(**layer) for layer in _get(data, "layers", list, "kit"))
        settings = RenderSettings(**_get(data, "settings", dict, "kit"))
        pads = []
        for i, p in enumerate(_get(data, "pads", list, "kit")):
            where = f"pads[{i}]"
            ext = p.get("extension")
            hits = tuple(
                Hit(
                    int(_get(h, "round_robin", int, where)),
                    int(_get(h, "seed", int, where)),
                    str(_get(h, "file", str, where)),
                    tuple(int(s) for s in h.get("extension_seeds", ())),
                )
                for h in _get(p, "hits", list, where)
            )
            for hit in hits:
                parts = Path(hit.file).parts
                if Path(hit.file).is_absolute() or ".." in parts or not hit.file.endswith(".wav"):
                    raise KitError(
                        f"kit.json: {where} file {hit.file!r} must be a relative .wav path inside "
                        "the kit"
                    )
            pads.append(
                Pad(
                    int(_get(p, "note", int, where)),
                    str(_get(p, "name", str, where)),
                    str(_get(p, "gm_class", str, where)),
                    str(_get(p, "class", str, where)),
                    float(_get(p, "semitones", (int, float), where)),
                    Extension(**ext) if ext else None,
                    hits,
                )
            )
        plan = KitPlan(
            name=_check_name(str(_get(data, "name", str, "kit"))),
            seed=int(_get(data, "seed", int, "kit")),
            round_robin=int(_get(data, "round_robin", int, "kit")),
            layers=layers,
            pads=tuple(pads),
            settings=settings,
            formats=tuple(_get(data, "formats", list, "kit")),
            subtype=str(data.get("subtype", "PCM_24")),
            model=dict(data.get("model", {})),
            skipped=tuple((int(s["note"]), str(s["why"])) for s in data.get("skipped", ())),
        )
    except TypeError as err:
        raise KitError(f"kit.json: malformed entry ({err})") from None
    bad = [f for f in plan.formats if f not in FORMATS]
    if bad:
        raise KitError(f"kit.json: unknown format(s) {bad}")
    methods = [layer.method for layer in plan.layers if layer.method not in LAYER_METHODS]
    if methods:
        raise KitError(
            f"kit.json: layer method(s) {methods} not supported; expected {list(LAYER_METHODS)}"
        )
    return plan


def load_kit_json(path: str | Path) -> KitPlan:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as err:
        raise KitError(f"cannot read {path}: {err.strerror or err}") from None
    except json.JSONDecodeError as err:
        raise KitError(f"{path} is not JSON ({err})") from None
    return plan_from_dict(data)


# ---------------------------------------------------------------------------------------------
# Format files


def _layer_gain_linear(layer: Layer) -> float:
    return float(10 ** (layer.gain_db / 20))


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def sfz_text(plan: KitPlan, sample_root: str = "") -> str:
    """An SFZ instrument: one region per (pad, velocity layer, round robin)."""
    lines = [
        f"// {plan.name}: a drumdiff kit (drumdiff {__version__}), seed {plan.seed}",
        f"// {GAIN_LAYER_NOTE}"
        if plan.layer_method == "gain"
        else f"// layer_method={plan.layer_method}",
        "// Round robins play in turn (seq_length/seq_position); the closed and pedal hats choke "
        "the open hat.",
        "",
    ]
    if sample_root:
        lines += ["<control>", f"default_path={sample_root}", ""]
    lines += ["<global>", "loop_mode=one_shot", "amp_veltrack=100", ""]
    for pad in plan.pads:
        lines.append(
            f"// {pad.note} {pad.name}: {pad.drum_class}"
            + (f", {pad.semitones:+g} semitones" if pad.semitones else "")
        )
        group = [f"key={pad.note}", f"pitch_keycenter={pad.note}", f"seq_length={len(pad.hits)}"]
        if pad.choke_group is not None:
            group.append(f"group={pad.choke_group}")
        if pad.off_by is not None:
            group += [f"off_by={pad.off_by}", "off_mode=fast"]
        lines += ["<group> " + " ".join(group)]
        for layer in plan.layers:
            for hit in pad.hits:
                lines.append(
                    f"<region> sample={hit.file} lovel={layer.lovel} hivel={layer.hivel} "
                    f"volume={_fmt(layer.gain_db)} seq_position={hit.round_robin}"
                )
        lines.append("")
    return "\n".join(lines)


def dspreset_text(plan: KitPlan) -> str:
    """A Decent Sampler preset: one group per (pad, velocity layer), round robins inside."""
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f"<!-- {escape(plan.name)}: a drumdiff kit (drumdiff {__version__}), seed {plan.seed}. -->",
    ]
    if plan.layer_method == "gain":
        out.append(f"<!-- {escape(GAIN_LAYER_NOTE)}. -->")
    out += ['<DecentSampler minVersion="1.0.0">', "  <groups>"]
    for pad in plan.pads:
        for layer in plan.layers:
            attrs = {
                "name": f"n{pad.note} {pad.name} v{layer.index}",
                "volume": f"{_fmt(layer.gain_db)}dB",
                "seqMode": "round_robin" if len(pad.hits) > 1 else "always",
                "seqLength": str(len(pad.hits)),
                # Drums play to the end of the sample whatever the note-off does.
                "ampEnvEnabled": "false",
                "trigger": "attack",
                "tags": f"n{pad.note}" + (",hat_choke" if pad.note in CHOKING_NOTES else ""),
            }
            if pad.note in CHOKED_NOTES:
                attrs["silencedByTags"] = "hat_choke"
                attrs["silencingMode"] = "fast"
            out.append(
                "    <group " + " ".join(f"{k}={quoteattr(v)}" for k, v in attrs.items()) + ">"
            )
            for hit in pad.hits:
                sample = {
                    "path": hit.file,
                    "rootNote": str(pad.note),
                    "loNote": str(pad.note),
                    "hiNote": str(pad.note),
                    "loVel": str(layer.lovel),
                    "hiVel": str(layer.hivel),
                    "seqPosition": str(hit.round_robin),
                }
                out.append(
                    "      <sample "
                    + " ".join(f"{k}={quoteattr(v)}" for k, v in sample.items())
                    + "/>"
                )
            out.append("    </group>")
    out += ["  </groups>", "</DecentSampler>", ""]
    return "\n".join(out)


def hydrogen_velocity_range(layer: Layer) -> tuple[float, float]:
    """A layer's band in Hydrogen's 0..1 velocity, its edges halfway between MIDI velocities, so
    every MIDI velocity v (played as v/127) falls in exactly one band and none in a gap."""
    lo = 0.0 if layer.lovel <= 1 else (layer.lovel - 0.5) / 127
    hi = 1.0 if layer.hivel >= 127 else (layer.hivel + 0.5) / 127
    return lo, hi


def hydrogen_file(hit: Hit) -> str:
    """A hit's file name inside the Hydrogen kit: Hydrogen 1.2 keeps only a layer's base name, so
    the kit folder is flat and the round robin moves into the name."""
    return f"{Path(hit.file).stem}-rr{hit.round_robin}.wav"


def _hydrogen_instrument(pad: Pad, index: int, plan: KitPlan, *, in_song: bool) -> list[str]:
    t = "   "
    rr = len(pad.hits) > 1
    lines = [
        "  <instrument>",
        f"{t}<id>{index}</id>",
        f"{t}<name>{escape(pad.name)}</name>",
    ]
    if in_song:
        lines += [
            f"{t}<drumkit>{escape(plan.name)}</drumkit>",
            f"{t}<drumkitLookup>1</drumkitLookup>",
        ]
    lines += [
        f"{t}<volume>1</volume>",
        f"{t}<isMuted>false</isMuted>",
        f"{t}<isSoloed>false</isSoloed>",
    ]
    lines += [f"{t}<pan>0</pan>"] if in_song else [f"{t}<pan_L>1</pan_L>", f"{t}<pan_R>1</pan_R>"]
    lines += [
        f"{t}<pitchOffset>0</pitchOffset>",
        f"{t}<randomPitchFactor>0</randomPitchFactor>",
        f"{t}<gain>1</gain>",
        f"{t}<applyVelocity>true</applyVelocity>",
        f"{t}<filterActive>false</filterActive>",
        f"{t}<filterCutoff>1</filterCutoff>",
        f"{t}<filterResonance>0</filterResonance>",
        f"{t}<Attack>0</Attack>",
        f"{t}<Decay>0</Decay>",
        f"{t}<Sustain>1</Sustain>",
        f"{t}<Release>1000</Release>",
        f"{t}<muteGroup>{1 if pad.choke_group is not None else -1}</muteGroup>",
        f"{t}<midiOutChannel>-1</midiOutChannel>",
        f"{t}<midiOutNote>{pad.note}</midiOutNote>",
        f"{t}<isStopNote>false</isStopNote>",
        f"{t}<sampleSelectionAlgo>{'ROUND_ROBIN' if rr else 'VELOCITY'}</sampleSelectionAlgo>",
        f"{t}<isHihat>-1</isHihat>",
        f"{t}<lower_cc>0</lower_cc>",
        f"{t}<higher_cc>127</higher_cc>",
        f"{t}<FX1Level>0</FX1Level>",
        f"{t}<FX2Level>0</FX2Level>",
        f"{t}<FX3Level>0</FX3Level>",
        f"{t}<FX4Level>0</FX4Level>",
        f"{t}<instrumentComponent>",
        f"{t} <component_id>0</component_id>",
        f"{t} <gain>1</gain>",
    ]
    for layer in plan.layers:
        lo, hi = hydrogen_velocity_range(layer)
        for hit in pad.hits:
            lines += [
                f"{t} <layer>",
                f"{t}  <filename>{escape(hydrogen_file(hit))}</filename>",
                f"{t}  <min>{_fmt(lo)}</min>",
                f"{t}  <max>{_fmt(hi)}</max>",
                f"{t}  <gain>{_fmt(_layer_gain_linear(layer))}</gain>",
                f"{t}  <pitch>0</pitch>",
                f"{t} </layer>",
            ]
    lines += [f"{t}</instrumentComponent>", "  </instrument>"]
    return lines


def _hydrogen_instruments(plan: KitPlan, *, in_song: bool) -> list[str]:
    lines = [" <instrumentList>"]
    for index, pad in enumerate(plan.pads):
        lines += [" " + line for line in _hydrogen_instrument(pad, index, plan, in_song=in_song)]
    return lines + [" </instrumentList>"]


_COMPONENTS = [
    " <componentList>",
    "  <drumkitComponent>",
    "   <id>0</id>",
    "   <name>Main</name>",
    "   <volume>1</volume>",
    "  </drumkitComponent>",
    " </componentList>",
]


def hydrogen_drumkit_xml(plan: KitPlan) -> str:
    """drumkit.xml in Hydrogen 1.2's format (the element set `h2cli -u` writes)."""
    info = (
        f"A drumdiff kit (seed {plan.seed}). {GAIN_LAYER_NOTE}."
        if plan.layer_method == "gain"
        else "A drumdiff kit."
    )
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        (
            '<drumkit_info xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            'xmlns="http://www.hydrogen-music.org/drumkit">'
        ),
        f" <!--{escape(info)}-->",
        f" <name>{escape(plan.name)}</name>",
        f" <author>drumdiff {__version__}</author>",
        f" <info>{escape(info)}</info>",
        " <license>undefined license</license>",
        " <image></image>",
        " <imageLicense>undefined license</imageLicense>",
        *_COMPONENTS,
        *_hydrogen_instruments(plan, in_song=False),
        "</drumkit_info>",
        "",
    ]
    return "\n".join(lines)


def hydrogen_song_xml(
    plan: KitPlan, hits: Sequence[tuple[int, int, float]], *, bpm: float = 120.0, size: int = 192
) -> str:
    """A one-pattern Hydrogen song that plays `hits` = [(pad note, tick 0..size-1, velocity 0..1)]
    on this kit (48 ticks a quarter note): what `h2cli -s` renders to check a kit plays."""
    index = {pad.note: i for i, pad in enumerate(plan.pads)}
    notes = []
    for note, tick, velocity in hits:
        if note not in index:
            raise KitError(f"the kit has no pad on note {note}")
        if not 0 <= tick < size:
            raise KitError(f"tick {tick} outside the pattern (0..{size - 1})")
        notes += [
            "    <note>",
            f"     <position>{int(tick)}</position>",
            "     <leadlag>0</leadlag>",
            f"     <velocity>{_fmt(velocity)}</velocity>",
            "     <pan>0</pan>",
            "     <pitch>0</pitch>",
            "     <probability>1</probability>",
            "     <key>C0</key>",
            "     <length>-1</length>",
            f"     <instrument>{index[note]}</instrument>",
            "     <note_off>false</note_off>",
            "    </note>",
        ]
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        "<song>",
        " <version>1.2.0</version>",
        f" <bpm>{_fmt(bpm)}</bpm>",
        " <volume>1</volume>",
        " <metronomeVolume>0</metronomeVolume>",
        f" <name>{escape(plan.name)} check</name>",
        " <author>drumdiff</author>",
        " <notes></notes>",
        " <license>undefined license</license>",
        " <loopEnabled>false</loopEnabled>",
        " <patternModeMode>true</patternModeMode>",
        " <playbackTrackFilename></playbackTrackFilename>",
        " <playbackTrackEnabled>false</playbackTrackEnabled>",
        " <playbackTrackVolume>0</playbackTrackVolume>",
        " <action_mode>0</action_mode>",
        " <mode>song</mode>",
        " <pan_law_type>RATIO_STRAIGHT_POLYGONAL</pan_law_type>",
        " <pan_law_k_norm>1.33333</pan_law_k_norm>",
        " <humanize_time>0</humanize_time>",
        " <humanize_velocity>0</humanize_velocity>",
        " <swing_factor>0</swing_factor>",
        *_COMPONENTS,
        *_hydrogen_instruments(plan, in_song=True),
        " <patternList>",
        "  <pattern>",
        "   <name>check</name>",
        "   <category></category>",
        f"   <size>{int(size)}</size>",
        "   <denominator>4</denominator>",
        "   <info></info>",
        "   <noteList>",
        *notes,
        "   </noteList>",
        "  </pattern>",
        " </patternList>",
        " <virtualPatternList/>",
        " <patternSequence>",
        "  <group>",
        "   <patternID>check</patternID>",
        "  </group>",
        " </patternSequence>",
        "</song>",
        "",
    ]
    return "\n".join(lines)


def _tar_bytes(entries: Sequence[tuple[str, bytes]]) -> bytes:
    """A gzipped tar with fixed times, owners and order, so equal inputs give equal bytes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        folders: set[str] = set()
        for name, _ in entries:
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                folders.add("/".join(parts[:i]))
        for folder in sorted(folders):
            info = tarfile.TarInfo(folder)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for name, data in sorted(entries):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# Writing


def write_kit(kit: RenderedKit, out: str | Path, *, sample_rate: int) -> dict[str, Path]:
    """Write the WAVs, kit.json and the format files into folder `out`; returns what was written
    by role ("kit.json", "sfz", "hydrogen", "decentsampler")."""
    plan = kit.plan
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    blobs: dict[str, bytes] = {}
    for pad in plan.pads:
        for hit in pad.hits:
            path = out / hit.file
            path.parent.mkdir(parents=True, exist_ok=True)
            params = {
                "kit": plan.name,
                "note": pad.note,
                "class": pad.drum_class,
                "seed": hit.seed,
                "round_robin": hit.round_robin,
                "semitones": pad.semitones,
                **plan.settings.describe(pad.drum_class),
            }
            if hit.extension_seeds:
                params["ring_out_seeds"] = list(hit.extension_seeds)
            write_wav_atomic(
                path,
                kit.audio[hit.file],
                sample_rate,
                subtype=plan.subtype,
                info={
                    "software": f"drumdiff {__version__}",
                    "title": f"{plan.name} {pad.name} rr{hit.round_robin}",
                    "comment": json.dumps(params),
                },
                root_note=pad.note,
            )
            blobs[hit.file] = path.read_bytes()
    meta = plan_to_dict(plan)
    meta["sha256"] = {
        name: hashlib.sha256(blob).hexdigest() for name, blob in sorted(blobs.items())
    }
    path = out / "kit.json"
    write_bytes_atomic(path, (json.dumps(meta, indent=1) + "\n").encode())
    written["kit.json"] = path
    if "sfz" in plan.formats:
        path = out / f"{plan.name}.sfz"
        write_bytes_atomic(path, sfz_text(plan).encode())
        written["sfz"] = path
    if "decentsampler" in plan.formats:
        path = out / f"{plan.name}.dspreset"
        write_bytes_atomic(path, dspreset_text(plan).encode())
        written["decentsampler"] = path
    if "hydrogen" in plan.formats:
        entries = [(f"{plan.name}/drumkit.xml", hydrogen_drumkit_xml(plan).encode())]
        entries += [
            (f"{plan.name}/{hydrogen_file(hit)}", blobs[hit.file])
            for pad in plan.pads
            for hit in pad.hits
        ]
        path = out / f"{plan.name}.h2drumkit"
        write_bytes_atomic(path, _tar_bytes(entries))
        written["hydrogen"] = path
    return written


def model_source(
    model: LoadedModel, *, config: str | None = None, model_seed: int = 0
) -> dict[str, Any]:
    """What kit.json records about the model, so `drumdiff kit --from` can find it again."""
    if model.path is not None:
        digest = hashlib.sha256(Path(model.path).read_bytes()).hexdigest()
        return {"checkpoint": str(Path(model.path).resolve()), "sha256": digest, "step": model.step}
    return {"config": config, "random_weights_seed": model_seed}
