"""Drum-class labels from instrument, file and folder names, and from General MIDI notes."""

from __future__ import annotations

import re

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


# General MIDI percussion key map (channel 10), notes 35-81, grouped into drumdiff's classes.
GM_DRUM_NOTES: dict[int, str] = {
    35: "kick",
    36: "kick",
    37: "snare",
    38: "snare",
    40: "snare",
    39: "clap",
    42: "closed_hat",
    44: "closed_hat",
    46: "open_hat",
    41: "tom",
    43: "tom",
    45: "tom",
    47: "tom",
    48: "tom",
    50: "tom",
    49: "crash",
    52: "crash",
    55: "crash",
    57: "crash",
    51: "ride",
    53: "ride",
    59: "ride",
}


def gm_note_class(note: int) -> str:
    """The drum class of a General MIDI percussion note (others are percussion)."""
    if not 0 <= note <= 127:
        raise ValueError(f"MIDI note {note} out of range 0..127")
    return GM_DRUM_NOTES.get(note, "percussion")
