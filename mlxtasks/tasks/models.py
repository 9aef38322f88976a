"""models: the catalogue and what is installed."""

from invoke import Collection

from ._common import PATH_HELP, settings, task


@task(name="list", default=True, help={"models": PATH_HELP["models"]})
def list_(c, models=None):
    """List the catalogue's models: installed or not, size, and whether they fit this machine."""
    from .. import catalog, ui
    from ..facts import probe
    from ..store import installed_folders

    s = settings(c, models=models)
    installed = set(installed_folders(s.models))
    facts = probe()
    ui.out(f"{'alias':<11}{'size':>9}  {'kind':<10}{'installed':<11}{'fits':<5} description")
    for m in catalog.BUILTIN:
        ui.out(f"{m.alias:<11}{m.size_gb:>7.2f}GB  {m.category:<10}{'yes' if m.folder in installed else 'no':<11}"
               f"{'yes' if catalog.fits(m, facts) else 'no':<5} {m.description}")
    ui.out(f"Models folder: {s.models}")


ns = Collection("models", list_)
