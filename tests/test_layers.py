"""The direction of imports: each stage of the library uses only the stages before it, and the
daemon only the model, rendering and the top-level modules (never data, training or the judge)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: What each part may import from drumdiff.model ("top": its top-level modules).
ALLOWED: dict[str, set[str]] = {
    "top": {"top"},
    "core": {"top", "core"},
    "render": {"top", "core", "render"},
    "data": {"top", "data"},
    "judge": {"top", "core", "render", "data", "judge"},
    "train": {"top", "core", "render", "data", "judge", "train"},
    "server": {"top", "core", "render"},
}
STAGES = {"core", "render", "data", "judge", "train"}


def _part(path: Path) -> str:
    rel = path.relative_to(REPO)
    if rel.parts[0] == "server":
        return "server"
    return rel.parts[1] if rel.parts[1] in STAGES else "top"


def _imported(path: Path) -> set[str]:
    """Every drumdiff module `path` imports, at the top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n.startswith("drumdiff.")}


def _target(module: str) -> str | None:
    """The part of the project a module name belongs to (None: the CLI package itself)."""
    parts = module.split(".")
    if parts[1] == "server":
        return "server"
    if parts[1] != "model":
        return None
    if len(parts) > 2 and parts[2] in STAGES:
        return parts[2]
    return "top"


def test_every_import_goes_the_allowed_way() -> None:
    wrong = []
    files = [*(REPO / "model").rglob("*.py"), *(REPO / "server").rglob("*.py")]
    assert len(files) > 40
    for path in files:
        part = _part(path)
        for module in _imported(path):
            target = _target(module)
            if target == "server" and part == "server":
                continue
            if target is None or target not in ALLOWED[part]:
                wrong.append(f"{path.relative_to(REPO)} ({part}) imports {module}")
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_a_wrong_import(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from drumdiff.model.train.trainer import Trainer\n")
    assert _imported(probe) == {
        "drumdiff.model.train.trainer",
        "drumdiff.model.train.trainer.Trainer",
    }
    assert _target("drumdiff.model.train.trainer") not in ALLOWED["server"]
