"""Faults: the watched folder deleted, replaced, read-only or full; SIGKILL while writing; bad
checkpoints. Each answers `fail` with the reason, and the daemon recovers as soon as it can.

Covered elsewhere, not repeated here:
- SIGKILL in the middle of training, then resume: tests/model/test_train.py
  (test_sigkilled_cli_run_resumes_from_its_last_checkpoint, test_resume_matches_uninterrupted_run);
- a dataset full of bad files prepares what is good and lists each reject with its reason:
  tests/model/test_data.py (test_prepare_keeps_good_files_with_right_labels,
  test_prepare_lists_each_reject_with_its_reason, test_prepare_with_nothing_usable_fails_loudly);
- a checkpoint file that is truncated, foreign, empty or of a newer format, loaded directly:
  tests/model/test_checkpoint.py.

Read-only and full folders use a small tmpfs: tests run as root, and root writes through file
modes, so only a read-only mount or a full file system really stops it. Without permission to
mount (not root, or a container without CAP_SYS_ADMIN) those two tests are skipped.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
from drumdiff_testkit import serve_command

from drumdiff.model.config import load_config
from drumdiff.model.core.checkpoint import LoadedModel, build_model, save_checkpoint
from drumdiff.server import protocol
from drumdiff.server.config import WriterConfig
from drumdiff.server.writer import HIT_NAME, HitWriter
from tests.server.conftest import REPO, TINY


def render(client: Any, rid: str) -> tuple[str, list[Any]]:
    return client.ask(protocol.RENDER, "kick", 100, "id", rid, "fresh", 1)


def assert_fails_with(client: Any, rid: str, reason: str) -> None:
    address, args = render(client, rid)
    assert address == protocol.FAIL, args
    assert args[0] == rid and args[1] == "render_error" and reason in args[2], args


def visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def test_deleted_folder_is_made_again_and_a_missing_parent_recovers(
    daemon_factory: Any, client_factory: Any, tmp_path: Path
) -> None:
    drive = tmp_path / "drive"
    folder = drive / "hits"
    daemon = daemon_factory(f"writer.folder={folder}")
    client = client_factory(daemon.osc_address)
    assert render(client, "a")[0] == protocol.DONE
    shutil.rmtree(folder)  # tidied away while serving
    address, args = render(client, "b")
    assert address == protocol.DONE and Path(args[1]).parent == folder and Path(args[1]).is_file()
    shutil.rmtree(
        drive
    )  # the drive itself is gone (unmounted): no folder is made on its mount point
    assert_fails_with(client, "c", "No such file or directory")
    assert not drive.exists()
    drive.mkdir()  # back again
    assert render(client, "d")[0] == protocol.DONE
    assert [p.name for p in visible(folder)] and len(visible(folder)) == 1


def test_folder_replaced_by_a_file(
    daemon_factory: Any, client_factory: Any, tmp_path: Path
) -> None:
    daemon = daemon_factory()
    client = client_factory(daemon.osc_address)
    folder = daemon.writer.folder
    shutil.rmtree(folder)
    folder.write_bytes(b"not a folder")
    assert_fails_with(client, "x", "File exists")
    folder.unlink()
    assert render(client, "y")[0] == protocol.DONE


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip() or result.returncode}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def remount(path: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True, capture_output=True)


def test_read_only_folder_fails_with_the_reason_and_recovers(
    daemon_factory: Any, client_factory: Any, tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "ro", "1m") as folder:
        daemon = daemon_factory(f"writer.folder={folder}")
        client = client_factory(daemon.osc_address)
        assert render(client, "before")[0] == protocol.DONE
        remount(folder, "ro")
        try:
            assert_fails_with(client, "ro-1", "Read-only file system")
            assert_fails_with(client, "ro-2", "Read-only file system")
            assert client.ask(protocol.PING, 1) == (protocol.PONG, [1])
        finally:
            remount(folder, "rw")
        assert render(client, "after")[0] == protocol.DONE
        assert len(visible(folder)) == 2 and not [
            p for p in folder.iterdir() if p.name.startswith(".")
        ]
        daemon.stop()


def test_full_disk_fails_with_the_reason_leaves_no_partial_file_and_recovers(
    daemon_factory: Any, client_factory: Any, tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "full", "256k") as folder:
        daemon = daemon_factory(f"writer.folder={folder}")
        client = client_factory(daemon.osc_address)
        assert render(client, "before")[0] == protocol.DONE
        filler = folder / "filler.bin"  # not a hit name: the daemon never touches it
        with open(filler, "wb", buffering=0) as fh:
            try:
                while True:
                    fh.write(b"\x00" * 4096)
                    fh.flush()
            except OSError as err:
                assert err.errno == errno.ENOSPC
        assert_fails_with(client, "full", "No space left on device")
        assert not [p for p in folder.iterdir() if p.name.startswith(".")], (
            "a partial temporary was left"
        )
        filler.unlink()
        assert render(client, "after")[0] == protocol.DONE
        assert len([p for p in visible(folder) if HIT_NAME.match(p.name)]) == 2
        daemon.stop()


def test_sigkill_while_writing_leaves_no_partial_file_under_a_visible_name(
    tmp_path: Path, client_factory: Any
) -> None:
    """Large float files written back to back, the daemon SIGKILLed after the first `done`."""

    model_yaml = tmp_path / "long.yaml"
    model_yaml.write_text(
        TINY.read_text().replace("length: 2048", "length: 32768")
    )  # 128 KB float files
    folder = tmp_path / "hits"
    proc = subprocess.Popen(
        serve_command(
            "--model-config",
            str(model_yaml),
            "--port",
            "0",
            "--folder",
            str(folder),
            "--no-midi",
            "--seed",
            "1",
            "--set",
            "engine.pool_size=0",
            "--set",
            "engine.warmup=false",
            "--set",
            "writer.subtype=FLOAT",
            "--set",
            "engine.max_batch=4",
        ),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "JACK_NO_START_SERVER": "1"},
    )
    try:
        assert proc.stdout is not None
        match = re.search(r"ready on udp ([\d.]+):(\d+)", proc.stdout.readline())
        assert match, "serve did not start"
        client = client_factory((match.group(1), int(match.group(2))))
        for i in range(8):
            client.send(protocol.RENDER, "kick", 100, "id", i, "fresh", 1, "steps", 1)
        while client.recv(timeout=60.0)[0] != protocol.DONE:
            pass
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    shown = visible(folder)
    assert shown, "at least the first hit was published"
    for path in shown:  # every visible file is a whole WAV of the full length
        assert HIT_NAME.match(path.name)
        data, sr = sf.read(path, dtype="float32")
        assert sr == 44100 and len(data) == 32768 and np.isfinite(data).all()
    hidden = [p.name for p in folder.iterdir() if p.name.startswith(".")]
    assert all(re.fullmatch(rf"\..+\.wav\.part-{proc.pid}", name) for name in hidden), hidden

    # The next daemon on the folder removes what a killed one left, never a live writer's file.
    stale = folder / f".kick_n036_v100_s1_20260101-000000-000_1.wav.part-{proc.pid}"
    stale.write_bytes(b"RIFF")
    # (the writer runs in this process, whose own pid it treats as stale: the parent is alive)
    live = folder / f".kick_n036_v100_s1_20260101-000000-000_2.wav.part-{os.getppid()}"
    live.write_bytes(b"RIFF")
    writer = HitWriter(WriterConfig(folder=str(folder)), software="t")
    writer.start()
    writer.stop()
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == [live.name]
    assert visible(folder) == shown


def test_corrupt_checkpoints_keep_the_old_model(
    daemon_factory: Any, client_factory: Any, tmp_path: Path, tiny_model: LoadedModel
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    config = load_config(TINY)
    good = save_checkpoint(
        models / "good.pt",
        config,
        model_state=None,
        ema_state=tiny_model.denoiser.net.state_dict(),
        step=5,
    )
    raw = good.read_bytes()
    (models / "truncated.pt").write_bytes(raw[: len(raw) // 2])
    (models / "empty.pt").write_bytes(b"")
    (models / "zip-garbage.pt").write_bytes(b"PK\x03\x04" + os.urandom(4096))
    other = load_config(TINY, ["model.widths=[16, 48]"])

    mismatched = save_checkpoint(
        models / "mismatch.pt",
        config,
        model_state=None,
        ema_state=build_model(other).net.state_dict(),
    )
    assert mismatched.exists()
    torch.save({"weights": [1, 2, 3]}, models / "foreign.pt")

    daemon = daemon_factory()
    client = client_factory(daemon.osc_address)
    for name in ("truncated.pt", "empty.pt", "zip-garbage.pt", "mismatch.pt", "foreign.pt"):
        address, args = client.ask(protocol.LOAD, name)
        assert (address, args[:2]) == (protocol.FAIL, ["load", "bad_checkpoint"]), (name, args)
        assert daemon.engine.model is tiny_model
        assert client.ask(protocol.STATUS)[1][0] == "random:tiny-test"
        assert render(client, f"after-{name}")[0] == protocol.DONE
    assert client.ask(protocol.LOAD, "good.pt") == (protocol.LOADED, [str(good.resolve()), 5])
