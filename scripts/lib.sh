# Shared by bootstrap.sh and scripts/test.sh: POSIX sh, so it runs on a fresh Mac whose only
# python3 is 3.9. Keep the search in step with mlxtasks/pythons.py (tests/test_pythons.py compares them).
# Needs $root, the checkout.

# The oldest and newest supported Python, from the file mlxtasks/config.py reads too (builtins only:
# a fresh machine's PATH may hold little).
while read -r line; do
    case "$line" in '#'*|'') ;; *) python_range=$line ;; esac
done < "$root/mlxtasks/data/python-versions"
min_python=${python_range%% *}
max_python=${python_range##* }
min_minor=${min_python#3.}
max_minor=${max_python#3.}

# The kernel's name (Darwin, Linux); functions, so tests can stand in for a Mac.
host_os() { uname -s; }
# A sysctl value, by full path: cron's and launchd's PATH lack /usr/sbin.
sysctl_value() { /usr/sbin/sysctl -n "$1" 2>/dev/null; }
# Without the Command Line Tools, running /usr/bin/python3 opens Apple's install dialog.
has_command_line_tools() { xcode-select -p >/dev/null 2>&1; }

# Succeed on an Apple Silicon Mac (even in a terminal running under Rosetta).
apple_silicon() {
    [ "$(host_os)" = Darwin ] && [ "$(sysctl_value hw.optional.arm64)" = 1 ]
}

# Print "VERSION" of the interpreter $1, or nothing when it does not run.
python_version() {
    "$1" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null
}

# Print the architecture the interpreter $1 runs as (arm64, x86_64).
python_arch() {
    "$1" -c 'import platform; print(platform.machine())' 2>/dev/null
}

# Print the interpreters to try, most preferred first: the order of mlxtasks/pythons.py.
python_candidates() {
    minor=$max_minor
    while [ "$minor" -ge "$min_minor" ]; do echo "python3.$minor"; minor=$((minor - 1)); done
    echo python3
    # Where `uv python install` puts its pythons, often not yet on PATH.
    minor=$max_minor
    while [ "$minor" -ge "$min_minor" ]; do echo "${HOME:-}/.local/bin/python3.$minor"; minor=$((minor - 1)); done
    for prefix in /opt/homebrew/bin /usr/local/bin; do
        minor=$max_minor
        while [ "$minor" -ge "$min_minor" ]; do echo "$prefix/python3.$minor"; minor=$((minor - 1)); done
    done
    echo /opt/homebrew/bin/python3
    minor=$max_minor
    while [ "$minor" -ge "$min_minor" ]; do
        echo "/Library/Frameworks/Python.framework/Versions/3.$minor/bin/python3"; minor=$((minor - 1))
    done
}

# Print why the interpreter $1 cannot make the venv (nothing when it can; fails when it does not run).
python_problem() {
    version=$(python_version "$1" || true)
    [ -n "$version" ] || { echo "it does not run"; return 0; }
    major=${version%%.*}; rest=${version#*.}; minor=${rest%%.*}
    if [ "$major" -ne 3 ] || [ "$minor" -lt "$min_minor" ]; then
        echo "Python $version is too old"
    elif [ "$minor" -gt "$max_minor" ]; then
        echo "Python $version is too new: the pinned packages (numpy, mlx) have no wheels for it yet"
    elif apple_silicon && [ "$(python_arch "$1")" != arm64 ]; then
        echo "Python $version runs as $(python_arch "$1"), not arm64"
    fi
}

# Succeed when $1 is a supported Python and, on an Apple Silicon Mac, runs as arm64.
python_suitable() {
    [ -z "$(python_problem "$1")" ]
}

# Set $python to the first suitable Python, $rejected to the first unsuitable one seen, and
# $tried to a line for each one rejected (path, version, architecture, why).
find_python() {
    python=""
    rejected=""
    tried=""
    seen=" "
    for candidate in $(python_candidates); do
        path=$(command -v "$candidate" 2>/dev/null) || continue
        case "$seen" in *" $path "*) continue ;; esac
        seen="$seen$path "
        if [ "$path" = /usr/bin/python3 ] && [ "$(host_os)" = Darwin ] && ! has_command_line_tools; then
            continue
        fi
        if python_suitable "$path"; then python=$path; return 0; fi
        [ -n "$rejected" ] || rejected="$path"
        tried="$tried  $path: $(python_problem "$path") ($(python_arch "$path"))
"
    done
    if command -v uv >/dev/null 2>&1; then
        path=$(uv python find --no-project ">=$min_python,<3.$((max_minor + 1))" 2>/dev/null) && python_suitable "$path" && { python=$path; return 0; }
    fi
    return 1
}

# Explain that no suitable Python exists, with the fix; exit 1.
no_python() {
    needed="mlx-lm and transformers need Python $min_python to $max_python (native arm64 on a Mac)"
    if [ -n "${1:-}" ]; then
        version=$(python_version "$1" || true)
        found="$1: $(python_problem "$1")"
        [ "$1" = /usr/bin/python3 ] && [ "$(host_os)" = Darwin ] && [ -n "$version" ] && found="macOS's bundled python3 is $version"
        echo "No usable Python found: $found; $needed." >&2
    else
        echo "No Python found; $needed." >&2
    fi
    [ -z "${tried:-}" ] || printf 'Rejected:\n%s' "$tried" >&2
    if apple_silicon && [ "$(sysctl_value sysctl.proc_translated)" = 1 ]; then
        echo "This terminal runs under Rosetta, so Pythons built for both architectures run as x86_64." >&2
        echo "  Fix: open a terminal that does not run under Rosetta (Finder: Applications > Utilities > Terminal," >&2
        echo "       Get Info, untick 'Open using Rosetta'), or run: arch -arm64 sh bootstrap.sh" >&2
        exit 1
    fi
    echo "  Fix: install Python 3.12 (brew install python@3.12, or uv python install 3.12, or python.org)," >&2
    echo "       then run: sh bootstrap.sh --python /path/to/python3.12" >&2
    exit 1
}

# Succeed when the Python $1 finds every module of the comma-separated list $2. Found, not imported:
# importing them all took half a minute, litellm alone most of it.
modules_found() {
    "$1" -c 'import sys; from importlib.util import find_spec
sys.exit(any(find_spec(name.strip()) is None for name in sys.argv[1].split(",")))' "$2" >/dev/null 2>&1
}

# What the [test] extra brings: scripts/test.sh and scripts/lint.sh need them all.
TEST_MODULES="mlxtasks, invoke, psutil, colorama, packaging, uv, huggingface_hub, pytest, pexpect, hypothesis, openai, langchain_openai, litellm, llm, anthropic, starlette, uvicorn, httpx, ruff, mypy"

# The tool environment with the [test] extra: a ready one is used as it is, without looking for a Python
# (the search runs every candidate, seconds where pyenv's shims stand in for them).
ensure_test_env() {
    (cd / && modules_found "$root/.venv/bin/python" "mlxtasks.cli, $TEST_MODULES") && return 0
    find_python || no_python "$rejected"
    ensure_tool_env "$python" "[test]" "$TEST_MODULES"
}

# Make (or reuse) the checkout's tool environment .venv with mlxtasks installed editable.
# $1: the Python to build it with; $2: extras such as "[test]" (may be empty);
# $3: modules that must be installed for the environment to count as ready.
ensure_tool_env() {
    env_dir="$root/.venv"
    # After the checkout moved, .venv's scripts and its editable install name the old folder: mlxtasks
    # no longer imports from outside the checkout, and .venv is made again.
    if [ -x "$env_dir/bin/python" ] && ! (cd / && "$env_dir/bin/python" -c 'import mlxtasks.cli') >/dev/null 2>&1; then
        echo "The tool environment $env_dir was made for a checkout that is gone (moved?); making it again" >&2
        rm -rf "$env_dir"
    fi
    modules_found "$env_dir/bin/python" "$3" && return 0
    if ! "$env_dir/bin/python" -c 'import sys' >/dev/null 2>&1; then
        echo "Making the tool environment $env_dir with $1" >&2
        rm -rf "$env_dir"
        "$1" -m venv "$env_dir"
        "$env_dir/bin/python" -m pip install --quiet --upgrade pip
    fi
    echo "Installing mlxtasks$2 into $env_dir" >&2
    "$env_dir/bin/python" -m pip install --quiet -e "$root$2"
}
