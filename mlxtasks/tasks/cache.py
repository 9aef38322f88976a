"""serve.cache: the server's prompt cache on disk (its own module: serve.py's tasks are at their size budget)."""

from ._common import settings, task


@task(help={"clear": "remove every cached prompt (a running server goes on without them)"})
def cache(c, clear=False):
    """List the prompt caches on disk (model, tokens, size, last use), or empty them with --clear."""
    from .. import serve, ui

    ui.out(serve.cache_report(settings(c).state, clear))
