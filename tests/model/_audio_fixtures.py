"""Generated drum folders for the data and training tests (plain helpers, no fixtures).

Everything is synthetic and tiny: sources are a few thousand samples, and datasets are prepared
with the tiny test config (2048-sample clips), so preparing one takes well under a second.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from drumdiff.model.config import Config
from drumdiff.model.data.dataset import prepare_dataset

RATE = 44100

#: No augmentation: tests that need exact targets (overfitting, resume) switch it off.
NO_AUGMENT = (
    "data.augment.phase_flip_p=0",
    "data.augment.pitch_p=0",
    "data.augment.saturation_p=0",
    "data.augment.gain_p=0",
)


def tone(
    freq: float,
    *,
    frames: int = 4000,
    rate: int = RATE,
    decay_s: float = 0.03,
    delay: int = 0,
    amp: float = 0.8,
    channels: int = 1,
) -> np.ndarray:
    """A decaying sine, float32 (C, T), with `delay` frames of leading silence."""
    t = np.arange(frames - delay) / rate
    body = amp * np.sin(2 * np.pi * freq * t) * np.exp(-t / decay_s)
    mono = np.concatenate([np.zeros(delay), body]).astype(np.float32)
    return np.stack([mono * (1.0 - 0.2 * c) for c in range(channels)])


def write(path: Path, samples: np.ndarray, rate: int = RATE, subtype: str = "PCM_16") -> Path:
    """Write (C, T) samples; `subtype` picks the bit depth (PCM_U8, PCM_16, FLOAT...)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(samples).T, rate, subtype=subtype)
    return path


NEW_LAYOUT_XML = """<?xml version="1.0" encoding="UTF-8"?>
<drumkit_info xmlns="http://www.hydrogen-music.org/drumkit">
 <name>New Kit</name>
 <license>CC-BY-SA-3.0</license>
 <instrumentList>
  <instrument>
   <id>0</id>
   <name>Kick</name>
   <midiOutNote>36</midiOutNote>
   <instrumentComponent>
    <component_id>0</component_id>
    <layer><filename>a-soft.wav</filename><min>0</min><max>0.5</max></layer>
    <layer><filename>a-hard.wav</filename><min>0.5</min><max>1</max></layer>
   </instrumentComponent>
  </instrument>
  <instrument>
   <id>1</id>
   <name>Hat Open</name>
   <layer><filename>b.wav</filename><min>0</min><max>1</max></layer>
  </instrument>
  <instrument>
   <id>2</id>
   <name>Snare</name>
   <layer><filename>gone.wav</filename><min>0</min><max>1</max></layer>
  </instrument>
 </instrumentList>
</drumkit_info>
"""

OLD_LAYOUT_XML = """<?xml version="1.0" encoding="UTF-8"?>
<drumkit_info>
 <name>Old Kit</name>
 <license>GPL</license>
 <instrumentList>
  <instrument><id>0</id><name>Ride Bell</name><filename>x1.flac</filename></instrument>
  <instrument><id>1</id><name>Tom Lo</name><filename>x2.wav</filename></instrument>
 </instrumentList>
</drumkit_info>
"""


def messy_source(root: Path) -> dict[str, object]:
    """A folder tree with good files, every kind of bad file and two Hydrogen kits.

    Returns what a correct `prepare` must find: the label of each kept file (by file name),
    the reason each bad file is rejected for (by file name), and the expected duplicate.
    """
    plain = root / "Plain Kit"
    write(plain / "Kick_01.wav", tone(60, decay_s=0.2, delay=300))
    write(plain / "SD snare top.wav", tone(220))
    write(plain / "HH closed.wav", tone(5000, decay_s=0.01))
    write(plain / "Clap stereo.wav", tone(1200, channels=2))  # stereo, mixed to mono
    write(plain / "tom_8bit.wav", tone(110), subtype="PCM_U8")  # 8-bit
    write(plain / "crash_96k.wav", tone(3000, rate=96000), rate=96000)  # resampled
    write(plain / "perc_shaker_3s.wav", tone(7000, frames=3 * RATE, decay_s=1.0))  # long tail
    write(plain / "whoosh.wav", tone(500, decay_s=0.05, amp=0.5))  # no class cue -> other
    # A copy of the kick in another folder: same content after normalisation.
    write(
        root / "Zz Copies" / "kick copy.wav", tone(60, decay_s=0.2, delay=300) * 0.5
    )  # after the original
    bad = root / "Broken"
    (bad / "corrupt.wav").parent.mkdir(parents=True, exist_ok=True)
    (bad / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really audio at all")
    (bad / "zero_bytes.wav").write_bytes(b"")
    write(bad / "empty.wav", np.zeros((1, 0), np.float32))
    write(bad / "silent.wav", np.zeros((1, 4000), np.float32))
    nan = tone(300)
    nan[0, 100] = np.nan
    write(bad / "nan.wav", nan, subtype="FLOAT")
    write(bad / "loop_40s.wav", np.full((1, 40 * 8000), 0.1, np.float32), rate=8000)
    (bad / "notes.txt").write_text("not audio, not scanned")
    zero_rate = bytearray((write(bad / "zero_rate.wav", tone(300))).read_bytes())
    zero_rate[24:32] = bytes(8)  # the fmt chunk's sample rate and byte rate
    (bad / "zero_rate.wav").write_bytes(bytes(zero_rate))
    new = root / "NewKit"
    (new / "drumkit.xml").parent.mkdir(parents=True, exist_ok=True)
    (new / "drumkit.xml").write_text(NEW_LAYOUT_XML)
    write(new / "a-soft.wav", tone(55, amp=0.3, decay_s=0.3))
    write(new / "a-hard.wav", tone(58, amp=0.9, decay_s=0.1))
    write(new / "b.wav", tone(8000, decay_s=0.2))
    old = root / "OldKit"
    (old / "drumkit.xml").parent.mkdir(parents=True, exist_ok=True)
    (old / "drumkit.xml").write_text(OLD_LAYOUT_XML)
    write(old / "x1.flac", tone(2500, decay_s=0.4), subtype="PCM_24")
    write(old / "x2.wav", tone(90, decay_s=0.15))
    return {
        "labels": {
            "Kick_01.wav": "kick",
            "SD snare top.wav": "snare",
            "HH closed.wav": "closed_hat",
            "Clap stereo.wav": "clap",
            "tom_8bit.wav": "tom",
            "crash_96k.wav": "crash",
            "perc_shaker_3s.wav": "percussion",
            "whoosh.wav": "other",
            "a-soft.wav": "kick",
            "a-hard.wav": "kick",
            "b.wav": "open_hat",
            "x1.flac": "ride",
            "x2.wav": "tom",
        },
        "kits": {
            "Kick_01.wav": "Plain Kit",
            "a-soft.wav": "New Kit",
            "x1.flac": "Old Kit",
        },
        "rejected": {
            "corrupt.wav": "unreadable",
            "zero_bytes.wav": "unreadable",
            "empty.wav": "empty",
            "zero_rate.wav": "unreadable",  # libsndfile refuses a zero rate itself
            "silent.wav": "silent",
            "nan.wav": "contains NaN or Inf",
            "loop_40s.wav": "too long",
            "gone.wav": "missing",
            "kick copy.wav": "duplicate",
        },
    }


def kit_tree(root: Path, kits: int = 6, per_kit: int = 4) -> Path:
    """`kits` plain kit folders of `per_kit` distinct hits (kick, snare, hat, clap cycling)."""
    names = ("kick", "snare", "hat", "clap")
    base = (60.0, 220.0, 5000.0, 1200.0)
    for k in range(kits):
        for i in range(per_kit):
            freq = base[i % 4] * (1 + 0.07 * k + 0.013 * (i // 4))
            write(root / f"kit{k:02d}" / f"{names[i % 4]}_{i:02d}.wav", tone(freq, decay_s=0.05))
    return root


def sustained_kit(root: Path) -> Path:
    """One kit of four sustained tones, one per class: easy targets to overfit."""
    for name, freq in (("kick", 60.0), ("snare", 200.0), ("hat", 3000.0), ("clap", 900.0)):
        write(root / "only" / f"{name}.wav", tone(freq, decay_s=1.0))
    return root


def prepared(root: Path, config: Config, *, kits: int = 1, per_kit: int = 8) -> Path:
    """A prepared dataset of `kits` x `per_kit` clips for `config` (all in train when kits <= 2)."""
    src = kit_tree(root / "src", kits, per_kit)
    out = root / "dataset"
    prepare_dataset([src], out, config.model, config.data)
    return out
