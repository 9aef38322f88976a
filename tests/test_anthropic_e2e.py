"""Anthropic's Messages API (POST /v1/messages) through the `anthropic` SDK on a real server: the tiny model's plain,
streamed, stopped and cut answers, errors in Anthropic's shape, a claude-* name mapped to the served model; a
tool-use round trip on the tiny model with Qwen2.5-Coder's tokens; SmolLM2's real answer; and `invoke agent`
starting the server and a (fake) Claude Code pointed at it."""

import json
import os
import stat

import pytest

from . import test_real_model_e2e, test_serve_e2e, test_server_e2e
from .support.helpers import invoke
from .support.smollm2 import ALIAS
from .test_real_model_e2e import MAX_TOKENS
from .test_serve_e2e import free_port
from .test_server_e2e import SCRIPTED, WEATHER, call, scripted

# Other modules' fixtures, used here by name.
real_setup, real_server, paths = test_real_model_e2e.real_setup, test_real_model_e2e.real_server, test_serve_e2e.paths
coder_model, direct_server = test_server_e2e.coder_model, test_server_e2e.direct_server

pytestmark = pytest.mark.e2e

HI = [{"role": "user", "content": "hi"}]


def client(url):
    import anthropic  # here, not at the top: collecting the fast lane stays quick

    return anthropic.Anthropic(base_url=url, api_key="local", max_retries=0, timeout=120)


def text_of(message) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


ANSWER = "Hello! The sky is blue, and the grass is green."


def test_plain_streamed_stopped_and_cut_answers_and_errors_in_anthropics_shape(direct_server):
    import anthropic  # here, not at the top: collecting the fast lane stays quick

    url, _ = direct_server(scripted(ANSWER), model_map={"claude-*": "tiny"})  # every answer is ANSWER
    messages = client(url).messages
    asked = dict(model="tiny", max_tokens=40, system="You are terse.", messages=HI)
    plain = messages.create(**asked)
    answer = text_of(plain)
    assert (
        plain.type == "message" and plain.role == "assistant" and plain.model == "tiny" and plain.id.startswith("msg_")
    )
    assert answer == ANSWER and [b.type for b in plain.content] == ["text"]
    assert (plain.stop_reason, plain.stop_sequence) == ("end_turn", None)
    assert plain.usage.input_tokens > 0 and 0 < plain.usage.output_tokens < 40
    with messages.stream(**asked) as stream:
        deltas = list(stream.text_stream)
        streamed = stream.get_final_message()
    assert "".join(deltas) == answer and text_of(streamed) == answer
    assert (streamed.stop_reason, streamed.usage.output_tokens) == (plain.stop_reason, plain.usage.output_tokens)
    assert plain.usage.cache_read_input_tokens == 0 < streamed.usage.cache_read_input_tokens  # the same prompt again
    assert streamed.usage.input_tokens + streamed.usage.cache_read_input_tokens == plain.usage.input_tokens
    raw = call(url, "POST", "/v1/messages", {**asked, "stream": True})[2].decode()  # the SDK leaves pings out
    events = [line.removeprefix("event: ") for line in raw.splitlines() if line.startswith("event: ")]
    assert events[:3] == ["message_start", "ping", "content_block_start"]
    assert events[-3:] == ["content_block_stop", "message_delta", "message_stop"]

    stopped = messages.create(stop_sequences=["grass", "and t"], **asked)  # the first one found wins
    assert text_of(stopped) == "Hello! The sky is blue, "
    assert (stopped.stop_reason, stopped.stop_sequence) == ("stop_sequence", "and t")
    cut = messages.create(**{**asked, "max_tokens": 2})
    assert (cut.stop_reason, cut.usage.output_tokens) == ("max_tokens", 2)

    mapped = messages.create(**{**asked, "model": "claude-future-9"})
    assert text_of(mapped) == answer and mapped.model == "claude-future-9"
    with pytest.raises(anthropic.NotFoundError) as unknown:
        messages.create(**{**asked, "model": "gpt-4o"})
    assert (
        unknown.value.body
        == {"type": "error", "error": {"type": "not_found_error", "message": unknown.value.body["error"]["message"]}}
        and "'gpt-4o' is not installed here" in unknown.value.body["error"]["message"]
    )
    status, _, reply = call(url, "POST", "/v1/messages", {"model": "tiny", "messages": HI})
    assert status == 400 and reply == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"},
    }
    with pytest.raises(anthropic.UnprocessableEntityError, match="no tool calling"):
        messages.create(tools=[{"name": "f", "input_schema": {"type": "object"}}], **asked)
    counted = messages.count_tokens(model="tiny", system="You are terse.", messages=HI)
    assert counted.input_tokens == plain.usage.input_tokens


TOOLS = [
    {
        "name": w["function"]["name"],
        "description": w["function"]["description"],
        "input_schema": w["function"]["parameters"],
    }
    for w in WEATHER
]


def test_a_tool_use_round_trip(direct_server, coder_model, mlx_run):
    url, _ = direct_server(SCRIPTED, model=coder_model)  # every answer is two forced get_weather calls
    messages = client(url).messages
    question = [{"role": "user", "content": "Weather in Paris and Rome?"}]
    asked = dict(model="tiny", max_tokens=200, tools=TOOLS)
    reply = messages.create(messages=question, **asked)
    assert reply.stop_reason == "tool_use"
    assert [b.type for b in reply.content] == ["text", "tool_use", "tool_use"] and reply.content[
        0
    ].text == "Let me look.\n"
    calls = reply.content[1:]
    assert [(c.name, c.input) for c in calls] == [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]
    with messages.stream(messages=question, **asked) as stream:
        streamed = stream.get_final_message()
    assert [(b.type, getattr(b, "input", None)) for b in streamed.content] == [
        (b.type, getattr(b, "input", None)) for b in reply.content
    ]
    assert streamed.stop_reason == "tool_use"

    results = [{"type": "tool_result", "tool_use_id": c.id, "content": f"Sunny in {c.input['city']}"} for c in calls]
    history = question + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in reply.content]},
        {"role": "user", "content": results},
    ]
    answered = messages.create(messages=history, **asked)
    as_template_takes_it = question + [
        {
            "role": "assistant",
            "content": "Let me look.\n",
            "tool_calls": [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.input}} for c in calls
            ],
        },
        *[{"role": "tool", "tool_call_id": r["tool_use_id"], "content": r["content"]} for r in results],
    ]
    counted = mlx_run(
        "import json, sys; from mlx_lm import load; t = load(sys.argv[1])[1]; "
        "print(len(t.apply_chat_template(json.loads(sys.argv[2]), tools=json.loads(sys.argv[3]), "
        "add_generation_prompt=True)))",
        coder_model,
        json.dumps(as_template_takes_it),
        json.dumps(WEATHER),
    )
    assert counted.returncode == 0, counted.stderr
    assert answered.usage.input_tokens + answered.usage.cache_read_input_tokens == int(counted.stdout)
    plain = messages.create(messages=question, tool_choice={"type": "none"}, **asked)
    assert plain.stop_reason == "end_turn" and [b.type for b in plain.content] == ["text"]
    assert "<tool_call>" in plain.content[0].text


def test_the_real_model_answers_plain_and_streamed(real_server):
    messages = client(real_server.removesuffix("/v1")).messages
    # greedy: the SDK since 2.0 has no sampling parameters (newer Claude models take none), the server reads them
    asked = dict(
        model=ALIAS,
        max_tokens=MAX_TOKENS,
        extra_body={"temperature": 0},
        messages=[{"role": "user", "content": "What is the capital of France?"}],
    )
    reply = messages.create(**asked)
    assert "Paris" in text_of(reply) and reply.stop_reason == "end_turn" and reply.usage.output_tokens < MAX_TOKENS
    with messages.stream(**asked) as stream:
        assert "".join(stream.text_stream) == text_of(reply)


def fake_agent(folder, name):
    """An agent on PATH that prints its environment and its arguments."""
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text('#!/bin/sh\nenv\necho "ARGS=$*"\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(folder)


def variables(output: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


def test_agent_starts_the_server_then_claude_pointed_at_it(paths, home, tmp_path):
    port = free_port()
    path = fake_agent(tmp_path / "bin", "claude") + os.pathsep + os.environ["PATH"]
    try:
        first = invoke("agent", "claude", "--model", "qwen7b", "--port", str(port), *paths, home=home, PATH=path)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "No server is running; starting one" in first.stderr and "Starting" not in first.stdout
        seen = variables(first.stdout)
        assert seen["ANTHROPIC_BASE_URL"] == f"http://127.0.0.1:{port}" and seen["ANTHROPIC_AUTH_TOKEN"] == "local"
        assert (
            seen["ANTHROPIC_API_KEY"] == ""
            and seen["ANTHROPIC_MODEL"] == seen["ANTHROPIC_SMALL_FAST_MODEL"] == "qwen7b"
        )
        again = invoke("agent", "claude", "--port", str(port), *paths, home=home, PATH=path)  # the running one
        assert again.returncode == 0 and "starting one" not in again.stderr
        assert variables(again.stdout)["ANTHROPIC_MODEL"] == "qwen7b"
        # serve_model_map's default sends every claude-* name to mlx.default_model, here the served qwen7b
        mapped = client(seen["ANTHROPIC_BASE_URL"]).messages.create(model="claude-haiku-4-5", max_tokens=2, messages=HI)
        assert mapped.usage.output_tokens >= 1
    finally:
        assert invoke("serve.stop", home=home).returncode == 0
