# Shared by bootstrap.sh and scripts/test.sh: POSIX sh, so it runs on a fresh Mac whose only
# python3 is 3.9. Keep the search order in step with mlxtasks/pythons.py.

# Print "VERSION" of the interpreter $1, or nothing when it does not run.
python_version() {
    "$1" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null
}

# Succeed when $1 is Python >= 3.11 and, on an Apple Silicon Mac, a native arm64 build.
python_suitable() {
    version=$(python_version "$1") || return 1
    major=${version%%.*}; rest=${version#*.}; minor=${rest%%.*}
    [ "$major" -eq 3 ] && [ "$minor" -ge 11 ] || return 1
    if [ "$(uname -s)" = Darwin ] && [ "$(sysctl -n hw.optional.arm64 2>/dev/null)" = 1 ]; then
        [ "$("$1" -c 'import platform; print(platform.machine())' 2>/dev/null)" = arm64 ] || return 1
    fi
}

# Set $python to the first suitable Python, and $rejected to the first unsuitable one seen.
find_python() {
    python=""
    rejected=""
    for candidate in python3.13 python3.12 python3.11 python3 \
        /opt/homebrew/bin/python3.13 /opt/homebrew/bin/python3.12 /opt/homebrew/bin/python3.11 \
        /usr/local/bin/python3.13 /usr/local/bin/python3.12 /usr/local/bin/python3.11 \
        /Library/Frameworks/Python.framework/Versions/3.13/bin/python3 \
        /Library/Frameworks/Python.framework/Versions/3.12/bin/python3 \
        /Library/Frameworks/Python.framework/Versions/3.11/bin/python3; do
        path=$(command -v "$candidate" 2>/dev/null) || continue
        if python_suitable "$path"; then python=$path; return 0; fi
        [ -n "$rejected" ] || rejected="$path"
    done
    if command -v uv >/dev/null 2>&1; then
        path=$(uv python find --no-project '>=3.11' 2>/dev/null) && python_suitable "$path" && { python=$path; return 0; }
    fi
    return 1
}

# Explain that no suitable Python exists, with the fix; exit 1.
no_python() {
    if [ -n "${1:-}" ]; then
        found="$1 is Python $(python_version "$1")"
        [ "$1" = /usr/bin/python3 ] && [ "$(uname -s)" = Darwin ] && found="macOS's bundled python3 is $(python_version "$1")"
        echo "No usable Python found: $found; mlx-lm and transformers need Python 3.11 or newer (native arm64 on a Mac)." >&2
    else
        echo "No Python found; mlx-lm and transformers need Python 3.11 or newer." >&2
    fi
    echo "  Fix: install Python 3.12 (brew install python@3.12, or uv python install 3.12, or python.org)," >&2
    echo "       then run: sh bootstrap.sh --python /path/to/python3.12" >&2
    exit 1
}

# Make (or reuse) the checkout's tool environment .venv with mlxtasks installed editable.
# $1: the Python to build it with; $2: extras such as "[test]" (may be empty);
# $3: modules that must import for the environment to count as ready.
ensure_tool_env() {
    env_dir="$root/.venv"
    "$env_dir/bin/python" -c "import $3" >/dev/null 2>&1 && return 0
    if ! "$env_dir/bin/python" -c 'import sys' >/dev/null 2>&1; then
        echo "Making the tool environment $env_dir with $1" >&2
        rm -rf "$env_dir"
        "$1" -m venv "$env_dir"
        "$env_dir/bin/python" -m pip install --quiet --upgrade pip
    fi
    echo "Installing mlxtasks$2 into $env_dir" >&2
    "$env_dir/bin/python" -m pip install --quiet -e "$root$2"
}
