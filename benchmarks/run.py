"""The project's benchmark suite. Run from the checkout's root:

    .venv/bin/python benchmarks/run.py              # every benchmark; rewrites docs/performance.md
    .venv/bin/python benchmarks/run.py --only NAME  # some of them (names: --help); their rows of the doc are replaced
    .venv/bin/python benchmarks/run.py --cuda-section  # only re-renders the doc's CUDA section from the kept GPU run

Each benchmark prints its figure, its target and whether the target held; the exit status is 1 when one
missed. Every HOME and cache lives in one temporary folder, removed at the end. The setup benchmarks
install MLX from the package index twice (uv and pip), so a full run takes a few minutes.

To add a benchmark: write a function `name(work: Path) -> Result` (harness.py) in an area's module
(setup_bench.py, invoke_bench.py, shell_bench.py, validate_bench.py, pull_bench.py, chat_bench.py,
speed_bench.py, real_model_bench.py, serve_bench.py, devloop_bench.py, or a new one listed in MODULES), and put it in that module's BENCHMARKS.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

import chat_bench
import cuda_bench
import devloop_bench
import invoke_bench
import pull_bench
import real_model_bench
import serve_bench
import setup_bench
import shell_bench
import speed_bench
import validate_bench
from harness import ROOT, Result

from mlxtasks import facts

MODULES = (setup_bench, invoke_bench, shell_bench, validate_bench, pull_bench, chat_bench, speed_bench,
           real_model_bench, serve_bench, devloop_bench)
BENCHMARKS = {bench.__name__: bench for module in MODULES for bench in module.BENCHMARKS}
DOC = ROOT / "docs" / "performance.md"


def machine() -> str:
    # From mlxtasks' own probe, not /proc, so the suite runs on a Mac too.
    host = facts.probe()
    system = f"macOS {host.os_version}" if host.is_mac else host.os_version
    return (f"{host.chip}, {os.cpu_count()} cores, {host.ram_total / facts.GB:.1f} GB RAM, {system} "
            f"(kernel {platform.release()}), Python {platform.python_version()}")


def show(name: str, result: Result) -> None:
    print(f"{name}: {result.name}")
    print(f"  figure: {result.figure}")
    print(f"  target: {result.target}")
    print(f"  held:   {'yes' if result.held else 'NO'}")
    for note in result.notes:
        print(f"  note:   {note}")
    print(flush=True)


def raw_text(raw: Mapping[str, float | list[float]]) -> str:
    def seconds(value: float | list[float]) -> str:
        return f"[{', '.join(f'{v:.3f}' for v in value)}]" if isinstance(value, list) else f"{value:.3f}"

    return ", ".join(f"{key}={seconds(value)}" for key, value in raw.items())


def write_doc(results: dict[str, Result], when: datetime) -> None:
    lines = [
        "# Performance",
        "",
        "Written by `.venv/bin/python benchmarks/run.py` (run it again to refresh this page; do not edit it by hand).",
        "",
        f"- Date: {when:%Y-%m-%d %H:%M} UTC",
        f"- Machine: {machine()}",
        "",
        "| Benchmark | Figure | Target | Held |",
        "|---|---|---|---|",
        *(f"| {r.name} | {r.figure} | {r.target} | {'yes' if r.held else 'no'} |" for r in results.values()),
        "",
        "## Notes and raw numbers (seconds)",
    ]
    for name, result in results.items():
        lines += ["", f"### {name}", "", *(f"- {note}" for note in result.notes), f"- Raw: {raw_text(result.raw)}"]
    lines += cuda_bench.section()
    DOC.write_text("\n".join(lines) + "\n")


def update_doc(results: dict[str, Result], when: datetime) -> None:
    """Replace (or add) the rows and notes of these benchmarks only, each saying when and where it ran, since
    the page's date and machine are those of the last full run."""
    lines = DOC.read_text().split("\n")
    for name, result in results.items():
        row = f"| {result.name} | {result.figure} | {result.target} | {'yes' if result.held else 'no'} |"
        at = next((i for i, line in enumerate(lines) if line.startswith(f"| {result.name} |")), None)
        if at is None:  # a new row goes last in the page's first table
            head = next(i for i, line in enumerate(lines) if line.startswith("| Benchmark |"))
            lines.insert(next(i for i in range(head, len(lines)) if not lines[i].startswith("|")), row)
        else:
            lines[at] = row
        notes = [f"### {name}", "", f"- Run alone (--only) on {when:%Y-%m-%d %H:%M} UTC: {machine()}",
                 *(f"- {note}" for note in result.notes), f"- Raw: {raw_text(result.raw)}", ""]
        if f"### {name}" in lines:  # its old notes run to the next heading
            start = lines.index(f"### {name}")
            end = next(i for i in range(start + 1, len(lines) + 1) if i == len(lines) or lines[i].startswith("#"))
        else:  # new notes go before the CUDA section
            start = end = lines.index(cuda_bench.HEADING) if cuda_bench.HEADING in lines else len(lines)
        lines[start:end] = notes
    DOC.write_text("\n".join(lines))


def write_cuda_section() -> None:
    """The doc's CUDA section rendered again from the kept GPU run (benchmarks/results), the rest left as it is."""
    head, found, _ = DOC.read_text().partition(f"\n{cuda_bench.HEADING}\n")
    if not found:
        raise SystemExit(f"{DOC.relative_to(ROOT)} has no '{cuda_bench.HEADING}' section to replace")
    DOC.write_text(head + "\n".join(cuda_bench.section()) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the benchmark suite.")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, metavar="NAME",
                        help="run only these benchmarks: " + ", ".join(BENCHMARKS))
    parser.add_argument("--cuda-section", action="store_true",
                        help="run nothing; render the doc's CUDA section again from the kept GPU run")
    args = parser.parse_args()
    if args.cuda_section:
        write_cuda_section()
        print(f"Rendered the CUDA section of {DOC.relative_to(ROOT)} from {cuda_bench.KEPT.relative_to(ROOT)}.")
        return 0
    when = datetime.now(timezone.utc)
    results = {}
    with tempfile.TemporaryDirectory(prefix="mlxtasks-bench-") as work:
        for name in args.only or BENCHMARKS:
            print(f"Running {name}...", flush=True)
            results[name] = BENCHMARKS[name](Path(work))
            show(name, results[name])
    if args.only:
        update_doc(results, when)
        print(f"Replaced the rows of {', '.join(results)} in {DOC.relative_to(ROOT)}.")
    else:
        write_doc(results, when)
        print(f"Wrote {DOC.relative_to(ROOT)}.")
    return 0 if all(result.held for result in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
