"""Two CPU processes with gloo train a few steps through DDP and end with identical weights."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _audio_fixtures import prepared

from drumdiff.model.config import load_config
from drumdiff.model.train.trainer import Trainer

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny-test.yaml"
# Two micro-batches per step, so the no_sync path of gradient accumulation runs too.
OVERRIDES = [
    "train.batch_size=2",
    "train.grad_accumulation=2",
    "train.max_steps=3",
    "train.validate_every=0",
    "train.log_every=1",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _worker(rank: int, world: int, port: int, dataset: str, out: str) -> None:
    """One torchrun-like process: the environment is what Trainer's init_distributed reads."""
    os.environ.update(
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(world),
            "OMP_NUM_THREADS": "1",
        }
    )
    torch.set_num_threads(1)
    config = load_config(TINY, OVERRIDES)
    trainer = Trainer(
        config, dataset, Path(out) / "run", device=torch.device("cpu"), log=lambda _m: None
    )
    assert trainer.dist.world == world and trainer.dist.rank == rank
    initial = {k: v.clone() for k, v in trainer.net.state_dict().items()}
    trainer.write_run_files()
    state = trainer.fit(progress=False)
    torch.save(
        {
            "initial": initial,
            "model": trainer.net.state_dict(),
            "ema": trainer.ema.model.state_dict(),
            "step": state.step,
            "stream": trainer.stream.state(),
        },
        Path(out) / f"rank{rank}.pt",
    )
    dist.barrier()
    dist.destroy_process_group()


def test_two_gloo_processes_end_with_identical_weights(tmp_path: Path) -> None:
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    dataset = prepared(tmp_path, load_config(TINY), kits=4, per_kit=6)
    mp.spawn(_worker, args=(2, _free_port(), str(dataset), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for key in ("initial", "model", "ema"):
        a, b = ranks[0][key], ranks[1][key]
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), f"{key} differs between ranks"
    assert ranks[0]["step"] == ranks[1]["step"] == 3
    assert (
        ranks[0]["stream"] == ranks[1]["stream"] == {"epoch": 1, "position": 12}
    )  # 24 clips from 12
    changed = [
        k
        for k in ranks[0]["model"]
        if not torch.equal(ranks[0]["model"][k], ranks[0]["initial"][k])
    ]
    assert changed, "the weights did not move"
    # Only rank 0 writes the run folder: one checkpoint series, one metrics file.
    run = tmp_path / "run"
    assert (run / "last.pt").exists() and (run / "checkpoints" / "step-0000003.pt").exists()
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]  # one row per step: no second writer
