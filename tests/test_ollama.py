"""Ollama's native API (runtime/server/ollama.py) on the real server code with the stand-in engine: the shapes of
/api/chat and /api/generate (NDJSON streamed, whole with stream false), options mapped onto our sampling, names as
Ollama clients send them, the model listings (/api/tags, /api/show, /api/ps) from a model folder's files, and every
error in Ollama's shape. The official `ollama` client against a real uvicorn is in the slow tests at the end."""

import http.server
import json
import socket
import struct
import sys
import threading
import time

import pytest

pytest.importorskip("starlette", reason="the server's tests need starlette (pip install -e '.[test]')")

from starlette.testclient import TestClient  # noqa: E402

from mlxtasks import config, serve  # noqa: E402
from mlxtasks.errors import MlxTasksError  # noqa: E402
from mlxtasks.protocol import ServedModel, ServeSpec  # noqa: E402
from mlxtasks.runtime.server import anthropic, ollama, openai, responses  # noqa: E402
from mlxtasks.runtime.server.core import Core  # noqa: E402
from mlxtasks.runtime.server.web import build  # noqa: E402

from .support.helpers import ROOT  # noqa: E402
from .test_serve import LINUX  # noqa: E402
from .test_server import CALL, WEATHER, Server, say, wait_until  # noqa: E402

HI = [{"role": "user", "content": "hi"}]


class OllamaServer(Server):
    """test_server's Server with Ollama's API among the dialects, as the server runs it."""

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.app = build(self.spec, self.pool, self.log, [openai, anthropic, responses, ollama])
        self.client = TestClient(self.app, base_url="http://127.0.0.1:11434")

    def ndjson(self, path, body) -> list[dict]:
        """A streamed answer's NDJSON lines, each one JSON object."""
        with self.client.stream("POST", path, json=body) as answer:
            assert answer.status_code == 200, answer.read()
            assert answer.headers["content-type"] == "application/x-ndjson"
            text = "".join(answer.iter_text())
        assert text.endswith("\n")
        return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def server():
    return OllamaServer(reply=say("Hello there."))


SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.mark.parametrize("path, given, schema", [("/api/chat", "json", None), ("/api/generate", SCHEMA, SCHEMA)])
def test_format_asks_the_engine_for_a_structured_answer(server, path, given, schema):
    """format "json" is any JSON object, a schema is JSON matching it (constrained as every API's is)."""
    said = {"messages": HI} if path == "/api/chat" else {"prompt": "hi"}
    answer = server.post(path, {"model": "tiny", **said, "format": given, "stream": False})
    assert answer.status_code == 200, answer.text
    [asked] = server.engines[0].formats
    assert (asked.schema, asked.param) == (schema, "format")


def test_the_root_and_version_answer_as_ollama_does(server):
    assert server.client.get("/").text == "Ollama is running"
    assert server.client.head("/").status_code == 200
    assert server.client.get("/api/version").json() == {"version": ollama.VERSION}


def test_chat_streams_ndjson_by_default_and_ends_with_counts_and_durations(server):
    lines = server.ndjson("/api/chat", {"model": "tiny", "messages": HI})
    *parts, last = lines
    assert "".join(p["message"]["content"] for p in parts) == "Hello there."
    assert all(p["done"] is False and p["model"] == "tiny" and p["message"]["role"] == "assistant" for p in parts)
    assert last["done"] is True and last["done_reason"] == "stop" and last["message"]["content"] == ""
    assert (
        last["prompt_eval_count"] == len("<user>hi\n<assistant>") + 1 and last["eval_count"] == len("Hello there.") + 1
    )
    durations = [last[k] for k in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")]
    assert all(isinstance(d, int) and d >= 0 for d in durations) and last["total_duration"] >= sum(durations[1:])
    assert last["created_at"].endswith("Z")


def test_chat_and_generate_whole_with_stream_false(server):
    chat = server.post("/api/chat", {"model": "tiny", "messages": HI, "stream": False}).json()
    assert chat["message"] == {"role": "assistant", "content": "Hello there."} and chat["done"] is True
    generated = server.post("/api/generate", {"model": "tiny", "prompt": "hi", "stream": False}).json()
    assert generated["response"] == "Hello there." and generated["done_reason"] == "stop"
    assert generated["eval_count"] == chat["eval_count"] and "context" not in generated


def test_generate_puts_system_and_prompt_through_the_template_unless_raw():
    server = OllamaServer(reply=lambda prompt: prompt)
    body = {"model": "tiny", "prompt": "hi", "system": "Be brief.", "stream": False}
    assert server.post("/api/generate", body).json()["response"] == "<system>Be brief.\n<user>hi\n<assistant>"
    raw = server.post("/api/generate", {**body, "prompt": "as is", "raw": True}).json()
    assert raw["response"] == "as is"
    streamed = server.ndjson("/api/generate", {"model": "tiny", "prompt": "hi"})
    assert "".join(p["response"] for p in streamed) == "<user>hi\n<assistant>"


def test_options_become_our_sampling_and_unknown_ones_are_ignored():
    server = OllamaServer(reply=say("one two three four"))
    options = {
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 20,
        "min_p": 0.05,
        "seed": 7,
        "num_predict": 4,
        "repeat_penalty": 1.2,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.25,
        "num_ctx": 8192,
        "mirostat": 2,
        "num_gpu": 99,
    }
    body = {"model": "tiny", "messages": HI, "options": options, "stream": False}
    ask = ollama.chat_ask(ollama.ChatBody.model_validate(body), "tiny")
    sampling = ask.sampling
    assert (sampling.temperature, sampling.top_p, sampling.top_k, sampling.min_p, sampling.seed) == (
        0.5,
        0.9,
        20,
        0.05,
        7,
    )
    assert (sampling.repetition_penalty, sampling.presence_penalty, sampling.frequency_penalty) == (1.2, 0.5, 0.25)
    assert ask.max_tokens == 4 and ask.stream is False
    reply = server.post("/api/chat", body).json()
    assert (reply["message"]["content"], reply["done_reason"], reply["eval_count"]) == ("one ", "length", 4)
    stopped = server.post("/api/chat", {**body, "options": {"stop": ["three"]}}).json()
    assert stopped["message"]["content"] == "one two " and stopped["done_reason"] == "stop"
    endless = ollama.chat_ask(ollama.ChatBody.model_validate({**body, "options": {"num_predict": -1}}), "tiny")
    assert endless.max_tokens is None and endless.sampling.seed is None


def test_keep_alive_and_format_map_onto_the_ask():
    parsed = ollama.ChatBody.model_validate({"model": "m", "messages": HI, "keep_alive": "10m", "format": "json"})
    ask = ollama.chat_ask(parsed, "m")
    assert ask.keep_alive == 600 and ask.format == ollama.Format(None, "format")
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    ask = ollama.chat_ask(ollama.ChatBody.model_validate({"model": "m", "messages": HI, "format": schema}), "m")
    assert ask.format == ollama.Format(schema, "format")
    assert (
        ollama.chat_ask(ollama.ChatBody.model_validate({"model": "m", "messages": HI, "format": ""}), "m").format
        is None
    )


def test_names_drop_latest_and_go_through_the_model_map(monkeypatch):
    server = OllamaServer(reply=say("ok"))
    monkeypatch.setitem(server.spec.model_map, "qwen2.5-coder:*", "tiny")
    core = Core(server.spec, server.pool)
    assert ollama.resolve(core, "tiny:latest") == "tiny" and ollama.resolve(core, "tiny-4bit:latest") == "tiny-4bit"
    assert ollama.resolve(core, "qwen2.5-coder:7b") == "tiny" and ollama.resolve(core, "nothing:latest") == "nothing"
    for name in ("tiny:latest", "qwen2.5-coder:7b", "claude-x"):
        reply = server.post("/api/chat", {"model": name, "messages": HI, "stream": False}).json()
        assert reply["model"] == name and reply["message"]["content"] == "ok"
    missing = server.post("/api/chat", {"model": "llama3.2", "messages": HI})
    assert missing.status_code == 404
    assert (
        missing.json() == {"error": missing.json()["error"]} and 'model "llama3.2" not found' in missing.json()["error"]
    )
    assert "mlxtasks models.pull" in missing.json()["error"]


def test_tool_calls_come_back_as_objects_and_go_back_to_the_template():
    server = OllamaServer(reply=say("Let me look." + CALL))
    body = {"model": "tiny", "messages": HI, "tools": [{"type": "function", "function": WEATHER}], "stream": False}
    whole = server.post("/api/chat", body).json()
    assert whole["message"]["content"] == "Let me look." and whole["done_reason"] == "stop"
    assert whole["message"]["tool_calls"] == [
        {"function": {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}}}
    ]
    streamed = server.ndjson("/api/chat", {**body, "stream": True})
    assert [c for line in streamed for c in line["message"].get("tool_calls", [])] == whole["message"]["tool_calls"]
    echo = OllamaServer(reply=lambda prompt: prompt)
    turn = HI + [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
        },
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
    ]
    seen = echo.post("/api/chat", {"model": "tiny", "messages": turn, "stream": False}).json()["message"]["content"]
    assert '"arguments": {"city": "Paris"}' in seen and "<tool>sunny" in seen


def test_an_empty_chat_loads_the_model_and_keep_alive_zero_unloads_it(server):
    loaded = server.post("/api/generate", {"model": "tiny:latest", "stream": False}).json()
    assert (loaded["done"], loaded["done_reason"], loaded["response"]) == (True, "load", "")
    assert "tiny" in server.pool.loaded
    unloaded = server.ndjson("/api/chat", {"model": "tiny", "messages": [], "keep_alive": 0})
    assert [(u["done_reason"], u["message"]["content"]) for u in unloaded] == [("unload", "")]
    assert "tiny" not in server.pool.loaded


def thinking_server(reply) -> OllamaServer:
    """A server whose model thinks: its tokenizer has thinking markers."""
    server = OllamaServer(reply=reply)
    server.post("/api/generate", {"model": "tiny", "stream": False})  # loaded
    server.engines[0].tokenizer.has_thinking = True
    return server


def test_think_false_tells_the_template_and_think_true_splits_the_thinking_off():
    echo = thinking_server(lambda prompt: prompt)
    off = echo.post("/api/chat", {"model": "tiny", "messages": HI, "think": False, "stream": False}).json()
    assert off["message"] == {"role": "assistant", "content": "<user>hi\n<assistant><no-think>"}
    server = thinking_server(say("\nPondering  it.\n\n</think>\n\nParis."))  # the template opened the thinking
    body = {"model": "tiny", "messages": HI, "think": True, "stream": False}
    whole = server.post("/api/chat", body).json()["message"]
    assert whole == {"role": "assistant", "content": "Paris.", "thinking": "Pondering  it."}
    lines = server.ndjson("/api/chat", {**body, "stream": True})
    assert "".join(line["message"].get("thinking", "") for line in lines) == "Pondering  it."
    assert "".join(line["message"]["content"] for line in lines) == "Paris."
    written = thinking_server(say("<think>Hmm.</think>Yes."))  # the model opens it itself
    raw = {"model": "tiny", "prompt": "Q?", "raw": True, "think": "high", "stream": False}
    assert {k: v for k, v in written.post("/api/generate", raw).json().items() if k in ("response", "thinking")} == {
        "response": "Yes.",
        "thinking": "Hmm.",
    }
    plain = written.post("/api/generate", {**raw, "think": None}).json()
    assert plain["response"] == "<think>Hmm.</think>Yes." and "thinking" not in plain


def test_thoughts_split_whatever_the_pieces():
    text = "<think>\n a b \n</think>\n\nc d"
    for size in (1, 2, 3, 5, 8):
        thoughts = ollama.Thoughts("<think>", "</think>", inside=False)
        parts = [thoughts.feed(text[i : i + size]) for i in range(0, len(text), size)] + [thoughts.finish()]
        assert ("".join(p[0] for p in parts), "".join(p[1] for p in parts)) == ("a b", "c d"), size


def safetensors(path, tensors: dict) -> None:
    """A safetensors file whose header lists `tensors` ({name: (dtype, shape)}); the data is zeros."""
    header, offset = {}, 0
    for name, (dtype, shape) in tensors.items():
        size = 4 if dtype in ("U32", "F32") else 2
        for n in shape:
            size *= n
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + bytes(offset))


@pytest.fixture
def folder_server(tmp_path):
    """A server whose one installed model is a folder with a config, a 4-bit and an 8-bit weight, a plain norm, a template with
    tools and a tokenizer with thinking markers."""
    folder = tmp_path / "qwen-small"
    folder.mkdir()
    config = {"model_type": "qwen2", "hidden_size": 64, "num_hidden_layers": 2, "max_position_embeddings": 32768}
    (folder / "config.json").write_text(json.dumps({**config, "quantization": {"group_size": 64, "bits": 4}}))
    template = "{% for m in messages %}{{ m.content }}{% endfor %}{% if tools %}tools{% endif %}"
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": template}))
    (folder / "tokenizer.json").write_text(
        json.dumps({"added_tokens": [{"content": "<think>"}, {"content": "</think>"}]})
    )
    safetensors(
        folder / "model.safetensors",
        {
            "embed.weight": ("U32", [1000, 8]),  # 1000 x 64 four-bit numbers
            "embed.scales": ("F16", [1000, 1]),
            "embed.biases": ("F16", [1000, 1]),
            "norm.weight": ("F16", [64]),
            "head.weight": ("U32", [10, 32]),  # 10 x 128 eight-bit numbers: bits may differ by layer
            "head.scales": ("F16", [10, 2]),
        },
    )
    ollama.folder_facts.cache_clear()
    served = ServedModel("small", str(folder), ["small-4bit"], 3 * 10**9, 4096, 0.7, 0.8, 1024)
    return OllamaServer(others=[served]), folder


def test_tags_and_show_describe_a_model_from_its_folder(folder_server):
    server, folder = folder_server
    models = {m["name"]: m for m in server.client.get("/api/tags").json()["models"]}
    assert set(models) == {"tiny:latest", "small:latest"}
    small = models["small:latest"]
    assert small["model"] == "small:latest" and small["size"] == sum(f.stat().st_size for f in folder.iterdir())
    assert len(small["digest"]) == 64 and small["modified_at"].endswith("Z")
    assert small["details"] == {
        "parent_model": "",
        "format": "safetensors",
        "family": "qwen2",
        "families": ["qwen2"],
        "parameter_size": "65K",
        "quantization_level": "Q4",
    }
    shown = server.post("/api/show", {"model": "small:latest"}).json()
    assert shown["details"] == small["details"] and shown["capabilities"] == ["completion", "tools", "thinking"]
    assert shown["model_info"]["general.parameter_count"] == 1000 * 64 + 64 + 10 * 128
    assert shown["model_info"]["qwen2.context_length"] == 4096  # the server's, not the model's 32768
    assert shown["model_info"]["qwen2.embedding_length"] == 64 and "{% for m in messages %}" in shown["template"]
    assert "temperature     0.7" in shown["parameters"]
    assert server.post("/api/show", {"name": "small"}).json()["details"] == small["details"]  # older clients
    assert server.post("/api/show", {"model": "nothing"}).status_code == 404


def test_ps_lists_the_loaded_models_with_their_memory_and_expiry(folder_server):
    server, _ = folder_server
    assert server.client.get("/api/ps").json() == {"models": []}
    server.post("/api/generate", {"model": "small", "keep_alive": -1, "stream": False})
    server.post("/api/generate", {"model": "tiny", "keep_alive": "1h", "stream": False})
    listed = {m["name"]: m for m in server.client.get("/api/ps").json()["models"]}
    assert set(listed) == {"small:latest", "tiny:latest"}
    small = listed["small:latest"]
    assert small["size"] == 3 * 10**9 + server.pool.loaded["small"].cache_bytes and small["size_vram"] == 0
    assert small["expires_at"] > "2300" and "2300" > listed["tiny:latest"]["expires_at"]
    assert small["context_length"] == 4096 and small["details"]["family"] == "qwen2"


def test_pull_answers_for_installed_models_and_the_rest_say_what_to_do(server):
    assert server.post("/api/pull", {"model": "tiny:latest", "stream": False}).json() == {"status": "success"}
    assert [json.loads(line) for line in server.post("/api/pull", {"name": "tiny"}).text.splitlines()] == [
        {"status": "success"}
    ]
    missing = server.post("/api/pull", {"model": "qwen2.5-coder:7b"})
    assert missing.status_code == 404 and "mlxtasks models.pull qwen2.5-coder:7b" in missing.json()["error"]
    for method, path, said in [
        ("POST", "/api/push", "does not push"),
        ("POST", "/api/create", "does not create"),
        ("POST", "/api/copy", "mlx.serve_model_map"),
        ("DELETE", "/api/delete", "mlxtasks models.rm"),
        ("HEAD", "/api/blobs/sha256:abc", None),
    ]:
        answer = server.client.request(method, path, json={"model": "tiny"})
        assert answer.status_code == 501, path
        assert said is None or said in answer.json()["error"]


REFUSED = [
    (
        "an image",
        "/api/chat",
        {"messages": [{"role": "user", "content": "hi", "images": ["aGk="]}]},
        400,
        "reads text only",
    ),
    ("an image to generate", "/api/generate", {"prompt": "hi", "images": ["aGk="]}, 400, "reads text only"),
    ("thinking, of a model that cannot", "/api/chat", {"messages": HI, "think": True}, 422, "tiny does not think"),
    ("a template", "/api/generate", {"prompt": "hi", "template": "{{ .Prompt }}"}, 400, "raw: true"),
    ("a token context", "/api/generate", {"prompt": "hi", "context": [1, 2]}, 400, "/api/chat"),
    (
        "a wrong option type",
        "/api/chat",
        {"messages": HI, "options": {"temperature": "hot"}},
        400,
        "options.temperature",
    ),
    ("an empty stop", "/api/chat", {"messages": HI, "options": {"stop": [""]}}, 400, "options.stop"),
    ("a bad keep_alive", "/api/chat", {"messages": HI, "keep_alive": "soon"}, 400, "keep_alive"),
    ("no model", "/api/chat", {"messages": HI, "model": ""}, 400, "model"),
    ("a role Ollama has not", "/api/chat", {"messages": [{"role": "robot", "content": "x"}]}, 400, "messages.0.role"),
]


@pytest.mark.parametrize("what, path, body, status, said", REFUSED, ids=[r[0] for r in REFUSED])
def test_refusals_are_ollama_shaped(server, what, path, body, status, said):
    answer = server.post(path, {"model": "tiny", **body})
    assert answer.status_code == status and list(answer.json()) == ["error"] and said in answer.json()["error"]


def test_every_error_under_api_is_ollama_shaped_and_curl_d_bodies_are_read(server):
    for answer, status in [
        (server.client.get("/api/nothing"), 404),
        (server.client.get("/api/chat"), 405),
        (server.client.post("/api/chat", content=b"{not json"), 400),
    ]:
        assert answer.status_code == status and list(answer.json()) == ["error"]
    form = {"Content-Type": "application/x-www-form-urlencoded"}  # what `curl -d` says
    body = json.dumps({"model": "tiny", "messages": HI, "stream": False})
    assert server.client.post("/api/chat", content=body, headers=form).json()["message"]["content"] == "Hello there."
    from_a_page = server.client.post("/api/chat", content=body, headers={**form, "Origin": "http://evil.example"})
    assert from_a_page.status_code == 415 and "Content-Type: application/json" in from_a_page.json()["error"]
    assert server.client.get("/v1/nothing").json()["error"]["type"] == "not_found_error"  # OpenAI's paths: its shape


# --- the official client against a real uvicorn ---


@pytest.fixture
def running():
    """start(**fake) -> (OllamaServer, its URL) on a real uvicorn on a free loopback port, stopped after the test."""
    uvicorn = pytest.importorskip("uvicorn")
    started = []

    def start(**fake):
        server = OllamaServer(**fake)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        serving = uvicorn.Server(
            uvicorn.Config(server.app, host="127.0.0.1", port=port, log_level="error", lifespan="off")
        )
        thread = threading.Thread(target=serving.run, daemon=True)
        thread.start()
        for _ in range(500):
            if serving.started:
                break
            time.sleep(0.01)
        started.append((serving, thread))
        return server, f"http://127.0.0.1:{port}"

    yield start
    for serving, thread in started:
        serving.should_exit = True
        thread.join(10)


def ollama_client(url):
    ollama_ = pytest.importorskip("ollama", reason="the ollama client is in the [test] extra")
    return ollama_.Client(host=url, timeout=30)


@pytest.mark.slow
def test_the_ollama_client_chats_streams_generates_lists_shows_and_reads_errors(running, tmp_path):
    server, url = running(reply=say("Hello there." + CALL))
    client = ollama_client(url)
    chat = client.chat(model="tiny:latest", messages=HI, tools=[{"type": "function", "function": WEATHER}])
    assert chat.message.content == "Hello there." and chat.done and chat.done_reason == "stop"
    assert [(c.function.name, dict(c.function.arguments)) for c in chat.message.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert chat.eval_count == len("Hello there." + CALL) + 1 and chat.total_duration > 0
    parts = list(client.chat(model="tiny", messages=HI, stream=True, options={"num_predict": 5, "temperature": 0}))
    assert "".join(p.message.content for p in parts) == "Hello" and parts[-1].done_reason == "length"
    generated = client.generate(model="tiny", prompt="hi", options={"stop": ["there"]})
    assert generated.response == "Hello " and generated.prompt_eval_count == len("<user>hi\n<assistant>") + 1
    streamed = "".join(p.response for p in client.generate(model="tiny", prompt="hi", stream=True, raw=True))
    assert streamed.startswith("Hello there.")
    assert [m.model for m in client.list().models] == ["tiny:latest"]
    assert [(m.model, m.size_vram) for m in client.ps().models] == [("tiny:latest", 0)]
    assert client.show("tiny").details.format == "safetensors"
    # embed: Ollama's /api/embed comes with the embeddings (issue 31); its client test goes here
    with pytest.raises(Exception) as refused:
        client.chat(model="llama3.2", messages=HI)
    assert refused.value.status_code == 404 and 'model "llama3.2" not found' in refused.value.error
    assert client.pull("tiny").status == "success"


@pytest.mark.parametrize("stream", [True, False])
def test_a_client_that_leaves_stops_its_generation(running, stream):
    gate = threading.Event()
    server, url = running(gate=gate, reply=say("x" * 1000))
    connection = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])))
    body = json.dumps({"model": "tiny", "messages": HI, "stream": stream}).encode()
    connection.sendall(
        b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    wait_until(lambda: server.pool.requests == 1, "the request did not start")
    connection.close()
    gate.set()
    wait_until(lambda: server.pool.requests == 0, "the generation went on after its client left")


# --- a second port for Ollama's clients: the setting, the checks, the record, the service, a real process ---


def test_the_ollama_port_setting_is_off_by_default_and_checked(tmp_path):
    assert config.resolve({}, home=tmp_path).serve_ollama_port == 0
    assert config.resolve({"serve_ollama_port": 11434}, home=tmp_path).serve_ollama_port == 11434
    environ = {"INVOKE_MLX_SERVE_OLLAMA_PORT": "0"}
    assert config.resolve({}, home=tmp_path, environ=environ).serve_ollama_port == 0
    with pytest.raises(MlxTasksError, match="mlx.serve_ollama_port' must be a port number"):
        config.resolve({"serve_ollama_port": "ollama"}, home=tmp_path).serve_ollama_port
    flagged = serve.asking_ollama(config.resolve({"serve_port": 9000}, home=tmp_path), ollama=True)
    assert (flagged.serve_ollama_port, flagged.serve_port) == (11434, 9000)  # --ollama
    configured = config.resolve({"serve_ollama_port": 11500}, home=tmp_path)
    assert serve.asking_ollama(configured, ollama=True).serve_ollama_port == 11500


def test_the_spec_the_status_and_the_service_carry_the_ollama_port(tmp_path):
    s = config.resolve({"serve_ollama_port": 11434}, home=tmp_path)
    argv = serve.prepare(s, "none", None, LINUX, force=False)[2]
    assert ServeSpec.from_json(argv[3]).ollama_port == 11434
    (s.venv / "bin").mkdir(parents=True)
    (s.venv / "bin" / "mlxtasks").write_text("")
    assert serve.attached_argv(s, "none", "127.0.0.1", force=False)[-1] == "--ollama"
    assert "--ollama" not in serve.attached_argv(config.resolve({}, home=tmp_path), "none", "127.0.0.1", False)
    server = serve.Server(42, "qwen7b", "127.0.0.1", 8080, 1000.0, 11434)
    assert serve.describe(server, True, now=1042).splitlines()[2] == "ollama  http://127.0.0.1:11434 (Ollama's API)"
    assert "Ollama's clients: http://127.0.0.1:11434" in serve.started_text(server, s)


class Answering(http.server.BaseHTTPRequestHandler):
    """Ollama's /api/version (and a 404 for anything else)."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        body, status = (b'{"version": "0.5.7"}', 200) if self.path == "/api/version" else (b"404 page not found", 404)
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_taken_ollama_port_is_one_sentence_naming_who_answers_there():
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answering) as ollama_itself:
        threading.Thread(target=ollama_itself.serve_forever, daemon=True).start()
        port = ollama_itself.server_address[1]
        with pytest.raises(MlxTasksError) as caught:
            serve.check_ollama_port("127.0.0.1", port, 8080)
        ollama_itself.shutdown()
    said = caught.value
    assert (
        said.message
        == f"Port {port} on 127.0.0.1 is already in use by Ollama 0.5.7, which answers at http://127.0.0.1:{port}."
    )
    assert said.fix.startswith("stop it (quit the Ollama app, or: brew services stop ollama") and "--ollama" in said.fix
    with pytest.raises(MlxTasksError, match=r"Ollama's port \(8080\) is the server's own port"):
        serve.check_ollama_port("127.0.0.1", 8080, 8080)
    serve.check_ollama_port("127.0.0.1", port, 8080)  # free again


SERVER_ON_THE_FAKE_ENGINE = f"""
import sys, types
sys.path.insert(0, {str(ROOT)!r})
from tests.support.fake_engine import FakeEngine
engine = types.ModuleType("mlxtasks.runtime.server.engine")
engine.Engine = lambda spec, served, cache_bytes, disk: FakeEngine(spec, served, cache_bytes)
engine.wire_once, engine.open_disk = lambda: None, lambda spec, log: None
sys.modules[engine.__name__] = engine  # the server's code as it runs, over the stand-in engine
from mlxtasks.runtime.server.__main__ import main
main()
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_one_server_process_serves_both_ports(tmp_path):
    port, ollama_port, state = free_port(), free_port(), tmp_path / "state"
    spec = ServeSpec(
        alias="tiny",
        model="/models/tiny",
        names=[],
        port=port,
        ollama_port=ollama_port,
        log_file=str(serve.log_path(state)),
        exit_file=str(serve.exit_path(state)),
    )
    argv = [sys.executable, "-c", SERVER_ON_THE_FAKE_ENGINE, spec.to_json()]
    server = serve.start(argv, state, "tiny", "127.0.0.1", port, 60, ollama_port)
    try:
        for url in (f"http://127.0.0.1:{port}", f"http://127.0.0.1:{ollama_port}"):
            reply = ollama_client(url).chat(model="tiny", messages=HI)
            assert reply.message.content == "You said: hi"
        assert serve.status_report(state) == (serve.describe(server, True), True)
        assert f"ollama  http://127.0.0.1:{ollama_port}" in serve.status_report(state)[0]
        assert f"port {port} and {ollama_port}" in serve.log_path(state).read_text()
    finally:
        serve.stop(state)
    assert not serve.answers_at("127.0.0.1", ollama_port)
