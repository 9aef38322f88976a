"""The Invoke namespace: one collection per area, composed here and used by tasks.py and the CLI."""

from invoke import Collection

from .. import config
from . import chat, install, models, preflight, shell, venv, workspace
from .setup import setup, uninstall
from .validate import status, validate
from . import cluster  # its own line, and add_collection below: other areas can add theirs without conflicts

ns = Collection(setup, uninstall, validate, status, preflight.ns, venv.ns, install.ns, workspace.ns, shell.ns, models.ns, chat.ns)
ns.add_collection(cluster.ns)
ns.configure({config.CONFIG_KEY: config.DEFAULTS})
