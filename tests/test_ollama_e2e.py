"""Ollama's API end to end: `invoke serve --ollama` with SmolLM2-135M-Instruct (real weights), a second port for
Ollama's clients (mlx.serve_ollama_port, a free one here, since 11434 may hold Ollama itself), and the official
`ollama` client there: a greedy chat, the same answer streamed, a generation, the listings, serve.status."""

import pytest

from . import test_real_model_e2e
from .support.helpers import invoke
from .support.smollm2 import ALIAS
from .test_real_model_e2e import MAX_TOKENS
from .test_serve_e2e import free_port, gone, server_pid

real_setup = test_real_model_e2e.real_setup  # a fixture, used here by name

pytestmark = pytest.mark.e2e

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY = {"temperature": 0, "num_predict": MAX_TOKENS}


@pytest.fixture(scope="module")
def ollama_server(real_setup, tmp_path_factory):
    """(home, the URL Ollama's clients use) of `invoke serve ALIAS --ollama`, stopped after the module."""
    home = tmp_path_factory.mktemp("ollama-serve-home")
    port, ollama_port = free_port(), free_port()
    venv, models = real_setup
    flags = ["--port", str(port), "--venv", str(venv), "--models", str(models)]
    started = invoke("serve", ALIAS, *flags, "--ollama", home=home, INVOKE_MLX_SERVE_OLLAMA_PORT=str(ollama_port))
    assert started.returncode == 0, started.stdout + started.stderr
    assert f"Ollama's clients: http://127.0.0.1:{ollama_port}" in started.stdout
    pid = server_pid(home)
    yield home, f"http://127.0.0.1:{ollama_port}"
    assert invoke("serve.stop", home=home).returncode == 0 and gone(pid)


def test_the_ollama_client_chats_streams_and_generates_with_the_real_model(ollama_server):
    import ollama  # here, not at the top: collecting the fast lane stays quick

    home, url = ollama_server
    client = ollama.Client(host=url, timeout=120)
    reply = client.chat(model=f"{ALIAS}:latest", messages=QUESTION, options=GREEDY)
    answer = reply.message.content
    assert "Paris" in answer and reply.done_reason == "stop" and reply.eval_count < MAX_TOKENS
    assert reply.prompt_eval_count > 0 and reply.eval_duration > 0 and reply.total_duration >= reply.eval_duration
    streamed = list(client.chat(model=ALIAS, messages=QUESTION, options=GREEDY, stream=True))
    assert "".join(part.message.content for part in streamed) == answer  # greedy either way
    assert [part.done for part in streamed].count(True) == 1 and streamed[-1].done_reason == "stop"
    generated = client.generate(model=ALIAS, prompt="What is the capital of France?", options=GREEDY)
    assert generated.response == answer  # the prompt goes through the same chat template
    assert [m.model for m in client.list().models] == [f"{ALIAS}:latest"]
    details = client.show(ALIAS).details  # SmolLM2-135M: 134.5 million parameters, its embeddings at 8 bits
    assert (details.family, details.parameter_size, details.quantization_level) == ("llama", "135M", "Q4")
    assert [m.model for m in client.ps().models] == [f"{ALIAS}:latest"]
    status = invoke("serve.status", home=home)
    assert status.returncode == 0 and f"ollama  {url} (Ollama's API)" in status.stdout
