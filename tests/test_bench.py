"""invoke bench's pure core: settings, which models, the numbers of a run, summaries, history, the
Ollama client against the stand-in server, and the terminal bars."""

import inspect
import json
import statistics
from pathlib import Path

import pytest

from mlxtasks import bench, catalog, config, ollama, ui
from mlxtasks.errors import MlxTasksError
from mlxtasks.facts import GB

from .support.fake_ollama import EVAL_TPS, LOAD_NS, PROMPT_TPS, FakeOllama


def test_settings_default_and_follow_config_and_the_state_folder(tmp_path):
    home = tmp_path / "home"
    s = config.resolve({}, home=home).bench
    assert (s.prompt_tokens, s.generation_tokens, s.runs, s.warmup) == ((128, 1024), 256, 3, 1)
    assert s.ollama_url == "http://127.0.0.1:11434"
    assert s.history == config.state_dir(home) / "bench.jsonl"
    assert bench.check_settings({}, home, Path("/st/mlxtasks")).history == Path("/st/mlxtasks/bench.jsonl")
    s = config.resolve({"bench": {"runs": 5, "history": "~/b.jsonl"}}, home=home).bench
    assert (s.runs, s.history, s.generation_tokens) == (5, home / "b.jsonl", 256)


@pytest.mark.parametrize(
    "flags, words",
    [
        ({"runs": "0"}, "--runs must be a whole number of 1 or more"),
        ({"prompt_tokens": "128,lots"}, "--prompt-tokens must be prompt lengths"),
        ({"generation_tokens": "1"}, "--generation-tokens must be a whole number of 2 or more"),
        ({"ollama_url": "localhost:11434"}, "--ollama-url must be a URL"),
    ],
)
def test_bad_flags_name_the_flag(tmp_path, flags, words):
    with pytest.raises(MlxTasksError) as caught:
        bench.with_flags(config.resolve({}, home=tmp_path).bench, tmp_path, **flags)
    assert words in caught.value.message and caught.value.fix.startswith("pass ")


def test_flags_override_config(tmp_path):
    s = bench.with_flags(
        config.resolve({}, home=tmp_path).bench, tmp_path, prompt_tokens="8, 24", runs="2", generation_tokens=None
    )
    assert (s.prompt_tokens, s.runs, s.generation_tokens) == ((8, 24), 2, 256)


def test_unknown_config_key_is_named(tmp_path):
    with pytest.raises(MlxTasksError, match="mlx.bench.rnus"):
        config.resolve({"bench": {"rnus": 3}}, home=tmp_path).bench


def test_every_builtin_model_names_its_ollama_twin_and_config_can_set_one():
    assert all(m.ollama for m in catalog.BUILTIN)
    assert {m.alias: m.ollama for m in catalog.BUILTIN[:5]} == {
        "qwen7b": "qwen2.5-coder:7b",
        "qwen32b": "qwen2.5-coder:32b",
        "deepseek": "deepseek-r1:8b-llama-distill-q4_K_M",
        "phi4": "phi4:14b",
        "mistral7b": "mistral:7b",
    }
    models = catalog.load({"mine": {"repo": "me/mine", "size_gb": 1, "ollama": "mine:3b"}})
    assert catalog.find("mine", models).ollama == "mine:3b"


INSTALLED = {"qwen25-coder-7b": int(4.3 * GB), "phi4-14b": int(8.3 * GB), "my-own": int(0.1 * GB)}


def test_default_is_every_installed_model_and_too_big_ones_are_skipped_with_why(tmp_path):
    targets, skipped = bench.choose([], catalog.BUILTIN, tmp_path, INSTALLED, budget=int(6 * GB))
    assert [(t.alias, t.path, t.ollama) for t in targets] == [
        ("qwen7b", tmp_path / "qwen25-coder-7b", "qwen2.5-coder:7b"),
        ("my-own", tmp_path / "my-own", ""),
    ]
    assert [(k.alias, k.fix) for k in skipped] == [("phi4", "invoke bench --model phi4 --force (it may swap or fail)")]
    assert "needs about 9.1 GB of memory and this machine can give it 6.0 GB" in skipped[0].reason
    targets, _ = bench.choose(["phi4"], catalog.BUILTIN, tmp_path, INSTALLED, budget=int(6 * GB), force=True)
    assert [t.alias for t in targets] == ["phi4"]


def test_all_names_every_catalogue_model_and_missing_ones_say_how_to_get_them(tmp_path):
    targets, skipped = bench.choose(["all"], catalog.BUILTIN, tmp_path, INSTALLED, budget=int(64 * GB))
    assert [t.alias for t in targets] == ["qwen7b", "phi4", "my-own"]
    assert [(k.alias, k.reason, k.fix) for k in skipped] == [
        (m.alias, "not downloaded", f"invoke models.pull {m.alias}")
        for m in catalog.BUILTIN
        if m.alias not in ("qwen7b", "phi4")
    ]


def test_names_may_be_aliases_seed_names_or_folders_and_typos_are_refused(tmp_path):
    targets, _ = bench.choose(
        ["qwen25-coder-7b", "qwen7b", "my-own"], catalog.BUILTIN, tmp_path, INSTALLED, int(64 * GB)
    )
    assert [t.alias for t in targets] == ["qwen7b", "my-own"]
    with pytest.raises(MlxTasksError, match="Did you mean qwen7b"):
        bench.choose(["qwen7"], catalog.BUILTIN, tmp_path, INSTALLED, int(64 * GB))


def test_a_run_is_tokens_over_measured_time():
    run = bench.mlx_run(
        prompt_tokens=128, generation_tokens=33, first_token_s=0.5, generation_s=2.0, peak_memory_gb=4.1
    )
    assert run["prompt_tps"] == 256.0  # 128 tokens before the first token, in 0.5 s
    assert run["generation_tps"] == 16.0  # the 32 tokens after the first, in 2 s


def test_ollama_numbers_come_from_its_counts_and_durations():
    run = bench.ollama_run(
        {
            "prompt_eval_count": 120,
            "prompt_eval_duration": 300_000_000,
            "eval_count": 64,
            "eval_duration": 2_000_000_000,
            "load_duration": 100_000_000,
        }
    )
    assert (run["prompt_tps"], run["generation_tps"], run["first_token_s"]) == (400.0, 32.0, pytest.approx(0.4))
    assert run["peak_memory_gb"] is None


def test_summary_is_median_min_max_and_none_for_what_was_not_measured():
    runs = [bench.mlx_run(10, 5, t, t * 2, None) for t in (0.1, 0.4, 0.2)]
    s = bench.summary(runs)
    assert s["first_token_s"] == {"median": 0.2, "min": 0.1, "max": 0.4}
    assert s["generation_tps"]["median"] == statistics.median(r["generation_tps"] for r in runs)
    assert s["peak_memory_gb"] is None


def record(date: str, tps: float, mlx: str = "0.32.4") -> dict:
    run = bench.mlx_run(128, 11, 0.1, 10 / tps, 4.0)
    return {
        "schema": bench.SCHEMA,
        "date": date,
        "machine": {"chip": "M2", "backend": "metal", "mlx": mlx, "mlx_lm": "0.32.2"},
        "settings": {},
        "results": [
            {"alias": "qwen7b", "engine": "mlx", "name": "/m", "load_s": 1.0, "lengths": bench.by_length({128: [run]})}
        ],
        "skipped": [],
    }


def test_history_appends_lines_reads_them_back_and_shows_the_change(tmp_path):
    path = tmp_path / "state" / "bench.jsonl"
    bench.append_history(path, record("2026-11-01T10:00:00+00:00", 40.0, "0.31.0"))
    with path.open("a") as file:
        file.write("{not json\n")
    bench.append_history(path, record("2026-11-20T10:00:00+00:00", 50.0))
    records, bad = bench.read_history(path)
    assert [r["date"][:10] for r in records] == ["2026-11-01", "2026-11-20"] and bad == 1
    rows = bench.history_rows(records)
    assert rows[0]["change"] is None and rows[1]["change"] == pytest.approx(0.25)
    line = bench.history_line(rows[1])
    assert "2026-11-20 10:00" in line and "0.32.4" in line and "50.0" in line and "+25.0%" in line
    assert bench.read_history(tmp_path / "none.jsonl") == ([], 0)


def test_the_report_shows_median_and_range_and_the_bars_scale(capsys):
    result = record("2026-11-20T10:00:00+00:00", 50.0)["results"][0]
    lines = bench.table_lines(result)
    assert lines[0] == "qwen7b (MLX, loaded in 1.00 s)" and "50.0" in lines[2] and "4.00 GB" in lines[2]
    ui.bars("Generation tokens/s:", [("qwen7b MLX", 80.0, "blue"), ("qwen7b Ollama", 20.0, "yellow")], width=20)
    out = capsys.readouterr().out.splitlines()
    assert out[1].count("#") == 20 and out[2].count("#") == 5  # not a terminal: plain '#', no colour
    assert out[1].endswith("80.0") and out[2].endswith("20.0")


def test_plot_file_must_be_png_or_svg_in_an_existing_folder(tmp_path):
    assert bench.plot_problem(tmp_path / "chart.png") is None and bench.plot_problem(tmp_path / "c.SVG") is None
    assert "ending in .png or .svg" in bench.plot_problem(tmp_path / "chart.pdf")
    assert "does not exist" in bench.plot_problem(tmp_path / "no" / "chart.png")


@pytest.mark.slow
def test_the_ollama_client_speaks_tags_and_generate_to_a_real_server():
    with FakeOllama(["qwen2.5-coder:7b", "phi4"]) as server:
        assert ollama.tags(server.url) == {"qwen2.5-coder:7b", "phi4:latest"}
        answer = ollama.generate(server.url, "qwen2.5-coder:7b", "one two three four", 10, 2048)
        run = bench.ollama_run(answer)
        assert run["prompt_tps"] == pytest.approx(PROMPT_TPS) and run["generation_tps"] == pytest.approx(EVAL_TPS)
        assert answer["load_duration"] == LOAD_NS
        path, body = server.requests[-1]
        assert path == "/api/generate" and body["raw"] is True and body["stream"] is False
        assert body["options"] == {"num_predict": 10, "num_ctx": 2048, "temperature": 0, "seed": 0}
        with pytest.raises(ollama.ErrorAnswer, match="HTTP 404: model 'mistral:7b' not found"):
            ollama.generate(server.url, "mistral:7b", "hi", 1, 2048)
        url = server.url
    with pytest.raises(ollama.Unreachable, match="refused"):
        ollama.tags(url)


def test_the_runtime_spec_is_plain_json(tmp_path):
    targets = [bench.Target("qwen7b", tmp_path / "q", "qwen2.5-coder:7b")]
    spec = bench.spec(targets, config.resolve({}, home=tmp_path).bench)
    assert json.loads(spec.to_json()) == {
        "models": [{"alias": "qwen7b", "path": str(tmp_path / "q")}],
        "prompt_tokens": [128, 1024],
        "generation_tokens": 256,
        "runs": 3,
        "warmup": 1,
    }


def test_every_option_of_the_bench_tasks_has_help():
    from mlxtasks.tasks import bench as tasks

    for task in (tasks.run_, tasks.history):
        assert set(inspect.signature(task.body).parameters) - {"c"} == set(task.help)
        assert task.__doc__.splitlines()[0].endswith(".")


@pytest.mark.slow
def test_compare_ollama_adds_its_results_and_says_which_models_it_lacks(tmp_path):
    settings = bench.with_flags(
        config.resolve({}, home=tmp_path).bench, tmp_path, prompt_tokens="4", runs="2", generation_tokens="5"
    )
    targets = [
        bench.Target("qwen7b", tmp_path / "q", "qwen2.5-coder:7b"),
        bench.Target("mistral7b", tmp_path / "m", "mistral:7b"),
    ]
    measured = [{"alias": t.alias, "engine": "mlx", "name": str(t.path), "load_s": 1.0, "lengths": []} for t in targets]
    prompts = {t.alias: {"4": ["Run 1. a b c", "Run 2. a b c"]} for t in targets}
    said = []
    with FakeOllama(["qwen2.5-coder:7b"]) as server:
        output = {"results": list(measured), "skipped": []}
        found = bench.compare_ollama(
            output, targets, prompts, bench.with_flags(settings, tmp_path, ollama_url=server.url), said.append
        )
    assert found == {"engine": "ollama", "url": server.url, "reachable": True, "note": ""}
    twin = output["results"][-1]
    assert (twin["alias"], twin["engine"], twin["name"]) == ("qwen7b", "ollama", "qwen2.5-coder:7b")
    assert [run["prompt_tokens"] for run in twin["lengths"][0]["runs"]] == [5, 5]  # the stand-in counts words
    assert output["skipped"] == [
        {"alias": "mistral7b", "reason": "Ollama has no mistral:7b", "fix": "ollama pull mistral:7b"}
    ]
    assert said[0] == "qwen7b: Ollama qwen2.5-coder:7b: loading"
    timed = [body["prompt"] for path, body in server.requests if path == "/api/generate"][1:]
    assert timed == prompts["qwen7b"]["4"]  # the very texts the MLX runs used
