#!/bin/sh
# Runs the whole test suite in the checkout's tool environment (.venv), made if missing.
#   sh scripts/test.sh [pytest options]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib.sh"

find_python || no_python "$rejected"
ensure_tool_env "$python" "[test]" "mlxtasks, invoke, psutil, colorama, packaging, uv, huggingface_hub, pytest, pexpect, hypothesis, openai, langchain_openai, litellm, llm, anthropic"
cd "$root"
exec "$root/.venv/bin/python" -m pytest "$@"
