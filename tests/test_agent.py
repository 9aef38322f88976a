"""`invoke agent`'s core (which executable, which variables) and serve_model_map, the table that maps names a
client sends (claude-*) to a model; the agents against a real server are in test_anthropic_e2e.py."""

import json

import pytest

from mlxtasks import agent, config, serve
from mlxtasks.errors import MlxTasksError
from mlxtasks.facts import GIB, HostFacts
from mlxtasks.protocol import ServeSpec

from .support.helpers import invoke

URL = "http://127.0.0.1:8080/v1"


def test_claude_code_gets_the_anthropic_variables_with_the_model_for_every_tier():
    env = agent.environment("claude", URL, "qwen7b")
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:8080"  # Claude Code adds /v1/messages
    assert env["ANTHROPIC_AUTH_TOKEN"] == "local" and env["ANTHROPIC_API_KEY"] == ""
    assert {env[name] for name in env if name.endswith("MODEL")} == {"qwen7b"} and len(env) == 8
    assert agent.argv("claude", "/bin/claude", URL, "qwen7b") == ["/bin/claude"]


def test_codex_and_opencode_get_the_openai_base_url_and_the_model():
    assert agent.environment("codex", URL, "qwen7b") == {"OPENAI_BASE_URL": URL, "OPENAI_API_KEY": "local"}
    assert agent.argv("codex", "/bin/codex", URL, "qwen7b") == [
        "/bin/codex",
        "-c",
        "model_provider=mlxtasks",
        "-c",
        'model_providers.mlxtasks={name="mlxtasks", base_url='
        '"http://127.0.0.1:8080/v1", wire_api="responses", env_key="OPENAI_API_KEY"}',
        "--model",
        "qwen7b",
    ]
    opencode = json.loads(agent.environment("opencode", URL, "qwen7b")["OPENCODE_CONFIG_CONTENT"])
    assert opencode["model"] == "mlxtasks/qwen7b"
    assert opencode["provider"]["mlxtasks"]["options"] == {"baseURL": URL, "apiKey": "local"}
    assert list(opencode["provider"]["mlxtasks"]["models"]) == ["qwen7b"]


def test_an_agent_is_found_on_path_and_an_unknown_one_is_refused(tmp_path):
    (tmp_path / "opencode").write_text("#!/bin/sh\n")
    (tmp_path / "opencode").chmod(0o755)
    assert agent.find("opencode", path=str(tmp_path)) == str(tmp_path / "opencode")
    with pytest.raises(
        MlxTasksError, match="'aider' is not an agent this task starts: it starts claude, codex, opencode"
    ):
        agent.find("aider", path=str(tmp_path))


@pytest.mark.slow
def test_an_agent_not_installed_is_one_sentence_with_how_to_install_it(home, tmp_path):
    done = invoke("agent", "claude", "--model", "qwen7b", home=home, PATH=str(tmp_path))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "[error] Claude Code is not installed: there is no 'claude' on PATH.",
        "  Fix: install it (npm install -g @anthropic-ai/claude-code), then run this again",
    ]
    assert "No server is running" not in done.stdout  # nothing was started


def test_the_model_map_sends_claude_names_to_the_default_model_and_reaches_the_servers_spec(tmp_path):
    s = config.resolve({"default_model": "qwen32b"}, home=tmp_path)
    assert s.serve_model_map == {"claude-*": "qwen32b"}
    own = config.resolve({"serve_model_map": {"claude-*haiku*": "qwen7b", "gpt-*": "default"}}, home=tmp_path)
    assert own.serve_model_map == {"claude-*haiku*": "qwen7b", "gpt-*": "qwen7b"}  # yours replaces the default
    (s.models / "qwen25-coder-32b").mkdir(parents=True)
    (s.models / "qwen25-coder-32b" / "config.json").write_text("{}")
    facts = HostFacts(
        os="linux", os_version="6", machine="x86_64", chip="x", ram_total=64 * GIB, ram_available=32 * GIB
    )
    argv = serve.prepare(s, "qwen32b", None, facts, force=False)[2]
    assert ServeSpec.from_json(argv[3]).model_map == {"claude-*": "qwen32b"}


@pytest.mark.parametrize("table", [["claude-*"], {"claude-*": 3}, {"": "qwen7b"}])
def test_a_bad_model_map_names_the_key(tmp_path, table):
    with pytest.raises(MlxTasksError, match="Config key 'mlx.serve_model_map' must be a section of name patterns"):
        _ = config.resolve({"serve_model_map": table}, home=tmp_path).serve_model_map
    with pytest.raises(MlxTasksError, match="INVOKE_MLX_SERVE_MODEL_MAP cannot set serve_model_map"):
        config.resolve({}, home=tmp_path, environ={"INVOKE_MLX_SERVE_MODEL_MAP": "x"})
