#!/bin/sh
# The first command on a fresh machine: find a Python 3.11+, make the checkout's tool
# environment (.venv) with mlxtasks in it, then run `invoke setup` with your options.
#   sh bootstrap.sh [--python PATH] [any `invoke setup` option, e.g. --yes]
set -eu
root=$(cd "$(dirname "$0")" && pwd)
. "$root/scripts/lib.sh"

python=""
previous=""
for arg in "$@"; do
    case "$arg" in --python=*) python=${arg#--python=} ;; esac
    case "$previous" in --python|-p) python=$arg ;; esac
    previous=$arg
done

if [ -n "$python" ]; then
    path=$(command -v "$python" 2>/dev/null) || {
        echo "The Python '$python' given with --python does not exist." >&2
        echo "  Fix: pass the path of an installed Python 3.11 or newer: sh bootstrap.sh --python /path/to/python3.12" >&2
        exit 1
    }
    python_suitable "$path" || no_python "$path"
else
    find_python || no_python "$rejected"
fi

ensure_tool_env "$python" "" "mlxtasks, invoke, psutil, colorama, packaging, uv, huggingface_hub"
cd "$root"
exec "$root/.venv/bin/invoke" setup "$@"
