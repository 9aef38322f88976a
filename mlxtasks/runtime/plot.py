"""`invoke bench --plot FILE`: a chart of a bench record, drawn with matplotlib in the venv's Python.

    python -m mlxtasks.runtime.plot --out chart.png < record.json    (.png or .svg)

Three panels (generation tokens/s, prompt tokens/s, time to first token), a bar per model, engine and
prompt length at the median, with a line from the fastest to the slowest run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

PANELS = (
    ("generation_tps", "Generation (tokens/s, higher is better)"),
    ("prompt_tps", "Prompt processing (tokens/s, higher is better)"),
    ("first_token_s", "Time to first token (s, lower is better)"),
)
COLOURS = {"mlx": "#1f77b4", "ollama": "#ff7f0e"}


def rows(record: dict) -> list[tuple[str, str, dict]]:
    """(label, engine, summary) for every bar: by model (in the record's order) and prompt length,
    MLX and Ollama next to each other."""
    order = {alias: n for n, alias in reversed(list(enumerate(r["alias"] for r in record["results"])))}
    found = []
    for result in record["results"]:
        engine = "MLX" if result["engine"] == "mlx" else "Ollama"
        for entry in result["lengths"]:
            key = (order[result["alias"]], entry["prompt_tokens"], result["engine"] != "mlx")
            found.append(
                (
                    key,
                    f"{result['alias']}, prompt {entry['prompt_tokens']}: {engine}",
                    result["engine"],
                    entry["summary"],
                )
            )
    return [row[1:] for row in sorted(found, key=lambda row: row[0])]


def number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def draw(record: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = rows(record)
    height = 1.2 + 0.32 * len(bars)
    figure, axes = plt.subplots(1, len(PANELS), figsize=(15, height), sharey=True, layout="constrained")
    positions = list(range(len(bars)))[::-1]
    for axis, (metric, heading) in zip(axes, PANELS, strict=True):
        for y, (_, engine, stats) in zip(positions, bars, strict=True):
            value = stats.get(metric)
            if not value:
                continue
            axis.barh(y, value["median"], color=COLOURS[engine], height=0.7)
            axis.plot([value["min"], value["max"]], [y, y], color="black", linewidth=1)
            axis.annotate(f"  {number(value['median'])}", (value["max"], y), va="center", fontsize=8)
        axis.set_title(heading, fontsize=10)
        axis.grid(axis="x", alpha=0.3)
        axis.margins(x=0.2)
    axes[0].set_yticks(positions, [label for label, _, _ in bars], fontsize=8)
    machine = record["machine"]
    figure.suptitle(
        f"invoke bench: {machine['chip']}, {machine['ram_gb']:.0f} GB, MLX {machine['backend']}, "
        f"mlx {machine['mlx']}, mlx-lm {machine['mlx_lm']} ({record['date'][:10]})",
        fontsize=11,
    )
    # Written beside the target and renamed into place: never a half-written chart.
    handle, temporary = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=out.suffix)
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)  # what a plain open() would have made, not mkstemp's 0600
    try:
        figure.savefig(temporary, format=out.suffix.lstrip(".").lower(), dpi=120)
        os.replace(temporary, out)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True, type=Path, help="the chart: a .png or .svg file")
    args = parser.parse_args()
    draw(json.load(sys.stdin), args.out)


if __name__ == "__main__":
    main()
