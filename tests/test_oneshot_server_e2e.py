"""One-shots and chats through a running server: chat.ask and `invoke chat` ask the server on the configured
port when one runs (its log shows the request), load the model in-process when none runs or when it does not
serve the model, and --local never touches it. Real servers: SmolLM2 where the answer matters, the tiny model
for the rest."""

import contextlib
import re
import shutil
import time

import pexpect
import pytest

from .support.helpers import clean_env, invoke
from .support.smollm2 import ALIAS
from .test_chat_e2e import PROMPT, leave, say, start
from .test_serve_e2e import free_port, state_of

pytestmark = pytest.mark.e2e

GREEDY = ["--temp", "0", "--max-tokens", "40"]
QUESTION = "What is the capital of France?"


def log_of(home) -> str:
    return (state_of(home) / "serve.log").read_text()


def chat_requests(home, status: int = 200) -> int:
    return len(re.findall(rf"POST /v1/chat/completions {status} ", log_of(home)))


def logged(home, count: int, status: int = 200) -> int:
    """The log's chat requests with this status, once there are `count` (the server writes a request's line just
    after its last byte)."""
    for _ in range(600):
        if chat_requests(home, status) >= count:
            break
        time.sleep(0.1)
    return chat_requests(home, status)


def reply_tokens(stats: str) -> int:
    return int(re.search(r"reply: (\d+) tokens", stats)[1])


@contextlib.contextmanager
def serving(alias: str, args: list[str], home):
    """A real server for `alias` in `home` on a free port; yields the port and the environment that makes it the
    configured one; stopped at the end."""
    port = free_port()
    started = invoke("serve", alias, "--port", str(port), *args, home=home)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield port, {"INVOKE_MLX_SERVE_PORT": str(port)}
    finally:
        assert invoke("serve.stop", home=home).returncode == 0


@pytest.fixture(scope="module")
def real_args(bootstrapped, real_model, tmp_path_factory):
    _, shared_home, _ = bootstrapped
    models = tmp_path_factory.mktemp("oneshot-real") / "models"
    shutil.copytree(real_model, models / ALIAS)
    return ["--venv", str(shared_home / "venv-mlx"), "--models", str(models)]


@pytest.fixture(scope="module")
def real_server(real_args, tmp_path_factory):
    home = tmp_path_factory.mktemp("oneshot-real-home")
    with serving(ALIAS, real_args, home) as (port, env):
        yield home, port, env


@pytest.fixture(scope="module")
def tiny_args(bootstrapped, tiny_model, tmp_path_factory):
    """The tiny model as qwen7b and as mistral7b; the server serves only qwen7b."""
    _, shared_home, _ = bootstrapped
    models = tmp_path_factory.mktemp("oneshot-tiny") / "models"
    for folder in ("qwen25-coder-7b", "mistral-7b"):
        shutil.copytree(tiny_model, models / folder)
    return ["--venv", str(shared_home / "venv-mlx"), "--models", str(models)]


@pytest.fixture(scope="module")
def tiny_server(tiny_args, tmp_path_factory):
    home = tmp_path_factory.mktemp("oneshot-tiny-home")
    with serving("qwen7b", tiny_args, home) as (port, env):
        yield home, port, env


def test_ask_gives_the_same_greedy_answer_with_the_server_and_without(real_args, real_server, home):
    server_home, port, env = real_server
    before = chat_requests(server_home)
    served = invoke("chat.ask", QUESTION, "--model", ALIAS, "--verbose", *GREEDY, *real_args, home=server_home, **env)
    assert served.returncode == 0, served.stderr
    assert logged(server_home, before + 1) == before + 1
    assert f"answered by the server at http://127.0.0.1:{port}/v1" in served.stderr
    log = log_of(server_home)
    local = invoke("chat.ask", QUESTION, "--model", ALIAS, "--verbose", "--local", *GREEDY, *real_args,
                   home=server_home, **env)
    alone = invoke("chat.ask", QUESTION, "--model", ALIAS, "--verbose", *GREEDY, *real_args, home=home, **env)
    assert local.returncode == alone.returncode == 0, local.stderr + alone.stderr
    assert log_of(server_home) == log  # --local did not even ask the server whether it is up
    assert "Paris" in served.stdout and served.stdout == local.stdout == alone.stdout
    assert "peak memory" in local.stderr and "peak memory" in alone.stderr and "server" not in local.stderr
    assert reply_tokens(served.stderr) == reply_tokens(local.stderr) == reply_tokens(alone.stderr)


def test_a_model_the_server_does_not_serve_is_loaded_in_process(tiny_args, tiny_server):
    server_home, port, env = tiny_server
    missed = chat_requests(server_home, 404)
    asked = ["chat.ask", "hello there", *GREEDY, "--verbose", *tiny_args]
    elsewhere = invoke(*asked, "--model", "mistral7b", home=server_home, **env)
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert logged(server_home, missed + 1, 404) == missed + 1  # asked first, refused: model_not_found
    assert "peak memory" in elsewhere.stderr
    served = invoke(*asked, "--model", "qwen7b", home=server_home, **env)
    assert "answered by the server" in served.stderr
    assert served.stdout == elsewhere.stdout  # the same weights, greedy: the same answer either way


def test_ctrl_c_through_the_server_ends_the_answer_with_130_and_the_server_goes_on(tiny_args, tiny_server):
    server_home, port, env = tiny_server
    before = chat_requests(server_home)
    child = pexpect.spawn(tiny_args[1] + "/bin/mlxtasks",
                          ["chat.ask", "tell me everything", "--model", "qwen7b", "--temp", "0", "--max-tokens", "4000",
                           *tiny_args], cwd=str(server_home), env=clean_env(server_home, **env), encoding="utf-8",
                          timeout=120)
    child.expect(r"\S")  # the answer has started
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130 and "Traceback" not in child.before, child.before
    assert logged(server_home, before + 1) == before + 1  # the stream ended when the client left
    again = invoke("chat.ask", "hi", "--model", "qwen7b", "--max-tokens", "3", "--verbose", *tiny_args,
                   home=server_home, **env)
    assert again.returncode == 0 and "answered by the server" in again.stderr, again.stderr


def test_a_chat_session_talks_to_the_server(tiny_args, tiny_server):
    server_home, port, env = tiny_server
    before = chat_requests(server_home)
    mlxtasks = tiny_args[1] + "/bin/mlxtasks"
    child = start(mlxtasks, ["chat", "qwen7b", *tiny_args, "--max-tokens", "5"], server_home, **env)
    child.expect_exact("Chatting with qwen7b")
    child.expect_exact(PROMPT)
    say(child, "hello there")
    say(child, "and again")  # the whole conversation goes to the server each turn
    assert f"answered by the server at http://127.0.0.1:{port}/v1" in say(child, "/stats")
    assert leave(child) == 0
    assert logged(server_home, before + 2) == before + 2
