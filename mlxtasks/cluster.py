"""One model across several machines, on MLX's own engine: the hostfile `mlx.launch` reads, checks of
every host over ssh, copying a model to the hosts that lack it, and one supervised launch.

The launch is `mlx.launch` (from the venv) running `python -m mlxtasks.runtime.cluster` on every rank;
this module only prepares it and watches it. Rank i runs on the hostfile's host i.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import files
from .checks import Result, Status
from .errors import TRACEBACK, MlxTasksError
from .protocol import Capabilities, ClusterSpec

if TYPE_CHECKING:
    from .chat import Flags
    from .config import Settings

HOSTFILE_NAME = "hostfile.json"
LOCAL = "127.0.0.1"  # the one host name mlx.launch runs without ssh
HOSTS_BACKENDS = ("ring", "mpi")  # what a list of host names can describe
BACKENDS = ("ring", "jaccl", "jaccl-ring", "mpi", "nccl")  # what mlx.launch can start
# mx.distributed.init's name for each of them
INIT_BACKEND = {"ring": "ring", "jaccl": "jaccl", "jaccl-ring": "jaccl", "mpi": "mpi", "nccl": "nccl"}
THUNDERBOLT_FIX = (
    "let MLX configure Thunderbolt: mlx.distributed_config --over thunderbolt --hosts H1,H2 "
    "--output-hostfile tb.json (from the venv), then: invoke cluster.init --hostfile tb.json"
)
INIT_FIX = 'invoke cluster.init --hosts HOST1,HOST2 (or, with no cluster, ranks on this machine: invoke cluster.ask MODEL "..." --local 2)'
KEEPALIVE = "ServerAliveInterval 5 and ServerAliveCountMax 3"
GRACE_S = 5.0  # how long ranks get to stop after SIGTERM before SIGKILL
ON_THIS_MACHINE = " on this machine"  # every host needs a copy; the error names which one lacks it
RANK_LINE = re.compile(r"Node with rank (\d+) (?:exited with code (-?\d+)|was killed)")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class Cluster:
    backend: str  # ring where the hostfile names none, as mlx.launch picks without CUDA
    hosts: tuple[str, ...]  # ssh names, in rank order
    data: dict  # the hostfile as mlx.launch reads it

    @property
    def remote(self) -> tuple[str, ...]:
        """Hosts reached through ssh, each once."""
        return tuple(dict.fromkeys(h for h in self.hosts if h != LOCAL))


# --- the hostfile ---------------------------------------------------------------------------------


def make_hostfile(hosts: str, backend: str = "ring", resolve: Callable[[str], list[str]] | None = None) -> dict:
    """The JSON hostfile for a comma-separated list of hosts, each `NAME` or `NAME=IP`.
    The ring backend needs every host's IP address; names are looked up on this machine."""
    if backend not in BACKENDS:
        raise MlxTasksError(f"There is no {backend!r} backend in mlx.launch.", fix="use --backend ring (or mpi)")
    if backend not in HOSTS_BACKENDS:
        raise MlxTasksError(
            f"The {backend} backend needs more than host names (its network devices).",
            fix=THUNDERBOLT_FIX if backend.startswith("jaccl") else "use --backend ring",
        )
    names = [part.strip() for part in hosts.split(",")]
    if any(not name for name in names) or len(names) < 2:
        raise MlxTasksError(
            f"--hosts needs two or more comma-separated host names, got {hosts!r}.",
            fix="invoke cluster.init --hosts mac1.local,mac2.local",
        )
    entries = []
    for item in names:
        name, _, given = item.partition("=")
        check_host_name(name)
        if given:
            ips = [_ip(given, item)]
        elif backend == "ring":
            ips = _addresses(name, resolve or lookup)
        else:
            ips = []
        entries.append({"ssh": name, "ips": ips, "rdma": []})
    loopback = [e["ssh"] for e in entries if e["ips"] and ipaddress.ip_address(e["ips"][0]).is_loopback]
    if loopback and len({e["ssh"] for e in entries}) > 1:
        raise MlxTasksError(
            f"{loopback[0]} resolves to a loopback address, which the other hosts cannot reach.",
            fix=f"give its network address: --hosts ...,{loopback[0]}=192.168.1.10,...",
        )
    return {"backend": backend, "envs": [], "hosts": entries}


def check_host_name(name: str) -> None:
    """Refuse what ssh would read as an option (`-oProxyCommand=...`) or split into several words."""
    if name.startswith("-") or any(ch.isspace() or not ch.isprintable() for ch in name):
        raise MlxTasksError(
            f"{name!r} is not a host name: it starts with '-' or holds a space or control character.",
            fix="write hosts as NAME, USER@NAME or NAME=IP: invoke cluster.init --hosts mac1.local,mac2.local",
        )


def lookup(name: str) -> list[str]:
    """IPv4 addresses of a host name, as this machine resolves it (mDNS .local names included on a Mac)."""
    infos = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _addresses(name: str, resolve: Callable[[str], list[str]]) -> list[str]:
    try:
        ipaddress.ip_address(name)
        return [name]
    except ValueError:
        pass
    try:
        found = resolve(name)
    except OSError:
        found = []
    if not found:
        raise MlxTasksError(
            f"Cannot find the network address of {name}.",
            fix=f"check the name (ping {name}), or give its address: {name}=192.168.1.10",
        )
    return found[:1]


def _ip(text: str, item: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise MlxTasksError(f"{item!r} does not end in an IP address.", fix="write hosts as NAME or NAME=IP") from None


def parse_hostfile(data: object, source: str) -> Cluster:
    """Check a hostfile's shape the way mlx.launch reads it (a dict with hosts, or a plain list)."""
    bad = MlxTasksError(
        f"{source} is not a hostfile mlx.launch can read.",
        fix=f"make it again: {INIT_FIX}, or mlx.distributed_config ... --output-hostfile FILE",
    )
    hosts = data.get("hosts") if isinstance(data, dict) else data
    backend = data.get("backend", "") if isinstance(data, dict) else ""
    if not isinstance(hosts, list) or not hosts or backend not in ("", *BACKENDS):
        raise bad
    if not all(
        isinstance(h, dict) and isinstance(h.get("ssh"), str) and h["ssh"] and isinstance(h.get("ips", []), list)
        for h in hosts
    ):
        raise bad
    for host in hosts:
        check_host_name(host["ssh"])
    if backend in ("", "ring") and len(hosts) > 1 and not all(h.get("ips") for h in hosts):
        raise MlxTasksError(f"{source} lacks the IP address of a host, which the ring backend needs.", fix=INIT_FIX)
    normal = data if isinstance(data, dict) else {"backend": "", "envs": [], "hosts": hosts}
    return Cluster(backend or "ring", tuple(h["ssh"] for h in hosts), normal)


def hostfile_path(config_dir: Path) -> Path:
    return config_dir / HOSTFILE_NAME


def read_hostfile(path: Path) -> Cluster:
    try:
        data = json.loads(files.read_bytes(path))
    except FileNotFoundError:
        raise MlxTasksError("No cluster is set up yet.", fix=INIT_FIX) from None
    except (OSError, ValueError) as exc:
        raise MlxTasksError(f"Cannot read the hostfile {path}: {exc}.", fix=INIT_FIX) from None
    return parse_hostfile(data, str(path))


def write_hostfile(path: Path, data: dict) -> None:
    """Write it whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.tmp")
    staged.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(staged, path)


# --- checking hosts -------------------------------------------------------------------------------

PROBE_CODE = """\
import json, platform, sys
from importlib import metadata
from pathlib import Path
def version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
found = {"venv": True, "python": platform.python_version(), "mlx": version("mlx"), "mlx-lm": version("mlx-lm"),
         "mlxtasks": version("mlxtasks")}
if sys.argv[1]:
    folder = Path(sys.argv[1])
    try:
        manifest = json.loads((folder / "mlxtasks-manifest.json").read_text())
    except (OSError, ValueError):
        manifest = None
    found["model"] = (folder / "config.json").is_file()
    found["manifest"] = manifest
    found["complete"] = bool(manifest) and all(
        (folder / name).is_file() and (folder / name).stat().st_size == size
        for name, size in manifest.get("files", {}).items())
print(json.dumps(found))
"""
VERSIONED = ("mlx", "mlx-lm", "mlxtasks")


def probe_script(venv: Path, model_folder: Path | None) -> str:
    """A POSIX sh script: JSON on stdout about the venv (and the model folder) at these paths."""
    python = shlex.quote(str(venv / "bin" / "python"))
    model = shlex.quote(str(model_folder or ""))
    return (
        f"if [ ! -x {python} ]; then echo '{{\"venv\": false}}'; exit 0; fi; "
        f"exec {python} -c {shlex.quote(PROBE_CODE)} {model}"
    )


def ssh_options(timeout: float) -> list[str]:
    """ssh that never prompts and gives up on a host that does not answer within `timeout` seconds."""
    return ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={max(1, round(timeout))}"]


def ssh_argv(host: str, timeout: float, command: str) -> list[str]:
    return [*ssh_options(timeout), host, command]


def run_on(host: str, command: str, timeout: float) -> subprocess.CompletedProcess:
    """Run a sh command on a host: here for 127.0.0.1 (as mlx.launch does), else over ssh."""
    argv = ["sh", "-c", command] if host == LOCAL else ssh_argv(host, timeout, command)
    try:
        return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout + 60)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 255, "", f"no answer within {timeout + 60:.0f} seconds")


def ssh_problem(host: str, done: subprocess.CompletedProcess) -> Result | None:
    """None when ssh got through; else why not, with the fix."""
    if done.returncode != 255:
        return None
    said = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    last = said[-1] if said else "no reason given"
    if "Permission denied" in last or "Host key verification failed" in last:
        return Result(
            "ssh",
            "ssh",
            Status.ERROR,
            f"ssh to {host} would ask for a password or a key ({last})",
            fix=f"ssh-copy-id {host}, then check that `ssh {host} true` asks nothing",
        )
    return Result(
        "ssh",
        "ssh",
        Status.ERROR,
        f"{host} cannot be reached by ssh ({last})",
        fix=f"check {host} is on and Remote Login is on (System Settings > General > Sharing), then try: ssh {host}",
    )


def ssh_settings(host: str) -> str:
    """ssh's own settings for a host (`ssh -G`: reads its config, sends nothing)."""
    try:
        return subprocess.run(["ssh", "-G", host], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def keepalive_problem(host: str, settings: str) -> Result | None:
    """Without keepalives, a host that drops off the network leaves the run waiting for ever instead of
    stopping it (mlx.launch's ssh gets no options of ours, so they must be in ~/.ssh/config)."""
    interval = re.search(r"^serveraliveinterval (\d+)", settings, re.MULTILINE)
    if interval and int(interval[1]) > 0:
        return None
    return Result(
        "keepalive",
        "dropped hosts",
        Status.ERROR,
        f"ssh sends no keepalives to {host}, so a run would hang if {host} dropped off the network",
        fix=f"add {KEEPALIVE} under `Host {host}` in ~/.ssh/config",
    )


def judge(host: str, here: dict, there: dict, venv: Path, alias: str | None, model_folder: Path | None) -> list[Result]:
    """Compare what a host has with what this machine has (both from the probe script)."""
    if not there.get("venv"):
        return [
            Result(
                "venv",
                "venv",
                Status.ERROR,
                f"{host} has no venv at {venv}",
                fix=f"set up {host} with the same paths as here: invoke setup --venv {venv} (on {host})",
            )
        ]
    found = [Result("venv", "venv", Status.OK, f"{venv}")]
    python = _minor(here)
    if python != _minor(there):
        found.append(
            Result(
                "python",
                "Python",
                Status.ERROR,
                f"Python {there.get('python')} on {host}, {here.get('python')} here",
                fix=f"make the venv on {host} with Python {python}: "
                f"invoke setup --venv {venv} --python python{python} (on {host})",
            )
        )
    differ = [name for name in VERSIONED if here.get(name) != there.get(name)]
    if differ:
        found.append(
            Result(
                "versions",
                "versions",
                Status.ERROR,
                ", ".join(
                    f"{name} {there.get(name) or 'missing'} on {host}, {here.get(name) or 'missing'} here"
                    for name in differ
                ),
                fix=f"on {host}: {venv}/bin/pip install " + " ".join(f"{n}=={here[n]}" for n in differ if here.get(n)),
            )
        )
    else:
        found.append(
            Result(
                "versions",
                "versions",
                Status.OK,
                ", ".join(f"{name} {here.get(name)}" for name in VERSIONED) + f", Python {python}",
            )
        )
    if alias and model_folder:
        found.append(judge_model(host, here, there, alias, model_folder))
    return found


def _minor(probed: dict) -> str:
    return ".".join((probed.get("python") or "").split(".")[:2])


def same_copy(here: dict, there: dict) -> bool:
    keys = ("repo", "revision", "files")
    mine, theirs = here.get("manifest") or {}, there.get("manifest") or {}
    return bool(theirs) and all(mine.get(k) == theirs.get(k) for k in keys)


def judge_model(host: str, here: dict, there: dict, alias: str, model_folder: Path) -> Result:
    fix = f"invoke cluster.share {alias}"
    if not there.get("model"):
        return Result("model", alias, Status.ERROR, f"{host} has no {alias} in {model_folder}", fix=fix)
    if not same_copy(here, there):
        return Result(
            "model", alias, Status.ERROR, f"{host} has a different copy of {alias} (its manifest differs)", fix=fix
        )
    if not there.get("complete"):
        return Result("model", alias, Status.ERROR, f"{host}'s copy of {alias} is incomplete", fix=fix)
    return Result("model", alias, Status.OK, f"the same complete copy in {model_folder}")


def probe_host(host: str, script: str, timeout: float) -> tuple[dict | None, Result | None]:
    done = run_on(host, script, timeout)
    problem = ssh_problem(host, done)
    if problem:
        return None, problem
    try:
        return json.loads(done.stdout.strip().splitlines()[-1]), None
    except (ValueError, IndexError):
        said = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return None, Result(
            "probe",
            "probe",
            Status.ERROR,
            f"the check on {host} failed ({said})",
            fix=f"ssh {host}, and check that the venv's python runs there",
        )


def require_ssh(cluster: Cluster) -> None:
    if cluster.remote and not shutil.which("ssh"):
        raise MlxTasksError(
            "ssh is not installed on this machine, so the other hosts cannot be reached.",
            fix="install OpenSSH's client (macOS has it; on Linux: sudo apt install openssh-client)",
        )


def probe_here(venv: Path, model_folder: Path | None) -> dict:
    here, problem = probe_host(LOCAL, probe_script(venv, model_folder), 60)
    if problem or not here or not here.get("venv"):
        raise MlxTasksError(f"There is no working venv at {venv} on this machine.", fix="invoke setup")
    return here


def check_hosts(
    cluster: Cluster, venv: Path, timeout: float, alias: str | None = None, model_folder: Path | None = None
) -> list[tuple[str, list[Result]]]:
    """Every remote host checked at once (ssh without prompts, paths, versions, the model); this
    machine's answers are the reference."""
    require_ssh(cluster)
    here = probe_here(venv, model_folder)
    if alias and not here.get("complete"):
        raise MlxTasksError(
            f"{alias} on this machine was not pulled by mlxtasks or is incomplete, so other copies "
            "cannot be compared with it.",
            fix=f"invoke models.pull {alias} --force",
        )
    script = probe_script(venv, model_folder)
    hosts = cluster.remote
    reports: dict[str, list[Result]] = {}

    def check(host: str) -> None:
        there, problem = probe_host(host, script, timeout)
        results = [problem] if problem else [Result("ssh", "ssh", Status.OK, "connects without a prompt")]
        if there is not None:
            results += judge(host, here, there, venv, alias, model_folder)
        kept_alive = Result("keepalive", "dropped hosts", Status.OK, "ssh keepalives on")
        results.append(keepalive_problem(host, ssh_settings(host)) or kept_alive)
        reports[host] = results

    threads = [threading.Thread(target=check, args=(host,)) for host in hosts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if LOCAL in cluster.hosts:
        reports[LOCAL] = [Result("local", "this machine", Status.OK, "runs its ranks without ssh")]
    return [(host, reports[host]) for host in dict.fromkeys(cluster.hosts)]


# --- sharing a model ------------------------------------------------------------------------------


def share(
    cluster: Cluster, venv: Path, alias: str, model_folder: Path, timeout: float, say: Callable[[str], None] = print
) -> list[str]:
    """Copy a model folder to every remote host without a complete, identical copy (rsync over ssh into
    a hidden folder, renamed into place once complete); returns the hosts it copied to."""
    require_ssh(cluster)
    here = probe_here(venv, model_folder)
    if not here.get("complete"):
        raise MlxTasksError(
            f"{alias} on this machine was not pulled by mlxtasks or is incomplete, so it was not shared.",
            fix=f"invoke models.pull {alias} --force",
        )
    script = probe_script(venv, model_folder)
    copied = []
    for host in cluster.remote:
        there, problem = probe_host(host, script, timeout)
        if problem:
            raise MlxTasksError(f"Cannot share with {host}: {problem.message}.", fix=problem.fix)
        assert there is not None  # an answer, where there is no problem
        if there.get("complete") and same_copy(here, there):
            say(f"{host}: already has a complete copy, skipped")
            continue
        say(f"{host}: copying {model_folder.name}...")
        copy_to(host, model_folder, timeout)
        there, _ = probe_host(host, script, timeout)
        if not (there and there.get("complete") and same_copy(here, there)):
            raise MlxTasksError(
                f"The copy on {host} is still incomplete after the transfer.",
                fix="run the same command again (rsync keeps what arrived)",
            )
        copied.append(host)
    return copied


def rsync_target(host: str) -> tuple[str, list[str]]:
    """rsync's `user@host` and ssh port arguments for an ssh name, which may be an ssh:// address."""
    found = re.fullmatch(r"ssh://([^/:]+)(?::(\d+))?/?", host)
    if not found:
        return host, []
    return found[1], ["-p", found[2]] if found[2] else []


def copy_to(host: str, folder: Path, timeout: float) -> None:
    target, port = rsync_target(host)
    staged, old = folder.with_name(f".share-{folder.name}"), folder.with_name(f".old-{folder.name}")
    final, staged_q, old_q = (shlex.quote(str(path)) for path in (folder, staged, old))
    _copied(host, folder, run_on(host, f"mkdir -p {shlex.quote(str(folder.parent))}", timeout))
    # --delete only touches the staging folder: what an earlier, different copy left there.
    rsync = [
        "rsync",
        "-a",
        "--partial",
        "--delete",
        "-e",
        shlex.join([*ssh_options(timeout), *port]),
        f"{folder}/",
        f"{target}:{staged}/",
    ]
    try:
        done = subprocess.run(rsync, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    except FileNotFoundError:
        raise MlxTasksError(
            "rsync is not installed on this machine.",
            fix="install rsync (macOS has it; on Linux: sudo apt install rsync)",
        ) from None
    _copied(host, folder, done)
    swap = f"rm -rf {old_q}; if [ -e {final} ]; then mv {final} {old_q}; fi; mv {staged_q} {final} && rm -rf {old_q}"
    _copied(host, folder, run_on(host, swap, timeout))


def _copied(host: str, folder: Path, done: subprocess.CompletedProcess) -> None:
    if done.returncode:
        said = (done.stderr.strip().splitlines() or ["no reason given"])[-1]
        raise MlxTasksError(
            f"Copying {folder.name} to {host} failed: {said}.", fix="run the same command again (what arrived is kept)"
        )


def sharding_refusal(alias: str, can: Capabilities, pipeline: bool) -> MlxTasksError | None:
    """Why mlx_lm's sharded_load would refuse this model (can: the runtime's --capabilities answer), or None."""
    kind = "pipeline" if pipeline else "tensor"
    if getattr(can, kind):
        return None
    arch = can.model_type or "unknown"
    if not can.tensor and not can.pipeline:
        return MlxTasksError(
            f"{alias} ({arch}) cannot be split across machines: mlx_lm has no sharded version of that architecture.",
            fix=f"use a model that shards, such as qwen7b or qwen32b, or run it on one machine: invoke chat {alias}",
        )
    other = "leave out --pipeline (tensor parallel)" if pipeline else "add --pipeline"
    return MlxTasksError(f"{alias} ({arch}) cannot be split by {kind} parallelism in mlx_lm.", fix=other)


# --- launching ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Launch:
    argv: list[str]  # mlx.launch's
    hosts: list[str]  # by rank
    alias: str


def prepare(s: Settings, name: str, ask: str | None, pipeline: bool, local: Any, verbose: bool, flags: Flags) -> Launch:
    """cluster.chat/ask's launch, after every check that can fail on this machine: the model is here and
    mlx_lm can shard it that way. local: N ranks on this machine instead of the hostfile's hosts."""
    from .chat import sampling
    from .store import local_model
    from .venv import require

    local, most = int(local or 0), max(2, os.cpu_count() or 2)
    if local == 1 or local < 0 or local > most:  # more ranks than cores only thrash, and each loads its part
        raise MlxTasksError(
            f"--local must be from 2 to {most} ranks (the CPU cores of this machine), got {local}.",
            fix=f'invoke cluster.ask {name} "..." --local 2',
        )
    model, folder = local_model(name, s.models, s.catalog, where=ON_THIS_MACHINE)
    require(s)
    if not (s.venv / "bin" / "mlx.launch").exists():
        raise MlxTasksError(f"There is no mlx.launch in {s.venv}.", fix="invoke setup")
    found = subprocess.run(
        [str(s.venv_python), "-m", "mlxtasks.runtime.cluster", "--capabilities", str(folder)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if found.returncode:
        said = (found.stderr.strip().splitlines() or ["no output"])[-1]
        raise MlxTasksError(f"mlx_lm cannot read {model.alias}: {said}.", fix=f"invoke models.verify {model.alias}")
    refusal = sharding_refusal(model.alias, Capabilities.from_json(found.stdout), pipeline)
    if refusal:
        raise refusal
    if local:
        hosts, backend = [LOCAL] * local, "ring"
        where: dict[str, Any] = {"local": local, "port": free_ports(local)}
    else:
        path = hostfile_path(s.config_dir)
        made = read_hostfile(path)
        hosts, backend, where = list(made.hosts), made.backend, {"hostfile": path}
    spec = ClusterSpec(
        model.alias,
        str(folder),
        INIT_BACKEND[backend],
        pipeline,
        sampling(model),
        flags.overrides(),
        flags.system,
        flags.seed_value,
        verbose,
        ask,
    )
    rank_argv = [str(s.venv_python), "-m", "mlxtasks.runtime.cluster", "--spec", spec.to_json()]
    return Launch(launch_argv(s.venv, backend, rank_argv, **where), hosts, model.alias)


def free_ports(count: int) -> int:
    """A first port with `count` free ports from it, for ranks on this machine."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((LOCAL, 0))
            first = probe.getsockname()[1]
        if first + count < 65536 and all(_free(port) for port in range(first, first + count)):
            return first
    raise MlxTasksError("Found no free ports on 127.0.0.1 for the local ranks.", fix="try again")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((LOCAL, port))
            return True
        except OSError:
            return False


def launch_argv(
    venv: Path, backend: str, rank_argv: list[str], *, hostfile: Path | None = None, local: int = 0, port: int = 0
) -> list[str]:
    """mlx.launch from the venv, over the hostfile, or `local` ranks on 127.0.0.1 (a loopback ring)."""
    where = (
        ["--hosts", LOCAL, "-n", str(local), "--starting-port", str(port)] if local else ["--hostfile", str(hostfile)]
    )
    return [str(venv / "bin" / "mlx.launch"), "--backend", backend, *where, "--", *rank_argv]


def rank_failure(lines: Iterable[str]) -> tuple[int, int | None] | None:
    """The first rank mlx.launch reported as failed: (rank, exit status; None when it was killed)."""
    for line in lines:
        found = RANK_LINE.search(ANSI.sub("", line))
        if found and found[2] != "0":
            return int(found[1]), int(found[2]) if found[2] is not None else None
    return None


def failure_sentence(rank: int, status: int | None, host: str, alias: str) -> MlxTasksError:
    where = "this machine" if host == LOCAL else host
    if status is None or status < 0:
        how = "was killed" + (f" (signal {-status})" if status else "")
    elif status == 255 and host != LOCAL:
        how = "lost its ssh connection (or never got one)"
    else:
        how = f"failed (exit status {status})"
    return MlxTasksError(
        f"Rank {rank} on {where} {how}, so the whole run was stopped.",
        fix=f"invoke cluster.check --model {alias} (it names what differs on each host)",
    )


def supervise(argv: list[str], hosts: list[str], alias: str, chat: bool, log: Path) -> None:
    """Run mlx.launch in a process group of its own, its stdout straight to ours. Its stderr passes
    through except the launcher's own rank notes, which become one sentence naming the failed host, and a
    rank's Python traceback, which goes to `log` and is said as the error it ends in.
    Whatever happens (a failed rank, Ctrl-C, SIGTERM, an error here), the group is gone when this returns."""
    process = subprocess.Popen(
        argv, stdin=subprocess.PIPE if chat else subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    notes: list[str] = []
    reader = threading.Thread(target=_relay_stderr, args=(process.stderr, notes, log), daemon=True)
    reader.start()
    if chat:
        threading.Thread(target=_forward_stdin, args=(process.stdin,), daemon=True).start()
    # SIGTERM or SIGHUP would end this process at once, leaving mlx.launch and its ranks running: as an
    # exception instead, they reach the finally below, as Ctrl-C does.
    previous = {sent: signal.signal(sent, _terminated) for sent in (signal.SIGTERM, signal.SIGHUP)}
    try:
        code = process.wait()
    finally:
        stop_group(process)
        for sent, handler in previous.items():
            signal.signal(sent, handler)
    reader.join()
    failed = rank_failure(notes)
    if failed:
        rank, status = failed
        raise failure_sentence(rank, status, hosts[rank] if rank < len(hosts) else "?", alias)
    if code:
        raise MlxTasksError(
            f"mlx.launch stopped with exit status {code} before the ranks ran.",
            fix=f"invoke cluster.check --model {alias}",
        )


def _terminated(signum: int, _frame) -> None:
    raise SystemExit(128 + signum)


def _relay_stderr(stream, notes: list[str], log: Path) -> None:
    trace: list[str] = []  # the lines of a traceback being read
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace")
        plain = ANSI.sub("", line)
        if RANK_LINE.search(plain):
            notes.append(line)
            continue
        if plain.rstrip().endswith(TRACEBACK) or (trace and (not plain.strip() or plain[0].isspace())):
            trace.append(line)
            continue
        if trace:  # the line a traceback ends in: the error
            said = _logged(log, [*trace, line])
            trace = []
            line = f"{plain.strip()} ({said})\n"
        sys.stderr.write(line)
        sys.stderr.flush()
    if trace:
        sys.stderr.write("".join(trace))


def _logged(log: Path, lines: list[str]) -> str:
    """Add a rank's traceback to the log; where it is, or (where the log cannot be written) the trace itself."""
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        files.append(log, f"--- {time.strftime('%Y-%m-%d %H:%M:%S')}\n{''.join(lines)}".encode())
    except (OSError, MlxTasksError):
        return "the traceback: " + " | ".join(line.strip() for line in lines[1:-1] if line.strip())
    return f"the traceback is in {log}"


def _forward_stdin(pipe) -> None:
    """The user's lines to the launcher (which hands them to every rank; rank 0 reads them). The
    launcher never passes on end-of-file, so Ctrl-D becomes /quit."""
    try:
        for line in iter(sys.stdin.readline, ""):
            pipe.write(line.encode())
            pipe.flush()
        pipe.write(b"/quit\n")
        pipe.flush()
    except (BrokenPipeError, OSError, ValueError):
        pass


def stop_group(launcher: subprocess.Popen) -> None:
    """SIGTERM to every process left in the launcher's group, SIGKILL to any still there after GRACE_S."""
    for sent in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(launcher.pid, sent)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + GRACE_S
        while time.monotonic() < deadline:
            launcher.poll()  # reaps the launcher itself, which would otherwise linger as a zombie
            try:
                os.killpg(launcher.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
