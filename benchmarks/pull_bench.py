"""Pull benchmark: `invoke models.pull` from a loopback stand-in hub vs a plain `snapshot_download`
of the same repo from the same server."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import struct
import sys
from pathlib import Path
from typing import Any

from harness import INVOKE, ROOT, Result, new_home, timed

sys.path.insert(0, str(ROOT))
from tests.support.fake_hub import FakeHub  # noqa: E402 - the tests' stand-in hub, reused

REPO = "bench/big-model-4bit"
SHARD_MB = (200, 200, 200)  # a few hundred MB, in shards as mlx-community ships larger models
RUNS = 9
SNAPSHOT = """
import sys
from huggingface_hub import snapshot_download
snapshot_download(sys.argv[1], local_dir=sys.argv[2], allow_patterns=sys.argv[3:])
"""


def _make_repo(folder: Path) -> int:
    """Config, tokenizer and safetensors shards of random bytes with valid headers; returns total bytes."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    (folder / "tokenizer.json").write_text("{}")
    weight_map = {}
    for n, megabytes in enumerate(SHARD_MB, 1):
        name = f"model-{n:05d}-of-{len(SHARD_MB):05d}.safetensors"
        size = megabytes * 2**20
        header = json.dumps({f"w{n}": {"dtype": "U8", "shape": [size], "data_offsets": [0, size]}}).encode()
        with (folder / name).open("wb") as handle:
            handle.write(struct.pack("<Q", len(header)) + header)
            for _ in range(megabytes):
                handle.write(os.urandom(2**20))
        weight_map[f"w{n}"] = name
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return sum(p.stat().st_size for p in folder.iterdir())


def pull_throughput(work: Path) -> Result:
    from mlxtasks.hub import ALLOW_PATTERNS

    total = _make_repo(work / "repo")
    home = new_home(work, "pull")
    models = home / "workspace" / "mlx"
    seconds: dict[str, list[float]] = {"models_pull": [], "snapshot_download": []}
    with FakeHub({REPO: work / "repo"}) as hub:
        for file in (work / "repo").iterdir():  # the real hub has its hashes at hand; the stand-in computes them once
            hub.blob(file)
        env: dict[str, Any] = {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
        target = work / "snapshot"
        sides = {  # each side's command, and what it left last time
            "models_pull": ([INVOKE, "models.pull", REPO], [models, home / ".cache"]),
            "snapshot_download": ([sys.executable, "-c", SNAPSHOT, REPO, str(target), *ALLOW_PATTERNS], [target]),
        }
        for run in range(RUNS):  # interleaved, alternating which goes first, so drift hits both alike
            for side in sorted(sides, reverse=bool(run % 2)):
                argv, outputs = sides[side]
                for path in outputs:
                    shutil.rmtree(path, ignore_errors=True)
                os.sync()  # no writeback of the run before competes with this one
                seconds[side].append(timed(argv, home, **env)[0])
    pull, plain = (statistics.median(v) for v in seconds.values())
    ratio = plain / pull
    mb = total / 2**20
    return Result(
        "`models.pull` throughput vs a plain `snapshot_download` (loopback hub)",
        f"{mb / pull:.0f} MB/s vs {mb / plain:.0f} MB/s = {ratio:.0%} ({mb:.0f} MB, medians of {RUNS} interleaved runs)",
        ">= 90%",
        ratio >= 0.9,
        seconds,
        (
            "models.pull includes invoke's start-up, the hub listing, the memory and disk checks, verifying every "
            "file and safetensors header, the manifest and the rename into place",
            f"that fixed cost is the difference of the medians, {pull - plain:.2f} s: it weighs less on a real model "
            "(4 to 18 GB in the catalogue) and more on a smaller one",
            "before each timed run, the files of that side's run before are deleted and the page cache is flushed (os.sync)",
        ),
    )


BENCHMARKS = [pull_throughput]
