"""bench: speed numbers for the installed models on this machine, a chart, Ollama side by side, a history."""

from invoke import Collection

from ._common import PATH_HELP, is_dry, perform, settings, task

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
def run_(
    c,
    model=None,
    prompt_tokens=None,
    generation_tokens=None,
    runs=None,
    warmup=None,
    json=False,
    plot=None,
    compare=None,
    ollama_url=None,
    force=False,
    dry_run=False,
    venv=None,
    models=None,
):
    """Measure models: load time, first token, prompt and generation tokens/s, peak memory."""
    import contextlib
    import json as json_module
    import sys

    from .. import bench, install, ui

    s = settings(c, venv=venv, models=models)
    plan = bench.plan(
        s,
        model or [],
        compare,
        plot,
        force,
        prompt_tokens=prompt_tokens,
        generation_tokens=generation_tokens,
        runs=runs,
        warmup=warmup,
        ollama_url=ollama_url,
    )
    if is_dry(c, dry_run):
        for line in plan.dry_lines():
            ui.out(line)
        return
    plan.require_targets()
    if plan.chart:
        step = install.extras(
            s,
            ["matplotlib"],
            "bench",
            "for --plot",
            fix="check the network, then run the same command again (or leave out --plot)",
        )
        with contextlib.redirect_stdout(sys.stderr):  # the installer's chatter too
            if not step.done:
                ui.step("changed", step.name, f"{step.summary}...")
            for action in step.actions:
                perform(c, action)
    output = bench.run(plan, s.venv_python, lambda text: print(text, file=sys.stderr, flush=True))
    if json:
        print(json_module.dumps(output, indent=2))
    else:
        _report(output, plan.chart)
    bench.require_measured(output)


def _report(output: dict, chart) -> None:
    from .. import bench, ui

    for line in bench.report_lines(output):
        ui.out(line)
    for length in output["settings"]["prompt_tokens"]:
        ui.out()
        ui.bars(
            f"Generation tokens/s, prompt of {length} tokens (median):",
            [
                (label, value, "blue" if label.endswith("MLX") else "yellow")
                for label, value in bench.bar_rows(output["results"], length)
            ],
        )
    if chart:
        ui.out()
        ui.out(f"Chart: {chart}")


@task(help={"json": "print the records as JSON (a list)", "last": "only the last N runs of `invoke bench`"})
def history(c, json=False, last=None):
    """Earlier bench results, oldest first, with each one's change since the run before."""
    import json as json_module

    from .. import bench, ui

    path = settings(c).bench.history
    records, unreadable = bench.last_records(path, last)
    if json:
        print(json_module.dumps(records, indent=2))
        return
    for line in bench.history_lines(records, unreadable, path):
        ui.out(line)


ns = Collection("bench", run_, history)
