"""`drumdiff bench` runs end to end on the tiny config and writes the documented JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from drumdiff_testkit import TINY_CONFIG

from drumdiff import bench, cli


def test_bench_tiny_config_writes_json_and_a_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results" / "bench.json"
    rc = cli.main(
        [
            "bench",
            "--configs",
            str(TINY_CONFIG),
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--batch",
            "2",
            "--steps",
            "2,3",
            "--render-batches",
            "1,2",
            "--threads",
            "1",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    report = json.loads(out.read_text())
    env = report["environment"]
    assert env["device"] == "cpu" and env["torch"] and env["threads"] == 1
    assert report["settings"]["steps"] == [2, 3] and report["settings"]["render_batches"] == [1, 2]
    (result,) = report["results"]
    assert result["name"] == "tiny-test" and result["config"].endswith("tiny-test.yaml")
    assert result["parameters"] > 1000 and result["length"] == 2048
    assert result["sample_rate"] == 44100
    train = result["train"]
    assert train["batch"] == 2 and train["steps"] == 1
    assert train["clips_per_s"] > 0 and train["s_per_step"] > 0 and train["peak_mem_mb"] > 0
    assert [(e["steps"], e["batch"]) for e in result["render"]] == [(2, 1), (2, 2), (3, 1), (3, 2)]
    for entry in result["render"]:
        assert entry["ms_per_hit"] > 0 and entry["peak_mem_mb"] > 0
        assert entry["ms_per_batch"] == pytest.approx(entry["ms_per_hit"] * entry["batch"])
        assert entry["sampler"] == "dpmpp-2m" and entry["network_evaluations"] == entry["steps"]
        assert entry["network_batch"] == 2 * entry["batch"]  # guidance 2: conditional + null
    assert result["peak_mem_mb"] >= train["peak_mem_mb"]
    table = capsys.readouterr().out
    assert "tiny-test" in table and "2 steps b1 ms/hit" in table and "train clips/s (b2)" in table
    assert str(out.resolve()) in table


def test_bench_skip_train_and_sampler(tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    rc = bench.main(
        [
            "--configs",
            str(TINY_CONFIG),
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--skip-train",
            "--steps",
            "2",
            "--render-batches",
            "1",
            "--sampler",
            "heun",
            "--out",
            str(out),
            "--set",
            "sampling.guidance=1.0",
        ]
    )
    assert rc == 0
    (result,) = json.loads(out.read_text())["results"]
    assert result["train"] is None
    (entry,) = result["render"]
    assert (
        entry["sampler"] == "heun" and entry["network_evaluations"] == 2
    )  # Euler first and last steps
    assert entry["guidance"] == 1.0 and entry["network_batch"] == 1


def test_bench_skips_non_model_yaml(tmp_path: Path) -> None:
    (tmp_path / "server.yaml").write_text("osc:\n  port: 9000\n")
    (tmp_path / "small.yaml").write_text("model:\n  length: 1024\n")
    (tmp_path / "notes.yaml").write_text("name: only a name\n")
    assert [p.name for p in bench.model_configs(tmp_path)] == ["small.yaml"]
    assert TINY_CONFIG in bench.model_configs(TINY_CONFIG.parent)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--steps", "a,b"], "expected integers"),
        (["--render-batches", "0"], "positive integers"),
        (["--repeats", "0"], "at least 1"),
        (["--configs", "nope.yaml"], "does not exist"),
    ],
)
def test_bench_argument_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert bench.main([*args, "--out", str(tmp_path / "x.json")]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_bench_records_a_failing_config_and_goes_on(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  lenght: 3\n")
    out = tmp_path / "b.json"
    rc = bench.main(
        [
            "--configs",
            str(bad),
            str(TINY_CONFIG),
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--skip-train",
            "--steps",
            "1",
            "--render-batches",
            "1",
            "--out",
            str(out),
        ]
    )
    assert rc == 1
    first, second = json.loads(out.read_text())["results"]
    assert "unknown config key" in first["error"]
    assert second["name"] == "tiny-test" and second["render"]
