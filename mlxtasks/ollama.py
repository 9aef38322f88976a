"""The two Ollama endpoints `invoke bench --compare ollama` uses, over plain HTTP (urllib):
GET /api/tags (which models are pulled) and POST /api/generate with stream false (counts and durations)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

REACH_TIMEOUT_S = 3.0
GENERATE_TIMEOUT_S = 900.0  # a large model's first load from disk can take minutes


class Unreachable(Exception):
    """No Ollama server answered at the URL; the message says why."""


class ErrorAnswer(Exception):
    """The server answered with an error; the message is Ollama's."""


def _call(url: str, data: dict | None, timeout: float) -> dict:
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as err:
        try:
            message = json.loads(err.read()).get("error") or err.reason
        except ValueError:
            message = err.reason
        raise ErrorAnswer(f"HTTP {err.code}: {message}") from None
    except (urllib.error.URLError, OSError) as err:
        raise Unreachable(str(getattr(err, "reason", err))) from None
    except ValueError:
        raise Unreachable("the answer was not JSON, so this is not an Ollama server") from None


def tags(base_url: str) -> set[str]:
    """The pulled models' names, each as name:tag (Ollama's `phi4` is `phi4:latest`)."""
    try:
        answer = _call(f"{base_url}/api/tags", None, REACH_TIMEOUT_S)
    except ErrorAnswer as err:
        raise Unreachable(str(err)) from None
    return {full_name(entry.get("name") or entry.get("model", "")) for entry in answer.get("models", [])}


def full_name(tag: str) -> str:
    return tag if ":" in tag else f"{tag}:latest"


def generate(base_url: str, model: str, prompt: str, num_predict: int, num_ctx: int) -> dict:
    """One completion of the raw prompt (no chat template, like the MLX side), greedy."""
    return _call(
        f"{base_url}/api/generate",
        {
            "model": model,
            "prompt": prompt,
            "raw": True,
            "stream": False,
            "options": {"num_predict": num_predict, "num_ctx": num_ctx, "temperature": 0, "seed": 0},
        },
        GENERATE_TIMEOUT_S,
    )
