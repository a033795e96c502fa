"""Drum-class labels from instrument, file and folder names, and from General MIDI notes."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

# Ordered rules: the first whose pattern matches wins. Words are matched on a normalised name
# (lower case, separators turned into spaces), so "HH_Open-02" -> "hh open 02".
_RULES: tuple[tuple[str, str], ...] = (
    (
        "percussion",
        r"cowbell|cow bell|clave|shaker|tambourine|\btamb|maraca|woodblock|wood block"
        r"|conga|bongo|djembe|cajon|agogo|guiro|cabasa|triangle|timbale|\bperc|waterglass|sangban"
        r"|dunun|kenkeni|\bsnaps?\b|finger",
    ),
    (
        "open_hat",
        r"(open|\bop\b|opened|semi|\boh\b|ohh|swish|\bsizzle)"
        r".*(hat|\bhh\b|hihat|hi hat)|(hat|\bhh\b|hihat|hi hat).*(open|\bop\b|opened|semi|swish)"
        r"|\bohh?\b|side ohh",
    ),
    ("closed_hat", r"hat|\bhh\b|hihat|hi hat|\bchh?\b|hh\d|\bpedal\b"),
    ("clap", r"clap"),
    ("kick", r"kick|\bkik\b|\bbd\b|bd\d|bass ?drum|bassdrum|\bbass\b"),
    ("snare", r"snare|\bsnr\b|\bsd\b|sd\d|\brim|side ?stick|\bstick\b"),
    ("tom", r"\btom|floor"),
    ("ride", r"ride|\bbell\b"),
    ("crash", r"crash|splash|china|cymbal|\bcym"),
)

_COMPILED = tuple((label, re.compile(pattern)) for label, pattern in _RULES)


def normalise_name(name: str) -> str:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)  # camelCase -> camel Case
    return re.sub(r"[\s_\-.()/\\#,]+", " ", spaced.lower()).strip()


def label_from_name(name: str) -> str:
    """The drum class a name suggests, or "other"."""
    text = normalise_name(name)
    for label, pattern in _COMPILED:
        if pattern.search(text):
            return label
    return "other"


def label_from_names(*names: str) -> str:
    """The first non-"other" label among names (instrument, then file, then folders)."""
    for name in names:
        if name:
            label = label_from_name(name)
            if label != "other":
                return label
    return "other"


#: General MIDI percussion key map (GM1, channel 10) onto drumdiff's classes; notes not listed
#: are "percussion". Side stick (37) is a snare: the data labels side sticks and rims as snares.
GM_DRUM_MAP: dict[int, str] = {
    35: "kick",
    36: "kick",
    37: "snare",  # side stick
    38: "snare",
    39: "clap",
    40: "snare",
    41: "tom",
    42: "closed_hat",
    43: "tom",
    44: "closed_hat",  # pedal hi-hat
    45: "tom",
    46: "open_hat",
    47: "tom",
    48: "tom",
    49: "crash",
    50: "tom",
    51: "ride",
    52: "crash",  # Chinese cymbal
    53: "ride",  # ride bell
    55: "crash",  # splash
    57: "crash",
    59: "ride",
}

#: The note a pad or sampler calls each class by (where the map gives a class several notes).
GM_CLASS_NOTES: dict[str, int] = {
    "kick": 36,
    "snare": 38,
    "clap": 39,
    "tom": 41,
    "closed_hat": 42,
    "open_hat": 46,
    "crash": 49,
    "ride": 51,
}

#: The note an unpitched hit sounds at (C3 in Ableton's naming): a sampler plays it there as
#: recorded. WAV files carry it (`smpl`) unless a class's own note is known.
DEFAULT_ROOT_NOTE = 60

#: When a note's class is one the loaded model lacks, try these in order.
FALLBACK_CLASSES: tuple[str, ...] = ("percussion", "other")


def gm_note_class(note: int) -> str:
    """The drum class of a General MIDI percussion note (others are percussion)."""
    if not 0 <= note <= 127:
        raise ValueError(f"MIDI note {note} out of range 0..127")
    return GM_DRUM_MAP.get(note, "percussion")


def playable_class(wanted: str, classes: Sequence[str]) -> str | None:
    """The class a model plays for `wanted`: it, else the first fallback it has, else None."""
    for name in (wanted, *FALLBACK_CLASSES):
        if name in classes:
            return name
    return None


def class_note(drum_class: str, note_map: Mapping[int, str]) -> int | None:
    """The note `note_map` calls `drum_class` by: its usual GM note when mapped to it, else the
    lowest note that plays it (None when none does)."""
    notes = sorted(n for n, c in note_map.items() if c == drum_class)
    usual = GM_CLASS_NOTES.get(drum_class)
    return usual if usual in notes else (notes[0] if notes else None)
