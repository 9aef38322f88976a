"""`invoke models.pull` against the stand-in hub on 127.0.0.1, with faults, and the other models tasks."""

import json
import re
import shutil
import signal
import subprocess
import time

import pexpect
import psutil
import pytest

from .support.fake_hub import FakeHub
from .support.fixtures import GATED_REPO, QWEN7B_REPO
from .support.helpers import BIN, ROOT, clean_env, invoke, tree

pytestmark = pytest.mark.e2e

FOLDER = "qwen25-coder-7b"
# Short hub timeouts, so a server that stops answering fails a test in seconds, not minutes.
FAST = {"HF_HUB_ETAG_TIMEOUT": "2", "HF_HUB_DOWNLOAD_TIMEOUT": "2", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


def pull(hub, home, *args, **env):
    return invoke("models.pull", *args, home=home, HF_ENDPOINT=hub.url, **{**FAST, **env})


def gets(hub, glob="*.safetensors"):
    return [r for r in hub.hits(f"*/resolve/*/{glob}", method="GET") if r.status in (200, 206)]


def models_dir(home):
    return home / "workspace" / "mlx"


def test_pull_puts_a_complete_model_in_its_folder_and_mlx_lm_loads_it(fake_hub, home, tiny_model, mlx_run):
    done = pull(fake_hub, home, "qwen7b")
    assert done.returncode == 0, done.stdout + done.stderr
    folder = models_dir(home) / FOLDER
    for name in fake_hub.files(QWEN7B_REPO):
        if name != "README.md":  # not among mlx_lm's download patterns
            assert (folder / name).read_bytes() == (tiny_model / name).read_bytes()
    manifest = json.loads((folder / "mlxtasks-manifest.json").read_text())
    assert manifest["repo"] == QWEN7B_REPO and len(manifest["revision"]) == 40
    assert [p.name for p in models_dir(home).iterdir()] == [FOLDER]  # no staging left
    code = (
        "import sys; from mlx_lm import load, generate; m, t = load(sys.argv[1]); "
        "print(len(generate(m, t, 'hello', max_tokens=5)) >= 0)"
    )
    assert mlx_run(code, str(folder)).stdout.strip() == "True"


def test_a_second_pull_fetches_nothing(fake_hub, home):
    assert pull(fake_hub, home, "qwen7b").returncode == 0
    before = len(fake_hub.requests)
    done = pull(fake_hub, home, "qwen25-coder-7b")  # the seed's longer name is an alias too
    assert done.returncode == 0 and "already installed and complete" in done.stdout
    assert fake_hub.requests[before:] == []


def test_server_errors_are_retried_until_the_model_is_complete(fake_hub, home):
    fake_hub.faults.fail_500("*/resolve/*/model-00001-of-00002.safetensors", times=2, method="GET")
    done = pull(fake_hub, home, "qwen7b")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "trying again" in done.stdout
    assert (models_dir(home) / FOLDER / "mlxtasks-manifest.json").exists()
    assert len(gets(fake_hub, "model-00002-of-00002.safetensors")) == 1  # finished files are not fetched again


def test_a_dropped_connection_still_ends_complete(fake_hub, home):
    fake_hub.faults.drop_connection("*/resolve/*/model-00002-of-00002.safetensors", after_bytes=1000)
    done = pull(fake_hub, home, "qwen7b")
    assert done.returncode == 0, done.stdout + done.stderr
    assert not [p for p in models_dir(home).iterdir() if p.name.startswith(".")]


def test_server_errors_that_never_stop_leave_nothing_at_the_final_path_and_a_rerun_resumes(fake_hub, home):
    fake_hub.faults.fail_500("*/resolve/*/model-00002-of-00002.safetensors", times=None, method="GET")
    done = pull(fake_hub, home, "qwen7b", INVOKE_MLX_RETRY_DELAY_S="0")
    assert done.returncode == 1
    assert f"Downloading {QWEN7B_REPO} failed after 4 tries" in done.stderr and "finished files are kept" in done.stderr
    assert not (models_dir(home) / FOLDER).exists()
    fetched_first = len(gets(fake_hub, "model-00001-of-00002.safetensors"))
    fake_hub.faults.clear()
    assert pull(fake_hub, home, "qwen7b").returncode == 0
    assert len(gets(fake_hub, "model-00001-of-00002.safetensors")) == fetched_first  # not fetched again


@pytest.mark.parametrize(
    "args, sentence, fix",
    [
        (["org/missing-model"], "The hub has no model org/missing-model", "hf auth login"),
        ([GATED_REPO], f"{GATED_REPO} is gated", "hf auth login"),
        (["qwen7bb"], "There is no model called 'qwen7bb' in the catalogue. Did you mean qwen7b", "invoke models.list"),
        (["not a/repo!"], "is not a hub repo id", "invoke models.list"),
    ],
)
def test_hub_and_name_errors_are_one_sentence_and_leave_nothing(fake_hub, home, args, sentence, fix):
    done = pull(fake_hub, home, *args)
    assert done.returncode == 1
    assert sentence in done.stderr and fix in done.stderr and "Traceback" not in done.stderr
    assert not any(p for p in models_dir(home).glob("*") if not p.name.startswith("."))


@pytest.mark.parametrize(
    "change, sentence, fix",
    [
        (
            {"model_type": "brand_new"},
            "is a brand_new model, and the venv's mlx-lm 0.32.2 has no module",
            "invoke install --upgrade",
        ),
        (
            {"model_type": "idefics3", "vision_config": {"hidden_size": 8}},
            "is a vision model (idefics3): mlx-lm cannot run it",
            "mlx-vlm",
        ),
        (
            {"quantization": {"group_size": 32, "bits": 4, "mode": "qfp3"}},
            "is quantized in the qfp3 mode, which needs a newer mlx",
            "invoke install --upgrade",
        ),
    ],
)
def test_a_model_mlx_lm_cannot_run_is_refused_before_any_weight(
    bootstrapped, fake_hub, tiny_model, home, tmp_path, change, sentence, fix
):
    _, shared_home, _ = bootstrapped
    folder = shutil.copytree(tiny_model, tmp_path / "repo")
    (folder / "config.json").write_text(json.dumps({**json.loads((folder / "config.json").read_text()), **change}))
    fake_hub.repos["someone/Cannot-Run"] = folder
    done = pull(fake_hub, home, "someone/Cannot-Run", INVOKE_MLX_VENV=str(shared_home / "venv-mlx"))
    assert done.returncode == 1 and f"Not downloading: someone/Cannot-Run {sentence}" in done.stderr, done.stderr
    assert fix in done.stderr and "Traceback" not in done.stderr
    assert gets(fake_hub, "config.json") and gets(fake_hub) == []  # config.json read, no weight file requested
    assert tree(models_dir(home)) == []


def test_an_unreachable_hub_is_said_plainly(home):
    done = invoke("models.pull", "qwen7b", home=home, HF_ENDPOINT="http://127.0.0.1:9", **FAST)
    assert done.returncode == 1 and "Cannot reach the hub at http://127.0.0.1:9" in done.stderr


def test_a_hub_that_stops_answering_times_out_cleanly(fake_hub, home):
    fake_hub.faults.hang("*/resolve/*/model-00001-of-00002.safetensors", method="GET")
    done = pull(fake_hub, home, "qwen7b", INVOKE_MLX_RETRY_DELAY_S="0")
    assert done.returncode == 1 and "failed after 4 tries" in done.stderr
    assert not (models_dir(home) / FOLDER).exists()


def test_not_enough_disk_stops_before_any_download(fake_hub, home):
    done = pull(fake_hub, home, "qwen7b", INVOKE_MLX_DISK_MARGIN_GB="1000000")
    assert done.returncode == 1 and "needs" in done.stderr and "GB free in" in done.stderr
    assert gets(fake_hub, "*") == gets(fake_hub, "config.json") and gets(fake_hub) == []  # no weight file asked for
    assert tree(models_dir(home)) == []


def test_killing_a_pull_midway_then_rerunning_completes(fake_hub, home):
    fake_hub.faults.hang("*/resolve/*/model-00002-of-00002.safetensors", method="GET")
    env = clean_env(home, HF_ENDPOINT=fake_hub.url, **{**FAST, "HF_HUB_DOWNLOAD_TIMEOUT": "60"})
    process = subprocess.Popen(
        [str(BIN / "invoke"), "models.pull", "qwen7b"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while not (gets(fake_hub, "model-00001-of-00002.safetensors") and fake_hub.hits("*model-00002*", method="GET")):
        assert time.time() < deadline and process.poll() is None
        time.sleep(0.1)
    time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert not (models_dir(home) / FOLDER).exists()
    fake_hub.faults.clear()
    assert pull(fake_hub, home, "qwen7b").returncode == 0
    assert len(gets(fake_hub, "model-00001-of-00002.safetensors")) == 1  # the finished shard was kept


def test_too_big_for_memory_names_smaller_models_and_force_goes_ahead(fake_hub, home):
    big = "mlx:\n  catalog:\n    qwen7b:\n      size_gb: 100000\n"
    (home / ".invoke.yaml").write_text(big)
    done = pull(fake_hub, home, "qwen7b")
    assert done.returncode == 1
    assert "qwen7b needs about 105000.5 GB of memory" in done.stderr
    assert "Smaller models that fit: " in done.stderr and "mistral7b" in done.stderr  # 4.5 GB: fits anywhere here
    assert "--force" in done.stderr and fake_hub.requests == []
    assert pull(fake_hub, home, "qwen7b", "--force").returncode == 0


def test_a_configured_folder_outside_the_models_folder_is_refused(fake_hub, home):
    (home / ".invoke.yaml").write_text(
        "mlx:\n  catalog:\n    evil:\n      repo: org/evil\n      size_gb: 1\n      folder: ../../etc\n"
    )
    done = pull(fake_hub, home, "evil")
    assert done.returncode == 1 and "mlx.catalog.evil.folder" in done.stderr
    assert not (home / "etc").exists()


def test_a_configured_model_gets_shell_commands_and_pulls_by_its_alias(fake_hub, home):
    (home / ".invoke.yaml").write_text(
        f"mlx:\n  catalog:\n    tiny:\n      repo: {QWEN7B_REPO}\n      size_gb: 0.01\n      folder: tiny-qwen\n"
    )
    assert pull(fake_hub, home, "tiny").returncode == 0
    assert (models_dir(home) / "tiny-qwen" / "config.json").exists()
    assert invoke("shell", home=home).returncode == 0
    assert "mlx-chat-tiny=" in (home / ".bashrc").read_text()


def test_list_info_verify_and_rm(fake_hub, home):
    assert pull(fake_hub, home, "qwen7b").returncode == 0
    listed = json.loads(invoke("models.list", "--json", home=home).stdout)
    assert listed["installed"][0]["folder"] == FOLDER and listed["installed"][0]["complete"]
    assert {e["alias"] for e in listed["catalogue"]} >= {"qwen7b", "qwen32b", "deepseek", "phi4", "mistral7b"}
    info = invoke("models.info", "qwen7b", home=home).stdout
    assert "temperature 0.7, top_p 0.8, max_tokens 2048" in info and "complete" in info
    assert invoke("models.verify", home=home).returncode == 0
    shard = models_dir(home) / FOLDER / "model-00002-of-00002.safetensors"
    shard.write_bytes(shard.read_bytes()[:-5])
    bad = invoke("models.verify", "--model", "qwen7b", home=home)
    assert bad.returncode == 1 and "header says" in bad.stderr
    assert "incomplete" in invoke("models.list", home=home).stdout
    refused = invoke("models.rm", "qwen7b", home=home)
    assert refused.returncode == 1 and "--yes" in refused.stderr and (models_dir(home) / FOLDER).exists()
    assert invoke("models.rm", "qwen7b", "--yes", home=home).returncode == 0
    assert tree(models_dir(home)) == []


def test_rm_refuses_a_symlink_out_of_the_models_folder(home, tmp_path):
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "config.json").write_text("{}")
    models_dir(home).mkdir(parents=True)
    (models_dir(home) / FOLDER).symlink_to(outside)
    done = invoke("models.rm", "qwen7b", "--yes", home=home)
    assert done.returncode == 1 and "was not deleted" in done.stderr
    assert (outside / "config.json").exists()


def test_a_model_in_the_hf_cache_is_listed_and_adopted_without_a_download(fake_hub, home, mlx_run):
    code = (
        "import sys, huggingface_hub as h; h.snapshot_download(sys.argv[1], "
        "allow_patterns=['*.json', 'model*.safetensors'])"
    )
    env = {"HF_ENDPOINT": fake_hub.url, "HF_HOME": str(home / ".cache" / "huggingface")}
    assert mlx_run(code, QWEN7B_REPO, **env).returncode == 0
    listed = invoke("models.list", home=home).stdout
    assert "in the HF cache: models.pull --from-cache" in listed
    before = len(fake_hub.requests)
    done = invoke("models.pull", "qwen7b", "--from-cache", home=home, HF_ENDPOINT="http://127.0.0.1:9")
    assert done.returncode == 0, done.stderr
    assert len(fake_hub.requests) == before
    assert invoke("models.verify", "--model", "qwen7b", home=home).returncode == 0


def test_a_model_pulled_by_repo_id_is_listed_chatted_with_verified_and_removed(bootstrapped, tiny_model, home):
    _, shared_home, _ = bootstrapped
    with FakeHub({"someone/Tiny-Chat-4bit": tiny_model}) as hub:
        assert pull(hub, home, "someone/Tiny-Chat-4bit").returncode == 0
    listed = json.loads(invoke("models.list", "--json", home=home).stdout)["installed"]
    assert [(m["alias"], m["folder"], m["complete"]) for m in listed] == [("tiny-chat-4bit", "Tiny-Chat-4bit", True)]
    assert re.search(r"^  tiny-chat-4bit +Tiny-Chat-4bit ", invoke("models.list", home=home).stdout, re.M)  # not cut
    assert "someone/Tiny-Chat-4bit" in invoke("models.info", "tiny-chat-4bit", home=home).stdout
    assert invoke("models.verify", "--model", "Tiny-Chat-4bit", home=home).returncode == 0
    answer = invoke(
        "chat.ask",
        "hello",
        "--model",
        "tiny-chat-4bit",
        "--max-tokens",
        "3",
        "--venv",
        str(shared_home / "venv-mlx"),
        home=home,
    )
    assert answer.returncode == 0, answer.stderr
    assert invoke("models.rm", "tiny-chat-4bit", "--yes", home=home).returncode == 0
    assert tree(models_dir(home)) == []


def staging(home):
    return models_dir(home) / f".partial-{FOLDER}"


def orphan(home):
    """A partial file left by a pull that was killed: huggingface_hub can never resume it."""
    path = staging(home) / ".cache" / "huggingface" / "download" / "abc.0123abcd.incomplete"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x" * 100)
    return path


def test_a_hub_that_stops_mid_file_ends_the_pull_with_the_resume_command(fake_hub, home):
    left = orphan(home)
    fake_hub.faults.stall("*/resolve/*/model-00001-of-00002.safetensors", after_bytes=1000)
    done = pull(fake_hub, home, "qwen7b", INVOKE_MLX_PULL_STALL_TIMEOUT_S="3", HF_HUB_DOWNLOAD_TIMEOUT="600")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"The hub stopped answering: nothing arrived for 3 s while fetching {QWEN7B_REPO}." in done.stderr
    assert "Fix: run the same command again to resume" in done.stderr
    assert not (models_dir(home) / FOLDER).exists() and not left.exists()
    assert not list(staging(home).rglob("*.incomplete"))
    fake_hub.faults.clear()
    assert pull(fake_hub, home, "qwen7b").returncode == 0


def test_ctrl_c_ends_a_pull_at_once_and_says_how_to_resume(fake_hub, home):
    fake_hub.faults.stall("*/resolve/*/model-00001-of-00002.safetensors", after_bytes=1000)
    env = clean_env(home, HF_ENDPOINT=fake_hub.url, **{**FAST, "HF_HUB_DOWNLOAD_TIMEOUT": "600"})
    child = pexpect.spawn(
        str(BIN / "invoke"), ["models.pull", "qwen7b"], cwd=str(ROOT), env=env, encoding="utf-8", timeout=60
    )
    deadline = time.time() + 60
    while not fake_hub.hits("*model-00001*", method="GET"):
        assert time.time() < deadline and child.isalive()
        time.sleep(0.1)
    time.sleep(0.5)
    child.sendintr()
    child.expect(pexpect.EOF, timeout=10)
    child.close()
    assert child.exitstatus == 130, child.before
    assert "Interrupted; run the same command again to resume." in child.before and "Traceback" not in child.before
    assert not list(staging(home).rglob("*.incomplete"))
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(staging(home)) in " ".join(p.info["cmdline"] or [])]


def test_a_hub_that_never_answers_the_listing_ends_the_pull_too(fake_hub, home):
    fake_hub.faults.hang("/api/models/*")
    done = pull(
        fake_hub,
        home,
        "qwen7b",
        INVOKE_MLX_PULL_STALL_TIMEOUT_S="2",
        HF_HUB_DOWNLOAD_TIMEOUT="600",
        HF_HUB_ETAG_TIMEOUT="600",
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"The hub stopped answering: nothing arrived for 2 s while fetching {QWEN7B_REPO}." in done.stderr
    assert not models_dir(home).exists() or tree(models_dir(home)) == []
