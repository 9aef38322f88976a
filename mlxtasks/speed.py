"""Expected generation speed on this machine: measured by `invoke bench` here when it has been, else estimated
from the chip's memory bandwidth and the bytes read per token (generating a token reads every active weight
once), else plainly what MLX's CPU backend gives. Pure but for reading bench's history."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .facts import GB, HostFacts, backend_for

NEWSROOM = "https://www.apple.com/newsroom/"
# Apple's figures in GB/s. Where one name covers two bins (M3 Max, M4 Max) the lower is used: the name
# alone does not say which, and an estimate should not promise too much.
BANDWIDTH = {
    "M1": (
        68,
        NEWSROOM + "2021/10/introducing-m1-pro-and-m1-max-the-most-powerful-chips-apple-has-ever-built/ "
        "(M1 Max's 400 GB/s is 'nearly 6x' M1's; LPDDR4X-4266 on 128 bits is 68 GB/s)",
    ),
    "M1 Pro": (200, NEWSROOM + "2021/10/introducing-m1-pro-and-m1-max-the-most-powerful-chips-apple-has-ever-built/"),
    "M1 Max": (400, NEWSROOM + "2021/10/introducing-m1-pro-and-m1-max-the-most-powerful-chips-apple-has-ever-built/"),
    "M1 Ultra": (
        800,
        NEWSROOM + "2022/03/apple-unveils-m1-ultra-the-worlds-most-powerful-chip-for-a-personal-computer/",
    ),
    "M2": (100, NEWSROOM + "2022/06/apple-unveils-m2-with-breakthrough-performance-and-capabilities/"),
    "M2 Pro": (
        200,
        NEWSROOM + "2023/01/apple-unveils-m2-pro-and-m2-max-next-generation-chips-for-next-level-workflows/",
    ),
    "M2 Max": (
        400,
        NEWSROOM + "2023/01/apple-unveils-m2-pro-and-m2-max-next-generation-chips-for-next-level-workflows/",
    ),
    "M2 Ultra": (800, NEWSROOM + "2023/06/apple-introduces-m2-ultra/"),
    "M3": (
        100,
        NEWSROOM + "2023/10/apple-unveils-m3-m3-pro-and-m3-max-the-most-advanced-chips-for-a-personal-computer/ "
        "and the MacBook Pro (Nov 2023) technical specifications",
    ),
    "M3 Pro": (
        150,
        "the MacBook Pro (Nov 2023) technical specifications, as reported in "
        "https://www.macrumors.com/2023/10/31/apple-m3-pro-less-memory-bandwidth/",
    ),
    "M3 Max": (
        300,
        "the MacBook Pro (Nov 2023) technical specifications: 300 GB/s (14-core CPU) or 400 GB/s (16-core), "
        "https://www.macrumors.com/2023/10/31/apple-m3-pro-less-memory-bandwidth/",
    ),
    "M3 Ultra": (
        819,
        NEWSROOM + "2025/03/apple-reveals-m3-ultra-taking-apple-silicon-to-a-new-extreme/ "
        "('over 800GB/s'; the Mac Studio (2025) specifications: 819 GB/s)",
    ),
    "M4": (120, NEWSROOM + "2024/05/apple-introduces-m4-chip/"),
    "M4 Pro": (273, NEWSROOM + "2024/10/apple-introduces-m4-pro-and-m4-max/"),
    "M4 Max": (
        410,
        NEWSROOM + "2024/10/apple-introduces-m4-pro-and-m4-max/ ('up to 546GB/s'; the 14-core CPU "
        "bin's MacBook Pro specifications: 410 GB/s)",
    ),
    "M5": (153, NEWSROOM + "2025/10/apple-unleashes-m5-the-next-big-leap-in-ai-performance-for-apple-silicon/"),
    "M5 Pro": (
        307,
        "Apple's MacBook Pro announcement of 3 March 2026 ('up to 307GB/s' for M5 Pro), as reported in "
        "https://morningoverview.com/apples-new-m5-pro-m5-max-chips-promise-insane-pro-performance",
    ),
    "M5 Max": (
        460,
        "Apple's 3 March 2026 announcement gives 'up to 614GB/s' (the 40-core GPU bin, "
        "https://sfnews.us/apple-macbook-pro-m5-pro-max-2026-what-changes); the 32-core GPU bin is reported "
        "at about 460 GB/s (https://cputronic.com/cpu/apple-m5-max-32-core-gpu), the lower is used",
    ),
}
# Share of the peak bandwidth token generation reaches with MLX (measured runs land around 60-75 %).
EFFICIENCY = 0.65
# MLX's CPU backend: a real 135M 4-bit model (about 0.1 GB of weights) gave about 5 tokens/s on 2 cores.
CPU_TOKENS_PER_S, CPU_WEIGHTS = 5.0, 0.1 * GB
_CHIP = re.compile(r"\bApple (M\d+)(?: (Pro|Max|Ultra))?\b")


@dataclass(frozen=True)
class Speed:
    tokens_per_s: float  # 0: no figure
    how: str  # "measured", "estimated", "cpu" or "unknown"
    detail: str = ""

    @property
    def short(self) -> str:
        """For a table's column: ~41/s (estimated), 38/s* (measured), <1/s (the CPU), ? (no figure)."""
        if not self.tokens_per_s:
            return "?"
        rate = "<1" if self.tokens_per_s < 1 else f"{self.tokens_per_s:.0f}"
        return {"measured": f"{rate}/s*", "estimated": f"~{rate}/s"}.get(self.how, f"{rate}/s")

    @property
    def text(self) -> str:
        if self.how == "measured":
            return f"{self.tokens_per_s:.1f} tokens/s, measured here by invoke bench ({self.detail})"
        if self.how == "estimated":
            return f"about {self.tokens_per_s:.0f} tokens/s, estimated from {self.detail}"
        if self.how == "cpu":
            usable = "not usable for chat" if self.tokens_per_s < 1 else "slow"
            return (
                f"about {self.tokens_per_s:.1f} tokens/s on the CPU ({usable}): MLX's CPU backend gave a 135M 4-bit "
                "model about 5 tokens/s on 2 cores, so a 7B model is not usable there"
            )
        return f"no estimate: {self.detail}"


def chip_bandwidth(chip: str) -> tuple[str, int] | None:
    """(the chip's name, its memory bandwidth in GB/s) from a brand string such as 'Apple M2 Pro'."""
    found = _CHIP.search(chip)
    if not found:
        return None
    name = " ".join(filter(None, found.groups()))
    return (name, BANDWIDTH[name][0]) if name in BANDWIDTH else None


def estimate(facts: HostFacts, weights: int, active: float = 1.0) -> Speed:
    """Generation tokens/s from the bandwidth and the bytes read per token (the active share of the weights)."""
    if not weights:
        return Speed(0, "unknown", "the model's size is unknown")
    read = weights * active
    backend = backend_for(facts)
    if backend == "cpu":
        return Speed(CPU_TOKENS_PER_S * CPU_WEIGHTS / read, "cpu")
    known = chip_bandwidth(facts.chip) if backend == "metal" else None
    if not known:
        return Speed(0, "unknown", f"no bandwidth figure for {facts.chip} ({backend}); measure it: invoke bench")
    name, bandwidth = known
    return Speed(
        bandwidth * GB * EFFICIENCY / read,
        "estimated",
        f"the {name}'s {bandwidth} GB/s and {read / GB:.1f} GB read per token",
    )


def measured(records: list[dict], facts: HostFacts, names: set[str]) -> Speed | None:
    """The latest bench run on this chip of a model known by any of `names` (alias or folder): its median
    generation tokens/s at the shortest prompt."""
    for record in reversed(records):
        if record.get("machine", {}).get("chip") != facts.chip:
            continue
        for result in record.get("results", []):
            folder = str(result.get("name", "")).rstrip("/").rsplit("/", 1)[-1]
            if result.get("engine") == "mlx" and names & {result.get("alias"), folder}:
                lengths = sorted(result.get("lengths", []), key=lambda entry: entry["prompt_tokens"])
                stats = lengths[0]["summary"].get("generation_tps") if lengths else None
                if stats:
                    return Speed(stats["median"], "measured", str(record.get("date", ""))[:10])
    return None


def expected(
    facts: HostFacts,
    weights: int,
    active: float = 1.0,
    names: frozenset[str] | set[str] = frozenset(),
    records: list[dict] | None = None,
) -> Speed:
    """Measured beats estimated."""
    return measured(records or [], facts, set(names)) or estimate(facts, weights, active)


def history(s) -> list[dict]:
    """bench's history records (none when its file or its config section cannot be read); lines that cannot be
    read are left out, and said once on stderr."""
    from . import ui
    from .bench import read_history
    from .errors import MlxTasksError

    try:
        path = s.bench.history
        records, unreadable = read_history(path)
    except (MlxTasksError, OSError):
        return []
    if unreadable and path not in _SAID:
        _SAID.add(path)
        ui.note(
            f"({unreadable} line{'s' if unreadable != 1 else ''} of {path} could not be read and "
            f"{'were' if unreadable != 1 else 'was'} left out of the measured speeds)"
        )
    return records


_SAID: set = set()  # history files whose unreadable lines were said in this process


def legend(kinds: list[str]) -> list[str]:
    """What a table's speed column means, for the kinds of figure it shows."""
    said = {
        "estimated": "speed ~N/s: generation tokens/s estimated from the chip's memory bandwidth",
        "measured": "speed N/s*: measured on this machine by invoke bench",
        "cpu": "speed on the CPU: MLX's CPU backend gave a 135M 4-bit model about 5 tokens/s on 2 cores; "
        "a 7B model is not usable there",
    }
    return [said[kind] for kind in ("estimated", "measured", "cpu") if kind in kinds]
