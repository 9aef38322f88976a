"""cluster: one model across several machines, through MLX's own launcher (mlx.launch) and mlx_lm's sharding."""

from invoke import Collection

from ._common import PATH_HELP, is_dry, require_venv, settings, task
from .chat import SAMPLING_HELP

TIMEOUT_HELP = "seconds to wait for each host to answer ssh (default 5)"
RUN_HELP = {
    "model": "an installed model such as qwen32b; every host needs the same copy (invoke cluster.share)",
    "pipeline": "pipeline parallel (each host runs some of the layers) instead of tensor parallel",
    "local": "run N ranks on this machine through the same launcher (a loopback ring), to try it out",
    "verbose": "each rank says on stderr where it runs and how much of the model it holds",
    **SAMPLING_HELP,
}


@task(
    help={
        "hosts": "comma-separated ssh host names in rank order, each NAME or NAME=IP (the ring backend "
        "needs every host's address)",
        "backend": "ring (default; Ethernet, Wi-Fi or Thunderbolt networking) or mpi",
        "hostfile": "keep this hostfile instead, e.g. mlx.distributed_config's for Thunderbolt (jaccl)",
        "dry_run": "print the hostfile, write nothing",
    }
)
def init(c, hosts=None, backend="ring", hostfile=None, dry_run=False):
    """Write the hostfile mlx.launch reads, from host names or from mlx.distributed_config's output."""
    import json

    from .. import cluster, ui
    from ..config import user_path
    from ..errors import MlxTasksError

    if bool(hosts) == bool(hostfile):
        raise MlxTasksError("Give either --hosts or --hostfile.", fix=cluster.INIT_FIX)
    s = settings(c)
    if hosts:
        data = cluster.make_hostfile(hosts, backend)
    else:
        data = cluster.read_hostfile(user_path("--hostfile", hostfile, s.home)).data
    made = cluster.parse_hostfile(data, "the hostfile")
    target = cluster.hostfile_path(s.config_dir)
    if is_dry(c, dry_run):
        ui.out(f"Would write {target}:")
        ui.out(json.dumps(data, indent=2))
        return
    cluster.write_hostfile(target, data)
    addresses = {h["ssh"]: ", ".join(h.get("ips", [])) for h in data["hosts"]}
    ui.out(f"Wrote {target}: {len(made.hosts)} hosts, backend {made.backend}.")
    for rank, host in enumerate(made.hosts):
        ui.out(f"  rank {rank}: {host}" + (f" ({addresses[host]})" if addresses[host] else ""))
    ui.out("Next: invoke cluster.check --model ALIAS")


@task(
    help={
        "model": "also check that every host has this model, the same complete copy",
        "timeout": TIMEOUT_HELP,
        "venv": PATH_HELP["venv"],
        "models": PATH_HELP["models"],
    }
)
def check(c, model=None, timeout=5, venv=None, models=None):
    """Check every host: ssh without a prompt, the same venv, versions and model; exit 1 on any problem."""
    from invoke import Exit

    from .. import cluster, store, ui
    from ..checks import any_failed, summary_line

    s = settings(c, venv=venv, models=models)
    hosts = cluster.read_hostfile(cluster.hostfile_path(s.config_dir))
    entry, folder = (
        store.local_model(model, s.models, s.catalog, where=cluster.ON_THIS_MACHINE) if model else (None, None)
    )
    require_venv(s)
    groups = cluster.check_hosts(hosts, s.venv, float(timeout), entry and entry.alias, folder)
    results = [r for _, items in groups for r in items]
    ui.report(groups, [summary_line(results)])
    if any_failed(results):
        raise Exit(code=1)


@task(
    positional=["model"],
    help={
        "model": "a model pulled on this machine (invoke models.list)",
        "timeout": TIMEOUT_HELP,
        "venv": PATH_HELP["venv"],
        "models": PATH_HELP["models"],
    },
)
def share(c, model, timeout=5, venv=None, models=None):
    """Copy a pulled model to the other hosts (rsync over ssh), skipping hosts with a complete copy."""
    from .. import cluster, store, ui

    s = settings(c, venv=venv, models=models)
    entry, folder = store.local_model(model, s.models, s.catalog, where=cluster.ON_THIS_MACHINE)
    hosts = cluster.read_hostfile(cluster.hostfile_path(s.config_dir))
    require_venv(s)
    copied = cluster.share(hosts, s.venv, entry.alias, folder, float(timeout), ui.out)
    ui.out(f"{entry.alias} is on every host" + (f" (copied to {', '.join(copied)})." if copied else "."))


def _run(c, alias, ask, pipeline, local, verbose, flags, venv, models):
    from invoke import Exit

    from .. import cluster

    s = settings(c, venv=venv, models=models)
    launch = cluster.prepare(s, alias, ask, pipeline, local, verbose, flags)
    try:
        cluster.supervise(launch.argv, launch.hosts, launch.alias, chat=ask is None, log=s.state / "cluster.log")
    except KeyboardInterrupt:
        raise Exit(code=130) from None


@task(default=True, positional=["model"], help=RUN_HELP)
def chat(
    c,
    model,
    pipeline=False,
    local=0,
    verbose=False,
    temp=None,
    top_p=None,
    max_tokens=None,
    system=None,
    seed=None,
    venv=None,
    models=None,
):
    """Chat with a model split across the cluster's hosts (tensor parallel; --pipeline for pipeline)."""
    from ..chat import Flags

    _run(c, model, None, pipeline, local, verbose, Flags(temp, top_p, max_tokens, system, seed), venv, models)


@task(positional=["model", "prompt"], help={"prompt": "the question; - reads it from stdin", **RUN_HELP})
def ask(
    c,
    model,
    prompt,
    pipeline=False,
    local=0,
    verbose=False,
    temp=None,
    top_p=None,
    max_tokens=None,
    system=None,
    seed=None,
    venv=None,
    models=None,
):
    """One answer from a model split across the cluster's hosts, on stdout and nothing else."""
    import sys

    from .. import chat as core
    from ..chat import Flags

    text = core.prompt_text(prompt, sys.stdin)
    _run(c, model, text, pipeline, local, verbose, Flags(temp, top_p, max_tokens, system, seed), venv, models)


ns = Collection("cluster", init, check, share, chat, ask)
