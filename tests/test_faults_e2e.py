"""Hostile input through the real CLI in a temporary HOME (issue 16): each ends non-zero with one
sentence and its fix, no traceback, and the user's files as they were."""

import json
import os
import shlex
import struct
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

from .support.fake_hub import FakeHub
from .support.fixtures import QWEN7B_REPO
from .support.helpers import ROOT, clean_env, invoke

pytestmark = pytest.mark.e2e

FAST = {
    "HF_HUB_ETAG_TIMEOUT": "2",
    "HF_HUB_DOWNLOAD_TIMEOUT": "2",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "INVOKE_MLX_RETRY_DELAY_S": "0",
}


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(done: subprocess.CompletedProcess, sentence: str, fix: str) -> None:
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "Traceback" not in output, output
    assert sentence in done.stderr and "  Fix: " in done.stderr and fix in done.stderr, output


@pytest.fixture(scope="module")
def small_hub(tmp_path_factory):
    """A FakeHub serving a hand-made model (config, tokenizer, two shards with valid headers) as qwen7b:
    enough for models.pull's checks, without the MLX venv the tiny model needs."""
    model = tmp_path_factory.mktemp("small-model")
    (model / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    (model / "tokenizer.json").write_text("{}")
    names = [f"model-0000{i}-of-00002.safetensors" for i in (1, 2)]
    for name in names:
        header = json.dumps({"w": {"dtype": "U8", "shape": [20000], "data_offsets": [0, 20000]}}).encode()
        (model / name).write_bytes(struct.pack("<Q", len(header)) + header + bytes(20000))
    (model / "model.safetensors.index.json").write_text(json.dumps({"weight_map": dict(zip("ab", names, strict=True))}))
    with FakeHub({QWEN7B_REPO: model}) as hub:
        hub.total = sum(len(data) for data in files(model).values())
        yield hub


@pytest.fixture
def hub(small_hub):
    small_hub.faults.clear()
    yield small_hub
    small_hub.faults.clear()


@pytest.fixture
def tmpfs():
    """mount(path, size): a small tmpfs at path, unmounted afterwards; skips where mounting needs root."""
    mounted = []

    def mount(path: Path, size: str) -> Path:
        if os.geteuid() != 0:
            pytest.skip("needs root to mount a small tmpfs (mount -t tmpfs)")
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True
        )
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


def pull(hub, home, *args, **env):
    return invoke("models.pull", *args, home=home, HF_ENDPOINT=hub.url, **{**FAST, **env})


def test_an_unwritable_home_is_a_sentence(hub, home, tmpfs):
    tmpfs(home, "64m")
    (home / "notes.txt").write_text("mine\n")
    subprocess.run(["mount", "-o", "remount,ro", str(home)], check=True)
    done = pull(hub, home, "qwen7b", INVOKE_MLX_DISK_MARGIN_GB="0")
    refused(done, f"Cannot write into {home / 'workspace' / 'mlx'}: Read-only file system.", "free some space")
    assert files(home) == {"notes.txt": b"mine\n"}


def test_a_full_disk_during_a_pull_is_a_sentence(hub, home, tmpfs):
    # Room for the files' bytes and config.json (read before the check), so the check passes, but not for
    # tmpfs's whole pages.
    models = tmpfs(home / "models", str(hub.total + 5 * 4096))
    (models / "notes.txt").write_text("mine\n")
    done = pull(hub, home, "qwen7b", "--models", str(models), INVOKE_MLX_DISK_MARGIN_GB="0")
    refused(done, "No space left on device.", "free some space")
    assert "UserWarning" not in done.stderr
    assert not (models / "qwen25-coder-7b").exists() and (models / "notes.txt").read_text() == "mine\n"


def test_a_little_free_space_is_shown_in_mb(hub, home, tmpfs):
    models = tmpfs(home / "models", "20m")
    done = pull(hub, home, "qwen7b", "--models", str(models))
    refused(done, "but only 21 MB is free", "free some space")
    assert "0.0 GB" not in done.stderr


@pytest.mark.parametrize("in_the_way", ["workspace/mlx", "workspace/mlx/.partial-qwen25-coder-7b"])
def test_a_file_where_the_models_folder_or_its_staging_folder_goes_is_left_alone(hub, home, in_the_way):
    path = home / in_the_way
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("mine\n")
    before = files(home)
    refused(pull(hub, home, "qwen7b"), f"cannot be a folder: {path} is a file.", f"move {path} aside")
    assert files(home) == before


def test_a_revision_with_a_newline_is_refused_before_asking_the_hub(hub, home):
    asked = len(hub.requests)
    done = pull(hub, home, "qwen7b", "--revision", "main\nX-Evil: 1")
    refused(done, "is not a branch, tag or commit name.", "leave out --revision")
    assert "Cannot reach the hub" not in done.stderr and len(hub.requests) == asked


def test_a_server_error_on_the_repo_info_call_is_retried(hub, home):
    hub.faults.fail_500("/api/models/*", times=2, method="GET")
    done = pull(hub, home, "qwen7b")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "asking the hub again" in done.stdout
    assert (home / "workspace" / "mlx" / "qwen25-coder-7b" / "mlxtasks-manifest.json").exists()


def make_venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path


def test_uninstall_refuses_a_symlinked_venv_and_keeps_what_it_points_to(home, tmp_path):
    target = make_venv(tmp_path / "real-venv")
    (target / "notes.txt").write_text("mine\n")
    (home / "venv-mlx").symlink_to(target)
    before = files(target)
    done = invoke("uninstall", "--yes", home=home)
    refused(done, f"{home / 'venv-mlx'} is a link to {target}, so it was not deleted.", "delete the link")
    assert files(target) == before and (home / "venv-mlx").is_symlink()


def test_installing_into_a_folder_that_is_not_a_venv_says_so(home, tmp_path):
    folder = tmp_path / "projects"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine\n")
    done = invoke("install", "--venv", str(folder), home=home)
    refused(done, f"{folder} is not a virtual environment", "--venv PATH")
    assert "check the network" not in done.stderr and files(folder) == {"notes.txt": b"mine\n"}


@pytest.mark.parametrize("task", [["status"], ["serve", "qwen7b"], ["bench"], ["chat.ask", "--model", "qwen7b", "hi"]])
def test_the_tasks_that_run_mlx_keep_the_venv_given_in_their_fix(home, tmp_path, task):
    (home / "workspace" / "mlx" / "qwen25-coder-7b").mkdir(parents=True)
    (home / "workspace" / "mlx" / "qwen25-coder-7b" / "config.json").write_text("{}")
    missing = tmp_path / "my venv"
    refused(
        invoke(*task, "--venv", str(missing), home=home),
        f"There is no venv at {missing}.",
        f"invoke setup --venv {shlex.quote(str(missing))}",
    )
    broken = make_venv(tmp_path / "broken")
    (broken / "bin" / "python").unlink()
    before = files(broken)
    refused(
        invoke(*task, "--venv", str(broken), home=home),
        f"The venv {broken} is broken",
        f"invoke venv --force --venv {broken}, then invoke install --venv {broken}",
    )
    assert files(broken) == before


def test_a_broken_venv_keeps_the_venv_given_and_a_new_one_says_it_needs_install(home, tmp_path):
    broken = make_venv(tmp_path / "v")
    (broken / "bin" / "python").unlink()
    (broken / "notes.txt").write_text("mine\n")
    before = files(broken)
    refused(
        invoke("venv", "--venv", str(broken), home=home),
        "is broken",
        f"recreate it: invoke venv --force --venv {broken}, then invoke install --venv {broken}",
    )
    assert files(broken) == before
    made = invoke("venv", "--venv", str(tmp_path / "new"), home=home)
    assert made.returncode == 0, made.stderr
    assert f"it starts empty: invoke install --venv {tmp_path / 'new'} fills it" in made.stdout


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_a_model_command_whose_venv_lost_its_python_says_to_run_setup(home, tmp_path, shell):
    venv = make_venv(tmp_path / "v")
    (venv / "bin" / "mlxtasks").write_text(f"#!{venv}/bin/python\n")
    (venv / "bin" / "mlxtasks").chmod(0o755)
    assert invoke("shell", "--shell", shell, "--venv", str(venv), home=home).returncode == 0
    (venv / "bin" / "python").unlink()
    (venv / "bin" / "python").symlink_to(tmp_path / "removed-python3")
    status = "$status" if shell == "fish" else "$?"
    script = f"mlx-qwen7b hello; echo rc={status}; mlx-activate"
    output = pexpect.run(
        f"{shell} -i -c {shlex.quote(script)}", env=clean_env(home, TERM="dumb"), encoding="utf-8", timeout=60
    )
    lost = f"mlx: the venv {venv} has lost its Python (removed or upgraded); run: sh {ROOT / 'bootstrap.sh'}"
    assert output.count(lost) == 2, output
    assert "rc=1" in output and "cannot execute" not in output and "bad interpreter" not in output


def a_model(models: Path, folder: str, manifest: dict | None = None, header: dict | None = None) -> Path:
    """A model folder as the store sees one: config, tokenizer, one shard (and a manifest if given)."""
    path = models / folder
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    (path / "tokenizer.json").write_text("{}")
    data = json.dumps(header or {"w": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}}).encode()
    (path / "model.safetensors").write_bytes(struct.pack("<Q", len(data)) + data + bytes(4))
    if manifest is not None:
        (path / "mlxtasks-manifest.json").write_text(json.dumps(manifest))
    return path


@pytest.mark.parametrize(
    "task", [["models.list"], ["models.info", "damaged"], ["models.verify"], ["chat.route", "write a python function"]]
)
@pytest.mark.parametrize(
    "manifest, header",
    [
        ([1, 2], None),
        ({"files": ["a"]}, None),
        ({"size": "big", "pulled": "monday"}, None),
        (None, {"w": {"dtype": "U8", "shape": [4]}}),
    ],
)
def test_a_damaged_manifest_or_safetensors_header_is_no_traceback(home, task, manifest, header):
    models = home / "workspace" / "mlx"
    a_model(models, "damaged", manifest, header)
    before = files(home)
    done = invoke(*task, home=home)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    assert done.returncode == (1 if task == ["models.verify"] else 0), done.stdout + done.stderr  # damaged: one verdict
    assert files(home) == before


def test_a_manifest_naming_a_catalogue_alias_does_not_take_it(home):
    models = home / "workspace" / "mlx"
    a_model(models, "Evil", {"repo": "someone/evil", "alias": "qwen7b"})
    done = invoke("models.info", "qwen7b", home=home)
    assert done.returncode == 0 and f"folder    {models / 'qwen25-coder-7b'}" in done.stdout
    assert "installed no: invoke models.pull qwen7b" in done.stdout
    routed = invoke("chat.route", "write a python function", home=home)
    assert routed.stdout.startswith("evil: code") and "so evil, the next installed one" in routed.stdout
    refused(invoke("models.rm", "qwen7b", "--yes", home=home), "qwen7b is not installed", "invoke models.list")
    assert (models / "Evil" / "config.json").exists()


@pytest.mark.parametrize(
    "config, sentence",
    [
        ('mlx:\n  catalog:\n    "ab\\n": {repo: a/b, size_gb: 1}\n', "mlx.catalog.ab"),
        ("mlx: {retry_delay_s: .nan}\n", "Config key 'mlx.retry_delay_s' must be a number from 0 to 300"),
        ("mlx: {retry_delay_s: 1e308}\n", "Config key 'mlx.retry_delay_s' must be a number from 0 to 300"),
    ],
)
def test_a_bad_value_in_the_config_file_is_refused_by_shell_and_pull(home, config, sentence):
    (home / ".invoke.yaml").write_text(config)
    before = files(home)
    for task in (["shell"], ["models.pull", "qwen7b"]):
        refused(invoke(*task, home=home), sentence, "invoke.yaml")
    assert files(home) == before


def test_a_repo_id_with_a_newline_is_not_a_repo_id(home):
    refused(invoke("models.pull", "org/x\n", home=home), "is not a hub repo id", "invoke models.list")
    assert files(home) == {}


def test_a_cluster_host_that_ssh_would_read_as_an_option_is_refused(home):
    refused(
        invoke("cluster.init", "--hosts", "mac1=10.0.0.1,-oProxyCommand=touch /tmp/x=10.0.0.2", home=home),
        "'-oProxyCommand' is not a host name",
        "cluster.init --hosts",
    )
    assert files(home) == {}


def test_a_venv_in_a_folder_named_with_quotes_and_parentheses_is_made_and_then_healthy(home):
    path = home / 'it\'s "my" (venv)'
    made = invoke("venv", "--venv", str(path), "--installer", "uv", home=home, timeout=300)
    assert made.returncode == 0 and "Traceback" not in made.stderr, made.stdout + made.stderr
    again = invoke("venv", "--venv", str(path), home=home, timeout=300)
    assert again.returncode == 0 and f"{path} is healthy" in again.stdout, again.stdout + again.stderr


def test_models_list_and_verify_agree_on_a_model_put_there_by_hand(home):
    a_model(home / "workspace" / "mlx", "ByHand")
    listed = invoke("models.list", home=home)
    assert listed.returncode == 0 and "ByHand" in listed.stdout
    line = next(line for line in listed.stdout.splitlines() if "ByHand" in line)
    assert " complete;" in line and "incomplete" not in line
    verified = invoke("models.verify", home=home)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_disk_full_before_the_first_file_is_the_full_disk_sentence(hub, home, tmpfs):
    models = tmpfs(home / "models", "64k")
    with open(models / "filler", "wb", buffering=0) as filler:  # nothing left, not even for config.json, fetched first
        try:
            while True:
                filler.write(b"\0" * 4096)
        except OSError:
            pass
    done = pull(hub, home, "qwen7b", "--models", str(models), INVOKE_MLX_DISK_MARGIN_GB="0")
    refused(done, "No space left on device", "free some space")
    assert "Fix: run the same command again" not in done.stderr
