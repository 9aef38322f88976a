"""`invoke bench`: which models to measure, the runtime's spec, the numbers of a run, summaries, the
report's lines, Ollama's side and the history file. No printing and no MLX here: runtime/bench.py
measures in the venv's Python, runtime/plot.py draws; this module starts them and reads their JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .catalog import FIT_HEADROOM, Model, find, lookup
from .errors import MlxTasksError
from .facts import GB

DEFAULTS: dict[str, Any] = {
    "prompt_tokens": [128, 1024],
    "generation_tokens": 256,
    "runs": 3,
    "warmup": 1,
    "ollama_url": "http://127.0.0.1:11434",
    "history": None,  # None: $XDG_STATE_HOME/mlxtasks/bench.jsonl (~/.local/state/...)
}
SCHEMA = 1
METRICS = ("first_token_s", "prompt_tps", "generation_tps", "peak_memory_gb")
PLOT_SUFFIXES = (".png", ".svg")
CONFIG_FIX = "edit the `mlx.bench` section of invoke.yaml or ~/.invoke.yaml"
# The text each prompt is cut from; a run's own first words keep Ollama from reusing a cached prefix.
FILLER = ("Local language models answer questions, write code and summarise documents on the machine in front of "
          "you. Their speed depends on memory bandwidth, on how the weights are quantised and on the length of the "
          "prompt, which is read in one pass before the first new token appears. ")


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
    """`mlx.bench` (missing keys from DEFAULTS) and flags, checked. labels: how to name a key in an error."""
    if hasattr(value, "keys") and not isinstance(value, dict):  # Invoke's DataProxy
        value = {key: value[key] for key in value.keys()}
    if not isinstance(value, dict):
        raise MlxTasksError(f"Config key 'mlx.bench' must be a mapping, got {value!r}.", fix=CONFIG_FIX)
    unknown = sorted(set(value) - set(DEFAULTS))
    if unknown:
        raise MlxTasksError(f"Unknown config key 'mlx.bench.{unknown[0]}'.", fix=CONFIG_FIX)
    merged = {**DEFAULTS, **value}
    labels = labels or {}

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
    return BenchSettings(lengths, count("generation_tokens", 2), count("runs", 1), count("warmup", 0),
                         url.rstrip("/"), history)


def _invalid(label: str, expected: str, value: Any) -> MlxTasksError:
    fix = CONFIG_FIX if label.startswith("Config") else f"pass {expected} to {label}"
    return MlxTasksError(f"{label} must be {expected}, got {value!r}.", fix=fix)


def with_flags(settings: BenchSettings, home: Path, **flags: Any) -> BenchSettings:
    """The settings with the task's flags (None: not given) applied and checked."""
    given = {key: value for key, value in flags.items() if value is not None}
    if not given:
        return settings
    current = {key: getattr(settings, key) for key in DEFAULTS}
    current["history"] = str(current["history"])
    labels = {key: f"--{key.replace('_', '-')}" for key in given}
    return check_settings({**current, **given}, home, settings.history.parent, labels=labels)


# which models -----------------------------------------------------------------------------------

def choose(names: Iterable[str], catalog: tuple[Model, ...], models_path: Path, installed: dict[str, int],
           budget: int, force: bool = False) -> tuple[list[Target], list[Skip]]:
    """The models to measure and the ones skipped, with why.
    names: aliases or folder names; none: every installed model; "all": the whole catalogue too.
    installed: folder -> bytes on disk; budget: bytes a model may use (catalog.memory_budget)."""
    names = list(names)
    by_folder = {m.folder: m for m in catalog}
    if not names or names == ["all"]:  # catalogue order, then folders the catalogue does not know
        names = [m.alias for m in catalog if names or m.folder in installed] + [f for f in installed if f not in by_folder]
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
            skipped.append(Skip(alias, f"needs about {installed[folder] * FIT_HEADROOM / GB:.1f} GB of memory and this "
                                       f"machine can give it {budget / GB:.1f} GB",
                                f"invoke bench --model {alias} --force (it may swap or fail)"))
        else:
            targets.append(Target(alias, models_path / folder, model.ollama if model else ""))
    return targets, skipped


def find_model(name: str, catalog: tuple[Model, ...]) -> Model:
    try:
        return find(name, catalog)
    except MlxTasksError as err:
        raise MlxTasksError(err.message, fix="invoke bench --model ALIAS with an alias from: invoke models.list") from None


def spec(targets: list[Target], settings: BenchSettings) -> dict:
    """What `python -m mlxtasks.runtime.bench --spec JSON` reads."""
    return {"models": [{"alias": t.alias, "path": str(t.path)} for t in targets],
            "prompt_tokens": list(settings.prompt_tokens), "generation_tokens": settings.generation_tokens,
            "runs": settings.runs, "warmup": settings.warmup}


def runtime_argv(venv_python: Path, targets: list[Target], settings: BenchSettings) -> list[str]:
    return [str(venv_python), "-m", "mlxtasks.runtime.bench", "--spec", json.dumps(spec(targets, settings))]


def measure(argv: list[str], skipped: list[Skip]) -> tuple[dict, dict]:
    """Run the runtime (its progress on our stderr as it comes): the record, with the models skipped
    here and those that failed there under "skipped", and the prompts' texts by alias and length."""
    import subprocess

    done = subprocess.run(argv, stdout=subprocess.PIPE, text=True)
    try:
        output = json.loads(done.stdout)
    except ValueError:
        raise MlxTasksError(f"The benchmark in the venv's Python stopped (exit {done.returncode}); its messages are above.",
                            fix="invoke validate --deep") from None
    prompts = output.pop("prompts")
    output["skipped"] = [k.as_dict() for k in skipped] + [
        Skip(f["alias"], f"failed: {f['reason']}", f"invoke models.verify {f['alias']}").as_dict()
        for f in output.pop("failed")]
    return output, prompts


def compare_ollama(output: dict, targets: list[Target], prompts: dict, settings: BenchSettings, say) -> dict:
    """The same prompts through Ollama for each measured model whose tag Ollama has: its results are
    added to output["results"], the models it could not run to output["skipped"]; returns how it went."""
    from . import ollama

    found = {"engine": "ollama", "url": settings.ollama_url, "reachable": True, "note": ""}
    try:
        pulled = ollama.tags(settings.ollama_url)
    except ollama.Unreachable as err:
        found.update(reachable=False, note=f"Ollama is not reachable at {settings.ollama_url} ({err}); MLX numbers only.")
        return found
    measured = {r["alias"] for r in output["results"]}
    for target in (t for t in targets if t.alias in measured):
        if not target.ollama:
            skip = Skip(target.alias, "has no Ollama tag in the catalogue, so Ollama was not compared",
                        f"set mlx.catalog.{target.alias}.ollama in ~/.invoke.yaml")
        elif ollama.full_name(target.ollama) not in pulled:
            skip = Skip(target.alias, f"Ollama has no {target.ollama}", f"ollama pull {target.ollama}")
        else:
            try:
                output["results"].append(_ollama_result(target, prompts[target.alias], settings, say))
                continue
            except (ollama.Refused, ollama.Unreachable) as err:
                skip = Skip(target.alias, f"Ollama's {target.ollama} failed: {err}",
                            f"ollama run {target.ollama} (to see Ollama's own error)")
        output["skipped"].append(skip.as_dict())
    return found


def _ollama_result(target: Target, prompts: dict, settings: BenchSettings, say) -> dict:
    """A warm-up (it loads the model: its load_duration is the load time), then the MLX runs' prompts."""
    from . import ollama

    context = max(settings.prompt_tokens) + settings.generation_tokens + 64
    say(f"{target.alias}: Ollama {target.ollama}: loading")
    warm = ollama.generate(settings.ollama_url, target.ollama, prompt_text(0, 8), 1, context)
    runs = {}
    for length in settings.prompt_tokens:
        texts = prompts[str(length)]
        runs[length] = []
        for number, text in enumerate(texts, 1):
            say(f"{target.alias}: Ollama {target.ollama}: prompt of {length} tokens: run {number}/{len(texts)}")
            answer = ollama.generate(settings.ollama_url, target.ollama, text, settings.generation_tokens, context)
            runs[length].append(ollama_run(answer))
    return {"alias": target.alias, "engine": "ollama", "name": target.ollama,
            "load_s": (warm.get("load_duration") or 0) / 1e9, "lengths": by_length(runs)}


def draw(venv_python: Path, record: dict, chart: Path) -> None:
    """The chart, by runtime/plot.py in the venv's Python (matplotlib lives there)."""
    import subprocess

    done = subprocess.run([str(venv_python), "-m", "mlxtasks.runtime.plot", "--out", str(chart)],
                          input=json.dumps(record), text=True, capture_output=True)
    if done.returncode != 0:
        cause = next((line for line in reversed(done.stderr.splitlines()) if line.strip()), f"exit {done.returncode}")
        raise MlxTasksError(f"The chart could not be drawn: {cause}", fix="invoke bench --plot FILE.svg (or leave out --plot)")


def prompt_text(run: int, words: int) -> str:
    """The text a prompt is cut from: about `words` tokens or more, its first words naming the run."""
    repeats = words // 30 + 2  # the filler is about 60 tokens in the catalogue's tokenizers
    return f"Run {run}. " + FILLER * repeats


# the numbers ------------------------------------------------------------------------------------

def mlx_run(prompt_tokens: int, generation_tokens: int, first_token_s: float, generation_s: float,
            peak_memory_gb: float | None) -> dict:
    """One run's numbers: the prompt's tokens over the time to the first token; the tokens after the
    first over the time after it (the first token's time is the prompt's)."""
    return {"prompt_tokens": prompt_tokens, "generation_tokens": generation_tokens,
            "first_token_s": first_token_s, "generation_s": generation_s,
            "prompt_tps": prompt_tokens / first_token_s,
            "generation_tps": (generation_tokens - 1) / generation_s,
            "peak_memory_gb": peak_memory_gb}


def ollama_run(answer: dict) -> dict:
    """One /api/generate answer as the same numbers, from Ollama's own counts and durations (ns):
    time to first token = load + prompt evaluation; generation = eval_count / eval_duration."""
    prompt_tokens = int(answer.get("prompt_eval_count") or 0)
    prompt_s = (answer.get("prompt_eval_duration") or 0) / 1e9
    first_token_s = prompt_s + (answer.get("load_duration") or 0) / 1e9
    generated, generation_s = int(answer.get("eval_count") or 0), (answer.get("eval_duration") or 0) / 1e9
    return {"prompt_tokens": prompt_tokens, "generation_tokens": generated,
            "first_token_s": first_token_s, "generation_s": generation_s,
            "prompt_tps": prompt_tokens / prompt_s if prompt_s else None,
            "generation_tps": generated / generation_s if generation_s else None,
            "peak_memory_gb": None}


def summary(runs: list[dict]) -> dict:
    """Median, min and max of each metric over the runs (a metric an engine does not report is None)."""
    import statistics  # here, not at the top: config imports this module, and `invoke --list` stays fast

    result = {}
    for metric in METRICS:
        values = [run[metric] for run in runs if run.get(metric) is not None]
        result[metric] = {"median": statistics.median(values), "min": min(values), "max": max(values)} if values else None
    return result


def by_length(runs_by_length: dict[int, list[dict]]) -> list[dict]:
    return [{"prompt_tokens": length, "runs": runs, "summary": summary(runs)} for length, runs in runs_by_length.items()]


# the report -------------------------------------------------------------------------------------

def machine_line(machine: dict) -> str:
    device = f" ({machine['device_name']})" if machine.get("device_name") and machine["backend"] != "cpu" else ""
    return (f"{machine['chip']}, {machine['ram_gb']:.0f} GB RAM, {machine['os_version'] or machine['os']}; "
            f"MLX backend {machine['backend']}{device}, mlx {machine['mlx']}, mlx-lm {machine['mlx_lm']}")


def settings_line(settings: dict) -> str:
    lengths = " and ".join(str(n) for n in settings["prompt_tokens"])
    return (f"Prompts of {lengths} tokens, {settings['generation_tokens']} generated; {settings['warmup']} warm-up, "
            f"then {settings['runs']} run{'s' if settings['runs'] != 1 else ''}: median (min-max).")


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
    lines = [title(result), f"  {'prompt':>6}  {'first token':<24}{'prompt tokens/s':<30}{'generation tokens/s':<30}"
                            "peak memory"]
    for entry in result["lengths"]:
        s = entry["summary"]
        memory = _memory(s["peak_memory_gb"]["max"]) if s["peak_memory_gb"] else "-"
        lines.append(f"  {entry['prompt_tokens']:>6}  {_span(s['first_token_s'], ' ms', 1000):<24}"
                     f"{_span(s['prompt_tps']):<30}{_span(s['generation_tps']):<30}{memory}")
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
    """One JSON line per bench run, written with a single append."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as file:
        file.write(json.dumps(record, separators=(",", ":")) + "\n")


def read_history(path: Path) -> tuple[list[dict], int]:
    """The records, oldest first, and how many lines could not be read."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return [], 0
    records, bad = [], 0
    for line in filter(str.strip, lines):
        try:
            record = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(record, dict) and record.get("schema") == SCHEMA:
            records.append(record)
        else:
            bad += 1
    return records, bad


def history_rows(records: list[dict]) -> list[dict]:
    """A row per model, engine and prompt length of each record, with the change in generation
    tokens/s since the previous record of the same on the same machine and backend."""
    rows, previous = [], {}
    for record in records:
        machine = record["machine"]
        for result in record["results"]:
            for entry in result["lengths"]:
                stats = entry["summary"]["generation_tps"]
                key = (machine.get("chip"), machine.get("backend"), result["alias"], result["engine"], entry["prompt_tokens"])
                median = stats["median"] if stats else None
                before = previous.get(key)
                rows.append({"date": record["date"], "mlx": machine.get("mlx"), "mlx_lm": machine.get("mlx_lm"),
                             "backend": machine.get("backend"), "alias": result["alias"], "engine": result["engine"],
                             "prompt_tokens": entry["prompt_tokens"], "generation_tps": median,
                             "first_token_s": (entry["summary"]["first_token_s"] or {}).get("median"),
                             "change": median / before - 1 if median and before else None})
                if median:
                    previous[key] = median
    return rows


def history_line(row: dict) -> str:
    tps = f"{row['generation_tps']:.1f}" if row["generation_tps"] else "-"
    change = f"{row['change']:+.1%}" if row["change"] is not None else ""
    first = f"{row['first_token_s'] * 1000:,.0f} ms" if row["first_token_s"] is not None else "-"
    engine = "MLX" if row["engine"] == "mlx" else "Ollama"
    return (f"{row['date'][:16].replace('T', ' ')}  {row['backend'] or '-':<8}{row['mlx'] or '-':<9}{row['mlx_lm'] or '-':<9}"
            f"{row['alias']:<12}{engine:<8}{row['prompt_tokens']:>7}  {first:>9}  {tps:>9}  {change}")


HISTORY_HEADER = (f"{'date (UTC)':<16}  {'backend':<8}{'mlx':<9}{'mlx-lm':<9}{'model':<12}{'engine':<8}{'prompt':>7}  "
                  f"{'1st token':>9}  {'tokens/s':>9}  change")


def strip_prompts(output: dict) -> dict:
    return {key: value for key, value in output.items() if key != "prompts"}


def plot_problem(path: Path) -> str | None:
    if path.suffix.lower() not in PLOT_SUFFIXES:
        return f"--plot needs a file name ending in .png or .svg, got {path.name!r}."
    if not path.parent.is_dir():
        return f"The folder {path.parent} does not exist, so {path.name} cannot be written there."
    return None

