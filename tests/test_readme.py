"""The README's two commands exist, point at real files, and CI runs the same test command."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _blocks() -> list[str]:
    text = (REPO / "README.md").read_text()
    return [b.strip() for b in re.findall(r"```sh\n(.*?)```", text, flags=re.S)]


def test_first_two_blocks_are_run_and_test_commands() -> None:
    run, test = _blocks()[:2]
    assert run == "scripts/setup.sh && .venv/bin/drumdiff serve"
    assert test.startswith("scripts/setup.sh --test && ") and "pytest" in test
    assert (REPO / "scripts" / "setup.sh").stat().st_mode & 0o111


def test_ci_runs_the_readme_test_command() -> None:
    test = _blocks()[1]
    ci = (REPO / ".ci" / "run").read_text()
    setup, *runners = test.split(" && ")
    assert setup in ci and " && ".join(runners) in ci


def test_every_subcommand_in_the_readme_table_exists() -> None:
    from drumdiff.cli import COMMANDS

    text = (REPO / "README.md").read_text()
    named = set(re.findall(r"^\| `([a-z]+)` \|", text, flags=re.M))
    assert named and named <= set(COMMANDS)
