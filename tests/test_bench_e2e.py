"""invoke bench end to end: the session's real MLX venv measuring the tiny generated model, the chart
drawn by matplotlib installed on demand, and Ollama's side played by a stand-in server on 127.0.0.1."""

import json
import shutil
import socket
import statistics
import struct
import xml.etree.ElementTree as ElementTree

import pytest

from mlxtasks import bench

from .support.fake_ollama import EVAL_TPS, PROMPT_TPS, FakeOllama
from .support.helpers import invoke

pytestmark = pytest.mark.e2e

COMPILING = "compiling GPU kernels (first run only)..."  # runtime/gpu.py's words
SMALL = ["--prompt-tokens", "8,24", "--generation-tokens", "6", "--runs", "2", "--warmup", "1"]


@pytest.fixture(scope="module")
def bench_setup(bootstrapped, tiny_model, tmp_path_factory):
    """The session's venv, and a models folder of our own: the tiny model as qwen7b and under a folder name
    the catalogue does not know."""
    _, shared_home, _ = bootstrapped
    models = tmp_path_factory.mktemp("bench") / "models"
    for folder in ("qwen25-coder-7b", "my-own"):
        shutil.copytree(tiny_model, models / folder)
    return ["--venv", str(shared_home / "venv-mlx"), "--models", str(models)]


def history_file(home):
    return home / ".local" / "state" / "mlxtasks" / "bench.jsonl"


def test_json_numbers_are_counted_consistent_and_kept_in_the_history(bench_setup, home):
    done = invoke("bench", "--model", "qwen7b", *SMALL, "--json", *bench_setup, home=home)
    assert done.returncode == 0, done.stderr
    output = json.loads(done.stdout)  # nothing but the JSON on stdout; progress went to stderr
    assert "qwen7b: prompt of 24 tokens: run 2/2" in done.stderr
    assert output["schema"] == bench.SCHEMA and output["skipped"] == []
    assert output["settings"] == {"prompt_tokens": [8, 24], "generation_tokens": 6, "runs": 2, "warmup": 1}
    machine = output["machine"]
    assert machine["backend"] == "cpu" and machine["mlx"].startswith("0.") and machine["mlx_lm"].startswith("0.")
    assert machine["chip"] and machine["ram_gb"] > 0 and machine["os"] == "linux"
    [result] = output["results"]
    assert (result["alias"], result["engine"], result["load_s"] > 0) == ("qwen7b", "mlx", True)
    assert [entry["prompt_tokens"] for entry in result["lengths"]] == [8, 24]
    for entry in result["lengths"]:
        assert len(entry["runs"]) == 2
        for run in entry["runs"]:
            assert run["prompt_tokens"] == entry["prompt_tokens"]  # mlx_lm's count of the prompt it read
            assert run["generation_tokens"] == 6  # responses counted; end of sequence ignored
            assert run["first_token_s"] > 0 and run["generation_s"] > 0 and run["peak_memory_gb"] > 0
            assert run["prompt_tps"] == pytest.approx(run["prompt_tokens"] / run["first_token_s"])
            assert run["generation_tps"] == pytest.approx((run["generation_tokens"] - 1) / run["generation_s"])
        tps = [run["generation_tps"] for run in entry["runs"]]
        assert entry["summary"]["generation_tps"] == {
            "median": statistics.median(tps),
            "min": min(tps),
            "max": max(tps),
        }
    records, bad = bench.read_history(history_file(home))
    assert records == [output] and bad == 0

    again = invoke("bench", "--model", "qwen7b", "--model", "my-own", *SMALL, *bench_setup, home=home)
    assert again.returncode == 0, again.stderr
    assert "qwen7b (MLX, loaded in" in again.stdout and "my-own (MLX, loaded in" in again.stdout
    assert "Generation tokens/s, prompt of 24 tokens (median):" in again.stdout
    assert "  qwen7b MLX  #" in again.stdout and "  my-own MLX  #" in again.stdout
    assert len(bench.read_history(history_file(home))[0]) == 2

    shown = invoke("bench.history", home=home)
    assert shown.returncode == 0, shown.stderr
    lines = [line for line in shown.stdout.splitlines() if " qwen7b " in line]
    assert len(lines) == 4 and lines[2].rstrip().endswith("%")  # the second run's change since the first
    assert len(json.loads(invoke("bench.history", "--json", "--last", "1", home=home).stdout)) == 1


def test_plot_draws_a_png_and_an_svg(bench_setup, home, tmp_path):
    png, svg = tmp_path / "chart.png", tmp_path / "chart.svg"
    done = invoke("bench", "--model", "qwen7b", *SMALL, "--plot", str(png), *bench_setup, home=home, timeout=900)
    assert done.returncode == 0, done.stderr
    assert f"Chart: {png}" in done.stdout
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 600 and height > 100
    done = invoke("bench", "--model", "qwen7b", *SMALL, "--plot", str(svg), *bench_setup, home=home)
    assert done.returncode == 0, done.stderr
    assert "installing matplotlib" not in done.stderr  # once is enough
    root = ElementTree.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "qwen7b, prompt 24: MLX" in svg.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chart.png", "chart.svg", "home"]  # no temporary files


def test_compare_ollama_runs_the_same_prompts_side_by_side(bench_setup, home):
    with FakeOllama(["qwen2.5-coder:7b"]) as server:
        done = invoke(
            "bench", *SMALL, "--compare", "ollama", "--ollama-url", server.url, "--json", *bench_setup, home=home
        )
    assert done.returncode == 0, done.stderr
    output = json.loads(done.stdout)
    assert output["compare"] == {"engine": "ollama", "url": server.url, "reachable": True, "note": ""}
    assert [(r["alias"], r["engine"]) for r in output["results"]] == [
        ("qwen7b", "mlx"),
        ("my-own", "mlx"),
        ("qwen7b", "ollama"),
    ]
    assert [k["alias"] for k in output["skipped"]] == ["my-own"]
    assert "no Ollama tag" in output["skipped"][0]["reason"]
    twin = output["results"][2]
    assert (twin["name"], twin["load_s"]) == ("qwen2.5-coder:7b", 1.5)  # the warm-up loaded it
    for entry in twin["lengths"]:
        assert entry["summary"]["generation_tps"]["median"] == pytest.approx(EVAL_TPS)
        assert entry["summary"]["prompt_tps"]["median"] == pytest.approx(PROMPT_TPS)
        assert entry["summary"]["peak_memory_gb"] is None
    generated = [body for path, body in server.requests if path == "/api/generate"]
    assert [path for path, _ in server.requests][0] == "/api/tags" and len(generated) == 1 + 2 * 2
    timed = generated[1:]
    assert all(b["raw"] is True and b["options"]["num_predict"] == 6 for b in timed)
    assert len({b["prompt"] for b in timed}) == 4  # each run its own prompt: no cached prefix
    assert [b["prompt"].split()[:2] for b in timed[:2]] == [["Run", "1."], ["Run", "2."]]


def test_compare_with_no_ollama_says_so_in_one_line_and_still_measures(bench_setup, home):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nothing listens there
    done = invoke(
        "bench",
        "--model",
        "qwen7b",
        *SMALL,
        "--compare",
        "ollama",
        "--ollama-url",
        f"http://127.0.0.1:{port}",
        *bench_setup,
        home=home,
    )
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stdout.splitlines() if "Ollama" in line]
    assert notes == [
        f"Ollama is not reachable at http://127.0.0.1:{port} ([Errno 111] Connection refused); MLX numbers only."
    ]
    assert "qwen7b (MLX, loaded in" in done.stdout


def test_missing_models_are_skipped_with_the_fix_and_nothing_to_measure_fails(bench_setup, home):
    done = invoke("bench", "--model", "all", *SMALL, *bench_setup, home=home)
    assert done.returncode == 0, done.stderr
    assert "Skipped phi4: not downloaded. Fix: invoke models.pull phi4" in done.stdout
    assert "qwen7b (MLX" in done.stdout and "my-own (MLX" in done.stdout
    done = invoke("bench", "--model", "phi4", *bench_setup, home=home)
    assert done.returncode == 1
    assert (
        "No model to measure: phi4 is not downloaded." in done.stderr and "Fix: invoke models.pull phi4" in done.stderr
    )
    assert len(bench.read_history(history_file(home))[0]) == 1  # the first run's record only


def test_dry_run_shows_the_runtime_command_and_writes_nothing(bench_setup, home):
    done = invoke("bench", "--dry-run", "--model", "qwen7b", "--model", "deepseek", *bench_setup, home=home)
    assert done.returncode == 0, done.stderr
    assert "Would measure: qwen7b" in done.stdout and "Skipped deepseek: not downloaded" in done.stdout
    assert '-m mlxtasks.runtime.bench --spec \'{"models": [{"alias": "qwen7b"' in done.stdout
    assert not (home / ".local").exists()


def test_a_bad_plot_name_fails_before_measuring(bench_setup, home, tmp_path):
    done = invoke("bench", "--plot", str(tmp_path / "chart.pdf"), *bench_setup, home=home)
    assert done.returncode == 1 and "ending in .png or .svg" in done.stderr
    assert "loading" not in done.stderr and not history_file(home).exists()


def test_the_runtime_says_kernels_are_compiling_once_on_cuda(mlx_run, tiny_model):
    """No NVIDIA GPU here: the backend is given as CUDA, everything else is the real run."""
    code = """
import json, sys
from mlxtasks.protocol import BenchSpec
from mlxtasks.runtime import bench, gpu
gpu.is_cuda = lambda: True
spec = {"models": [{"alias": "a", "path": sys.argv[1]}, {"alias": "b", "path": sys.argv[1]}],
        "prompt_tokens": [4], "generation_tokens": 3, "runs": 1, "warmup": 1}
print(json.dumps(bench.run(BenchSpec.from_dict(spec)).machine.to_dict()))
"""
    done = mlx_run(code, tiny_model)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines.count(COMPILING) == 1  # before the process's first generation only
    assert lines.index(COMPILING) == lines.index("a: prompt of 4 tokens: warm-up 1/1") + 1
