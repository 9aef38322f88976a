"""The built-in model catalogue (repo ids and sizes checked in Nov 2026) and memory fit."""

from __future__ import annotations

from dataclasses import dataclass

from .facts import GB, HostFacts

# Weights plus KV cache and activations for a few thousand tokens of context.
FIT_HEADROOM = 1.1


@dataclass(frozen=True)
class Model:
    alias: str
    repo: str
    folder: str
    size_gb: float
    arch: str
    category: str
    description: str
    also: tuple[str, ...] = ()


BUILTIN = (
    Model("qwen7b", "mlx-community/Qwen2.5-Coder-7B-Instruct-4bit", "qwen25-coder-7b", 4.28, "qwen2", "code",
          "Qwen2.5 Coder 7B: fast everyday coding help", ("qwen25-coder-7b",)),
    Model("qwen32b", "mlx-community/Qwen2.5-Coder-32B-Instruct-4bit", "qwen25-coder-32b", 18.43, "qwen2", "code",
          "Qwen2.5 Coder 32B: stronger code, needs a 32 GB Mac", ("qwen25-coder-32b",)),
    Model("deepseek", "mlx-community/DeepSeek-R1-Distill-Llama-8B-4bit", "deepseek-r1-8b", 4.5, "llama", "reasoning",
          "DeepSeek R1 distilled into Llama 8B: step-by-step reasoning", ("deepseek-r1-8b",)),
    Model("phi4", "mlx-community/phi-4-4bit", "phi4-14b", 8.25, "phi3", "math",
          "Phi-4 14B: maths and code", ("phi4-14b",)),
    Model("mistral7b", "mlx-community/Mistral-7B-Instruct-v0.3-4bit", "mistral-7b", 4.08, "mistral", "general",
          "Mistral 7B Instruct v0.3: general chat", ("mistral-7b",)),
)


def memory_budget(facts: HostFacts) -> int:
    """Bytes a model may use: on a Mac, what the GPU may wire by default; elsewhere available RAM."""
    if facts.is_mac:
        # macOS lets the GPU wire about 2/3 of RAM up to 36 GB, about 3/4 above.
        fraction = 2 / 3 if facts.ram_total <= 36 * 2**30 else 3 / 4
        return int(facts.ram_total * fraction)
    return facts.ram_available


def fits_in(model: Model, budget: int) -> bool:
    return model.size_gb * GB * FIT_HEADROOM <= budget


def fits(model: Model, facts: HostFacts) -> bool:
    return fits_in(model, memory_budget(facts))


def by_folder(folder: str, models: tuple[Model, ...] = BUILTIN) -> Model | None:
    return next((m for m in models if m.folder == folder), None)


def too_big(facts: HostFacts, models: tuple[Model, ...] = BUILTIN) -> list[Model]:
    return [m for m in models if not fits(m, facts)]
