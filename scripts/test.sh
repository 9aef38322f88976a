#!/bin/sh
# Runs the code checks (scripts/lint.sh), then the test suite, in the checkout's tool environment (.venv,
# made if missing). The tests run even when a check fails; the exit status is the tests', else the checks'.
#   sh scripts/test.sh [pytest options]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib.sh"

ensure_test_env
cd "$root"
checks=0
sh "$root/scripts/lint.sh" || checks=$?
tests=0
"$root/.venv/bin/python" -m pytest "$@" || tests=$?
[ "$checks" -eq 0 ] || echo "The code checks failed (ruff or mypy, above); see docs/testing.md." >&2
[ "$tests" -ne 0 ] && exit "$tests"
exit "$checks"
