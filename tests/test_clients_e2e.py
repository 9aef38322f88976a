"""Real clients against the server on the real model (SmolLM2), which answers for real: LangChain's ChatOpenAI
and completions OpenAI, litellm, the `llm` CLI through its extra-openai-models.yaml, and the openai client on
suffix, tools and seed. The openai client's other tests are in test_serve_e2e.py and test_real_model_e2e.py. Each client is in the test extra; a test whose
client is missing skips, except under CI=true, where it fails."""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .support.smollm2 import ALIAS
from .test_real_model_e2e import MAX_TOKENS, real_server, real_setup  # noqa: F401 (fixtures)

pytestmark = pytest.mark.e2e

QUESTION = "What is the capital of France?"


def need(module: str):
    if os.environ.get("CI") == "true":
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=f"{module} is not installed here: pip install -e '.[test]'")


def test_langchain_chat_and_completions(real_server):
    lc = need("langchain_openai")
    chat = lc.ChatOpenAI(
        base_url=real_server, api_key="local", model=ALIAS, max_tokens=MAX_TOKENS, temperature=0, max_retries=0
    )
    reply = chat.invoke(QUESTION)
    assert "Paris" in reply.content and reply.response_metadata["finish_reason"] == "stop"
    assert "".join(chunk.content for chunk in chat.stream(QUESTION)) == reply.content
    completions = lc.OpenAI(
        base_url=real_server, api_key="local", model=ALIAS, max_tokens=5, temperature=0, max_retries=0
    )
    assert completions.invoke("The capital of France is").startswith(" Paris")


def test_litellm_chat_stream_and_text(real_server, monkeypatch):
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # it would fetch a price list from the internet
    litellm = need("litellm")
    asked = dict(
        api_base=real_server,
        api_key="local",
        max_tokens=MAX_TOKENS,
        temperature=0,
        messages=[{"role": "user", "content": QUESTION}],
    )
    reply = litellm.completion(model=f"openai/{ALIAS}", **asked)
    answer = reply.choices[0].message.content
    assert "Paris" in answer and reply.choices[0].finish_reason == "stop" and reply.usage.completion_tokens < MAX_TOKENS
    streamed = litellm.completion(model=f"openai/{ALIAS}", stream=True, **asked)
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == answer
    text = litellm.text_completion(
        model=f"text-completion-openai/{ALIAS}",
        api_base=real_server,
        api_key="local",
        prompt="The capital of France is",
        max_tokens=5,
        temperature=0,
    )
    assert text.choices[0].text.startswith(" Paris")


def test_the_llm_cli_through_extra_openai_models(real_server, tmp_path):
    need("llm")
    (tmp_path / "extra-openai-models.yaml").write_text(
        f'- model_id: local\n  model_name: {ALIAS}\n  api_base: "{real_server}"\n'
        f'- model_id: local-completion\n  model_name: {ALIAS}\n  api_base: "{real_server}"\n  completion: true\n'
    )
    llm = Path(sys.executable).with_name("llm")

    def run(*args):
        done = subprocess.run(
            [str(llm), *args],
            env={**os.environ, "LLM_USER_PATH": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "Paris" in run("-m", "local", QUESTION, "-o", "temperature", "0", "-o", "max_tokens", str(MAX_TOKENS))
    assert (
        run("-m", "local-completion", "The capital of France is", "-o", "temperature", "0", "-o", "max_tokens", "5")
        .strip()
        .startswith("Paris")
    )


def test_the_openai_client_on_suffix_tools_and_seed(real_server):
    """SmolLM2's tokenizer has no fill-in-the-middle tokens and its template no tools: each is a 422 that says so,
    and a seed at temperature 1 repeats its answer."""
    openai = need("openai")
    client = openai.OpenAI(base_url=real_server, api_key="local", max_retries=0)
    with pytest.raises(openai.UnprocessableEntityError, match="no fill-in-the-middle tokens"):
        client.completions.create(model=ALIAS, prompt="def add(a, b):\n    return ", suffix="\n", max_tokens=5)
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    with pytest.raises(openai.UnprocessableEntityError, match="no tool calling"):
        client.chat.completions.create(model=ALIAS, messages=[{"role": "user", "content": QUESTION}], tools=[tool])
    asked = dict(
        model=ALIAS, messages=[{"role": "user", "content": "Tell me a story."}], max_tokens=20, temperature=1, seed=42
    )
    first, again = (client.chat.completions.create(**asked).choices[0].message.content for _ in range(2))
    assert first == again
