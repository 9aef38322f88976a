"""cluster.ask and cluster.chat for real: ranks on this machine (--local 2) started by mlx.launch from the
session's MLX venv, each holding its part of a tiny generated qwen2 model."""

import json
import re
import shutil
import signal
import subprocess

import pexpect
import psutil
import pytest

from .support.fixtures import TINY_MODEL_SCRIPT
from .support.helpers import BIN, ROOT, clean_env, invoke

pytestmark = pytest.mark.e2e

PROMPT = "How do I sort a list?"
GREEDY = ["--temp", "0", "--max-tokens", "24"]
SINGLE_PROCESS = """
import sys
from mlx.utils import tree_flatten
from mlx_lm import load, generate
model, tokenizer = load(sys.argv[1])
prompt = tokenizer.apply_chat_template([{"role": "user", "content": sys.argv[2]}], add_generation_prompt=True)
print(sum(v.nbytes for _, v in tree_flatten(model.parameters())))
sys.stdout.write(generate(model, tokenizer, prompt, max_tokens=24))
"""


@pytest.fixture(scope="module")
def cluster_setup(bootstrapped, tiny_model, mlx_python, tmp_path_factory):
    """The session's venv and a models folder of our own: qwen7b is the tiny model made wide enough for its
    layers to split in two (tensor parallel), mistral7b the plain tiny one, phi4 a phi3 model."""
    _, shared_home, _ = bootstrapped
    models = tmp_path_factory.mktemp("cluster") / "models"
    made = subprocess.run(
        [
            str(mlx_python),
            str(TINY_MODEL_SCRIPT),
            str(models / "qwen25-coder-7b"),
            "--shards",
            "2",
            "--shape",
            "tiny-wide",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert made.returncode == 0, made.stderr
    shutil.copytree(tiny_model, models / "mistral-7b")
    shutil.copytree(tiny_model, models / "phi4-14b")
    config = json.loads((models / "phi4-14b" / "config.json").read_text())
    (models / "phi4-14b" / "config.json").write_text(json.dumps({**config, "model_type": "phi3"}))
    return shared_home / "venv-mlx", models


def paths(cluster_setup):
    venv, models = cluster_setup
    return ["--venv", str(venv), "--models", str(models)]


def single_process(mlx_run, folder):
    """(bytes of weights, greedy answer) of mlx_lm's own load and generate in one process."""
    done = mlx_run(SINGLE_PROCESS, str(folder), PROMPT)
    assert done.returncode == 0, done.stderr
    size, _, answer = done.stdout.partition("\n")
    return int(size), answer


def rank_sizes(stderr, kind):
    """{rank: bytes of weights} from each rank's --verbose line."""
    found = re.findall(rf"rank (\d) of 2 on \S+: {kind} part, (\d+) bytes of weights", stderr)
    return {int(rank): int(size) for rank, size in found}


@pytest.mark.parametrize(
    "alias, folder, flags, kind",
    [
        ("qwen7b", "qwen25-coder-7b", [], "tensor"),
        ("mistral7b", "mistral-7b", ["--pipeline"], "pipeline"),
    ],
)
def test_two_local_ranks_give_the_single_process_greedy_answer(
    cluster_setup, home, mlx_run, alias, folder, flags, kind
):
    done = invoke(
        "cluster.ask", alias, PROMPT, "--local", "2", "--verbose", *flags, *GREEDY, *paths(cluster_setup), home=home
    )
    assert done.returncode == 0, done.stderr
    whole, answer = single_process(mlx_run, cluster_setup[1] / folder)
    assert done.stdout == answer + "\n"
    sizes = rank_sizes(done.stderr, kind)
    assert set(sizes) == {0, 1}  # two ranks in one group of two, each with only its part of the weights
    assert all(size < whole for size in sizes.values()), (sizes, whole)


def test_a_hostfile_made_by_init_is_what_the_run_launches(cluster_setup, home):
    # Both hosts are 127.0.0.1, which mlx.launch runs without ssh, so the hostfile path runs for real.
    made = invoke("cluster.init", "--hosts", "127.0.0.1,127.0.0.1", home=home)
    assert made.returncode == 0, made.stderr
    done = invoke("cluster.ask", "qwen7b", PROMPT, "--verbose", *GREEDY, *paths(cluster_setup), home=home)
    assert done.returncode == 0, done.stderr
    local = invoke("cluster.ask", "qwen7b", PROMPT, "--local", "2", *GREEDY, *paths(cluster_setup), home=home)
    assert done.stdout == local.stdout and set(rank_sizes(done.stderr, "tensor")) == {0, 1}


def test_a_chat_reads_messages_and_commands_and_ends_at_end_of_input(cluster_setup, home):
    mlxtasks = str(cluster_setup[0] / "bin" / "mlxtasks")  # the installed CLI, from any folder
    done = subprocess.run(
        [mlxtasks, "cluster.chat", "qwen7b", "--local", "2", "--max-tokens", "4", *paths(cluster_setup)],
        cwd=home,
        env=clean_env(home),
        capture_output=True,
        text=True,
        input="hello\n/set max_tokens 2\n/model qwen7b\nagain\n/save talk.json --json\n",
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Chatting with qwen7b across 2 ranks")
    assert "(max_tokens = 2)" in done.stdout and "(a cluster chat holds one model;" in done.stdout
    saved = json.loads((home / "talk.json").read_text())  # written once, by rank 0, in the launcher's folder
    assert [m["content"] for m in saved["messages"] if m["role"] == "user"] == ["hello", "again"]
    assert saved["sampling"]["max_tokens"] == 2


def test_an_architecture_mlx_lm_cannot_shard_is_refused_before_launching(cluster_setup, home):
    done = invoke("cluster.ask", "phi4", "hi", "--local", "2", *paths(cluster_setup), home=home)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "[error] phi4 (phi3) cannot be split across machines: mlx_lm has no sharded version of that architecture.",
        "  Fix: use a model that shards, such as qwen7b or qwen32b, or run it on one machine: invoke chat phi4",
    ]


def test_a_prompt_longer_than_the_context_is_refused_in_a_sentence_not_a_traceback(cluster_setup, home):
    done = invoke("cluster.ask", "qwen7b", "word " * 20000, "--local", "2", *GREEDY, *paths(cluster_setup), home=home)
    assert done.returncode == 1 and done.stdout == "" and "Traceback" not in done.stderr, done.stderr
    assert re.search(r"The prompt is \d+ tokens long, but qwen7b's context holds 4096 tokens", done.stderr), done.stderr
    assert "Fix: " in done.stderr


def test_a_rank_that_fails_stops_the_run_with_its_host_named(cluster_setup, home):
    # The plain tiny model is too narrow to split in two: mlx cannot quantize half of a 64-wide group.
    done = invoke("cluster.ask", "mistral7b", "hi", "--local", "2", *paths(cluster_setup), home=home)
    assert done.returncode == 1 and done.stdout == ""
    assert re.search(r"Rank [01] on this machine failed \(exit status 1\), so the whole run was stopped\.", done.stderr)
    assert "divisible by the quantization group size" in done.stderr  # the rank's own reason passes through
    assert "Traceback" not in done.stderr  # a rank's traceback would be one line, its trace in cluster.log


def test_a_rank_killed_mid_answer_stops_every_process(cluster_setup, home):
    run = subprocess.Popen(
        [
            str(BIN / "invoke"),
            "cluster.ask",
            "qwen7b",
            "tell me everything",
            "--local",
            "2",
            "--max-tokens",
            "1000000",
            "--temp",
            "1",
            *paths(cluster_setup),
        ],
        cwd=ROOT,
        env=clean_env(home),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert run.stdout.read(1)  # the answer has started: both ranks are generating
        family = psutil.Process(run.pid).children(recursive=True)
        ranks = {p.environ()["MLX_RANK"]: p for p in family if "MLX_RANK" in p.environ()}  # set by mlx.launch
        assert set(ranks) == {"0", "1"}
        ranks["1"].kill()
        _, stderr = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == 1
    assert "Rank 1 on this machine was killed (signal 9), so the whole run was stopped." in stderr
    _, alive = psutil.wait_procs(family, timeout=10)
    assert not alive, [p.cmdline() for p in alive]


def spawn_chat(cluster_setup, home, *args):
    """cluster.chat in a real terminal, at its first prompt."""
    mlxtasks = str(cluster_setup[0] / "bin" / "mlxtasks")
    child = pexpect.spawn(
        mlxtasks,
        ["cluster.chat", "qwen7b", "--local", "2", *args, *paths(cluster_setup)],
        cwd=str(home),
        env=clean_env(home),
        encoding="utf-8",
        timeout=120,
    )
    child.expect_exact("Chatting with qwen7b across 2 ranks")
    child.expect_exact(">>> ")
    return child


def test_in_a_terminal_ctrl_d_leaves_the_chat(cluster_setup, home):
    child = spawn_chat(cluster_setup, home, "--max-tokens", "3")
    child.sendline("hello")
    child.expect_exact(">>> ")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_in_a_terminal_ctrl_c_stops_the_whole_run_and_every_process(cluster_setup, home):
    child = spawn_chat(cluster_setup, home, "--max-tokens", "1000000", "--temp", "1")
    family = psutil.Process(child.pid).children(recursive=True)
    assert {p.environ().get("MLX_RANK") for p in family} >= {"0", "1"}
    child.sendline("tell me everything")
    child.expect_exact("tell me everything\r\n")  # the terminal's echo
    child.expect(r"\S")  # the reply has started
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    _, alive = psutil.wait_procs(family, timeout=10)
    assert not alive, [p.cmdline() for p in alive]


def test_sigterm_stops_the_whole_run_and_every_process(cluster_setup, home):
    child = spawn_chat(cluster_setup, home, "--max-tokens", "1000000", "--temp", "1")
    family = psutil.Process(child.pid).children(recursive=True)
    assert {p.environ().get("MLX_RANK") for p in family} >= {"0", "1"}
    child.sendline("tell me everything")
    child.expect_exact("tell me everything\r\n")
    child.expect(r"\S")  # the reply has started
    child.kill(signal.SIGTERM)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 128 + signal.SIGTERM
    _, alive = psutil.wait_procs(family, timeout=10)
    assert not alive, [p.cmdline() for p in alive]
