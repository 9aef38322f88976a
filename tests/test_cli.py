"""The command line as a new user meets it: a pipe whose reader left and a full disk, a real SIGINT while Python
still imports, `TASK --help` for every task, a question that starts with '-', an agent's own arguments,
models.verify's name, uninstall without a terminal, and the fix lines that must work from a new terminal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest

from mlxtasks import config, hub, shellblock
from mlxtasks.tasks import ns

from .support.fake_hub import FakeHub
from .support.helpers import BIN, ROOT, clean_env, invoke, run

# Every test here meets the command line as a user does: the CLI started as a process (the quick lane's).
pytestmark = pytest.mark.slow

FULL_DISK = [
    "[error] The output could not be written: No space left on device.",
    "  Fix: free some space, or send the output to another disk (> FILE)",
]
PROGRAMS = ["invoke", "mlxtasks"]
# Each writes to stdout with no MLX venv; status shows the checkout's tool environment as its venv.
WRITERS = {
    "models.list": ["models.list"],
    "bench.history": ["bench.history", "--json"],
    "shell.show": ["shell.show", "--shell", "zsh"],
    "task list": ["--list"],
    "a task's help": ["models.list", "--help"],
    "a positional task's help": ["chat.ask", "--help"],
    "status": ["status", "--venv", str(ROOT / ".venv")],
}
PLACEHOLDERS = {"model": "qwen7b", "prompt": "hello", "query": "qwen", "tool": "codex"}


def user_env(home: Path, **extra: str) -> dict[str, str]:
    """A new user's environment, whose Python buffers stdout as it does unless told otherwise."""
    return {k: v for k, v in clean_env(home, **extra).items() if k != "PYTHONUNBUFFERED"}


def run_into(argv: list[str], home: Path, stdout, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        argv,
        cwd=ROOT,
        env={**user_env(home), **env},
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
    )


def reader_gone() -> int:
    """The write end of a real pipe whose reader has already closed (`| head -c 1` that has its byte)."""
    read, write = os.pipe()
    os.close(read)
    return write


@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize("writer", WRITERS.values(), ids=WRITERS.keys())
def test_a_reader_that_left_ends_the_command_quietly_with_141(home, program, writer):
    pipe = reader_gone()
    try:
        done = run_into([str(BIN / program), *writer], home, pipe)
    finally:
        os.close(pipe)
    assert (done.returncode, done.stderr) == (141, "")


@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize("writer", WRITERS.values(), ids=WRITERS.keys())
def test_a_full_disk_under_stdout_is_one_sentence_and_status_1(home, program, writer):
    with open("/dev/full", "w") as full:
        done = run_into([str(BIN / program), *writer], home, full)
    assert (done.returncode, done.stderr.splitlines()) == (1, FULL_DISK)


@pytest.mark.parametrize("program", PROGRAMS)
def test_a_closed_stdout_is_one_sentence_and_status_1(home, program):
    """`mlxtasks models.list >&-`: Python gives such a program no stdout at all, and every print went nowhere."""
    done = subprocess.run(
        [str(BIN / program), "models.list"],
        cwd=ROOT,
        env=user_env(home),
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        preexec_fn=lambda: os.close(1),
    )
    assert done.returncode == 1
    assert done.stderr == (
        f"[error] {program}: standard output is closed, so nothing it says could be seen.\n"
        "  Fix: leave stdout open, or send it away: > /dev/null\n"
    )


@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_mlx_status_into_a_pipe_whose_reader_left_is_quiet_too(home, unbuffered):
    """mlx-status runs `python -m mlxtasks.status`, outside any task."""
    pipe = reader_gone()
    try:
        done = run_into(
            [str(BIN / "python"), "-m", "mlxtasks.status"],
            home,
            pipe,
            MLX_VENV_PATH=str(ROOT / ".venv"),
            **({"PYTHONUNBUFFERED": "1"} if unbuffered else {}),
        )
    finally:
        os.close(pipe)
    assert (done.returncode, done.stderr) == (141, "")


@pytest.mark.parametrize("writer", WRITERS.values(), ids=WRITERS.keys())
def test_a_real_head_gets_its_bytes_and_the_command_says_nothing(home, writer):
    done = subprocess.run(
        ["bash", "-c", 'set -o pipefail; "$@" | head -c 20 >/dev/null', "bash", str(BIN / "mlxtasks"), *writer],
        cwd=ROOT,
        env=user_env(home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode in (0, 141) and done.stderr == ""  # 0 when all of it fitted in the pipe first


def every_task_name() -> dict[str, str]:
    """Every name a task answers to (its aliases too: `chat`, `serve`), with the task's full name."""
    return {name: full for full, aliases in ns.task_names.items() for name in (full, *aliases)}


def asked_for_help(program: str, name: str, word: str, home: Path) -> subprocess.CompletedProcess:
    return run_into([str(BIN / program), name, word], home, subprocess.PIPE)


def test_every_task_shows_its_help_and_runs_nothing(home):
    names = every_task_name()
    with_positional = [name for name, full in names.items() if ns[full].positional]
    calls = [("mlxtasks", name, "--help") for name in names] + [("invoke", name, "-h") for name in with_positional]
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda call: asked_for_help(*call, home), calls))
    for (program, name, _), done in zip(calls, answers, strict=True):
        assert done.stdout.startswith(f"Usage: {program} [--core-opts] {names[name]} "), (
            name,
            done.stdout[:200],
            done.stderr,
        )
        assert (done.returncode, done.stderr) == (0, ""), name
    assert "chat.ask" in with_positional and "models.search" in with_positional and "agent" in with_positional
    shown = {(program, name): done.stdout for (program, name, _), done in zip(calls, answers, strict=True)}
    assert "the question; - reads it from stdin" in shown["invoke", "chat.ask"]  # every help text, each time
    assert "answer yes to every question" in shown["mlxtasks", "setup"]
    assert list(home.iterdir()) == []  # no task ran: not the model on the prompt "--help", not a hub search


def test_a_question_that_is_only_the_word_help_is_still_a_question_with_prompt(home):
    done = run_into([str(BIN / "mlxtasks"), "chat.ask", "--prompt=--help", "--model", "qwen7b"], home, subprocess.PIPE)
    assert done.stderr.splitlines() == ["[error] qwen7b is not downloaded.", "  Fix: invoke models.pull qwen7b"]


def interrupted_while_starting(argv: list[str], home: Path, after: float) -> tuple[int | None, str]:
    """(exit status, stderr) of argv sent a real SIGINT, as a terminal's Ctrl-C is (to its process group),
    `after` seconds in; (None, "") when it had ended before."""
    child = subprocess.Popen(
        argv,
        cwd=home,
        env=user_env(home),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    time.sleep(after)
    if child.poll() is not None:
        child.communicate()
        return None, ""
    os.killpg(child.pid, signal.SIGINT)
    _, stderr = child.communicate(timeout=60)
    return child.returncode, stderr


def test_ctrl_c_in_the_first_half_second_ends_every_task_with_130_and_no_traceback(home):
    ended = {}
    for full in ns.task_names:
        placeholders = [PLACEHOLDERS[name] for name in ns[full].positional]
        for after in (0.4, 0.1):  # a task that ended by 0.4 s on its own (a fast machine), or just as the signal
            # came, is tried again earlier, while it surely still imports
            ended[full] = interrupted_while_starting([str(BIN / "mlxtasks"), full, *placeholders], home, after)
            if ended[full][0] in (130, -2):
                break
    # -2: killed by the SIGINT before Python had set up any handler (a loaded machine), which a shell reports as
    # 130 too; None: ended even before 0.1 s.
    for full, (code, stderr) in ended.items():
        assert code in (130, -2, None) and "Traceback" not in stderr, (full, code, stderr)
    assert sum(code == 130 for code, _ in ended.values()) > len(ended) / 2


SLOW_IMPORT = """
import importlib.abc, os, sys, time
class Slow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "mlxtasks.config":
            open(os.environ["MARK"], "w").close()
            time.sleep(30)
sys.meta_path.insert(0, Slow())
"""


@pytest.mark.parametrize("program", PROGRAMS)
def test_ctrl_c_while_mlxtasks_imports_is_130_and_silent(home, tmp_path, program):
    """The moment made certain: mlxtasks.config takes 30 s to import, and the SIGINT comes while it does."""
    (tmp_path / "hook").mkdir()
    (tmp_path / "hook" / "sitecustomize.py").write_text(SLOW_IMPORT)
    mark = tmp_path / "importing"
    child = subprocess.Popen(
        [str(BIN / program), "models.list"],
        cwd=ROOT,
        env=user_env(home, PYTHONPATH=str(tmp_path / "hook"), MARK=str(mark)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not mark.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(child.pid, signal.SIGINT)
    stdout, stderr = child.communicate(timeout=10)
    assert (child.returncode, stdout, stderr) == (130, "", "")


def test_a_question_that_starts_with_a_dash_is_told_to_follow_prompt(home):
    for argv, word, task in [
        (["chat.ask", "- hi"], "'- hi'", "chat.ask"),
        (["chat.ask", "-1 plus 1"], "'-1 plus 1'", "chat.ask"),
        (["cluster.ask", "qwen7b", "- hi"], "'- hi'", "cluster.ask"),
    ]:
        done = run_into([str(BIN / "mlxtasks"), *argv], home, subprocess.PIPE)
        assert done.returncode == 1 and done.stdout == ""
        assert done.stderr.splitlines() == [
            f"[error] {word} is not an option of {task}; a question that starts with '-' has to follow --prompt=.",
            f"  Fix: --prompt={word} in place of {word}",
        ]
    answered = run_into([str(BIN / "mlxtasks"), "chat.ask", "--prompt=- hi"], home, subprocess.PIPE)
    assert answered.stderr.startswith("[error] qwen7b is not downloaded.")  # past the parser, to the model


def test_models_verify_takes_the_name_as_its_fix_lines_print_it(home):
    models = config.resolve({}, home=home).models
    (models / "qwen25-coder-7b").mkdir(parents=True)
    (models / "qwen25-coder-7b" / "config.json").write_text("{}")
    shown = invoke("models.info", "qwen7b", home=home).stdout
    fix = next(line for line in shown.splitlines() if line.startswith("installed")).split("incomplete: ")[1].split()
    assert fix == ["invoke", "models.verify", "qwen7b"]
    named = invoke(*fix[1:], home=home)
    flagged = invoke("models.verify", "--model", "qwen7b", home=home)
    assert named.returncode == flagged.returncode == 1
    assert (named.stdout, named.stderr) == (flagged.stdout, flagged.stderr) and "qwen7b" in named.stdout + named.stderr
    everything = invoke("models.verify", home=home)
    assert everything.returncode == 1 and "No idea" not in everything.stderr + everything.stdout


def test_uninstall_without_a_terminal_refuses_before_it_changes_anything(home):
    assert invoke("shell.install", "--shell", "bash", home=home).returncode == 0
    (home / "venv-mlx").mkdir()
    (home / "venv-mlx" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    bashrc = (home / ".bashrc").read_bytes()
    done = invoke("uninstall", home=home)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"[error] Deleting the venv {home / 'venv-mlx'} needs a yes, and there is no terminal to ask; nothing was changed.",
        "  Fix: invoke uninstall --yes",
    ]
    assert (home / ".bashrc").read_bytes() == bashrc and (home / "venv-mlx" / "pyvenv.cfg").exists()


def test_the_venv_repair_named_in_the_shell_block_exists_in_a_new_terminal(tmp_path):
    assert shellblock.setup_command() == f"sh {ROOT / 'bootstrap.sh'}"  # what this checkout's block prints
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    assert shellblock.setup_command(tmp_path / "nothing") == "invoke setup"
    (tmp_path / ".venv" / "bin" / "invoke").write_text("")
    assert shellblock.setup_command(tmp_path) == f"cd {tmp_path} && .venv/bin/invoke setup"


def test_a_fix_that_logs_in_to_the_hub_names_hf_by_its_full_path(home):
    with FakeHub({}) as stand_in:
        done = invoke("models.info", "org/missing-model", home=home, HF_ENDPOINT=stand_in.url)
    assert done.returncode == 1
    assert f"log in: {BIN / 'hf'} auth login (or set HF_TOKEN)" in done.stderr, done.stderr
    assert hub.login_command() == f"{Path(sys.executable).parent / 'hf'} auth login"


@pytest.fixture
def stand_in_agents(home: Path, tmp_path: Path) -> Iterator[Path]:
    """codex, claude and opencode on PATH that print their arguments one per line, and a server that runs
    (its record names a live process), so that agent starts none."""
    folder = tmp_path / "agents"
    folder.mkdir()
    for name in ("codex", "claude", "opencode"):
        (folder / name).write_text('#!/bin/sh\nfor word in "$@"; do printf "[%s]\\n" "$word"; done\n')
        (folder / name).chmod(0o755)
    server = subprocess.Popen(["sleep", "300"])
    state = config.resolve({}, home=home).state
    state.mkdir(parents=True)
    (state / "serve.json").write_text(
        json.dumps(
            {
                "pid": server.pid,
                "alias": "qwen7b",
                "host": "127.0.0.1",
                "port": 8080,
                "started": psutil.Process(server.pid).create_time(),
            }
        )
    )
    yield folder
    server.kill()
    server.wait()


AGENT_WORDS = ["exec", "Say hi", 'a  "quoted"  $HOME', "--help"]


@pytest.mark.parametrize("program, between", [("mlxtasks", []), ("mlxtasks", ["--"]), ("invoke", ["--"])])
def test_an_agent_gets_its_own_arguments_as_typed(home, stand_in_agents, program, between):
    path = f"{stand_in_agents}:{os.environ['PATH']}"
    done = run([str(BIN / program), "agent", "codex", "--model", "qwen7b", *between, *AGENT_WORDS], home, PATH=path)
    assert done.returncode == 0, done.stderr
    printed = [line[1:-1] for line in done.stdout.splitlines() if line.startswith("[")]
    assert printed[-len(AGENT_WORDS) - 2 :] == ["--model", "qwen7b", *AGENT_WORDS]
    for tool in ("claude", "opencode"):
        done = run([str(BIN / program), "agent", tool, *between, "-p", "Say hi"], home, PATH=path)
        assert [line for line in done.stdout.splitlines() if line.startswith("[")] == ["[-p]", "[Say hi]"], done.stderr


class _StandInServer(BaseHTTPRequestHandler):
    """The server's side that chat.ask meets: /health, and an answer streamed in many chunks."""

    def do_GET(self):
        self.send_response(200)
        self.end_headers()

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        try:
            for n in range(2000):
                chunk = {"choices": [{"delta": {"content": f"word{n} "}}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
        except OSError:
            pass

    def log_message(self, *_):
        pass


@pytest.fixture
def served_home(home: Path):
    """HOME with qwen7b installed and a server running on the configured port (this process, answering)."""
    s = config.resolve({}, home=home)
    (s.models / "qwen25-coder-7b").mkdir(parents=True)
    (s.models / "qwen25-coder-7b" / "config.json").write_text("{}")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StandInServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    s.state.mkdir(parents=True)
    (s.state / "serve.json").write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "alias": "qwen7b",
                "host": "127.0.0.1",
                "port": server.server_port,
                "started": psutil.Process().create_time(),
            }
        )
    )
    yield home, {"INVOKE_MLX_SERVE_PORT": str(server.server_port)}
    server.shutdown()


def test_an_answer_from_a_running_server_into_a_closed_pipe_ends_quietly(served_home):
    """`mlx-qwen7b "..." | head -c 20` while `mlx-serve` runs: this process writes the answer."""
    home, env = served_home
    argv = [str(BIN / "mlxtasks"), "chat.ask", "hello", "--model", "qwen7b"]
    whole = run_into(argv, home, subprocess.PIPE, **env)
    assert whole.returncode == 0 and whole.stdout.startswith("word0 word1 ") and whole.stderr == ""
    pipe = reader_gone()
    try:
        done = run_into(argv, home, pipe, **env)
    finally:
        os.close(pipe)
    assert (done.returncode, done.stderr) == (141, "")  # not "The server stopped in the middle of the answer."
    with open("/dev/full", "w") as full:
        done = run_into(argv, home, full, **env)
    assert (done.returncode, done.stderr.splitlines()) == (1, FULL_DISK)


@pytest.mark.parametrize("into_its_start", [0.05, 0.2, 0.4])
def test_ctrl_c_while_a_pulls_download_child_starts_is_one_line_and_130(home, tmp_path, into_its_start):
    """The child that downloads (python -m mlxtasks.download) gets the terminal's Ctrl-C too, as it imports
    huggingface_hub: no traceback of its own before the pull's `Interrupted` (its first line got out before
    the pull stopped it)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    (repo / "model.safetensors").write_bytes(bytes(1000))
    with FakeHub({"mlx-community/Qwen2.5-Coder-7B-Instruct-4bit": repo}) as stand_in:
        stand_in.faults.stall("*/resolve/*/model.safetensors")  # the pull is still under way when Ctrl-C comes
        child = subprocess.Popen(
            [str(BIN / "mlxtasks"), "models.pull", "qwen7b", "--force"],
            cwd=home,
            env=user_env(home, HF_ENDPOINT=stand_in.url),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while not any("mlxtasks.download" in " ".join(p.cmdline()) for p in psutil.Process(child.pid).children()):
            assert time.monotonic() < deadline and child.poll() is None, child.communicate()
            time.sleep(0.01)
        time.sleep(into_its_start)
        os.killpg(child.pid, signal.SIGINT)
        _, stderr = child.communicate(timeout=60)
    assert (child.returncode, stderr.splitlines()) == (
        130,
        ["[error] Interrupted; run the same command again to resume."],
    )
