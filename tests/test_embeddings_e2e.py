"""Embeddings on a real server with real MLX: a tiny random-weight qwen3 laid out like mlx-community's 8-bit
Qwen3-Embedding (tests/support/tiny_model.py --embedding) beside the tiny chat model. The vectors match mlx_lm's
own forward pass (last token after the end of text, normalized), batches and concurrent requests give each
text the vector it gets alone, and the real clients (the openai SDK, langchain's OpenAIEmbeddings, the official
ollama client) read them."""

import base64
import json
import struct
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from mlxtasks.protocol import ServedModel

from . import test_server_e2e
from .support.fixtures import TINY_MODEL_SCRIPT
from .test_clients_e2e import need
from .test_server_e2e import call, wait_for

pytestmark = pytest.mark.e2e
direct_server = test_server_e2e.direct_server  # the fixture, shared

TEXTS = ["hello", "The quick brown fox jumps over the lazy dog.", "def add(a, b):\n    return a + b", "x"]
TOLERANCE = 1e-5  # float32 sums in another order (another batch shape) differ in the last bits
REFERENCE = """
import json, sys
import mlx.core as mx
from mlx_lm import load
model, tokenizer = load(sys.argv[1])
end = tokenizer.get_vocab()["<|endoftext|>"]
out = []
for text in json.loads(sys.argv[2]):
    hidden = model.model(mx.array([tokenizer.encode(text) + [end]]))[0, -1].astype(mx.float32)
    out.append((hidden / mx.linalg.norm(hidden)).tolist())
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def tiny_embedding(mlx_python, tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny-embedding") / "model"
    done = subprocess.run(
        [str(mlx_python), str(TINY_MODEL_SCRIPT), str(out), "--embedding"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


@pytest.fixture
def url(direct_server, tiny_model, tiny_embedding):
    """A server with nothing loaded at start: "embed" (the embedding model) and "tiny" (a chat model)."""
    installed = [
        ServedModel("embed", str(tiny_embedding), ["tiny-embedding"], kind="embedding"),
        ServedModel("tiny", str(tiny_model), []),
    ]
    return direct_server(alias="", model="", installed=installed)[0]


def embed(url, texts, **more):
    status, _, reply = call(url, "POST", "/v1/embeddings", {"model": "embed", "input": texts, **more})
    assert status == 200, reply
    return [row["embedding"] for row in reply["data"]]


def close(a, b, tolerance=TOLERANCE):
    return len(a) == len(b) and all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def test_vectors_are_mlx_lms_last_token_normalized_alone_batched_or_concurrent(url, mlx_python, tiny_embedding):
    done = subprocess.run(
        [str(mlx_python), "-c", REFERENCE, str(tiny_embedding), json.dumps(TEXTS)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    reference = json.loads(done.stdout)
    batched = embed(url, TEXTS)
    alone = [embed(url, text)[0] for text in TEXTS]
    with ThreadPoolExecutor(len(TEXTS)) as pool:  # each a request of its own, in one engine batch or several
        concurrent = [vectors[0] for vectors in pool.map(lambda text: embed(url, [text]), TEXTS)]
    for expected, one, two, three in zip(reference, batched, alone, concurrent, strict=True):
        assert abs(sum(v * v for v in one) - 1) < 1e-5
        assert close(one, expected) and close(two, expected) and close(three, expected)


def test_dimensions_are_the_leading_ones_renormalized_and_base64_holds_the_same_floats(url):
    [full] = embed(url, "hello")
    [cut] = embed(url, "hello", dimensions=8)
    length = sum(v * v for v in full[:8]) ** 0.5
    assert close(cut, [v / length for v in full[:8]])
    status, _, packed = call(
        url, "POST", "/v1/embeddings", {"model": "embed", "input": "hello", "encoding_format": "base64"}
    )
    decoded = struct.unpack(f"<{len(full)}f", base64.b64decode(packed["data"][0]["embedding"]))
    assert status == 200 and close(list(decoded), full, 1e-7)


def test_each_kind_of_model_refuses_the_others_requests(url):
    status, _, reply = call(url, "POST", "/v1/chat/completions", {"model": "embed", "messages": test_server_e2e.HI})
    assert status == 422 and "embed is an embedding model" in reply["error"]["message"]
    status, _, reply = call(url, "POST", "/api/embed", {"model": "tiny", "input": "hi"})
    assert status == 422 and "tiny is a chat model" in reply["error"]  # Ollama's shape, as every path under /api/


def test_the_embedding_model_loads_on_demand_and_keep_alive_0_unloads_it(url):
    def loaded():
        return sorted(m["model"] for m in call(url, "GET", "/v1/mlxtasks/ps")[2]["models"])

    assert loaded() == []
    status, _, reply = call(url, "POST", "/api/embed", {"model": "embed", "input": ["a", "b"], "keep_alive": 0})
    assert status == 200 and len(reply["embeddings"]) == 2 and reply["load_duration"] > 0
    wait_for(lambda: loaded() == [], "keep_alive 0 left the embedding model loaded")


def test_the_openai_sdk_and_langchain_read_the_vectors(url):
    openai = need("openai")
    langchain = need("langchain_openai")
    expected = embed(url, TEXTS)
    client = openai.OpenAI(base_url=url + "/v1", api_key="local", max_retries=0)
    answer = client.embeddings.create(model="embed", input=TEXTS)  # base64 on the wire, as the SDK asks by default
    assert all(close(row.embedding, vector) for row, vector in zip(answer.data, expected, strict=True))
    assert answer.usage.prompt_tokens > len(TEXTS)
    short = client.embeddings.create(model="embed", input="hello", dimensions=16, encoding_format="float")
    assert len(short.data[0].embedding) == 16
    # check_embedding_ctx_length=False: the texts go as text, not as ids of OpenAI's tokenizer
    documents = langchain.OpenAIEmbeddings(
        base_url=url + "/v1", api_key="local", model="embed", check_embedding_ctx_length=False, max_retries=0
    )
    assert all(close(a, b) for a, b in zip(documents.embed_documents(TEXTS), expected, strict=True))
    assert close(documents.embed_query(TEXTS[0]), expected[0])


def test_the_ollama_client_embeds(url):
    ollama = need("ollama")
    expected = embed(url, TEXTS)
    client = ollama.Client(host=url)
    answer = client.embed(model="embed", input=TEXTS)
    assert answer.model == "embed" and answer.prompt_eval_count > len(TEXTS)
    assert all(close(a, b) for a, b in zip(answer.embeddings, expected, strict=True))
    assert len(client.embed(model="embed", input="hello", dimensions=8).embeddings[0]) == 8
    assert close(client.embeddings(model="embed", prompt=TEXTS[0]).embedding, expected[0])
