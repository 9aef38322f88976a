"""snapshot_download in a child process of models.pull (`python -m mlxtasks.download SPEC`), so that
Ctrl-C and a hub that stops answering end a download at once: huggingface_hub's worker threads
cannot be stopped mid-file, a process can. The last line on stdout is the outcome, as JSON."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import warnings

from .errors import MlxTasksError


def fetch(repo: str, revision: str, staged: str, patterns: list[str]) -> dict:
    from huggingface_hub import snapshot_download

    from . import hub

    try:
        snapshot_download(repo, revision=revision, local_dir=staged, allow_patterns=patterns)
        return {"ok": True}
    except OSError as exc:
        local = hub.local_error(exc, staged)  # the disk or the folder, not the hub
        if local:
            return {"ok": False, "retriable": False, "cause": str(exc), "message": local.message, "fix": local.fix}
        error = exc
    except Exception as exc:  # noqa: BLE001 - classified below, as the hub's failures are
        error = exc
    outcome = {"ok": False, "retriable": hub.is_retriable(error), "cause": hub._cause(error)}
    try:
        with hub.hub_errors(repo):
            raise error
    except MlxTasksError as sentence:
        outcome.update(message=sentence.message, fix=sentence.fix)
    except Exception:  # noqa: BLE001 - not a failure the hub explains: say what it was
        outcome.update(message=f"Downloading {repo} failed: {outcome['cause']}.", fix="run the same command again")
    return outcome


def _exit_with_parent() -> None:
    """End this process when models.pull's process is gone (killed with SIGKILL, say), so no download
    goes on writing into the staging folder behind a later pull."""
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


if __name__ == "__main__":
    warnings.filterwarnings("ignore", "Not enough free disk space")  # models.pull checked; a full disk is said once
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    spec = json.loads(sys.argv[1])
    print(json.dumps(fetch(spec["repo"], spec["revision"], spec["staged"], spec["patterns"])), flush=True)
