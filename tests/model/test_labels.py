"""Drum-class labels from instrument, file and folder names, and from General MIDI notes."""

from __future__ import annotations

import pytest

from drumdiff.model.config import DRUM_CLASSES
from drumdiff.model.labels import (
    GM_CLASS_NOTES,
    GM_DRUM_MAP,
    gm_note_class,
    label_from_name,
    label_from_names,
    normalise_name,
)


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("Kick", "kick"),
        ("BD_01", "kick"),
        ("bd3", "kick"),
        ("Bass Drum 2", "kick"),
        ("808 kik", "kick"),
        ("Snare", "snare"),
        ("SD-hard", "snare"),
        ("snr_ghost", "snare"),
        ("Rimshot", "snare"),
        ("Side Stick", "snare"),
        ("Clap", "clap"),
        ("HandClap_03", "clap"),
        ("HH closed", "closed_hat"),
        ("ClosedHat", "closed_hat"),
        ("CH", "closed_hat"),
        ("Hihat Pedal", "closed_hat"),
        ("hh2", "closed_hat"),
        ("HH_Open-02", "open_hat"),
        ("Open Hat", "open_hat"),
        ("OH", "open_hat"),
        ("Hat Semi Open", "open_hat"),
        ("Tom Hi", "tom"),
        ("Floor Tom", "tom"),
        ("Crash", "crash"),
        ("Splash 10", "crash"),
        ("China", "crash"),
        ("Ride", "ride"),
        ("Ride Bell", "ride"),
        ("Cowbell", "percussion"),
        ("Shaker", "percussion"),
        ("Tambourine", "percussion"),
        ("Conga Lo", "percussion"),
        ("Perc 4", "percussion"),
        ("Snaps", "percussion"),
        ("guitar strum", "other"),
        ("Am7", "other"),
        ("", "other"),
    ],
)
def test_label_from_name(name: str, label: str) -> None:
    assert label_from_name(name) == label
    assert label in DRUM_CLASSES


def test_normalise_name_splits_separators_and_camel_case() -> None:
    assert normalise_name("HH_Open-02.wav") == "hh open 02 wav"
    assert normalise_name("ClosedHat") == "closed hat"


def test_label_from_names_takes_the_first_informative_name() -> None:
    # Instrument name wins, then the file name, then the folder.
    assert label_from_names("Snare", "kick_01", "Kicks") == "snare"
    assert label_from_names("Layer 1", "kick_01", "Snares") == "kick"
    assert label_from_names("", "sample 3", "Claps") == "clap"
    assert label_from_names("", "sample 3", "misc") == "other"


@pytest.mark.parametrize(
    ("note", "label"),
    [
        (35, "kick"),
        (36, "kick"),
        (38, "snare"),
        (40, "snare"),
        (37, "snare"),
        (39, "clap"),
        (42, "closed_hat"),
        (44, "closed_hat"),
        (46, "open_hat"),
        (41, "tom"),
        (50, "tom"),
        (49, "crash"),
        (57, "crash"),
        (51, "ride"),
        (53, "ride"),
        (56, "percussion"),
        (75, "percussion"),
        (0, "percussion"),
    ],
)
def test_gm_note_class(note: int, label: str) -> None:
    assert gm_note_class(note) == label


def test_gm_map_covers_only_known_classes() -> None:
    assert set(GM_DRUM_MAP.values()) <= set(DRUM_CLASSES)
    with pytest.raises(ValueError, match="out of range"):
        gm_note_class(128)
    with pytest.raises(ValueError, match="out of range"):
        gm_note_class(-1)


def test_each_class_note_plays_its_class() -> None:
    assert {GM_DRUM_MAP[note] for note in GM_CLASS_NOTES.values()} == set(GM_CLASS_NOTES)
    assert all(GM_DRUM_MAP[note] == name for name, note in GM_CLASS_NOTES.items())


def test_playable_class_and_class_note() -> None:
    from drumdiff.model.labels import class_note, playable_class

    assert playable_class("tom", ("kick", "tom")) == "tom"
    assert playable_class("ride", ("kick", "percussion")) == "percussion"
    assert playable_class("ride", ("kick",)) is None
    assert class_note("snare", GM_DRUM_MAP) == 38  # not 37, the side stick
    assert class_note("kick", {35: "kick"}) == 35
    assert class_note("clap", {36: "kick"}) is None
