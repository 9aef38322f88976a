"""The shell code a Mac runs, run as a Mac runs it: the zsh block under the options zsh users turn on (real zsh),
and the bash block, scripts/lib.sh and bootstrap.sh under Apple's bash 3.2.57 (macOS's /bin/bash and, in POSIX
mode, its /bin/sh), built for Linux. Without that bash (a clone has no ../shared) these tests skip, naming it."""

import subprocess
import sys

import pytest

from mlxtasks import catalog, rcfile, shellblock

from .support.helpers import ROOT, require_apple_bash, require_tool

# Options zsh users set in their .zshrc, one at a time and all together.
ZSH_OPTIONS = [
    "",
    "KSH_ARRAYS",
    "NO_UNSET",
    "NO_CLOBBER",
    "SH_WORD_SPLIT",
    "POSIX_BUILTINS",
    "GLOB_SUBST",
    "RC_EXPAND_PARAM",
    "WARN_CREATE_GLOBAL",
    "NO_ALIASES",
    "KSH_ARRAYS NO_UNSET NO_CLOBBER SH_WORD_SPLIT POSIX_BUILTINS GLOB_SUBST RC_EXPAND_PARAM WARN_CREATE_GLOBAL",
]
# What a login bash's profile may set before the block.
BASH_MODES = ["", "set -u", "set -o posix"]
# Aliases some users (and older setup scripts) define before the block, with names the block defines or calls.
ALIASES = "alias mlxtasks='echo ALIASED' mlx-ask='echo ALIASED' mlx-chat='echo ALIASED'"
# From any folder: activate and deactivate the venv, deactivate when it is not active, a task, a model's one-shot.
SESSION = (
    'cd /; mlx-activate && echo "active=$VIRTUAL_ENV"; mlx-deactivate && echo "after=${VIRTUAL_ENV:-none}"; '
    'mlx-deactivate; echo "again=$?"; mlxtasks hello world; mlx-qwen7b "a question"'
)


@pytest.fixture(scope="module")
def mac_home(tmp_path_factory):
    """A HOME with a real venv (made by this Python, without pip) whose mlxtasks is a stand-in saying its arguments."""
    home = tmp_path_factory.mktemp("home")
    venv = home / "venv-mlx"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (venv / "bin" / "mlxtasks").write_text('#!/bin/sh\necho "mlxtasks: $*"\n')
    (venv / "bin" / "mlxtasks").chmod(0o755)
    return home


def block(shell, home):
    return rcfile.block_text(shellblock.render(shell, home / "venv-mlx", home / "mlx", catalog.BUILTIN))


def expected(home):
    venv = home / "venv-mlx"
    return (
        f"active={venv}\nafter=none\nagain=1\nmlxtasks: hello world\n"
        f"mlxtasks: chat.ask --venv {venv} --models {home / 'mlx'} --model qwen7b a question\n"
    )


@pytest.mark.parametrize("options", ZSH_OPTIONS)
def test_the_zsh_block_works_under_the_options_users_set_and_past_their_aliases(mac_home, options, tmp_path):
    require_tool("zsh")
    (tmp_path / ".zshrc").write_text(
        f"setopt {options}\n{ALIASES}\n{block('zsh', mac_home)}" if options else f"{ALIASES}\n{block('zsh', mac_home)}"
    )
    done = subprocess.run(
        ["zsh", "-i", "-c", SESSION],
        env={"HOME": str(mac_home), "ZDOTDIR": str(tmp_path), "PATH": "/usr/bin:/bin", "TERM": "dumb"},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert done.stdout == expected(mac_home)
    assert done.stderr == "mlx-deactivate: the MLX venv is not active\n"


@pytest.mark.parametrize("mode", BASH_MODES)
def test_the_bash_block_works_in_apples_login_bash(mac_home, mode, tmp_path):
    bash = require_apple_bash()
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bash_profile").write_text(f"{mode}\n{ALIASES}\n{block('bash', mac_home)}")
    done = subprocess.run(
        [bash, "--login", "-i", "-c", SESSION],
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert done.stdout == expected(mac_home)
    lines = [line for line in done.stderr.splitlines() if "no job control" not in line]  # no terminal here
    assert lines == ["mlx-deactivate: the MLX venv is not active"]


def test_the_bash_block_is_harmless_to_apples_sh_reading_a_profile(mac_home, tmp_path):
    bash = require_apple_bash()
    (tmp_path / ".profile").write_text(block("bash", mac_home))
    done = subprocess.run(
        [bash, "--posix", "-c", '. "$HOME/.profile"; echo "read ${MLX_VENV_PATH:-nothing}"'],
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "POSIXLY_CORRECT": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"read {mac_home / 'venv-mlx'}\n"  # Apple's sh is bash: the block is for it too


# lib.sh's searches as bootstrap.sh runs them (under set -eu), on a Mac stood in by functions (as test_pythons.py does).
FAKE_MAC = (
    "host_os() { echo Darwin; }; has_command_line_tools() { true; }; "
    'sysctl_value() { case "$1" in hw.optional.arm64) echo 1 ;; sysctl.proc_translated) echo "$ROSETTA" ;; esac; }; '
)
LIB_SH_RUNS = {
    "candidates": "python_candidates",
    "a native python": FAKE_MAC + 'find_python && echo "found $python"',
    "rosetta": FAKE_MAC + 'find_python || no_python "$rejected"',
    "none at all": FAKE_MAC + 'PATH=/nonexistent; find_python || no_python "$rejected"',
}


@pytest.mark.parametrize("run", LIB_SH_RUNS)
@pytest.mark.parametrize("sh", ["as /bin/sh", "plain"])
def test_lib_sh_says_the_same_under_apples_bash_as_under_dash(run, sh, fake_python):
    bash = require_apple_bash()
    native = fake_python("3.13.1", arch="arm64", name="python3.13")
    intel = fake_python("3.12.4", arch="x86_64", name="python3.12")
    rosetta = "1" if run == "rosetta" else "0"
    script = f'set -eu; root="{ROOT}"; . "$root/scripts/lib.sh"; {LIB_SH_RUNS[run]}'
    env = {"PATH": f"{intel.parent}:{native.parent}:/usr/bin:/bin", "HOME": "/nonexistent", "ROSETTA": rosetta}
    if run == "rosetta":
        env["PATH"] = f"{intel.parent}:/usr/bin:/bin"
    apple = [bash, "--posix"] if sh == "as /bin/sh" else [bash]
    dash, mac = (
        subprocess.run([*shell, "-c", script], env=env, capture_output=True, text=True, timeout=60)
        for shell in (["/bin/sh"], apple)
    )
    assert (mac.returncode, mac.stdout, mac.stderr) == (dash.returncode, dash.stdout, dash.stderr)
    assert mac.stdout or mac.stderr  # each run says something: it did run


@pytest.mark.parametrize(
    "given, said",
    [
        ("/nonexistent/python3", "The Python '/nonexistent/python3' given with --python does not exist."),
        ("old", "No usable Python found: {path}: Python 3.9.6 is too old"),
    ],
)
def test_bootstrap_sh_refuses_an_unusable_python_the_same_under_apples_sh(given, said, fake_python):
    bash = require_apple_bash()
    old = fake_python("3.9.6", name="python3")
    path = str(old) if given == "old" else given
    runs = [
        subprocess.run(
            [*shell, str(ROOT / "bootstrap.sh"), "--python", path],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
            timeout=60,
        )
        for shell in (["/bin/sh"], [bash, "--posix"])
    ]
    assert [r.returncode for r in runs] == [1, 1]
    assert runs[1].stderr == runs[0].stderr and said.format(path=path) in runs[1].stderr
