"""`drumdiff kit` end to end, and one real client playing the kit: Hydrogen's h2cli validates
the .h2drumkit and exports a pattern played on it, and the kit's hits are found in the export."""

from __future__ import annotations

import io
import itertools
import json
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from drumdiff_testkit import TINY_CONFIG

from drumdiff import cli
from drumdiff.model.render.kit import hydrogen_song_xml, load_kit_json

H2CLI = shutil.which("h2cli")
needs_h2cli = pytest.mark.skipif(
    H2CLI is None, reason="h2cli not installed (Debian package hydrogen)"
)
NOBODY = 65534


def _kit(out: Path, *args: str) -> int:
    return cli.main(
        ["kit", "--config", str(TINY_CONFIG), "--out", str(out), "--name", "cli", *args]
    )


@pytest.fixture(scope="module")
def cli_kit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("clikit")
    assert (
        _kit(out, "--round-robin", "2", "--velocity-layers", "2", "--seed", "3", "--steps", "2")
        == 0
    )
    return out


def test_kit_command_writes_every_format(cli_kit: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("kit.json", "cli.sfz", "cli.dspreset", "cli.h2drumkit"):
        assert (cli_kit / name).is_file()
    meta = json.loads((cli_kit / "kit.json").read_text())
    # The tiny model knows kick, snare, closed_hat and clap: the pads of those GM notes only.
    assert [p["note"] for p in meta["pads"]] == [36, 37, 38, 39, 40, 42, 44]
    assert meta["round_robin"] == 2 and len(meta["layers"]) == 2
    assert meta["model"] == {"config": str(TINY_CONFIG), "random_weights_seed": 0}
    assert len(list((cli_kit / "samples").rglob("*.wav"))) == 7 * 2


def test_kit_from_json_is_byte_identical(cli_kit: Path, tmp_path: Path) -> None:
    assert cli.main(["kit", "--from", str(cli_kit / "kit.json"), "--out", str(tmp_path)]) == 0
    files = sorted(p.relative_to(cli_kit) for p in cli_kit.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    for rel in files:
        assert (cli_kit / rel).read_bytes() == (tmp_path / rel).read_bytes(), rel


def test_kit_formats_and_classes_options(tmp_path: Path) -> None:
    assert (
        _kit(
            tmp_path,
            "--format",
            "sfz",
            "--classes",
            "kick",
            "clap",
            "--round-robin",
            "1",
            "--steps",
            "1",
        )
        == 0
    )
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["cli.sfz", "kit.json"]
    meta = json.loads((tmp_path / "kit.json").read_text())
    assert [p["note"] for p in meta["pads"]] == [36, 39]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--round-robin", "0"], "round robin must be 1..16"),
        (["--velocity-layers", "20"], "velocity layers must be 1..16"),
        (["--round-robin", "9", "--velocity-layers", "2"], "Hydrogen holds at most 16"),
        (["--name", "a/b"], "kit name"),
        (["--length-cymbals", "-1"], "cymbal length"),
    ],
)
def test_kit_bad_requests_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert _kit(tmp_path / "k", *args) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "k").exists()


def test_kit_refuses_a_folder_that_holds_something(
    cli_kit: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sorted(p.relative_to(cli_kit) for p in cli_kit.rglob("*"))
    assert _kit(cli_kit) == 1
    assert "is not an empty folder" in capsys.readouterr().err
    assert sorted(p.relative_to(cli_kit) for p in cli_kit.rglob("*")) == before


def test_kit_bad_format_and_bad_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _kit(tmp_path, "--format", "sfz,kontakt")
    assert exc.value.code == 2
    assert "formats must be" in capsys.readouterr().err
    (tmp_path / "kit.json").write_text('{"format": "other"}')
    assert (
        cli.main(["kit", "--from", str(tmp_path / "kit.json"), "--out", str(tmp_path / "o")]) == 1
    )
    assert "not a drumdiff kit.json" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Hydrogen


@pytest.fixture
def h2_home() -> Iterator[Path]:
    """A world-writable scratch folder outside pytest's (root-only) tmp tree: h2cli runs as
    `nobody` there when the tests run as root (see `_h2cli`)."""
    path = Path(tempfile.mkdtemp(prefix="drumdiff-h2-", dir="/tmp"))
    path.chmod(0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _h2cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run h2cli headless with its own HOME and TMPDIR inside `home`.

    As root, Hydrogen 1.2 rewrites ("upgrades") every system kit under /usr/share/hydrogen in
    place when it starts, so it runs as `nobody` then, which cannot write there.
    """
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(home), TMPDIR=str(home / "tmp"))
    (home / "tmp").mkdir(exist_ok=True)
    command = [str(H2CLI), *args]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: h2cli would rewrite the system kits")
        for path in home.rglob("*"):
            path.chmod(path.stat().st_mode | stat.S_IRWXO)
        (home / "tmp").chmod(0o777)
        command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command]
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300, check=False
    )


@needs_h2cli
@pytest.mark.slow  # h2cli reads every installed kit at start-up: ~10 s a call here
def test_h2cli_says_the_kit_is_valid(cli_kit: Path, h2_home: Path) -> None:
    kit = h2_home / "cli.h2drumkit"
    shutil.copy(cli_kit / "cli.h2drumkit", kit)
    done = _h2cli(h2_home, "-c", str(kit))
    assert f"Provided drumkit [{kit}] is valid" in done.stdout + done.stderr, (
        done.stdout + done.stderr
    )[-2000:]
    # The check is a real one: a kit whose drumkit.xml lacks required elements is refused.
    broken = h2_home / "broken.h2drumkit"
    with tarfile.open(kit, "r:gz") as src, tarfile.open(broken, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if member.name.endswith("drumkit.xml") and data is not None:
                data = data.replace(b"componentList>", b"componentLizt>")
                member.size = len(data)
            dst.addfile(member, None if data is None else io.BytesIO(data))
    done = _h2cli(h2_home, "-c", str(broken))
    assert "is INVALID" in done.stdout + done.stderr


@needs_h2cli
@pytest.mark.slow  # h2cli reads every installed kit at start-up: ~10 s a call here
def test_hydrogen_plays_the_kit(cli_kit: Path, h2_home: Path) -> None:
    plan = load_kit_json(cli_kit / "kit.json")
    shutil.copy(cli_kit / "cli.h2drumkit", h2_home / "cli.h2drumkit")
    bpm, ticks_per_beat = 120.0, 48
    # kick, snare, closed hat (soft: the gain-made lower layer), clap, kick (medium)
    pattern = [(36, 0, 0.9), (38, 48, 0.9), (42, 96, 0.3), (39, 120, 0.8), (36, 144, 0.6)]
    song = h2_home / "check.h2song"
    song.write_text(hydrogen_song_xml(plan, pattern, bpm=bpm))
    installed = _h2cli(h2_home, "-i", str(h2_home / "cli.h2drumkit"))
    assert (h2_home / ".hydrogen" / "data" / "drumkits" / "cli" / "drumkit.xml").is_file(), (
        installed.stderr[-2000:]
    )
    out = h2_home / "out.wav"
    done = _h2cli(h2_home, "-s", str(song), "-k", "cli", "-o", str(out))
    assert out.is_file(), (done.stdout + done.stderr)[-3000:]
    mix, rate = sf.read(out, always_2d=True)
    assert rate == plan_rate(cli_kit)
    mono = mix.mean(axis=1)
    sr = rate
    seconds_per_tick = 60.0 / bpm / ticks_per_beat
    by_note = {p.note: p for p in plan.pads}
    onsets = [round(tick * seconds_per_tick * sr) for _, tick, _ in pattern]
    for (note, tick, _velocity), start in zip(pattern, onsets):
        window = mono[start : start + 1500]
        assert np.sqrt(np.mean(window**2)) > 1e-3, f"no sound where note {note} plays"
        # It is this kit's hit: the export around the onset matches one of the pad's round robins.
        best = 0.0
        for hit in by_note[note].hits:
            take = sf.read(cli_kit / hit.file)[0]
            take = take if take.ndim == 1 else take.mean(axis=1)
            n = min(len(take), 1500)
            for shift in range(-64, 65):
                seg = mono[max(0, start + shift) : max(0, start + shift) + n]
                if len(seg) < n:
                    continue
                corr = float(
                    np.dot(seg, take[:n]) / (np.linalg.norm(seg) * np.linalg.norm(take[:n]) + 1e-12)
                )
                best = max(best, corr)
        assert best > 0.9, f"note {note} at tick {tick}: best match with the kit's hits {best:.2f}"
    # Between the hits (after the tiny model's 46 ms one-shots have ended) there is silence.
    for a, b in itertools.pairwise(onsets):
        gap = mono[a + 2500 : b - 100]
        assert np.abs(gap).max() < 1e-3
    # Velocity reaches the sound: the soft closed hat (layer 1, -12 dB, velocity 0.3) is quieter
    # than the hard snare.
    levels = [np.abs(mono[s : s + 1500]).max() for s in onsets]
    assert levels[2] < 0.3 * levels[1]


def plan_rate(kit: Path) -> int:
    take = next((kit / "samples").rglob("*.wav"))
    return sf.info(take).samplerate
