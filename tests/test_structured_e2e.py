"""Structured answers with real MLX (issue 31): the tiny random model, whose unconstrained answers are garbage, is
the strictest test of the constraint: every sampled answer (temperature 1, alone, in a shared batch, through the
prompt cache and the long-prompt prefill) parses and matches its schema, and a required tool call is a valid call.
SmolLM2 answers sensibly through the openai SDK's parse, langchain's with_structured_output and chat.ask
--schema; a schema the grammar engine cannot compile is a 400 naming the part."""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from .support.helpers import invoke
from .support.smollm2 import ALIAS
from .test_clients_e2e import need
from .test_real_model_e2e import paths, real_server, real_setup  # noqa: F401 (fixtures)
from .test_serve_e2e import client
from .test_server_e2e import CHAT, HI, call, coder_model, direct_server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.e2e

# Nested objects, arrays, enums and required fields; strings and arrays bounded, so that a random model ends them.
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "role": {"enum": ["admin", "editor", "viewer"]},
        "address": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 12},
                "zip": {"type": "string", "pattern": "^[0-9]{5}$"},
            },
            "required": ["city", "zip"],
            "additionalProperties": False,
        },
        "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 3},
        "scores": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"subject": {"type": "string", "maxLength": 8}, "value": {"type": "boolean"}},
                "required": ["subject", "value"],
                "additionalProperties": False,
            },
            "maxItems": 2,
        },
    },
    "required": ["name", "age", "role", "address", "tags"],
    "additionalProperties": False,
}
ASKED = {
    "messages": HI,
    "max_tokens": 400,
    "temperature": 1,
    "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}},
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "maxLength": 10}, "unit": {"enum": ["C", "F"]}},
                "required": ["city", "unit"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "add",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "integer", "maximum": 999}, "b": {"type": "integer", "maximum": 999}},
                "required": ["a", "b"],
                "additionalProperties": False,
            },
        },
    },
]


def valid(content: str, schema: dict) -> dict:
    jsonschema = need("jsonschema")
    answer = json.loads(content)
    jsonschema.validate(answer, schema)
    return answer


def structured(url: str, body: dict) -> list[dict]:
    status, _, reply = call(url, "POST", CHAT, body)
    assert status == 200, reply
    assert all(choice["finish_reason"] == "stop" for choice in reply["choices"]), reply
    return reply


def test_fifty_sampled_answers_of_the_random_model_all_match_the_schema(direct_server):
    url, _ = direct_server()
    with ThreadPoolExecutor(8) as pool:  # 8 requests at a time share the batch, each with its own mask
        replies = list(pool.map(lambda seed: structured(url, {**ASKED, "seed": seed}), range(42)))
    together = structured(url, {**ASKED, "n": 8})  # 8 choices of one request: one batch
    answers = [valid(c["message"]["content"], PERSON) for r in [*replies, together] for c in r["choices"]]
    assert len(answers) == 50 and len({json.dumps(a) for a in answers}) > 40  # sampled, not one answer repeated


def test_the_constraint_holds_through_the_prompt_cache_the_long_prefill_and_a_stream(direct_server):
    url, _ = direct_server(prefill_chunk=64)
    long = [{"role": "system", "content": "Rules of the house. " * 60}, *HI]  # far past one prefill chunk
    first = structured(url, {**ASKED, "messages": long, "seed": 1})
    again = structured(url, {**ASKED, "messages": long, "seed": 1})
    assert again["usage"]["prompt_tokens_details"]["cached_tokens"] > 500
    assert first["choices"][0]["message"] == again["choices"][0]["message"]  # the same seed, the same answer
    valid(first["choices"][0]["message"]["content"], PERSON)
    stream = client(url + "/v1").chat.completions.create(
        model="tiny", stream=True, seed=1, **{**ASKED, "messages": long}
    )
    assert (
        "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        == first["choices"][0]["message"]["content"]
    )
    anything = structured(url, {**ASKED, "response_format": {"type": "json_object"}, "max_tokens": 4000})
    assert isinstance(json.loads(anything["choices"][0]["message"]["content"]), dict)


def test_schemas_the_engine_cannot_compile_are_400s_naming_the_part(direct_server, coder_model):
    url, _ = direct_server(model=coder_model)
    ref = {"type": "object", "properties": {"a": {"$ref": "#/nowhere"}}}
    for path, body, param in [
        (
            CHAT,
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": ref}}},
            "response_format.json_schema.schema",
        ),
        (
            "/v1/responses",
            {"input": "hi", "text": {"format": {"type": "json_schema", "name": "x", "schema": ref}}},
            "text.format.schema",
        ),
        (
            "/v1/messages",
            {"max_tokens": 5, "output_format": {"type": "json_schema", "schema": ref}},
            "output_format.schema",
        ),
        (
            CHAT,
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": ref}}], "tool_choice": "required"},
            "tool_choice",
        ),
    ]:
        status, _, reply = call(
            url, "POST", path, {"model": "tiny", **({} if "input" in body else {"messages": HI}), **body}
        )
        assert status == 400 and reply["error"]["message"].startswith(f"{param}: "), reply
        assert "'/nowhere' does not exist" in reply["error"]["message"]
    assert call(url, "POST", CHAT, {"messages": HI, "max_tokens": 2})[0] == 200  # and the server goes on


def test_a_required_tool_call_is_a_valid_call_of_one_of_the_tools(direct_server, coder_model):
    jsonschema = need("jsonschema")
    url, _ = direct_server(model=coder_model)
    parameters = {tool["function"]["name"]: tool["function"]["parameters"] for tool in TOOLS}
    for choice, names in [
        ("required", {"get_weather", "add"}),
        ({"type": "function", "function": {"name": "add"}}, {"add"}),
    ]:
        body = {"messages": HI, "tools": TOOLS, "tool_choice": choice, "temperature": 1, "n": 8, "max_tokens": 200}
        status, _, reply = call(url, "POST", CHAT, body)
        assert status == 200, reply
        for answer in reply["choices"]:
            assert answer["finish_reason"] == "tool_calls", answer
            [called] = answer["message"]["tool_calls"]
            assert called["function"]["name"] in names
            jsonschema.validate(json.loads(called["function"]["arguments"]), parameters[called["function"]["name"]])


def test_a_model_without_tool_calling_cannot_be_forced_to_call(direct_server):
    url, _ = direct_server()
    status, _, reply = call(url, "POST", CHAT, {"messages": HI, "tools": TOOLS, "tool_choice": "required"})
    assert status == 422 and "no tool calling" in reply["error"]["message"]


# --- SmolLM2, which answers for real ---

CAPITAL = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
    "required": ["city", "country"],
    "additionalProperties": False,
}
QUESTION = "What is the capital of France? Answer in JSON with the city and its country."


def test_a_greedy_structured_answer_of_the_real_model_is_sensible(real_server):
    reply = client(real_server).chat.completions.create(
        model=ALIAS,
        messages=[{"role": "user", "content": QUESTION}],
        temperature=0,
        max_tokens=60,
        response_format={"type": "json_schema", "json_schema": {"name": "capital", "schema": CAPITAL, "strict": True}},
    )
    answer = valid(reply.choices[0].message.content, CAPITAL)
    assert answer["city"] == "Paris" and reply.choices[0].finish_reason == "stop"


def test_the_openai_sdks_parse_and_langchains_structured_output(real_server):
    pydantic = need("pydantic")

    class Capital(pydantic.BaseModel):
        city: str
        country: str

    parsed = client(real_server).chat.completions.parse(
        model=ALIAS,
        messages=[{"role": "user", "content": QUESTION}],
        temperature=0,
        max_tokens=60,
        response_format=Capital,
    )
    sensible = lambda answer: answer.city == "Paris" and answer.country.lower() == "france"  # noqa: E731
    assert sensible(parsed.choices[0].message.parsed)
    lc = need("langchain_openai")
    chat = lc.ChatOpenAI(
        base_url=real_server, api_key="local", model=ALIAS, max_tokens=60, temperature=0, max_retries=0
    )
    assert sensible(chat.with_structured_output(Capital, method="json_schema").invoke(QUESTION))


def test_chat_ask_schema_and_json_on_the_command_line(real_setup, home, tmp_path):
    schema = tmp_path / "capital.json"
    schema.write_text(json.dumps(CAPITAL))
    flags = ["--model", ALIAS, "--temp", "0", "--max-tokens", "60", *paths(real_setup)]
    done = invoke("chat.ask", QUESTION, "--schema", str(schema), *flags, home=home)
    assert done.returncode == 0, done.stderr
    assert valid(done.stdout, CAPITAL)["city"] == "Paris"
    anything = invoke("chat.ask", QUESTION, "--json", *flags, home=home)
    assert anything.returncode == 0 and isinstance(json.loads(anything.stdout), dict), anything.stderr
    schema.write_text("{not json")
    broken = invoke("chat.ask", QUESTION, "--schema", str(schema), *flags, home=home)
    assert broken.returncode == 1 and f"The schema file {schema} is not JSON" in broken.stderr and not broken.stdout
    schema.write_text(json.dumps({"type": "object", "properties": {"a": {"$ref": "#/nowhere"}}}))
    uncompiled = invoke("chat.ask", QUESTION, "--schema", str(schema), *flags, home=home)
    assert uncompiled.returncode == 1 and "--schema: this schema cannot constrain an answer" in uncompiled.stderr
