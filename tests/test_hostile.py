"""Hostile files where config and state are read (issue 29), through the real CLI in a temporary HOME: a FIFO
is refused in a sentence instead of holding the command for ever, and a damaged bench history is read around."""

import json
import os
import subprocess

import pytest

from mlxtasks import bench

from .support.helpers import BIN, TOOL_VENV, invoke, run
from .test_bench import record
from .test_rcfile import mounted  # noqa: F401 - a fixture

# The hostile sweep as it was hit: mostly the CLI as a process, real FIFOs and mounts (the quick lane's).
pytestmark = pytest.mark.slow


def refused(done, *words: str) -> None:
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "Fix: " in done.stderr and all(word in done.stderr for word in words), done.stderr


def state(home):
    folder = home / ".local" / "state" / "mlxtasks"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_a_fifo_at_invoke_yaml_is_refused_by_the_mlxtasks_command(home):
    os.mkfifo(home / ".invoke.yaml")
    done = run([str(BIN / "mlxtasks"), "models.list"], home, timeout=60)  # a hang raises TimeoutExpired
    refused(done, f"{home / '.invoke.yaml'} is not a regular file but a FIFO (named pipe), so it was not read.")


@pytest.mark.parametrize(
    "name, argv",
    [
        ("bench.jsonl", ["bench.history"]),
        ("serve.json", ["serve.status"]),
        ("serve.log", ["serve.logs"]),
        ("created-rc-files", ["shell.install"]),
    ],
)
def test_a_fifo_at_a_state_file_is_refused_instead_of_waited_on(home, name, argv):
    os.mkfifo(state(home) / name)
    refused(invoke(*argv, home=home, timeout=60), f"{state(home) / name} is not a regular file but a FIFO")


def test_a_fifo_at_the_bench_history_leaves_models_list_its_answer(home):
    os.mkfifo(state(home) / "bench.jsonl")
    done = invoke("models.list", home=home, timeout=60)
    assert done.returncode == 0 and "qwen7b" in done.stdout, done.stderr


def test_a_fifo_at_the_cluster_hostfile_is_refused(home):
    folder = home / ".config" / "mlxtasks"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "hostfile.json")
    refused(
        invoke("cluster.check", home=home, timeout=60), f"{folder / 'hostfile.json'} is not a regular file but a FIFO"
    )


def test_appending_to_a_fifo_history_is_refused_without_a_reader(tmp_path):
    os.mkfifo(tmp_path / "bench.jsonl")
    with pytest.raises(bench.MlxTasksError, match="not a regular file but a FIFO .*, so it was not written"):
        bench.append_history(tmp_path / "bench.jsonl", {"schema": 1})


DAMAGED = [
    b"caf\xe9 not utf-8\n",
    b'{"schema":1}\n',
    b'{"schema":1,"date":"x","machine":{},"results":[{"alias":3}]}\n',
    b'{"schema":1,"date":"x","machine":{},"results":[{"alias":"a","engine":"mlx","lengths":[{"prompt_tokens":1,'
    b'"summary":{"generation_tps":{"median":"fast"},"first_token_s":null}}]}]}\n',
]


@pytest.mark.parametrize("argv", [["bench.history"], ["models.list"], ["models.info", "qwen7b"]])
def test_a_damaged_bench_history_is_read_around_and_said_once(home, argv):
    good = json.dumps(record("2026-11-01T10:00:00+00:00", 40.0)).encode() + b"\n"
    (state(home) / "bench.jsonl").write_bytes(good + b"".join(DAMAGED) + good)
    done = invoke(*argv, home=home, timeout=60)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    said = (done.stdout + done.stderr).count("4 lines of ")
    assert said == 1, done.stdout + done.stderr


@pytest.mark.parametrize(
    "argv, flag, default",
    [
        (["serve.logs", "--lines", "abc"], "--lines", "50"),
        (["models.search", "x", "--limit", "abc"], "--limit", "20"),
        (["cluster.check", "--timeout", "abc"], "--timeout", "5"),
        (["cluster.ask", "m", "p", "--local", "abc"], "--local", None),
    ],
)
def test_a_whole_number_flag_given_a_word_is_one_sentence_naming_it(home, argv, flag, default):
    done = invoke(*argv, home=home)
    refused(
        done,
        f"{flag} must be a whole number, got 'abc'.",
        f"Fix: pass a whole number, such as {flag} {default}" if default else f"Fix: pass a whole number to {flag}",
    )


def _collections(collection):
    yield collection
    for child in collection.collections.values():
        yield from _collections(child)


def test_every_whole_number_flag_of_every_task_words_a_bad_value(capsys):
    from invoke import Exit

    from mlxtasks.tasks import ns
    from mlxtasks.tasks._flags import WholeNumberFlag

    tasks = [task for collection in _collections(ns) for task in collection.tasks.values()]
    helps = [dict(task.help) for task in tasks]  # get_arguments takes each flag's help out of task.help
    try:
        flags = [argument for task in tasks for argument in task.get_arguments() if argument.kind is int]
    finally:
        for task, kept in zip(tasks, helps, strict=True):
            task.help = kept
    assert len(flags) >= 4 and all(isinstance(argument, WholeNumberFlag) for argument in flags)
    for argument in flags:
        with pytest.raises(Exit):
            argument.set_value("abc")
        assert "must be a whole number, got 'abc'." in capsys.readouterr().err


@pytest.mark.parametrize("variable", ["XDG_STATE_HOME", "XDG_CONFIG_HOME"])
@pytest.mark.parametrize(
    "argv",
    [["shell.install", "--shell", "bash"], ["bench.history"], ["cluster.init", "--hosts", "a=10.0.0.1,b=10.0.0.2"]],
)
def test_an_xdg_folder_that_is_a_file_is_one_sentence_and_blames_no_rc_file(home, tmp_path, variable, argv):
    (tmp_path / "file").write_text("")
    done = invoke(*argv, home=home, **{variable: str(tmp_path / "file")})
    refused(
        done,
        f"({variable}={tmp_path / 'file'}) cannot be a folder: {tmp_path / 'file'} is a file.",
        f"set {variable} to a folder",
    )
    assert ".bashrc" not in done.stderr and not (home / ".bashrc").exists()


@pytest.mark.parametrize(
    "argv, written",
    [
        (
            ["shell.install", "--shell", "bash"],
            "Cannot write {folder}/mlxtasks/created-rc-files: Read-only file system, "
            "so {home}/.bashrc was left as it was.",
        ),
        (["cluster.init", "--hosts", "a=10.0.0.1,b=10.0.0.2"], "Cannot use {folder}/mlxtasks: Read-only file system."),
    ],
)
def test_a_read_only_xdg_folder_is_one_sentence_naming_it(home, mounted, argv, written):
    folder = mounted("xdg", "ro")
    done = invoke(*argv, home=home, XDG_STATE_HOME=str(folder), XDG_CONFIG_HOME=str(folder))
    refused(done, written.format(folder=folder, home=home), "mounted read-only: remount it writable")
    assert not (home / ".bashrc").exists()


@pytest.mark.parametrize(
    "argv", [["workspace"], ["models.verify"], ["models.list"], ["models.pull", "qwen7b"], ["chat.ask", "hi"]]
)
def test_a_models_path_that_is_a_file_is_one_verdict_everywhere(home, argv):
    (home / "workspace").mkdir()
    (home / "workspace" / "mlx").write_text("")
    done = invoke(*argv, home=home, timeout=60)
    models = home / "workspace" / "mlx"
    refused(done, f"The models folder {models} cannot be a folder: {models} is a file.", f"move {models} aside")
    assert "[changed]" not in done.stdout and "No issues found" not in done.stdout


def complete_model(models, folder="qwen25-coder-7b"):
    """A model folder that passes every check of the files, with the manifest models.pull writes."""
    path = models / folder
    path.mkdir(parents=True)
    (path / "config.json").write_text('{"model_type": "qwen2"}')
    (path / "tokenizer.json").write_text("{}")
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    (path / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 4)
    listed = {name: (path / name).stat().st_size for name in ("config.json", "tokenizer.json", "model.safetensors")}
    (path / "mlxtasks-manifest.json").write_text(
        json.dumps({"repo": "mlx-community/Qwen2.5-Coder-7B-Instruct-4bit", "alias": "qwen7b", "files": listed})
    )
    return path


@pytest.mark.slow
@pytest.mark.parametrize(
    "damage, said",
    [
        (
            lambda path: (path / "config.json").write_text("[1,2,3]"),
            "config.json holds a JSON list, not the model's settings",
        ),
        (
            lambda path: (path / "mlxtasks-manifest.json").write_text('{"files": 3}'),
            "mlxtasks-manifest.json (the record of its download) is damaged",
        ),
    ],
)
def test_a_damaged_config_or_manifest_gets_one_verdict_from_list_verify_chat_and_pull(home, damage, said):
    models = home / "workspace" / "mlx"
    path = complete_model(models)
    listed = invoke("models.list", "--json", home=home)
    assert [m["complete"] for m in json.loads(listed.stdout)["installed"]] == [True], listed.stderr
    damage(path)
    listed = invoke("models.list", "--json", home=home)
    assert [m["complete"] for m in json.loads(listed.stdout)["installed"]] == [False], listed.stderr
    verified = invoke("models.verify", home=home)
    assert verified.returncode == 1 and said in verified.stdout + verified.stderr, verified.stdout
    asked = invoke("chat.ask", "hi", "--model", "qwen7b", "--venv", str(TOOL_VENV), home=home)
    assert asked.returncode == 1 and said in asked.stderr, asked.stderr  # before mlx_lm loads anything
    pulled = invoke("models.pull", "qwen7b", home=home, HF_ENDPOINT="http://127.0.0.1:9", INVOKE_MLX_RETRY_DELAY_S="0")
    assert pulled.returncode == 1 and "already installed and complete" not in pulled.stdout


@pytest.fixture
def bare_venv(tmp_path):
    """A venv with nothing installed, made by the tool environment's uv."""
    venv = tmp_path / "venv"
    subprocess.run([str(BIN / "uv"), "venv", "-q", str(venv)], check=True, capture_output=True)
    return venv


@pytest.mark.slow
def test_validate_with_a_read_only_home_asks_uv_for_no_cache(home, mounted, bare_venv):
    home = mounted("home", "ro")
    done = invoke("validate", "--venv", str(bare_venv), home=home, timeout=300)
    line = next(line for line in done.stdout.splitlines() if "Requirements between packages" in line)
    assert "cache" not in line and "Traceback" not in done.stderr, done.stdout


def test_uv_that_cannot_write_its_cache_is_said_so_not_blamed_on_the_network(mounted, bare_venv):
    from mlxtasks import install

    home = mounted("home", "ro")
    env = {**{k: v for k, v in os.environ.items() if k not in ("XDG_CACHE_HOME", "UV_CACHE_DIR")}, "HOME": str(home)}
    done = subprocess.run(
        [str(BIN / "uv"), "pip", "install", "--python", str(bare_venv / "bin" / "python"), "numpy"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode != 0
    err = install.hopeless("cpu", done.stderr + done.stdout)
    assert err is not None and f"uv cannot write its cache at {home / '.cache' / 'uv'}" in err.message, done.stderr
    assert "UV_CACHE_DIR" in err.fix


@pytest.mark.slow
def test_a_fifo_for_a_models_config_is_a_problem_not_a_hang(home):
    path = complete_model(home / "workspace" / "mlx")
    (path / "config.json").unlink()
    os.mkfifo(path / "config.json")
    for argv in (["models.list"], ["models.verify"], ["models.info", "qwen7b"], ["chat.ask", "hi"]):
        done = invoke(*argv, home=home, timeout=60)  # a hang raises TimeoutExpired
        assert "Traceback" not in done.stderr, done.stderr
    verified = invoke("models.verify", home=home, timeout=60)
    assert "config.json is not a regular file" in verified.stdout + verified.stderr
