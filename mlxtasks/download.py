"""models.pull's child process (`python -m mlxtasks.download SPEC`, started by hub.Fetch): it asks the
hub for the plan, waits for "go" on stdin, then downloads, saying each step as a JSON line on stdout.
A process, unlike huggingface_hub's worker threads, can be stopped at once mid-file."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import warnings
from pathlib import Path

from . import hub
from .catalog import Model
from .errors import MlxTasksError
from .facts import GB


def tell(**event) -> None:
    print(json.dumps(event), flush=True)


def say(text: str) -> None:
    tell(say=text)


def run(spec: dict) -> None:
    model = Model(**{**spec["model"], "also": tuple(spec["model"]["also"])})
    try:
        the_plan = hub.plan(model, spec["revision"], spec["retry_delay"], say, Path(spec["staged"]))
        tell(
            plan={
                "revision": the_plan.revision,
                "files": the_plan.files,
                "size_gb": the_plan.total / GB,
                "config": the_plan.config,
                "pipeline": the_plan.pipeline,
            }
        )
        if sys.stdin.readline().strip() != "go":
            return
        hub.download(the_plan, Path(spec["staged"]), spec["retry_delay"], say)
        tell(done=True)
    except MlxTasksError as err:
        tell(error={"message": err.message, "fix": err.fix})
    except Exception as exc:  # noqa: BLE001 - anything else still ends as a sentence in models.pull
        local = _local_error(exc, Path(spec["staged"]).parent)
        if local:  # a full disk or an unwritable folder, however deep in huggingface_hub it was met
            tell(error={"message": local.message, "fix": local.fix})
        else:
            tell(
                error={
                    "message": f"Fetching {model.repo} failed: {hub._cause(exc)}.",
                    "fix": "run the same command again",
                }
            )


def _local_error(exc: BaseException | None, folder: Path) -> MlxTasksError | None:
    """hub.local_error's sentence for the first disk or folder error in the chain of causes, if there is one."""
    while exc is not None:
        if isinstance(exc, OSError) and hub.local_error(exc, folder):
            return hub.local_error(exc, folder)
        exc = exc.__cause__ or exc.__context__
    return None


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
    run(json.loads(sys.argv[1]))
