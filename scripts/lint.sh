#!/bin/sh
# The code checks, as pyproject.toml sets them: ruff's lint rules, ruff's format, mypy. Run by
# scripts/test.sh (and so by CI) before the tests; alone, in the tool environment (.venv, made if missing):
#   sh scripts/lint.sh
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib.sh"

ensure_test_env
cd "$root"
status=0
"$root/.venv/bin/ruff" check --quiet --output-format concise . || status=1
"$root/.venv/bin/ruff" format --check --quiet --output-format concise . || status=1
"$root/.venv/bin/mypy" || status=1
exit "$status"
