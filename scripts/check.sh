#!/usr/bin/env bash
# The house checks: ruff lint, ruff format and mypy over the code as it installs
# (drumdiff, drumdiff.model from model/, drumdiff.server from server/).
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin
$py/ruff check .
$py/ruff format --check .
# mypy cannot follow setuptools' package-dir mapping of an editable install, so it reads a view
# of the package as installed: drumdiff/ with model/ and server/ linked inside it.
view=$(mktemp -d)
trap 'rm -rf "$view"' EXIT
mkdir "$view/drumdiff"
for f in drumdiff/*.py; do ln -s "$(pwd)/$f" "$view/drumdiff/"; done
ln -s "$(pwd)/model" "$view/drumdiff/model"
ln -s "$(pwd)/server" "$view/drumdiff/server"
(cd "$view" && MYPYPATH= "$OLDPWD/$py/mypy" --config-file "$OLDPWD/pyproject.toml" -p drumdiff)
