"""warmup: on CUDA, compile the GPU kernels once so the first chat starts at once (setup's last step)."""

from ._common import PATH_HELP, is_dry, record, require_venv, settings, task


@task(
    help={
        "warmup": "compile the kernels (--no-warmup skips the step)",
        "venv": PATH_HELP["venv"],
        "backend": "auto (from the platform), metal, cpu, cuda12 or cuda13",
        "dry_run": "say whether kernels would be compiled, and compile nothing",
    },
)
def warmup(c, warmup=True, venv=None, backend=None, dry_run=False):
    """Compile the GPU kernels a chat needs (CUDA only; the first run takes a minute or more)."""
    import json
    import subprocess

    from ..errors import MlxTasksError
    from ..facts import backend_for, probe

    if not warmup:
        return [record("skipped", "warmup", "not run (--no-warmup)")]
    s = settings(c, venv=venv, backend=backend)
    chosen = backend_for(probe(), s.backend)
    if not chosen.startswith("cuda"):
        return [record("done", "warmup", f"nothing to compile on the {chosen} backend")]
    if is_dry(c, dry_run):
        return [record("dry", "warmup", "compile the CUDA kernels a chat uses")]
    require_venv(s)
    done = subprocess.run([str(s.venv_python), "-m", "mlxtasks.runtime.warmup"], stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise MlxTasksError(
            "Compiling the GPU kernels failed (the error is above).",
            fix="invoke validate --deep, or skip this step: invoke setup --no-warmup",
        )
    answer = json.loads(done.stdout)
    if answer["backend"] != "cuda":
        return [record("done", "warmup", "MLX in the venv sees no CUDA GPU, so nothing was compiled")]
    # Kept for later processes, so a re-run finds them and takes seconds: not a change to report.
    return [record("done", "warmup", f"CUDA kernels compiled and kept ({answer['seconds']:.1f} s)")]
