"""The model router: a transparent rule table scores a prompt per category; the category's best
installed model answers. Pure: the table and the installed aliases come in as data. The scoring
itself is protocol.score/route, since the runtime's chat routes its first message with it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import protocol
from .errors import MlxTasksError
from .protocol import Choice

# category: word-boundary keywords with weights, and the models for it, best first.
DEFAULT_RULES: dict[str, dict[str, Any]] = {
    "code": {
        "keywords": {
            "code": 2,
            "function": 2,
            "bug": 2,
            "debug": 2,
            "python": 2,
            "javascript": 2,
            "typescript": 2,
            "rust": 2,
            "sql": 2,
            "regex": 2,
            "refactor": 2,
            "compile": 1,
            "error": 1,
            "class": 1,
            "api": 1,
            "script": 1,
            "test": 1,
            "git": 1,
        },
        "models": ["qwen32b", "qwen7b", "phi4", "mistral7b", "deepseek"],
    },
    "reasoning": {
        "keywords": {
            "why": 1,
            "reason": 2,
            "explain": 1,
            "prove": 2,
            "think": 1,
            "step by step": 2,
            "logic": 2,
            "puzzle": 2,
            "plan": 1,
            "compare": 1,
            "trade-off": 2,
        },
        "models": ["deepseek", "phi4", "qwen32b", "qwen7b", "mistral7b"],
    },
    "math": {
        "keywords": {
            "math": 2,
            "equation": 2,
            "integral": 2,
            "derivative": 2,
            "solve": 1,
            "calculate": 2,
            "probability": 2,
            "algebra": 2,
            "theorem": 2,
            "sum": 1,
        },
        "models": ["phi4", "deepseek", "qwen32b", "qwen7b", "mistral7b"],
    },
    "general": {"keywords": {}, "models": ["mistral7b", "qwen7b", "phi4", "deepseek", "qwen32b"]},
}


def route(prompt: str, installed: set[str], rules: Mapping[str, Mapping] = DEFAULT_RULES) -> Choice:
    """The best installed model for the prompt, and why (protocol.route, which the runtime's chat uses too)."""
    if not installed:
        raise MlxTasksError("No model is installed, so there is nothing to route to.", fix="invoke models.pull qwen7b")
    return protocol.route(prompt, installed, rules)


def check_rules(rules: Any) -> dict[str, dict[str, Any]]:
    """Config's `mlx.router`: each category a mapping of keywords (word: weight) and a models list."""
    fix = "edit the `mlx.router` section of ~/.invoke.yaml (see docs/chat.md)"
    if not isinstance(rules, Mapping) or not rules:
        raise MlxTasksError(f"Config key 'mlx.router' must be a mapping of categories, got {rules!r}.", fix=fix)
    for category, rule in rules.items():
        key = f"mlx.router.{category}"
        keywords = rule.get("keywords", {}) if isinstance(rule, Mapping) else None
        models = rule.get("models") if isinstance(rule, Mapping) else None
        if not isinstance(keywords, Mapping) or not all(
            isinstance(w, str) and isinstance(v, (int, float)) and not isinstance(v, bool) for w, v in keywords.items()
        ):
            raise MlxTasksError(f"Config key '{key}.keywords' must map words to weights.", fix=fix)
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            raise MlxTasksError(f"Config key '{key}.models' must be a list of model aliases.", fix=fix)
    return {c: dict(r) for c, r in rules.items()}
