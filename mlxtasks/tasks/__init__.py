"""The Invoke namespace: one collection per area, composed here and used by tasks.py and the CLI."""

from invoke import Collection

from .. import config
from . import install, preflight, venv, workspace
from .setup import setup

ns = Collection(setup, preflight.ns, venv.ns, install.ns, workspace.ns)
ns.configure({config.CONFIG_KEY: config.DEFAULTS})
