"""`invoke agent`: a coding agent (Claude Code, Codex, opencode) started with its environment pointing at this
machine's server (Anthropic's Messages API for Claude Code, OpenAI's Responses API for Codex, OpenAI's chat
endpoint for opencode), the server started first when none runs."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from . import serve
from .config import Settings
from .errors import MlxTasksError
from .facts import HostFacts

KEY = "local"  # the server takes any key; the agents want one


@dataclass(frozen=True)
class Agent:
    command: str
    name: str
    install: str


AGENTS = {
    "claude": Agent("claude", "Claude Code", "npm install -g @anthropic-ai/claude-code"),
    "codex": Agent("codex", "Codex", "npm install -g @openai/codex"),
    "opencode": Agent("opencode", "opencode", "npm install -g opencode-ai"),
}


def find(tool: str, path: str | None = None) -> str:
    """The agent's executable on PATH; else one sentence, and how to install it as the fix."""
    agent = AGENTS.get(tool)
    if agent is None:
        raise MlxTasksError(
            f"{tool!r} is not an agent this task starts: it starts {', '.join(AGENTS)}.",
            fix="invoke agent claude --model qwen7b",
        )
    found = shutil.which(agent.command, path=path)
    if not found:
        raise MlxTasksError(
            f"{agent.name} is not installed: there is no {agent.command!r} on PATH.",
            fix=f"install it ({agent.install}), then run this again",
        )
    return found


def start_server(settings: Settings, model: str | None, facts: HostFacts) -> serve.Server:
    """A server for the model (default: mlx.default_model), checked and started as `invoke serve` does."""
    alias, host, argv, _ = serve.prepare(settings, model or "default", None, facts, force=False)
    serve.check_ports(host, settings, retry=f"invoke agent ... --model {alias}")
    return serve.start(
        argv,
        settings.state,
        alias,
        host,
        settings.serve_port,
        settings.serve_start_timeout_s,
        settings.serve_ollama_port,
    )


def model_name(settings: Settings, model: str | None, server: serve.Server) -> str:
    """The model the agent asks for: the one given, else the one the server serves."""
    if model is None:
        return server.alias
    return settings.model_name(model)


def environment(tool: str, url: str, model: str) -> dict[str, str]:
    """The variables that point the agent at the server (url: its OpenAI base URL, ending in /v1) and the model."""
    if tool == "claude":  # it adds /v1/messages itself; an API key would go over the token
        names = [
            "ANTHROPIC_MODEL",
            "ANTHROPIC_SMALL_FAST_MODEL",
            "ANTHROPIC_DEFAULT_OPUS_MODEL",
            "ANTHROPIC_DEFAULT_SONNET_MODEL",
            "ANTHROPIC_DEFAULT_HAIKU_MODEL",
        ]
        return {
            "ANTHROPIC_BASE_URL": url.removesuffix("/v1"),
            "ANTHROPIC_AUTH_TOKEN": KEY,
            "ANTHROPIC_API_KEY": "",
            **dict.fromkeys(names, model),
        }
    if tool == "opencode":  # a provider of its own, through the AI SDK's OpenAI-compatible package
        config = {
            "$schema": "https://opencode.ai/config.json",
            "model": f"mlxtasks/{model}",
            "provider": {
                "mlxtasks": {
                    "npm": "@ai-sdk/openai-compatible",
                    "name": "mlxtasks",
                    "options": {"baseURL": url, "apiKey": KEY},
                    "models": {model: {"name": model}},
                }
            },
        }
        return {"OPENCODE_CONFIG_CONTENT": json.dumps(config)}
    return {"OPENAI_BASE_URL": url, "OPENAI_API_KEY": KEY}


def argv(tool: str, program: str, url: str, model: str, passed: Sequence[str] = ()) -> list[str]:
    """The agent's command line: what points it at the server, then the arguments the user gave it."""
    if tool != "codex":
        return [program, *passed]
    # Codex reads no base URL from the environment: a provider of its own, on the Responses API
    provider = f'{{name="mlxtasks", base_url="{url}", wire_api="responses", env_key="OPENAI_API_KEY"}}'
    return [
        program,
        "-c",
        "model_provider=mlxtasks",
        "-c",
        f"model_providers.mlxtasks={provider}",
        "--model",
        model,
        *passed,
    ]


def run(tool: str, program: str, url: str, model: str, passed: Sequence[str] = ()) -> None:
    """Become the agent (exec: it owns the terminal), with the server's variables over ours."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.execve(program, argv(tool, program, url, model, passed), {**os.environ, **environment(tool, url, model)})
