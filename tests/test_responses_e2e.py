"""OpenAI's Responses API (POST /v1/responses) through the `openai` SDK on a real server: the tiny model's plain
and streamed responses (the same text, usage adding up, events in order), input items, ignored fields and errors;
a function-call round trip on the tiny model with Qwen2.5-Coder's tokens; SmolLM2's real answer; and a real
`codex exec` against the server when Codex is installed."""

import json
import os
import shutil
import socket
import subprocess

import pytest

from mlxtasks import agent, serve

from . import test_real_model_e2e, test_server_e2e
from .support.smollm2 import ALIAS
from .test_real_model_e2e import MAX_TOKENS
from .test_serve_e2e import client
from .test_server_e2e import SCRIPTED, WEATHER, call, requests, scripted, wait_for

# Other modules' fixtures, used here by name.
real_setup, real_server = test_real_model_e2e.real_setup, test_real_model_e2e.real_server
coder_model, direct_server = test_server_e2e.coder_model, test_server_e2e.direct_server

pytestmark = pytest.mark.e2e

ORDER = ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"]
ENDING = ["response.output_text.done", "response.content_part.done", "response.output_item.done"]


def test_plain_and_streamed_responses_input_items_and_errors(direct_server):
    import openai  # here, not at the top: collecting the fast lane stays quick

    url, _ = direct_server(model_map={"gpt-*": "tiny"})
    responses = client(url + "/v1").responses
    asked = dict(model="tiny", instructions="You are terse.", input="hi", max_output_tokens=8, temperature=0)
    plain = responses.create(**asked)
    assert plain.object == "response" and plain.id.startswith("resp_") and plain.model == "tiny"
    assert [item.type for item in plain.output] == ["message"] and plain.output[0].role == "assistant"
    assert plain.output_text and plain.output[0].content[0].type == "output_text"
    usage = plain.usage
    assert usage.input_tokens > 0 and 0 < usage.output_tokens <= 8
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    if usage.output_tokens == 8:  # the random-weight model rarely ends its turn
        assert plain.status == "incomplete" and plain.incomplete_details.reason == "max_output_tokens"
    else:
        assert plain.status == "completed" and plain.incomplete_details is None

    events = list(responses.create(stream=True, **asked))
    kinds = [event.type for event in events]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert kinds[:4] == ORDER and kinds[-4:] == ENDING + [f"response.{plain.status}"]
    assert set(kinds[4:-4]) == {"response.output_text.delta"}
    deltas = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    final = events[-1].response
    assert deltas == plain.output_text == events[-4].text == final.output_text
    assert (final.usage.input_tokens, final.usage.output_tokens) == (usage.input_tokens, usage.output_tokens)
    assert final.usage.input_tokens_details.cached_tokens > 0  # the same prompt again

    # The same conversation as items, with the fields Codex sends and a tool of a kind the server leaves out
    items = [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "You are terse."}]},
        {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
    ]
    codex_fields = dict(
        store=False,
        include=[],
        reasoning={"effort": "low"},
        prompt_cache_key="abc",
        metadata={},
        parallel_tool_calls=False,
        text={"format": {"type": "text"}},
        tools=[{"type": "web_search"}],
    )
    as_items = responses.create(**{**asked, "instructions": None, "input": items}, **codex_fields)
    assert as_items.output_text == plain.output_text and as_items.usage.input_tokens == usage.input_tokens
    turns = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "output_text", "text": "Hey."}]},
        {"role": "user", "content": "hi again"},
    ]
    longer = responses.create(**{**asked, "input": turns})
    assert longer.usage.input_tokens > usage.input_tokens

    mapped = responses.create(**{**asked, "model": "gpt-5-codex"})
    assert mapped.output_text == plain.output_text and mapped.model == "gpt-5-codex"
    with pytest.raises(openai.NotFoundError) as unknown:
        responses.create(**{**asked, "model": "o3"})
    assert unknown.value.body["code"] == "model_not_found"
    status, _, reply = call(url, "POST", "/v1/responses", {"model": "tiny", "input": 5})
    assert status == 400 and reply["error"]["type"] == "invalid_request_error" and reply["error"]["param"] == "input"
    for wrong, where in [
        ({"store": "maybe"}, "store"),
        ({"include": "all"}, "include"),
        ({"input": [{"type": "input_image", "image_url": "x"}]}, "input"),
        ({"input": [{"role": "user", "content": [{"type": "input_image"}]}]}, "input.0.content.0"),
        ({"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "[1]"}]}, "input"),
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        (
            {"text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "banana"}}}},
            "text.format.schema",
        ),
        ({"max_output_tokens": 0}, "max_output_tokens"),
    ]:
        status, _, reply = call(url, "POST", "/v1/responses", {**asked, **wrong})
        assert status == 400 and reply["error"]["param"].startswith(where), (wrong, reply)
    with pytest.raises(openai.UnprocessableEntityError, match="no tool calling"):
        responses.create(tools=WEATHER_TOOLS, **asked)


def test_a_client_that_leaves_a_stream_stops_its_generation(direct_server):
    url, state = direct_server(scripted("word " * 3000))  # far more than a stream's first events
    body = json.dumps({"model": "tiny", "input": "hi", "max_output_tokens": 3500, "stream": True}).encode()
    raw = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])))
    raw.sendall(
        b"POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    seen = b""
    while b"response.output_text.delta" not in seen:
        seen += raw.recv(4096)
    raw.close()
    wait_for(lambda: requests(url) == 0, "the generation went on after its client left")
    cancelled = [line for line in serve.log_path(state).read_text().splitlines() if "cancelled after" in line]
    assert len(cancelled) == 1 and int(cancelled[0].split("cancelled after ")[1].split()[0]) < 3000


WEATHER_TOOLS = [{"type": "function", **w["function"]} for w in WEATHER]  # the Responses API's flat shape


def test_a_function_call_round_trip(direct_server, coder_model, mlx_run):
    url, _ = direct_server(SCRIPTED, model=coder_model)  # every answer is two forced get_weather calls
    responses = client(url + "/v1").responses
    question = [{"role": "user", "content": "Weather in Paris and Rome?"}]
    asked = dict(model="tiny", max_output_tokens=200, tools=WEATHER_TOOLS)
    reply = responses.create(input=question, **asked)
    assert reply.status == "completed" and [item.type for item in reply.output] == [
        "message",
        "function_call",
        "function_call",
    ]
    assert reply.output_text == "Let me look."  # whitespace before a call is left out
    calls = reply.output[1:]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Rome"}),
    ]
    assert len({c.call_id for c in calls}) == 2 and all(c.status == "completed" for c in calls)
    events = list(responses.create(input=question, stream=True, **asked))
    kinds = [event.type for event in events]
    call_events = [
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
    ]
    assert kinds[-9:] == call_events * 2 + ["response.completed"] and kinds[-12:-9] == ENDING

    def shape(items):
        return [(i.type, getattr(i, "name", None), getattr(i, "arguments", None)) for i in items]

    assert shape(events[-1].response.output) == shape(reply.output)

    outputs = [
        {"type": "function_call_output", "call_id": c.call_id, "output": f"Sunny in {json.loads(c.arguments)['city']}"}
        for c in calls
    ]
    history = question + [item.model_dump(exclude_none=True) for item in reply.output] + outputs
    answered = responses.create(input=history, **asked)
    as_template_takes_it = question + [
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {
                    "id": c.call_id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": json.loads(c.arguments)},
                }
                for c in calls
            ],
        },
        *[{"role": "tool", "tool_call_id": o["call_id"], "content": o["output"]} for o in outputs],
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
    assert answered.usage.input_tokens == int(counted.stdout)
    plain = responses.create(input=question, tool_choice="none", **asked)
    assert [item.type for item in plain.output] == ["message"] and "<tool_call>" in plain.output_text


def test_the_real_model_answers_plain_and_streamed(real_server):
    responses = client(real_server).responses
    asked = dict(model=ALIAS, max_output_tokens=MAX_TOKENS, temperature=0, input="What is the capital of France?")
    reply = responses.create(**asked)
    assert "Paris" in reply.output_text and reply.status == "completed" and reply.usage.output_tokens < MAX_TOKENS
    with responses.stream(**asked) as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        assert "".join(deltas) == reply.output_text and stream.get_final_response().output_text == reply.output_text


ANSWER = "All done: the local model answered."


@pytest.mark.tools("codex")
def test_codex_exec_gets_its_answer_from_the_server(direct_server, coder_model, tmp_path):
    model = tmp_path / "model"  # Codex's own prompt is about 19,000 tokens: the tiny model's context made larger
    shutil.copytree(coder_model, model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 32768}))
    url, _ = direct_server(scripted(ANSWER), model=model)  # Codex sends tools, so a template with tool calling
    command = agent.argv("codex", shutil.which("codex"), url + "/v1", "tiny") + [
        "exec",
        "--skip-git-repo-check",
        "Say hello.",
    ]
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **agent.environment("codex", url + "/v1", "tiny")}
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == ANSWER  # exec prints the last message alone
