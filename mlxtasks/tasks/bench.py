"""bench: speed numbers for the installed models on this machine, a chart, Ollama side by side, a history."""

from invoke import Collection

from ._common import PATH_HELP, is_dry, require_venv, settings, task

RUN_HELP = {
    "model": "a model to measure (repeat for more); default: every installed model; all: the whole catalogue, "
             "saying why each missing one is skipped",
    "prompt_tokens": "prompt lengths in tokens, comma-separated (default 128,1024)",
    "generation_tokens": "tokens generated per run (default 256)",
    "runs": "timed runs per prompt length, after the warm-up (default 3)",
    "warmup": "untimed runs per prompt length first (default 1)",
    "json": "print the results as JSON on stdout (progress stays on stderr)",
    "plot": "also draw a chart into this .png or .svg file (installs matplotlib into the venv the first time)",
    "compare": "ollama: the same prompts through a local Ollama server, side by side",
    "ollama_url": "Ollama's address (default http://127.0.0.1:11434)",
    "force": "measure models that look too big for this machine's memory",
    "dry_run": "say what would be measured and the command that would run, and stop",
    "venv": PATH_HELP["venv"],
    "models": PATH_HELP["models"],
}


@task(name="run", default=True, iterable=["model"], help=RUN_HELP)
def run_(c, model=None, prompt_tokens=None, generation_tokens=None, runs=None, warmup=None, json=False, plot=None,
         compare=None, ollama_url=None, force=False, dry_run=False, venv=None, models=None):
    """Measure models: load time, first token, prompt and generation tokens/s, peak memory."""
    import json as json_module
    import shlex
    import sys
    from pathlib import Path

    from .. import bench, ui
    from ..catalog import memory_budget
    from ..errors import MlxTasksError
    from ..facts import probe
    from ..store import installed_folders, size_on_disk

    s = settings(c, venv=venv, models=models)
    options = bench.with_flags(s.bench, Path.home(), prompt_tokens=prompt_tokens, generation_tokens=generation_tokens,
                               runs=runs, warmup=warmup, ollama_url=ollama_url)
    if compare not in (None, "ollama"):
        raise MlxTasksError(f"--compare knows only ollama, got {compare!r}.", fix="invoke bench --compare ollama")
    chart = Path(plot).absolute() if plot else None
    if chart and bench.plot_problem(chart):
        raise MlxTasksError(bench.plot_problem(chart), fix="invoke bench --plot bench.png (or .svg)")
    require_venv(s)
    installed = {folder: size_on_disk(s.models / folder) for folder in installed_folders(s.models)}
    targets, skipped = bench.choose(model or [], s.catalog, s.models, installed, memory_budget(probe()), force)
    argv = bench.runtime_argv(s.venv_python, targets, options)
    if is_dry(c, dry_run):
        ui.out(f"Would measure: {', '.join(t.alias for t in targets) or 'nothing'}")
        _skipped_lines([k.as_dict() for k in skipped])
        ui.out(f"Would run: {shlex.join(argv)}")
        return
    if not targets:
        first = skipped[0] if skipped else None
        raise MlxTasksError(f"No model to measure{f': {first.alias} is {first.reason}' if first else ''}.",
                            fix=first.fix if first else "invoke models.pull qwen7b")
    if chart:
        _ensure_matplotlib(c, s)
    output, prompts = bench.measure(argv, skipped)
    if compare:
        output["compare"] = bench.compare_ollama(output, targets, prompts, options,
                                                 lambda text: print(text, file=sys.stderr, flush=True))
    if output["results"]:
        bench.append_history(options.history, output)
    if chart and output["results"]:
        bench.draw(s.venv_python, output, chart)
    if json:
        print(json_module.dumps(output, indent=2))
    else:
        _report(output, chart)
    if not any(r["engine"] == "mlx" for r in output["results"]):
        raise MlxTasksError("No model could be measured.", fix=output["skipped"][0]["fix"])


def _ensure_matplotlib(c, s) -> None:
    """matplotlib into the MLX venv, once, with the installer setup uses; its chatter goes to stderr."""
    import contextlib
    import sys

    from .. import install, installer, ui
    from ..steps import Command
    from ._common import perform

    if install.installed_versions(s.venv_python, ["matplotlib"]).get("matplotlib"):
        return
    chosen = installer.choose(s.installer)
    command = Command(install._install_argv(s.venv_python, chosen, ["matplotlib"], upgrade=False), tries=3,
                      delay=s.retry_delay_s, failure=f"Installing matplotlib into {s.venv} for --plot failed after 3 tries.",
                      fix="check the network, then run the same command again (or leave out --plot)")
    with contextlib.redirect_stdout(sys.stderr):
        ui.step("changed", "bench", f"installing matplotlib into {s.venv} for --plot (only once)...")
        perform(c, command)


def _skipped_lines(skipped: list[dict]) -> None:
    from .. import ui

    for entry in skipped:
        ui.out(f"Skipped {entry['alias']}: {entry['reason']}." + (f" Fix: {entry['fix']}" if entry["fix"] else ""))


def _report(output: dict, chart) -> None:
    from .. import bench, ui

    ui.out(f"Machine: {bench.machine_line(output['machine'])}")
    ui.out(bench.settings_line(output["settings"]))
    for result in output["results"]:
        ui.out()
        for line in bench.table_lines(result):
            ui.out(line)
    if output["skipped"]:
        ui.out()
        _skipped_lines(output["skipped"])
    if output.get("compare", {}).get("note"):
        ui.out(output["compare"]["note"])
    for length in output["settings"]["prompt_tokens"]:
        rows = bench.bar_rows(output["results"], length)
        ui.out()
        ui.bars(f"Generation tokens/s, prompt of {length} tokens (median):",
                [(label, value, "blue" if label.endswith("MLX") else "yellow") for label, value in rows])
    if chart:
        ui.out()
        ui.out(f"Chart: {chart}")


@task(help={"json": "print the records as JSON (a list)", "last": "only the last N runs of `invoke bench`"})
def history(c, json=False, last=None):
    """Earlier bench results, oldest first, with each one's change since the run before."""
    import json as json_module
    from pathlib import Path

    from .. import bench, ui
    from ..errors import MlxTasksError

    options = settings(c).bench
    if last is not None and not (str(last).isdigit() and int(last) >= 1):
        raise MlxTasksError(f"--last must be a whole number of 1 or more, got {last!r}.", fix="invoke bench.history --last 5")
    records, unreadable = bench.read_history(options.history)
    if last is not None:
        records = records[-int(last):]
    if json:
        print(json_module.dumps(records, indent=2))
        return
    if not records:
        ui.out(f"No bench results yet in {options.history}. Run: invoke bench")
        return
    ui.out(f"{len(records)} run{'s' if len(records) != 1 else ''} of invoke bench, from {options.history}"
           f" (generation tokens/s: median; change: since the same model's previous run here)")
    ui.out(bench.HISTORY_HEADER)
    for row in bench.history_rows(records):
        ui.out(bench.history_line(row))
    if unreadable:
        ui.out(f"({unreadable} line{'s' if unreadable != 1 else ''} of {Path(options.history).name} could not be read "
               "and were left out)")


ns = Collection("bench", run_, history)
