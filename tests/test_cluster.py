"""The cluster's tool side: hostfiles, per-host judgements, launcher notes, and the tasks run for real
against hosts that cannot answer (there is no sshd here) or a stand-in ssh that runs commands here
(with real rsync through it)."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from mlxtasks import cluster
from mlxtasks.checks import Status
from mlxtasks.config import config_dir
from mlxtasks.errors import MlxTasksError
from mlxtasks.protocol import Capabilities

from .support.helpers import ROOT, TOOL_VENV, invoke

ADDRESSES = {"mac1.local": ["192.168.1.11"], "mac2.local": ["192.168.1.12", "192.168.1.99"]}
CLOSED_PORT = "ssh://127.0.0.1:1"  # refused at once
UNROUTABLE = "10.255.255.1"  # never answers: ConnectTimeout ends the wait
STAND_IN_SSH = """#!/bin/sh
# A stand-in for ssh to another machine: runs the command on this one (-G: settings with keepalives).
# The other machine's models folder is $THERE where this one's is $HERE.
if [ "$1" = "-G" ]; then echo "serveraliveinterval 5"; exit 0; fi
while [ $# -gt 0 ]; do case "$1" in -o|-p|-l) shift 2 ;; -*) shift ;; *) break ;; esac; done
shift  # the host; like ssh, the words after it make one command
exec sh -c "$(printf '%s' "$*" | sed "s#$HERE#$THERE#g")"
"""


def resolve(name):
    if name not in ADDRESSES:
        raise OSError("unknown host")
    return ADDRESSES[name]


def sentence(call):
    with pytest.raises(MlxTasksError) as caught:
        call()
    return caught.value


# --- hostfiles ------------------------------------------------------------------------------------


def test_a_ring_hostfile_has_every_host_in_rank_order_with_its_address():
    made = cluster.make_hostfile("mac1.local, mac2.local,10.0.0.3,studio=192.168.1.20", resolve=resolve)
    assert made == {
        "backend": "ring",
        "envs": [],
        "hosts": [
            {"ssh": "mac1.local", "ips": ["192.168.1.11"], "rdma": []},
            {"ssh": "mac2.local", "ips": ["192.168.1.12"], "rdma": []},
            {"ssh": "10.0.0.3", "ips": ["10.0.0.3"], "rdma": []},
            {"ssh": "studio", "ips": ["192.168.1.20"], "rdma": []},
        ],
    }
    assert cluster.parse_hostfile(made, "it").hosts == ("mac1.local", "mac2.local", "10.0.0.3", "studio")


def test_an_mpi_hostfile_needs_no_addresses():
    made = cluster.make_hostfile("a,b", "mpi", resolve=resolve)
    assert [h["ips"] for h in made["hosts"]] == [[], []] and made["backend"] == "mpi"


@pytest.mark.parametrize(
    "hosts, backend, message, fix",
    [
        ("mac1.local", "ring", "--hosts needs two or more comma-separated host names", "cluster.init --hosts"),
        ("mac1.local,,mac2.local", "ring", "--hosts needs two or more", "cluster.init --hosts"),
        ("mac1.local,nowhere", "ring", "Cannot find the network address of nowhere.", "nowhere=192.168.1.10"),
        ("mac1.local,mac2.local=not-an-ip", "ring", "'mac2.local=not-an-ip' does not end in an IP address.", "NAME=IP"),
        ("mac1.local,here=127.0.1.1", "ring", "here resolves to a loopback address", "--hosts ...,here=192.168.1.10"),
        ("mac1.local,mac2.local", "jaccl", "The jaccl backend needs more than host names", "mlx.distributed_config"),
        ("mac1.local,mac2.local", "tcp", "There is no 'tcp' backend in mlx.launch.", "--backend ring"),
    ],
)
def test_hostfile_mistakes_are_one_sentence_with_a_fix(hosts, backend, message, fix):
    err = sentence(lambda: cluster.make_hostfile(hosts, backend, resolve=resolve))
    assert err.message.startswith(message) and fix in err.fix


def test_mlx_distributed_config_output_is_read_as_mlx_launch_reads_it():
    thunderbolt = {
        "backend": "jaccl",
        "envs": ["MLX_METAL_FAST_SYNCH=1"],
        "hosts": [
            {"ssh": "m1", "ips": ["192.168.0.1"], "rdma": [None, "rdma_en3"]},
            {"ssh": "m2", "ips": ["192.168.0.2"], "rdma": ["rdma_en3", None]},
        ],
    }
    read = cluster.parse_hostfile(thunderbolt, "tb.json")
    assert (read.backend, read.hosts, read.data) == ("jaccl", ("m1", "m2"), thunderbolt)
    plain_list = cluster.parse_hostfile([{"ssh": "m1", "ips": ["10.0.0.1"]}, {"ssh": "m2", "ips": ["10.0.0.2"]}], "l")
    assert plain_list.hosts == ("m1", "m2") and plain_list.backend == "ring"


@pytest.mark.parametrize(
    "data",
    [
        {},
        [],
        {"hosts": []},
        {"hosts": [{"ips": []}]},
        {"hosts": [{"ssh": "a"}], "backend": "tcp"},
        "text",
        {"hosts": [{"ssh": "a", "ips": "10.0.0.1"}]},
    ],
)
def test_a_file_mlx_launch_could_not_read_is_refused(data):
    assert "is not a hostfile mlx.launch can read" in sentence(lambda: cluster.parse_hostfile(data, "f")).message


@pytest.mark.parametrize("name", ["-oProxyCommand=sh", "mac 2", "mac2\n"])
def test_a_hostfile_host_ssh_would_misread_is_refused(name):
    data = {"backend": "ring", "hosts": [{"ssh": "a", "ips": ["10.0.0.1"]}, {"ssh": name, "ips": ["10.0.0.2"]}]}
    assert "is not a host name" in sentence(lambda: cluster.parse_hostfile(data, "f")).message


def test_a_ring_hostfile_without_addresses_is_refused():
    data = {"backend": "ring", "hosts": [{"ssh": "a", "ips": ["10.0.0.1"]}, {"ssh": "b", "ips": []}]}
    assert "lacks the IP address of a host" in sentence(lambda: cluster.parse_hostfile(data, "f")).message


def test_the_config_folder_follows_xdg_config_home(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert config_dir(tmp_path) == tmp_path / ".config" / "mlxtasks"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/ignored")
    assert config_dir(tmp_path) == tmp_path / ".config" / "mlxtasks"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config_dir(tmp_path) == tmp_path / "xdg" / "mlxtasks"


@pytest.mark.slow
def test_init_writes_the_hostfile_into_the_config_folder(home):
    done = invoke("cluster.init", "--hosts", "10.0.0.1,studio=10.0.0.2", home=home)
    assert done.returncode == 0, done.stderr
    written = json.loads((home / ".config" / "mlxtasks" / "hostfile.json").read_text())
    assert [(h["ssh"], h["ips"]) for h in written["hosts"]] == [("10.0.0.1", ["10.0.0.1"]), ("studio", ["10.0.0.2"])]
    assert "rank 1: studio (10.0.0.2)" in done.stdout and "Next: invoke cluster.check" in done.stdout


@pytest.mark.slow
def test_init_keeps_a_thunderbolt_hostfile_and_dry_run_writes_nothing(home, tmp_path):
    given = tmp_path / "tb.json"
    given.write_text(
        json.dumps(
            {
                "backend": "jaccl",
                "hosts": [
                    {"ssh": "m1", "ips": ["192.168.0.1"], "rdma": [None, "rdma_en3"]},
                    {"ssh": "m2", "ips": [], "rdma": ["rdma_en3", None]},
                ],
            }
        )
    )
    xdg = tmp_path / "xdg"
    dry = invoke("cluster.init", "--hostfile", str(given), "--dry-run", home=home, XDG_CONFIG_HOME=str(xdg))
    assert dry.returncode == 0 and "Would write" in dry.stdout and not xdg.exists()
    done = invoke("cluster.init", "--hostfile", str(given), home=home, XDG_CONFIG_HOME=str(xdg))
    assert done.returncode == 0, done.stderr
    assert json.loads((xdg / "mlxtasks" / "hostfile.json").read_text()) == json.loads(given.read_text())


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "Give either --hosts or --hostfile."),
        (["--hosts", "a,b", "--backend", "jaccl-ring"], "The jaccl-ring backend needs more than host names"),
        (["--hosts", "mac1=10.0.0.1,-oProxyCommand=touch /tmp/pwned=10.0.0.2"], "'-oProxyCommand' is not a host name"),
    ],
)
@pytest.mark.slow
def test_init_mistakes_exit_1_and_write_nothing(home, args, message):
    done = invoke("cluster.init", *args, home=home)
    assert done.returncode == 1 and message in done.stderr and "Fix:" in done.stderr
    assert not (home / ".config").exists()


# --- checking hosts -------------------------------------------------------------------------------

HERE: dict[str, Any] = {
    "venv": True,
    "python": "3.11.9",
    "mlx": "0.32.4",
    "mlx-lm": "0.32.2",
    "mlxtasks": "0.1.0",
    "model": True,
    "manifest": {"repo": "r", "revision": "abc", "files": {"a": 1}, "pulled": "monday"},
    "complete": True,
}
VENV, FOLDER = Path("/Users/me/venv-mlx"), Path("/Users/me/workspace/mlx/qwen25-coder-7b")


def judged(there):
    return [(r.id, r.status, r.message, r.fix) for r in cluster.judge("mac2", HERE, there, VENV, "qwen7b", FOLDER)]


def test_a_host_like_this_one_has_no_problems_even_with_its_own_pull_time():
    there = {**HERE, "python": "3.11.4", "manifest": {**HERE["manifest"], "pulled": "tuesday"}}
    assert all(status is Status.OK for _, status, _, _ in judged(there))


def test_a_host_without_the_venv_gets_one_problem_with_its_fix():
    assert judged({"venv": False}) == [
        (
            "venv",
            Status.ERROR,
            "mac2 has no venv at /Users/me/venv-mlx",
            "set up mac2 with the same paths as here: invoke setup --venv /Users/me/venv-mlx (on mac2)",
        )
    ]


def test_different_versions_are_named_with_the_pip_command_that_matches_them():
    found = {
        id_: (status, message, fix)
        for id_, status, message, fix in judged({**HERE, "python": "3.12.1", "mlx": "0.31.0", "mlxtasks": None})
    }
    assert found["python"][0] is Status.ERROR and "Python 3.12.1 on mac2, 3.11.9 here" == found["python"][1]
    assert found["versions"] == (
        Status.ERROR,
        "mlx 0.31.0 on mac2, 0.32.4 here, mlxtasks missing on mac2, 0.1.0 here",
        "on mac2: /Users/me/venv-mlx/bin/pip install mlx==0.32.4 mlxtasks==0.1.0",
    )


@pytest.mark.parametrize(
    "there, message",
    [
        ({"model": False, "manifest": None, "complete": False}, "mac2 has no qwen7b in /Users/me/workspace/mlx/"),
        ({"manifest": {**HERE["manifest"], "revision": "def"}}, "mac2 has a different copy of qwen7b"),
        ({"manifest": None}, "mac2 has a different copy of qwen7b"),
        ({"complete": False}, "mac2's copy of qwen7b is incomplete"),
    ],
)
def test_a_missing_different_or_incomplete_model_is_fixed_by_sharing_it(there, message):
    model = [r for r in judged({**HERE, **there}) if r[0] == "model"]
    assert model[0][1] is Status.ERROR and model[0][2].startswith(message)
    assert model[0][3] == "invoke cluster.share qwen7b"


def test_keepalives_come_from_ssh_settings():
    assert cluster.keepalive_problem("mac2", "user me\nserveraliveinterval 5\n") is None
    problem = cluster.keepalive_problem("mac2", "serveraliveinterval 0\nserveralivecountmax 3\n")
    assert problem.status is Status.ERROR and "Host mac2" in problem.fix and "ServerAliveInterval 5" in problem.fix


def write_hostfile(home, *hosts):
    cluster.write_hostfile(
        home / ".config" / "mlxtasks" / "hostfile.json",
        {  # where a clean env looks
            "backend": "ring",
            "envs": [],
            "hosts": [{"ssh": h, "ips": [f"192.0.2.{n}"]} for n, h in enumerate(hosts)],
        },
    )


@pytest.mark.slow
@pytest.mark.tools("ssh")
def test_check_names_every_unreachable_host_with_its_fix_and_exits_1(home):
    write_hostfile(home, cluster.LOCAL, CLOSED_PORT, UNROUTABLE)
    done = invoke("cluster.check", "--timeout", "1", "--venv", str(TOOL_VENV), home=home, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{CLOSED_PORT} cannot be reached by ssh (" in done.stderr
    assert f"{UNROUTABLE} cannot be reached by ssh (" in done.stderr
    assert done.stderr.count("Fix: check") == 2 and "Remote Login is on" in done.stderr
    assert "127.0.0.1\n  [ok] this machine: runs its ranks without ssh" in done.stdout
    assert "Found issues in" in done.stdout


@pytest.mark.slow
def test_check_without_a_cluster_says_how_to_make_one(home):
    done = invoke("cluster.check", "--venv", str(TOOL_VENV), home=home)
    assert done.returncode == 1 and "No cluster is set up yet." in done.stderr and "cluster.init --hosts" in done.stderr


@pytest.fixture
def stand_in_ssh(tmp_path):
    """PATH with an ssh that runs commands on this machine, standing in for a reachable remote host."""
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "ssh").write_text(STAND_IN_SSH)
    (folder / "ssh").chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


def pulled_model(models):
    """A model folder as models.pull leaves it: its files and the manifest listing them."""
    folder = models / "qwen25-coder-7b"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "qwen2"}')
    manifest = {
        "repo": "mlx-community/Qwen2.5-Coder-7B-Instruct-4bit",
        "revision": "abc",
        "files": {"config.json": (folder / "config.json").stat().st_size},
    }
    (folder / "mlxtasks-manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.mark.slow
@pytest.mark.tools("rsync")
def test_share_copies_to_a_host_without_the_model_then_check_passes(home, tmp_path, stand_in_ssh):
    here, there = tmp_path / "models", tmp_path / "elsewhere" / "models"
    folder = pulled_model(here)
    copy = there / folder.name
    write_hostfile(home, cluster.LOCAL, "mac2.local")
    paths = ["--venv", str(TOOL_VENV), "--models", str(here)]
    env = {"home": home, "PATH": stand_in_ssh, "HERE": str(here), "THERE": str(there)}
    before = invoke("cluster.check", "--model", "qwen7b", *paths, **env)
    assert before.returncode == 1 and f"mac2.local has no qwen7b in {folder}" in before.stderr
    assert "Fix: invoke cluster.share qwen7b" in before.stderr
    shared = invoke("cluster.share", "qwen7b", *paths, **env)
    assert shared.returncode == 0, shared.stderr
    assert shared.stdout.splitlines() == [
        "mac2.local: copying qwen25-coder-7b...",
        "qwen7b is on every host (copied to mac2.local).",
    ]
    assert sorted(p.name for p in there.iterdir()) == [folder.name]  # no staging folder left
    assert all((copy / p.name).read_bytes() == p.read_bytes() for p in folder.iterdir())
    (copy / "config.json").write_text("{")  # damaged there: no longer the size its manifest says
    damaged = invoke("cluster.check", "--model", "qwen7b", *paths, **env)
    assert damaged.returncode == 1 and "mac2.local's copy of qwen7b is incomplete" in damaged.stderr
    assert invoke("cluster.share", "qwen7b", *paths, **env).returncode == 0
    again = invoke("cluster.share", "qwen7b", *paths, **env)
    assert again.stdout.splitlines() == ["mac2.local: already has a complete copy, skipped", "qwen7b is on every host."]
    after = invoke("cluster.check", "--model", "qwen7b", *paths, **env)
    assert after.returncode == 0, after.stdout + after.stderr
    assert "[ok] qwen7b: the same complete copy in" in after.stdout and after.stdout.endswith("No issues found.\n")


@pytest.mark.slow
def test_check_reports_a_model_this_machine_lacks_before_asking_any_host(home, tmp_path):
    write_hostfile(home, cluster.LOCAL, UNROUTABLE)
    done = invoke(
        "cluster.check", "--model", "qwen7b", "--venv", str(TOOL_VENV), "--models", str(tmp_path / "none"), home=home
    )
    assert done.returncode == 1 and "qwen7b is not downloaded on this machine." in done.stderr
    assert "invoke models.pull qwen7b" in done.stderr


@pytest.mark.slow
@pytest.mark.tools("ssh")
def test_share_stops_at_an_unreachable_host_with_its_fix(home, tmp_path):
    models = tmp_path / "models"
    pulled_model(models)
    write_hostfile(home, cluster.LOCAL, CLOSED_PORT)
    done = invoke(
        "cluster.share", "qwen7b", "--timeout", "1", "--venv", str(TOOL_VENV), "--models", str(models), home=home
    )
    assert done.returncode == 1
    assert f"Cannot share with {CLOSED_PORT}: {CLOSED_PORT} cannot be reached by ssh" in done.stderr


# --- launching ------------------------------------------------------------------------------------


def test_the_launch_goes_through_the_venvs_mlx_launch():
    local = cluster.launch_argv(VENV, "ring", ["python", "-m", "x"], local=2, port=40000)
    assert local == [
        f"{VENV}/bin/mlx.launch",
        "--backend",
        "ring",
        "--hosts",
        "127.0.0.1",
        "-n",
        "2",
        "--starting-port",
        "40000",
        "--",
        "python",
        "-m",
        "x",
    ]
    hosts = cluster.launch_argv(VENV, "jaccl", ["python"], hostfile=Path("/h.json"))
    assert hosts == [f"{VENV}/bin/mlx.launch", "--backend", "jaccl", "--hostfile", "/h.json", "--", "python"]


def test_free_ports_are_free():
    first = cluster.free_ports(2)
    assert all(cluster._free(port) for port in (first, first + 1))


def test_the_first_failed_rank_is_read_from_mlx_launchs_notes():
    notes = [
        "\x1b[33m[WARN] Node with rank 1 exited with code 1 \x1b[0m\n",
        "\x1b[33m[WARN] Node with rank 0 exited with code -15 \x1b[0m\n",
    ]
    assert cluster.rank_failure(notes) == (1, 1)
    assert cluster.rank_failure(["[WARN] Node with rank 2 was killed"]) == (2, None)
    assert cluster.rank_failure(["[WARN] Node with rank 0 exited with code 0", "other"]) is None


@pytest.mark.parametrize(
    "status, host, words",
    [
        (-9, cluster.LOCAL, "Rank 1 on this machine was killed (signal 9)"),
        (None, "mac2", "Rank 1 on mac2 was killed,"),
        (255, "mac2", "Rank 1 on mac2 lost its ssh connection"),
        (3, "mac2", "Rank 1 on mac2 failed (exit status 3)"),
    ],
)
def test_a_failed_rank_is_named_with_its_host(status, host, words):
    err = cluster.failure_sentence(1, status, host, "qwen7b")
    assert err.message.startswith(words) and err.message.endswith("so the whole run was stopped.")
    assert err.fix.startswith("invoke cluster.check --model qwen7b")


@pytest.mark.parametrize(
    "can, pipeline, message, fix",
    [
        ({"model_type": "qwen2", "tensor": True, "pipeline": True}, False, None, None),
        ({"model_type": "qwen2", "tensor": True, "pipeline": True}, True, None, None),
        (
            {"model_type": "llama", "tensor": True, "pipeline": False},
            True,
            "deepseek (llama) cannot be split by pipeline parallelism in mlx_lm.",
            "leave out --pipeline (tensor parallel)",
        ),
        (
            {"model_type": "x", "tensor": False, "pipeline": True},
            False,
            "deepseek (x) cannot be split by tensor parallelism in mlx_lm.",
            "add --pipeline",
        ),
        (
            {"model_type": "phi3", "tensor": False, "pipeline": False},
            True,
            "deepseek (phi3) cannot be split across machines",
            "invoke chat deepseek",
        ),
    ],
)
def test_a_model_is_refused_unless_mlx_lm_can_shard_it_that_way(can, pipeline, message, fix):
    refusal = cluster.sharding_refusal("deepseek", Capabilities(**can), pipeline)
    assert refusal is None if message is None else (refusal.message.startswith(message) and fix in refusal.fix)


def test_rsync_reaches_ssh_addresses_through_their_port():
    assert cluster.rsync_target("ssh://me@mac2:2222") == ("me@mac2", ["-p", "2222"])
    assert cluster.rsync_target("mac2.local") == ("mac2.local", [])


@pytest.mark.parametrize(
    "args, message, fix",
    [
        (["--local", "1"], "--local must be from 2 to", "--local 2"),
        ([], "qwen7b is not downloaded on this machine.", "invoke models.pull qwen7b"),
    ],
)
@pytest.mark.slow
def test_a_run_that_cannot_start_says_why_before_launching(home, tmp_path, args, message, fix):
    done = invoke("cluster.ask", "qwen7b", "hi", *args, "--venv", str(TOOL_VENV), "--models", str(tmp_path), home=home)
    assert done.returncode == 1 and message in done.stderr and fix in done.stderr and done.stdout == ""


@pytest.mark.slow
@pytest.mark.parametrize(
    "task",
    [["cluster.ask", "qwen7b", "hi"], ["cluster.chat", "qwen7b"], ["cluster.check"], ["cluster.share", "qwen7b"]],
)
def test_every_task_that_runs_the_venvs_python_says_a_missing_venv_as_the_others_do(home, tmp_path, task):
    pulled_model(tmp_path / "models")
    write_hostfile(home, cluster.LOCAL)
    missing = tmp_path / "no venv"
    done = invoke(*task, "--venv", str(missing), "--models", str(tmp_path / "models"), home=home)
    assert done.returncode == 1 and f"There is no venv at {missing}." in done.stderr, done.stderr
    assert "invoke setup --venv" in done.stderr


def test_more_local_ranks_than_cores_is_refused_before_anything_starts(home):
    done = invoke("cluster.ask", "qwen7b", "hi", "--local", "64", home=home)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert (
        f"--local must be from 2 to {max(2, os.cpu_count())} ranks (the CPU cores of this machine), got 64."
        in done.stderr
    )


SUPERVISED = """
import sys
from pathlib import Path
from mlxtasks import cluster
# A launcher as mlx.launch is one: it starts its ranks in its own process group and waits for them.
launcher = [sys.executable, "-c", "import subprocess, sys, time; "
            "ranks = [subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']) for _ in range(2)]; "
            "print(' '.join(str(r.pid) for r in ranks), flush=True); time.sleep(300)"]
cluster.supervise(launcher, ["127.0.0.1"] * 2, "qwen7b", chat=False, log=Path(sys.argv[1]))
"""


@pytest.mark.slow  # a launcher and its ranks as processes
def test_sigterm_stops_the_launcher_and_every_rank(tmp_path):
    run = subprocess.Popen(
        [sys.executable, "-c", SUPERVISED, str(tmp_path / "cluster.log")], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    ranks = [psutil.Process(int(pid)) for pid in run.stdout.readline().split()]
    launcher = ranks[0].parent()
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=60) == 128 + signal.SIGTERM
    _, alive = psutil.wait_procs([launcher, *ranks], timeout=10)
    assert not alive, [p.cmdline() for p in alive]


def test_a_ranks_traceback_is_one_line_and_the_trace_goes_to_the_log(tmp_path, capfd):
    log = tmp_path / "state" / "cluster.log"
    failing = [sys.executable, "-c", "def shard():\n    raise ValueError('64 heads do not split in 3')\nshard()"]
    with pytest.raises(MlxTasksError, match="mlx.launch stopped with exit status 1"):
        cluster.supervise(failing, [cluster.LOCAL] * 2, "qwen7b", chat=False, log=log)
    err = capfd.readouterr().err
    assert err == f"ValueError: 64 heads do not split in 3 (the traceback is in {log})\n"
    assert "Traceback (most recent call last):" in log.read_text() and "in shard" in log.read_text()


def test_the_fix_for_a_missing_cluster_gives_local_to_the_command_that_takes_it(home):
    done = invoke("cluster.check", home=home)
    assert done.returncode == 1 and "No cluster is set up yet." in done.stderr
    fix = done.stderr.split("Fix: ", 1)[1]
    assert "invoke cluster.init --hosts HOST1,HOST2" in fix and 'invoke cluster.ask MODEL "..." --local 2' in fix
