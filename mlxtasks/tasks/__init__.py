"""The Invoke namespace: one collection per area, composed here and used by tasks.py and the CLI."""

from invoke import Collection

from . import agent, bench, chat, cluster, install, models, preflight, serve, shell, venv, workspace
from .setup import setup, uninstall
from .validate import status, validate
from .warmup import warmup

ns = Collection(
    setup,
    uninstall,
    validate,
    status,
    warmup,
    preflight.ns,
    venv.ns,
    install.ns,
    workspace.ns,
    shell.ns,
    models.ns,
    chat.ns,
    serve.ns,
    bench.ns,
    cluster.ns,
    agent.ns,
)
