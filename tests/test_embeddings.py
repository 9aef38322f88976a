"""Embeddings on the real server code with the fake engine (no MLX): OpenAI's /v1/embeddings, Ollama's /api/embed
and /api/embeddings, their checks, and the refusal of a request to a model of the other kind. The real model's
vectors (pooling, batching, dimensions) and the real clients are in test_embeddings_e2e.py."""

import base64
import struct

import pytest

pytest.importorskip("starlette", reason="the server's tests need starlette (pip install -e '.[test]')")

from starlette.testclient import TestClient  # noqa: E402

from mlxtasks.protocol import ServedModel  # noqa: E402
from mlxtasks.runtime.server import anthropic, embeddings, openai, responses  # noqa: E402
from mlxtasks.runtime.server.web import build  # noqa: E402

from .support.fake_engine import DIMENSIONS, fake_vector, unit  # noqa: E402
from .test_server import HI, Server  # noqa: E402

EMBED_CONTEXT = 40


@pytest.fixture
def server():
    embedder = ServedModel("embed", "/models/embed", ["embed-8bit"], 0, EMBED_CONTEXT, kind="embedding")
    made = Server(others=[embedder])
    made.app = build(made.spec, made.pool, made.log, [openai, anthropic, responses, embeddings])
    made.client = TestClient(made.app, base_url="http://127.0.0.1:8080")
    return made


def expected(text: str, dimensions: int = DIMENSIONS) -> list[float]:
    """The fake engine's vector for a text: its bytes after the start token, then the end token it pools at."""
    ids = [1, *(3 + b for b in text.encode()), 2]
    return unit(fake_vector(ids)[:dimensions])


def close(a: list[float], b: list[float], tolerance: float = 1e-6) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def test_openai_embeds_a_text_and_a_list_in_order_with_usage(server):
    one = server.post("/v1/embeddings", {"model": "embed", "input": "hello"}).json()
    assert one["object"] == "list" and one["model"] == "embed"
    assert close(one["data"][0]["embedding"], expected("hello"))
    assert one["usage"] == {"prompt_tokens": 7, "total_tokens": 7}  # start, 5 bytes, end
    texts = ["b", "a longer text", "hello"]
    many = server.post("/v1/embeddings", {"model": "embed-8bit", "input": texts}).json()
    assert [row["index"] for row in many["data"]] == [0, 1, 2]
    assert all(close(row["embedding"], expected(text)) for row, text in zip(many["data"], texts, strict=True))


def test_token_ids_are_embedded_as_given_with_the_end_token_added_once(server):
    ids = [1, 3 + ord("h"), 3 + ord("i")]
    one = server.post("/v1/embeddings", {"model": "embed", "input": ids}).json()
    both = server.post("/v1/embeddings", {"model": "embed", "input": [ids, [*ids, 2]]}).json()
    assert close(one["data"][0]["embedding"], expected("hi"))
    assert all(close(row["embedding"], expected("hi")) for row in both["data"])
    assert both["usage"]["prompt_tokens"] == 8


def test_dimensions_cut_then_normalize_and_base64_holds_the_same_floats(server):
    cut = server.post("/v1/embeddings", {"model": "embed", "input": "hello", "dimensions": 4}).json()
    vector = cut["data"][0]["embedding"]
    assert close(vector, expected("hello", 4)) and abs(sum(v * v for v in vector) - 1) < 1e-9
    packed = server.post(
        "/v1/embeddings", {"model": "embed", "input": "hello", "dimensions": 4, "encoding_format": "base64"}
    ).json()
    decoded = struct.unpack("<4f", base64.b64decode(packed["data"][0]["embedding"]))
    assert close(list(decoded), vector, 1e-7)


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"input": "hi", "dimensions": DIMENSIONS + 1}, f"dimensions: embed gives from 1 to {DIMENSIONS}"),
        ({"input": "hi", "dimensions": 0}, "dimensions: Input should be greater than or equal to 1"),
        ({"input": ""}, "input: an empty text"),
        ({"input": []}, "input: from 1 to 2048"),
        ({"input": [[]]}, "input: an empty token list"),
        ({"input": [5, 99999]}, "input: token id 99999 is outside"),
        ({"input": "x" * EMBED_CONTEXT}, f"input 0 has {EMBED_CONTEXT + 2} tokens, and this model embeds at most 40"),
        ({"input": "hi", "encoding_format": "int8"}, "encoding_format: Input should be 'float' or 'base64'"),
    ],
)
def test_openai_refusals_are_400_in_openai_shape(server, body, said):
    answer = server.post("/v1/embeddings", {"model": "embed", **body})
    assert answer.status_code == 400, answer.text
    assert said in answer.json()["error"]["message"]


def test_ollama_embed_answers_in_ollama_shape_and_cuts_a_long_input(server):
    answer = server.post("/api/embed", {"model": "embed", "input": ["hello", "b"]}).json()
    assert answer["model"] == "embed" and answer["prompt_eval_count"] == 10
    assert close(answer["embeddings"][0], expected("hello")) and close(answer["embeddings"][1], expected("b"))
    assert answer["total_duration"] >= answer["load_duration"] >= 0
    long = server.post("/api/embed", {"model": "embed", "input": "y" * 100, "dimensions": 3}).json()
    assert long["prompt_eval_count"] == EMBED_CONTEXT and len(long["embeddings"][0]) == 3
    refused = server.post("/api/embed", {"model": "embed", "input": "y" * 100, "truncate": False})
    assert refused.status_code == 400 and "embeds at most 40" in refused.text


def test_ollamas_older_embeddings_endpoint(server):
    answer = server.post("/api/embeddings", {"model": "embed", "prompt": "hello"}).json()
    assert close(answer["embedding"], expected("hello"))


def test_each_kind_of_model_refuses_the_other_kinds_request_before_loading(server):
    chat = server.post("/v1/chat/completions", {"model": "embed", "messages": HI})
    assert chat.status_code == 422
    assert chat.json()["error"]["message"] == (
        "model: embed is an embedding model: it answers /v1/embeddings and /api/embed"
    )
    embed = server.post("/v1/embeddings", {"model": "tiny", "input": "hi"})
    assert embed.status_code == 422 and "tiny is a chat model" in embed.json()["error"]["message"]
    ollama = server.post("/api/embed", {"model": "tiny", "input": "hi"})
    assert ollama.status_code == 422
    assert [engine.served.alias for engine in server.engines] == []  # neither was loaded to be refused


def test_the_embedding_model_loads_on_demand_without_a_prompt_cache(server):
    assert server.post("/v1/embeddings", {"model": "embed", "input": "hi", "keep_alive": "1h"}).status_code == 200
    rows = {row["model"]: row for row in server.client.get("/v1/mlxtasks/ps").json()["models"]}
    assert rows["embed"]["prompt_cache"] == 0 and rows["embed"]["keep_alive"] == 3600
