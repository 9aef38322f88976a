"""`invoke bench`: which models to measure, the runtime's spec, the numbers of a run, summaries, the
report's lines, Ollama's side and the history file. No printing and no MLX here: runtime/bench.py
measures in the venv's Python, runtime/plot.py draws; this module starts them and reads their JSON."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import files
from .catalog import FIT_HEADROOM, Model, find, lookup
from .config import BENCH_DEFAULTS, Settings, fix_for
from .errors import MlxTasksError
from .facts import GB, HostFacts
from .protocol import BenchAnswer, BenchModel, BenchSpec, prompt_text

SCHEMA = 1
METRICS = ("first_token_s", "prompt_tps", "generation_tps", "peak_memory_gb")
PLOT_SUFFIXES = (".png", ".svg")
CONFIG_FIX = "edit the `mlx.bench` section of invoke.yaml or ~/.invoke.yaml"


@dataclass(frozen=True)
class BenchSettings:
    prompt_tokens: tuple[int, ...]
    generation_tokens: int
    runs: int
    warmup: int
    ollama_url: str
    history: Path


@dataclass(frozen=True)
class Target:
    alias: str  # the catalogue alias, or the folder's name for a model the catalogue does not know
    path: Path
    ollama: str  # the Ollama tag, "" when none is known


@dataclass(frozen=True)
class Skip:
    alias: str
    reason: str
    fix: str = ""

    def as_dict(self) -> dict:
        return {"alias": self.alias, "reason": self.reason, "fix": self.fix}


def check_settings(value: Any, home: Path, state: Path, labels: dict[str, str] | None = None) -> BenchSettings:
    """`mlx.bench` (missing keys from config.BENCH_DEFAULTS) and flags, checked (Settings.bench calls it).
    labels: how to name a key in an error."""
    if hasattr(value, "keys") and not isinstance(value, dict):  # Invoke's DataProxy
        value = {key: value[key] for key in value.keys()}
    if not isinstance(value, dict):
        raise MlxTasksError(f"Config key 'mlx.bench' must be a mapping, got {value!r}.", fix=CONFIG_FIX)
    labels = labels or {}
    unknown = sorted(set(value) - set(BENCH_DEFAULTS))
    if unknown and unknown[0] in labels:
        raise MlxTasksError(
            f"{labels[unknown[0]]} names no setting of bench.", fix=f"unset {labels[unknown[0]]} (see docs/bench.md)"
        )
    if unknown:
        raise MlxTasksError(f"Unknown config key 'mlx.bench.{unknown[0]}'.", fix=CONFIG_FIX)
    merged = {**BENCH_DEFAULTS, **value}

    def label(key: str) -> str:
        return labels.get(key, f"Config key 'mlx.bench.{key}'")

    def count(key: str, least: int) -> int:
        number = merged[key]
        if isinstance(number, str) and number.strip().isdigit():
            number = int(number)
        if isinstance(number, bool) or not isinstance(number, int) or number < least:
            raise _invalid(label(key), f"a whole number of {least} or more", merged[key])
        return number

    lengths = merged["prompt_tokens"]
    if isinstance(lengths, str):
        lengths = [part.strip() for part in lengths.split(",")]
    try:
        lengths = tuple(int(n) for n in lengths)
    except (TypeError, ValueError):
        lengths = ()
    if not lengths or min(lengths) < 1:
        raise _invalid(label("prompt_tokens"), "prompt lengths in tokens, such as 128,1024", merged["prompt_tokens"])
    url = merged["ollama_url"]
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise _invalid(label("ollama_url"), "a URL such as http://127.0.0.1:11434", url)
    history = merged["history"]
    if history is None:
        history = state / "bench.jsonl"
    elif isinstance(history, str) and history.strip():
        history = home / history[2:] if history.startswith("~/") else Path(history)
    else:
        raise _invalid(label("history"), "a file path", history)
    return BenchSettings(
        lengths, count("generation_tokens", 2), count("runs", 1), count("warmup", 0), url.rstrip("/"), history
    )


def _invalid(label: str, expected: str, value: Any) -> MlxTasksError:
    return MlxTasksError(f"{label} must be {expected}, got {value!r}.", fix=fix_for(label, expected, CONFIG_FIX))


def with_flags(settings: BenchSettings, home: Path, **flags: Any) -> BenchSettings:
    """The settings with the task's flags (None: not given) applied and checked."""
    given = {key: value for key, value in flags.items() if value is not None}
    if not given:
        return settings
    current = {key: getattr(settings, key) for key in BENCH_DEFAULTS}
    current["history"] = str(current["history"])
    labels = {key: f"--{key.replace('_', '-')}" for key in given}
    return check_settings({**current, **given}, home, settings.history.parent, labels=labels)


# which models -----------------------------------------------------------------------------------


def choose(
    names: Iterable[str],
    catalog: tuple[Model, ...],
    models_path: Path,
    installed: dict[str, int],
    budget: int,
    force: bool = False,
) -> tuple[list[Target], list[Skip]]:
    """The models to measure and the ones skipped, with why.
    names: aliases or folder names; none: every installed model; "all": the whole catalogue too.
    installed: folder -> bytes on disk; budget: bytes a model may use (catalog.memory_budget)."""
    names = list(names)
    by_folder = {m.folder: m for m in catalog}
    if not names or names == ["all"]:  # catalogue order, then folders the catalogue does not know
        names = [m.alias for m in catalog if names or m.folder in installed] + [
            f for f in installed if f not in by_folder
        ]
    targets, skipped, seen = [], [], set()
    for name in names:
        model = lookup(name, catalog)
        if model is None and name not in installed:
            find_model(name, catalog)  # raises, with the closest names
        folder = model.folder if model else name
        alias = model.alias if model else name
        if alias in seen:
            continue
        seen.add(alias)
        if folder not in installed:
            skipped.append(Skip(alias, "not downloaded", f"invoke models.pull {alias}"))
        elif installed[folder] * FIT_HEADROOM > budget and not force:
            skipped.append(
                Skip(
                    alias,
                    f"needs about {installed[folder] * FIT_HEADROOM / GB:.1f} GB of memory and this "
                    f"machine can give it {budget / GB:.1f} GB",
                    f"invoke bench --model {alias} --force (it may swap or fail)",
                )
            )
        else:
            targets.append(Target(alias, models_path / folder, model.ollama if model else ""))
    return targets, skipped


def find_model(name: str, catalog: tuple[Model, ...]) -> Model:
    try:
        return find(name, catalog)
    except MlxTasksError as err:
        raise MlxTasksError(
            err.message, fix="invoke bench --model ALIAS with an alias from: invoke models.list"
        ) from None


def spec(targets: list[Target], settings: BenchSettings) -> BenchSpec:
    """What `python -m mlxtasks.runtime.bench --spec JSON` reads."""
    return BenchSpec(
        tuple(BenchModel(t.alias, str(t.path)) for t in targets),
        settings.prompt_tokens,
        settings.generation_tokens,
        settings.runs,
        settings.warmup,
    )


def runtime_argv(venv_python: Path, targets: list[Target], settings: BenchSettings) -> list[str]:
    return [str(venv_python), "-m", "mlxtasks.runtime.bench", "--spec", spec(targets, settings).to_json()]


def measure(argv: list[str], skipped: list[Skip], host: HostFacts) -> tuple[dict, dict]:
    """Run the runtime (its progress on our stderr as it comes): the record, with the models skipped
    here and those that failed there under "skipped", and the prompts' texts by alias and length."""
    import subprocess

    done = subprocess.run(argv, stdout=subprocess.PIPE, text=True)
    try:
        answer = BenchAnswer.from_json(done.stdout)
    except ValueError:
        raise MlxTasksError(
            f"The benchmark in the venv's Python stopped (exit {done.returncode}); its messages are above.",
            fix="invoke validate --deep",
        ) from None
    return record(answer, BenchSpec.from_json(argv[-1]), host, skipped)


def record(answer: BenchAnswer, asked: BenchSpec, host: HostFacts, skipped: list[Skip]) -> tuple[dict, dict]:
    """The runtime's answer as a history record (rates and summaries derived here), and the prompts' texts."""
    machine = {
        "chip": host.chip,
        "ram_gb": round(host.ram_total / GB, 1),
        "os": host.os,
        "os_version": host.os_version,
        "arch": host.machine,
        **answer.machine.to_dict(),
    }
    settings = {
        "prompt_tokens": list(asked.prompt_tokens),
        "generation_tokens": asked.generation_tokens,
        "runs": asked.runs,
        "warmup": asked.warmup,
    }
    results = [
        {
            "alias": r.alias,
            "engine": "mlx",
            "name": r.path,
            "load_s": r.load_s,
            "lengths": by_length({n.prompt_tokens: [mlx_run(**run.to_dict()) for run in n.runs] for n in r.lengths}),
        }
        for r in answer.results
    ]
    failed = [
        Skip(alias, f"failed: {reason}", f"invoke models.verify {alias}") for alias, reason in answer.failed.items()
    ]
    output = {
        "schema": SCHEMA,
        "date": answer.date,
        "machine": machine,
        "settings": settings,
        "results": results,
        "skipped": [k.as_dict() for k in [*skipped, *failed]],
    }
    return output, {r.alias: {str(n.prompt_tokens): list(n.prompts) for n in r.lengths} for r in answer.results}


def compare_ollama(output: dict, targets: list[Target], prompts: dict, settings: BenchSettings, say) -> dict:
    """The same prompts through Ollama for each measured model whose tag Ollama has: its results are
    added to output["results"], the models it could not run to output["skipped"]; returns how it went."""
    from . import ollama

    found = {"engine": "ollama", "url": settings.ollama_url, "reachable": True, "note": ""}
    try:
        pulled = ollama.tags(settings.ollama_url)
    except ollama.Unreachable as err:
        found.update(
            reachable=False, note=f"Ollama is not reachable at {settings.ollama_url} ({err}); MLX numbers only."
        )
        return found
    measured = {r["alias"] for r in output["results"]}
    for target in (t for t in targets if t.alias in measured):
        if not target.ollama:
            skip = Skip(
                target.alias,
                "has no Ollama tag in the catalogue, so Ollama was not compared",
                f"set mlx.catalog.{target.alias}.ollama in ~/.invoke.yaml",
            )
        elif ollama.full_name(target.ollama) not in pulled:
            skip = Skip(target.alias, f"Ollama has no {target.ollama}", f"ollama pull {target.ollama}")
        else:
            try:
                output["results"].append(_ollama_result(target, prompts[target.alias], settings, say))
                continue
            except (ollama.ErrorAnswer, ollama.Unreachable) as err:
                skip = Skip(
                    target.alias,
                    f"Ollama's {target.ollama} failed: {err}",
                    f"ollama run {target.ollama} (to see Ollama's own error)",
                )
        output["skipped"].append(skip.as_dict())
    return found


def _ollama_result(target: Target, prompts: dict, settings: BenchSettings, say) -> dict:
    """A warm-up (it loads the model: its load_duration is the load time), then the MLX runs' prompts."""
    from . import ollama

    context = max(settings.prompt_tokens) + settings.generation_tokens + 64
    say(f"{target.alias}: Ollama {target.ollama}: loading")
    warm = ollama.generate(settings.ollama_url, target.ollama, prompt_text(0, 8), 1, context)
    runs: dict[int, list] = {}
    for length in settings.prompt_tokens:
        texts = prompts[str(length)]
        runs[length] = []
        for number, text in enumerate(texts, 1):
            say(f"{target.alias}: Ollama {target.ollama}: prompt of {length} tokens: run {number}/{len(texts)}")
            answer = ollama.generate(settings.ollama_url, target.ollama, text, settings.generation_tokens, context)
            runs[length].append(ollama_run(answer))
    return {
        "alias": target.alias,
        "engine": "ollama",
        "name": target.ollama,
        "load_s": (warm.get("load_duration") or 0) / 1e9,
        "lengths": by_length(runs),
    }


# the run ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    settings: BenchSettings
    targets: list[Target]
    skipped: list[Skip]
    argv: list[str]
    chart: Path | None
    compare: bool
    host: HostFacts

    def dry_lines(self) -> list[str]:
        return [
            f"Would measure: {', '.join(t.alias for t in self.targets) or 'nothing'}",
            *skipped_lines([k.as_dict() for k in self.skipped]),
            f"Would run: {shlex.join(self.argv)}",
        ]

    def require_targets(self) -> None:
        if not self.targets:
            first = self.skipped[0] if self.skipped else None
            raise MlxTasksError(
                f"No model to measure{f': {first.alias} is {first.reason}' if first else ''}.",
                fix=first.fix if first else "invoke models.pull qwen7b",
            )


def plan(s: Settings, names: Iterable[str], compare: str | None, plot: str | None, force: bool, **flags: Any) -> Plan:
    """What `invoke bench` will measure and how, every flag checked; flags: the settings' (None: not given)."""
    from .catalog import memory_budget
    from .facts import probe
    from .store import installed_folders, size_on_disk
    from .venv import require

    options = with_flags(s.bench, s.home, **flags)
    if compare not in (None, "ollama"):
        raise MlxTasksError(f"--compare knows only ollama, got {compare!r}.", fix="invoke bench --compare ollama")
    chart = Path(plot).absolute() if plot else None
    if chart and (problem := plot_problem(chart)):
        raise MlxTasksError(problem, fix="invoke bench --plot bench.png (or .svg)")
    require(s)
    installed = {folder: size_on_disk(s.models / folder) for folder in installed_folders(s.models)}
    host = probe()
    targets, skipped = choose(names, s.catalog, s.models, installed, memory_budget(host), force)
    return Plan(options, targets, skipped, runtime_argv(s.venv_python, targets, options), chart, bool(compare), host)


def run(plan: Plan, venv_python: Path, say: Callable[[str], None]) -> dict:
    """Measure (and compare, keep in the history, draw); the record. Fails when no MLX model could be measured."""
    output, prompts = measure(plan.argv, plan.skipped, plan.host)
    if plan.compare:
        output["compare"] = compare_ollama(output, plan.targets, prompts, plan.settings, say)
    if output["results"]:
        append_history(plan.settings.history, output)
    if plan.chart and output["results"]:
        draw(venv_python, output, plan.chart)
    return output


def require_measured(output: dict) -> None:
    if not any(r["engine"] == "mlx" for r in output["results"]):
        raise MlxTasksError("No model could be measured.", fix=output["skipped"][0]["fix"])


def draw(venv_python: Path, record: dict, chart: Path) -> None:
    """The chart, by runtime/plot.py in the venv's Python (matplotlib lives there)."""
    import subprocess

    done = subprocess.run(
        [str(venv_python), "-m", "mlxtasks.runtime.plot", "--out", str(chart)],
        input=json.dumps(record),
        text=True,
        capture_output=True,
    )
    if done.returncode != 0:
        cause = next((line for line in reversed(done.stderr.splitlines()) if line.strip()), f"exit {done.returncode}")
        raise MlxTasksError(
            f"The chart could not be drawn: {cause}", fix="invoke bench --plot FILE.svg (or leave out --plot)"
        )


# the numbers ------------------------------------------------------------------------------------


def mlx_run(
    prompt_tokens: int, generation_tokens: int, first_token_s: float, generation_s: float, peak_memory_gb: float | None
) -> dict:
    """One run's numbers: the prompt's tokens over the time to the first token; the tokens after the
    first over the time after it (the first token's time is the prompt's)."""
    return {
        "prompt_tokens": prompt_tokens,
        "generation_tokens": generation_tokens,
        "first_token_s": first_token_s,
        "generation_s": generation_s,
        "prompt_tps": prompt_tokens / first_token_s,
        "generation_tps": (generation_tokens - 1) / generation_s,
        "peak_memory_gb": peak_memory_gb,
    }


def ollama_run(answer: dict) -> dict:
    """One /api/generate answer as the same numbers, from Ollama's own counts and durations (ns):
    time to first token = load + prompt evaluation; generation = eval_count / eval_duration."""
    prompt_tokens = int(answer.get("prompt_eval_count") or 0)
    prompt_s = (answer.get("prompt_eval_duration") or 0) / 1e9
    first_token_s = prompt_s + (answer.get("load_duration") or 0) / 1e9
    generated, generation_s = int(answer.get("eval_count") or 0), (answer.get("eval_duration") or 0) / 1e9
    return {
        "prompt_tokens": prompt_tokens,
        "generation_tokens": generated,
        "first_token_s": first_token_s,
        "generation_s": generation_s,
        "prompt_tps": prompt_tokens / prompt_s if prompt_s else None,
        "generation_tps": generated / generation_s if generation_s else None,
        "peak_memory_gb": None,
    }


def summary(runs: list[dict]) -> dict:
    """Median, min and max of each metric over the runs (a metric an engine does not report is None)."""
    import statistics  # here, not at the top: config imports this module, and `invoke --list` stays fast

    result = {}
    for metric in METRICS:
        values = [run[metric] for run in runs if run.get(metric) is not None]
        result[metric] = (
            {"median": statistics.median(values), "min": min(values), "max": max(values)} if values else None
        )
    return result


def by_length(runs_by_length: dict[int, list[dict]]) -> list[dict]:
    return [
        {"prompt_tokens": length, "runs": runs, "summary": summary(runs)} for length, runs in runs_by_length.items()
    ]


# the report -------------------------------------------------------------------------------------


def machine_line(machine: dict) -> str:
    device = f" ({machine['device_name']})" if machine.get("device_name") and machine["backend"] != "cpu" else ""
    return (
        f"{machine['chip']}, {machine['ram_gb']:.0f} GB RAM, {machine['os_version'] or machine['os']}; "
        f"MLX backend {machine['backend']}{device}, mlx {machine['mlx']}, mlx-lm {machine['mlx_lm']}"
    )


def settings_line(settings: dict) -> str:
    lengths = " and ".join(str(n) for n in settings["prompt_tokens"])
    return (
        f"Prompts of {lengths} tokens, {settings['generation_tokens']} generated; {settings['warmup']} warm-up, "
        f"then {settings['runs']} run{'s' if settings['runs'] != 1 else ''}: median (min-max)."
    )


def _span(stats: dict | None, unit: str = "", scale: float = 1.0) -> str:
    """median (min-max), each to one decimal after scaling."""
    if stats is None:
        return "-"
    middle, low, high = (f"{stats[k] * scale:,.1f}" for k in ("median", "min", "max"))
    return f"{middle}{unit} ({low}-{high})" if low != high else f"{middle}{unit}"


def _memory(gb: float) -> str:
    return f"{gb:.2f} GB" if gb >= 0.1 else f"{gb * 1000:.1f} MB"


def title(result: dict) -> str:
    engine = "MLX" if result["engine"] == "mlx" else f"Ollama {result['name']}"
    load = f", loaded in {result['load_s']:.2f} s" if result.get("load_s") is not None else ""
    return f"{result['alias']} ({engine}{load})"


def table_lines(result: dict) -> list[str]:
    lines = [
        title(result),
        f"  {'prompt':>6}  {'first token':<24}{'prompt tokens/s':<30}{'generation tokens/s':<30}peak memory",
    ]
    for entry in result["lengths"]:
        s = entry["summary"]
        memory = _memory(s["peak_memory_gb"]["max"]) if s["peak_memory_gb"] else "-"
        lines.append(
            f"  {entry['prompt_tokens']:>6}  {_span(s['first_token_s'], ' ms', 1000):<24}"
            f"{_span(s['prompt_tps']):<30}{_span(s['generation_tps']):<30}{memory}"
        )
    return lines


def bar_rows(results: list[dict], length: int, metric: str = "generation_tps") -> list[tuple[str, float]]:
    """(label, median) for each result that measured this prompt length."""
    rows = []
    for result in results:
        for entry in result["lengths"]:
            stats = entry["summary"][metric]
            if entry["prompt_tokens"] == length and stats:
                rows.append((f"{result['alias']} {'MLX' if result['engine'] == 'mlx' else 'Ollama'}", stats["median"]))
    return rows


# the history file -------------------------------------------------------------------------------


def append_history(path: Path, record: dict) -> None:
    """One JSON line per bench run, written with a single append (to a regular file only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    files.append(path, (json.dumps(record, separators=(",", ":")) + "\n").encode())


def read_history(path: Path) -> tuple[list[dict], int]:
    """The records, oldest first, and how many lines could not be read: a line that is not UTF-8 or not JSON,
    or a record of another schema or shape, is left out and counted, never an error."""
    try:
        lines = files.read_bytes(path).splitlines()
    except FileNotFoundError:
        return [], 0
    records, bad = [], 0
    for line in filter(bytes.strip, lines):
        try:
            record = json.loads(line.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError included
            bad += 1
            continue
        if _well_formed(record):
            records.append(record)
        else:
            bad += 1
    return records, bad


def _well_formed(record: Any) -> bool:
    """Whether a history line has the shape that bench.history, models.list and models.info read."""

    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    def summary(value: Any) -> bool:
        return (
            isinstance(value, dict)
            and {"generation_tps", "first_token_s"} <= set(value)
            and all(
                stats is None or (isinstance(stats, dict) and number(stats.get("median"))) for stats in value.values()
            )
        )

    def length(entry: Any) -> bool:
        return isinstance(entry, dict) and number(entry.get("prompt_tokens")) and summary(entry.get("summary"))

    def result(entry: Any) -> bool:
        return (
            isinstance(entry, dict)
            and all(isinstance(entry.get(key), str) for key in ("alias", "engine"))
            and isinstance(entry.get("name", ""), str)
            and isinstance(entry.get("lengths"), list)
            and all(map(length, entry["lengths"]))
        )

    return (
        isinstance(record, dict)
        and record.get("schema") == SCHEMA
        and isinstance(record.get("date"), str)
        and isinstance(record.get("machine"), dict)
        and isinstance(record.get("results"), list)
        and all(map(result, record["results"]))
    )


def history_rows(records: list[dict]) -> list[dict]:
    """A row per model, engine and prompt length of each record, with the change in generation
    tokens/s since the previous record of the same on the same machine and backend."""
    rows: list[dict] = []
    previous: dict[tuple, float] = {}
    for record in records:
        machine = record["machine"]
        for result in record["results"]:
            for entry in result["lengths"]:
                stats = entry["summary"]["generation_tps"]
                key = (
                    machine.get("chip"),
                    machine.get("backend"),
                    result["alias"],
                    result["engine"],
                    entry["prompt_tokens"],
                )
                median = stats["median"] if stats else None
                before = previous.get(key)
                rows.append(
                    {
                        "date": record["date"],
                        "mlx": machine.get("mlx"),
                        "mlx_lm": machine.get("mlx_lm"),
                        "backend": machine.get("backend"),
                        "alias": result["alias"],
                        "engine": result["engine"],
                        "prompt_tokens": entry["prompt_tokens"],
                        "generation_tps": median,
                        "first_token_s": (entry["summary"]["first_token_s"] or {}).get("median"),
                        "change": median / before - 1 if median and before else None,
                    }
                )
                if median:
                    previous[key] = median
    return rows


def history_line(row: dict) -> str:
    tps = f"{row['generation_tps']:.1f}" if row["generation_tps"] else "-"
    change = f"{row['change']:+.1%}" if row["change"] is not None else ""
    first = f"{row['first_token_s'] * 1000:,.0f} ms" if row["first_token_s"] is not None else "-"
    engine = "MLX" if row["engine"] == "mlx" else "Ollama"
    return (
        f"{row['date'][:16].replace('T', ' ')}  {row['backend'] or '-':<8}{row['mlx'] or '-':<9}{row['mlx_lm'] or '-':<9}"
        f"{row['alias']:<12}{engine:<8}{row['prompt_tokens']:>7}  {first:>9}  {tps:>9}  {change}"
    )


def skipped_lines(skipped: list[dict]) -> list[str]:
    return [f"Skipped {k['alias']}: {k['reason']}." + (f" Fix: {k['fix']}" if k["fix"] else "") for k in skipped]


def report_lines(output: dict) -> list[str]:
    """The report above the bars: machine, settings, a table per result, the skipped models, Ollama's note."""
    lines = [f"Machine: {machine_line(output['machine'])}", settings_line(output["settings"])]
    for result in output["results"]:
        lines += ["", *table_lines(result)]
    if output["skipped"]:
        lines += ["", *skipped_lines(output["skipped"])]
    if output.get("compare", {}).get("note"):
        lines.append(output["compare"]["note"])
    return lines


def history_lines(records: list[dict], unreadable: int, path: Path) -> list[str]:
    if not records:
        return [f"No bench results yet in {path}. Run: invoke bench"]
    lines = [
        f"{len(records)} run{'s' if len(records) != 1 else ''} of invoke bench, from {path}"
        f" (generation tokens/s: median; change: since the same model's previous run here)",
        HISTORY_HEADER,
        *(history_line(row) for row in history_rows(records)),
    ]
    if unreadable:
        lines.append(
            f"({unreadable} line{'s' if unreadable != 1 else ''} of {Path(path).name} could not be read "
            "and were left out)"
        )
    return lines


def last_records(path: Path, last: Any) -> tuple[list[dict], int]:
    """bench.history's records (the last N when given, checked) and how many lines could not be read."""
    if last is not None and not (str(last).isdigit() and int(last) >= 1):
        raise MlxTasksError(
            f"--last must be a whole number of 1 or more, got {last!r}.", fix="invoke bench.history --last 5"
        )
    records, unreadable = read_history(path)
    return (records if last is None else records[-int(last) :]), unreadable


HISTORY_HEADER = (
    f"{'date (UTC)':<16}  {'backend':<8}{'mlx':<9}{'mlx-lm':<9}{'model':<12}{'engine':<8}{'prompt':>7}  "
    f"{'1st token':>9}  {'tokens/s':>9}  change"
)


def plot_problem(path: Path) -> str | None:
    if path.suffix.lower() not in PLOT_SUFFIXES:
        return f"--plot needs a file name ending in .png or .svg, got {path.name!r}."
    if not path.parent.is_dir():
        return f"The folder {path.parent} does not exist, so {path.name} cannot be written there."
    return None
