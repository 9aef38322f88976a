"""The project's benchmark suite. Run from the checkout's root:

    .venv/bin/python benchmarks/run.py              # every benchmark; rewrites docs/performance.md
    .venv/bin/python benchmarks/run.py --only NAME  # some of them (names: --help); their rows of the doc are replaced
    .venv/bin/python benchmarks/run.py --cuda-section  # only re-renders the doc's CUDA section from the kept GPU run

Each benchmark prints its figure, its target and whether the target held; the exit status is 1 when one
missed. Every HOME and cache lives in one temporary folder, removed at the end. The setup benchmarks
install MLX from the package index twice (uv and pip), so a full run takes a few minutes.

To add a benchmark: write a function `name(work: Path) -> Result` (harness.py) in an area's module
(setup_bench.py, invoke_bench.py, shell_bench.py, validate_bench.py, pull_bench.py, chat_bench.py,
speed_bench.py, real_model_bench.py, serve_bench.py, embed_bench.py, structured_bench.py, kv_bench.py,
devloop_bench.py, or a new one listed in MODULES), and put it in that module's BENCHMARKS.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import chat_bench
import cuda_bench
import devloop_bench
import disk_cache_bench
import embed_bench
import invoke_bench
import kv_bench
import pull_bench
import real_model_bench
import serve_bench
import setup_bench
import shell_bench
import speed_bench
import structured_bench
import validate_bench
from harness import ROOT, Result

from mlxtasks import facts

MODULES = (
    setup_bench,
    invoke_bench,
    shell_bench,
    validate_bench,
    pull_bench,
    chat_bench,
    speed_bench,
    real_model_bench,
    serve_bench,
    embed_bench,
    disk_cache_bench,
    structured_bench,
    devloop_bench,
    kv_bench,
)
BENCHMARKS = {bench.__name__: bench for module in MODULES for bench in module.BENCHMARKS}
DOC = ROOT / "docs" / "performance.md"


def machine() -> str:
    # From mlxtasks' own probe, not /proc, so the suite runs on a Mac too.
    host = facts.probe()
    system = f"macOS {host.os_version}" if host.is_mac else host.os_version
    return (
        f"{host.chip}, {os.cpu_count()} cores, {host.ram_total / facts.GB:.1f} GB RAM, {system} "
        f"(kernel {platform.release()}), Python {platform.python_version()}"
    )


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


def write_doc(results: dict[str, Result], when: datetime, loads: tuple[float, float]) -> None:
    lines = [
        "# Performance",
        "",
        "Written by `.venv/bin/python benchmarks/run.py` (run it again to refresh this page; do not edit it by hand).",
        "",
        f"- Date: {when:%Y-%m-%d %H:%M} UTC",
        f"- Machine: {machine()}",
        f"- Load average (1 minute) when the run began and ended: {loads[0]:.1f}, {loads[1]:.1f} (on {os.cpu_count()} "
        "cores; other work on the machine stretches every absolute time, not the ratios measured side by side)",
        "",
        "| Benchmark | Figure | Target | Held |",
        "|---|---|---|---|",
        *(f"| {r.name} | {r.figure} | {r.target} | {'yes' if r.held else 'no'} |" for r in results.values()),
        "",
        "## Notes and raw numbers (seconds)",
    ]
    for name, result in results.items():
        lines += ["", f"### {name}", "", *(f"- {note}" for note in result.notes), f"- Raw: {raw_text(result.raw)}"]
    DOC.write_text("\n".join(lines + tail()) + "\n")


def tail() -> list[str]:
    """The doc's sections that no benchmark of this run writes: issue 26's profile account, and the kept GPU run."""
    return serve_bench.FINDINGS + cuda_bench.section()


def update_doc(results: dict[str, Result], when: datetime) -> None:
    """Replace (or add) the rows and notes of these benchmarks only, each saying when and where it ran, since
    the page's date and machine are those of the last full run."""
    lines = DOC.read_text().split("\n")
    for name, result in results.items():
        row = f"| {result.name} | {result.figure} | {result.target} | {'yes' if result.held else 'no'} |"
        head = next(i for i, line in enumerate(lines) if line.startswith("| Benchmark |")) + 2
        rows = list(range(head, next(i for i in range(head, len(lines)) if not lines[i].startswith("|"))))
        named = [line[4:] for line in lines if line.startswith("### ")]  # notes come in the rows' order
        if name in named:  # its row is found by place, so a benchmark that was renamed replaces its old row
            lines[rows[named.index(name)]] = row
        else:  # a new row goes last in the page's first table
            lines.insert(rows[-1] + 1, row)
        notes = [
            f"### {name}",
            "",
            f"- Run alone (--only) on {when:%Y-%m-%d %H:%M} UTC: {machine()}",
            *(f"- {note}" for note in result.notes),
            f"- Raw: {raw_text(result.raw)}",
            "",
        ]
        if f"### {name}" in lines:  # its old notes run to the next heading
            start = lines.index(f"### {name}")
            end = next(i for i in range(start + 1, len(lines) + 1) if i == len(lines) or lines[i].startswith("#"))
        else:  # new notes go before the tail's sections
            start = end = next(
                (i for i, line in enumerate(lines) if line in (serve_bench.FINDINGS_HEADING, cuda_bench.HEADING)),
                len(lines),
            )
        lines[start:end] = notes
    DOC.write_text("\n".join(lines))


def write_cuda_section() -> None:
    """The doc's tail (tail()) rendered again, the benchmarks' part left as it is."""
    text = DOC.read_text()
    starts = [text.find(f"\n{heading}\n") for heading in (serve_bench.FINDINGS_HEADING, cuda_bench.HEADING)]
    if max(starts) < 0:
        raise SystemExit(f"{DOC.relative_to(ROOT)} has no '{cuda_bench.HEADING}' section to replace")
    DOC.write_text(text[: min(at for at in starts if at >= 0)] + "\n".join(tail()) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the benchmark suite.")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=BENCHMARKS,
        metavar="NAME",
        help="run only these benchmarks: " + ", ".join(BENCHMARKS),
    )
    parser.add_argument(
        "--cuda-section",
        action="store_true",
        help="run nothing; render the doc's CUDA section again from the kept GPU run",
    )
    args = parser.parse_args()
    if args.cuda_section:
        write_cuda_section()
        print(f"Rendered the CUDA section of {DOC.relative_to(ROOT)} from {cuda_bench.KEPT.relative_to(ROOT)}.")
        return 0
    when, began = datetime.now(UTC), os.getloadavg()[0]
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
        write_doc(results, when, (began, os.getloadavg()[0]))
        print(f"Wrote {DOC.relative_to(ROOT)}.")
    return 0 if all(result.held for result in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
