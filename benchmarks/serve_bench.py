"""`invoke serve`'s server (issues 18 and 26) on the tests' SmolLM2-135M-Instruct, with mlx_lm.server beside it
on the same model and requests: one stream against raw stream_generate (both warmed up, three runs each), 8
parallel streams against mlx_lm's BatchGenerator decoding the same 8 with no server, and how much a long prompt
delays another client's first token; and the prompt cache (issue 20) on an agent's conversation re-sent every
turn. cuda_bench.py runs the same measurements on a GPU."""

from __future__ import annotations

import collections
import functools
import http.client
import json
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
from harness import INVOKE, Result, real_model, set_up_home, timed, tiny_model, user_env, venv_python

from mlxtasks import config, serve

ALIAS = "smollm2-135m"
TOKENS, STREAMS, RUNS = 48, 8, 3
LONG_PROMPT = 4000  # words of the long prompt
PROMPT = "Once upon a time, in a small village by the sea,"

# Raw stream_generate on one prompt: a warm-up, then RUNS runs' decode rate and seconds to the first token.
RAW = """
import json, sys, time
from mlx_lm import load, stream_generate
from mlx_lm.sample_utils import make_logits_processors
model, tokenizer = load(sys.argv[1])
bias = make_logits_processors({int(i): -100.0 for i in sys.argv[4].split(",")})
runs = []
for prompt in ["Warm-up: "] + [f"Run {n}: " for n in range(int(sys.argv[3]))]:  # the prompts measure() sends
    start, first = time.perf_counter(), None
    for last in stream_generate(model, tokenizer, prompt + sys.argv[2], max_tokens=int(sys.argv[5]),
                                logits_processors=bias):
        first = first or time.perf_counter() - start
    runs.append({"tps": last.generation_tps, "first": first})
print(json.dumps(runs[1:]))
"""

# mlx_lm's BatchGenerator alone, no server: 1 and then 8 streams, each after a warm-up of the same size, counted as a
# server's are: every token, from the insert to the last token; and the seconds until every stream had its first.
CEILING = """
import json, sys, time
from mlx_lm import load
from mlx_lm.generate import BatchGenerator
from mlx_lm.sample_utils import make_logits_processors
model, tokenizer = load(sys.argv[1])
bias = make_logits_processors({int(i): -100.0 for i in sys.argv[4].split(",")})

def run(streams, tokens):
    generator = BatchGenerator(model)
    prompts = [tokenizer.encode(f"{sys.argv[2]} ({n})") for n in range(streams)]
    start, counted, started, first = time.perf_counter(), 0, set(), None
    generator.insert(prompts, max_tokens=[tokens] * streams, logits_processors=[bias] * streams)
    while True:
        _, responses = generator.next()
        if not responses and counted:
            break
        counted += len(responses)
        started |= {response.uid for response in responses}
        if first is None and len(started) == streams:
            first = time.perf_counter() - start
    generator.close()
    return counted / (time.perf_counter() - start), first

rates = {}
for streams in (1, int(sys.argv[3])):
    run(streams, 4)
    rates[streams], rates[f"{streams}_first"] = run(streams, int(sys.argv[5]))
print(json.dumps(rates))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def special_ids(folder: Path) -> list[int]:
    """The model's special tokens (end of turn, end of text): biased away so every run makes TOKENS tokens."""
    return [t["id"] for t in json.loads((folder / "tokenizer.json").read_text())["added_tokens"]]


def stream(port: int, prompt: str, tokens: int, bias: dict[str, float]) -> dict[str, float]:
    """One streamed completion (no model named: each server's own): seconds to the first text, seconds to the
    end, tokens generated (the usage the stream ends with)."""
    return post_streamed(
        port,
        "/v1/completions",
        {
            "prompt": prompt,
            "max_tokens": tokens,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
            "logit_bias": bias,
        },
    )


def post_streamed(port: int, path: str, body: dict) -> dict:
    """Seconds to the first text, seconds to the end, tokens (the usage's, else the text chunks: a chunk holds a
    token's text, or several tokens' once the detokenizer has a whole piece), and the text."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1800)
    start = time.perf_counter()
    connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    answer = connection.getresponse()
    first, pieces, usage = None, [], {}  # type: tuple[float | None, list[str], dict]
    for line in answer:
        if not line.startswith(b"data: {"):
            continue
        chunk = json.loads(line[6:])
        choices, usage = chunk["choices"], chunk.get("usage") or usage
        piece = choices and (choices[0].get("text") or choices[0].get("delta", {}).get("content"))
        if piece:
            first = first or time.perf_counter() - start
            pieces.append(piece)
    end = time.perf_counter() - start
    assert answer.status == 200 and first is not None, answer.status
    return {"first": first, "end": end, "tokens": usage.get("completion_tokens", len(pieces)), "text": "".join(pieces)}


def decode_rate(run: dict[str, float]) -> float:
    return (run["tokens"] - 1) / (run["end"] - run["first"])


def parallel(port: int, tokens: int, bias: dict[str, float], start_with: str = "") -> tuple[list[dict], float]:
    """STREAMS streams at once: each one's figures, and the seconds until the last ended."""
    start = time.perf_counter()
    with ThreadPoolExecutor(STREAMS) as pool:
        many = list(
            pool.map(lambda n: stream(port, start_with.format(n=n) + f"{PROMPT} ({n})", tokens, bias), range(STREAMS))
        )
    return many, time.perf_counter() - start


def measure(port: int, bias: dict[str, float], tokens: int = TOKENS, long_prompt: int | None = LONG_PROMPT) -> dict:
    """One stream (RUNS runs: decode rate, first token), STREAMS at once (all their tokens over the wall time, and
    the slowest first token), and unless long_prompt is None, a short request's first token alone and behind a
    prompt of that many words. Every measured prompt is new to the server (a server's prompt cache would give
    its first tokens a head start raw stream_generate and BatchGenerator do not have)."""
    stream(port, "Warm-up: " + PROMPT, 4, bias)  # warm up, a batch of STREAMS too (a GPU compiles kernels for
    parallel(port, 4, bias, "Warm-up {n}: ")  # each shape once)
    one = [stream(port, f"Run {n}: {PROMPT}", tokens, bias) for n in range(RUNS)]
    many, wall = parallel(port, tokens, bias)
    found = {
        "one_tps": statistics.median(map(decode_rate, one)),
        "one_first": statistics.median(r["first"] for r in one),
        "many_tps": sum(run["tokens"] for run in many) / wall,
        "many_first": max(run["first"] for run in many),
    }
    if long_prompt is None:
        return found
    alone = statistics.median(stream(port, f"{n} {PROMPT}", 1, bias)["first"] for n in range(RUNS))
    long = http.client.HTTPConnection("127.0.0.1", port, timeout=1800)
    long.request(
        "POST",
        "/v1/completions",
        json.dumps({"prompt": "word " * long_prompt, "max_tokens": 1}),
        {"Content-Type": "application/json"},
    )
    time.sleep(max(2.0, alone * 2))  # the long prompt's prefill is under way
    short = stream(port, f"{RUNS} {PROMPT}", 1, bias)
    long.close()  # its answer is not measured
    return {**found, "alone_first": alone, "behind_long_first": short["first"]}


def baselines(python: Path, folder: Path, bias: dict[str, float], tokens: int, run=subprocess.run) -> dict:
    """Raw stream_generate (median decode rate and first token of RUNS warmed runs) and BatchGenerator's 1 and
    STREAMS streams, on the same model, prompt and bias as measure()."""
    raw = json.loads(
        run(
            [str(python), "-c", RAW, str(folder), PROMPT, str(RUNS), ",".join(bias), str(tokens)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    ceiling = json.loads(
        run(
            [str(python), "-c", CEILING, str(folder), PROMPT, str(STREAMS), ",".join(bias), str(tokens)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    return {
        "raw_tps": statistics.median(r["tps"] for r in raw),
        "raw_first": statistics.median(r["first"] for r in raw),
        "ceiling_tps": ceiling,
    }


def wait_until_up(port: int, process: subprocess.Popen) -> None:
    for _ in range(1200):
        assert process.poll() is None, "mlx_lm.server exited"
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=5).request("GET", "/v1/models")
            return
        except OSError:
            time.sleep(0.25)
    raise SystemExit("mlx_lm.server did not start")


@functools.cache
def numbers(work: Path) -> dict:
    home = set_up_home(work)
    models = work / "serve-bench" / "models"
    shutil.copytree(real_model(work), models / ALIAS)
    bias = {str(i): -100.0 for i in special_ids(models / ALIAS)}
    found = baselines(venv_python(work), models / ALIAS, bias, TOKENS)
    port = free_port()
    timed([INVOKE, "serve", ALIAS, "--port", str(port), "--models", str(models)], home)
    try:
        ours = measure(port, bias)
    finally:
        timed([INVOKE, "serve.stop"], home)
    port = free_port()
    theirs_process = subprocess.Popen(
        [str(venv_python(work)), "-m", "mlx_lm.server", "--model", str(models / ALIAS), "--port", str(port)],
        env=user_env(home, HF_HUB_OFFLINE="1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_up(port, theirs_process)
        theirs = measure(port, bias, long_prompt=None)  # its long-prompt wait took 797 s here on 2026-11-30
    finally:
        theirs_process.terminate()
        theirs_process.wait(timeout=60)
    return {**found, "ours": ours, "mlx_lm": theirs}


def serve_one_stream(work: Path) -> Result:
    found = numbers(work)
    ours, theirs, raw = found["ours"], found["mlx_lm"], found["raw_tps"]
    first = ours["one_first"] / found["raw_first"]
    return Result(
        f"The server, one stream: decode rate and first token against raw stream_generate (SmolLM2-135M, {TOKENS} "
        "tokens, both warmed up, 3 runs each)",
        f"{ours['one_tps']:.1f} tokens/s, raw stream_generate {raw:.1f} tokens/s ({ours['one_tps'] / raw:.0%}); "
        f"first token {ours['one_first']:.2f} s, raw {found['raw_first']:.2f} s ({first - 1:+.0%})",
        ">= 97% of raw stream_generate, first token within +10% of raw",
        ours["one_tps"] >= 0.97 * raw and first <= 1.10,
        {
            "ours_tps": ours["one_tps"],
            "raw_tps": raw,
            "ours_first_s": ours["one_first"],
            "raw_first_s": found["raw_first"],
            "mlx_lm_server_tps": theirs["one_tps"],
            "mlx_lm_server_first_s": theirs["one_first"],
        },
        (
            f"mlx_lm.server on the same requests: {theirs['one_tps']:.1f} tokens/s, first token {theirs['one_first']:.2f} s",
        ),
    )


def serve_parallel_streams(work: Path) -> Result:
    found = numbers(work)
    ours, theirs, ceiling = found["ours"], found["mlx_lm"], found["ceiling_tps"][str(STREAMS)]
    first = found["ceiling_tps"][f"{STREAMS}_first"]
    return Result(
        f"The server, {STREAMS} parallel streams: aggregate rate and the slowest first token against mlx_lm's "
        f"BatchGenerator on the same {STREAMS} new prompts",
        f"{ours['many_tps']:.1f} tokens/s, BatchGenerator alone {ceiling:.1f} ({ours['many_tps'] / ceiling:.0%}); slowest "
        f"first token {ours['many_first']:.2f} s, BatchGenerator's {first:.2f} s",
        ">= 95% of BatchGenerator's rate, the slowest first token within 1.25x BatchGenerator's",
        ours["many_tps"] >= 0.95 * ceiling and ours["many_first"] <= 1.25 * first,
        {
            "ours_tps": ours["many_tps"],
            "ours_first_s": ours["many_first"],
            "ceiling_1_tps": found["ceiling_tps"]["1"],
            f"ceiling_{STREAMS}_tps": ceiling,
            f"ceiling_{STREAMS}_first_s": first,
            "mlx_lm_server_tps": theirs["many_tps"],
            "mlx_lm_server_first_s": theirs["many_first"],
        },
        (
            f"mlx_lm.server: {theirs['many_tps']:.1f} tokens/s, slowest first token {theirs['many_first']:.2f} s",
            f"BatchGenerator decodes {STREAMS} streams at {ceiling / found['ceiling_tps']['1']:.2f}x one on this "
            "machine: the most batching can gain here",
            "every prompt is new to the server: the first tokens are the prompts' prefill (the 1.87 s of 2026-11-30 "
            "came from prompts the warm-up had put in the server's prompt cache)",
        ),
    )


def serve_long_prompt(work: Path) -> Result:
    found = numbers(work)
    ours = found["ours"]
    delay = ours["behind_long_first"] - ours["alone_first"]
    return Result(
        f"The server: a short request's first token while a {LONG_PROMPT}-word prompt is prefilled",
        f"delayed {delay:.2f} s (alone {ours['alone_first']:.2f} s)",
        "delay <= 1 s (the prefill under way is cut into slices of about 0.25 s)",
        delay <= 1,
        {"ours_delay_s": delay, "ours_alone_s": ours["alone_first"]},
        ("mlx_lm.server is not measured here: it prefills the whole prompt first (797 s on 2026-11-30)",),
    )


PROFILED_TOKENS = 256


def profile(spy: Path, pid: int, port: int, bias: dict[str, float], tokens: int = PROFILED_TOKENS) -> dict:
    """Where one stream's time goes in the server (pid: `invoke serve`'s supervisor; py-spy follows its child):
    py-spy samples the thread holding Python's GIL 250 times a second through three streams of `tokens` (a
    thread waiting for the model, the network or a lock holds no GIL); the samples by thread role (the engine's
    thread, the event loop, the rest) and, per role, the most sampled functions. Also the serving process's CPU
    seconds per token."""
    stream(port, PROMPT, 4, bias)
    raw = spy.parent / "py-spy.txt"
    spying = subprocess.Popen(
        [str(spy), "record", "-o", str(raw), "-f", "raw", "-r", "250", "--gil", "--subprocesses", "-p", str(pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(2)  # attached
    server = psutil.Process(pid).children()[0]
    before, start = server.cpu_times(), time.perf_counter()
    runs = [stream(port, PROMPT, tokens, bias) for _ in range(RUNS)]
    after, seconds = server.cpu_times(), time.perf_counter() - start
    spying.send_signal(signal.SIGINT)
    spying.wait(timeout=120)
    counted = sum(run["tokens"] for run in runs)
    roles: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        role = (
            "engine"
            if "(mlxtasks/runtime/server/engine.py" in stack
            else "event loop"
            if "asyncio" in stack or "uvicorn" in stack or "uvloop" in stack
            else "other"
        )
        roles[role][stack.split(";")[-1]] += int(count)
    cpu = (after.user + after.system - before.user - before.system) / counted
    return {
        "tokens": counted,
        "seconds": seconds,
        "cpu_s_per_token": cpu,
        "samples_per_s": 250,
        "roles": {role: dict(leaves.most_common(6)) for role, leaves in roles.items()},
        "role_samples": {role: sum(leaves.values()) for role, leaves in roles.items()},
    }


def py_spy(work: Path) -> Path:
    """py-spy (a binary wheel from the package index), in the suite's temporary folder."""
    target = work / "py-spy"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
            str(target),
            "py-spy",
        ],
        check=True,
    )
    return target / "bin" / "py-spy"


def serve_profile(work: Path) -> Result:
    home = set_up_home(work)
    models = work / "profile-bench" / "models"
    shutil.copytree(tiny_model(work), models / "tiny")
    bias = {str(i): -100.0 for i in special_ids(models / "tiny")}
    port = free_port()
    timed([INVOKE, "serve", "tiny", "--port", str(port), "--models", str(models)], home)
    try:
        record = json.loads(serve.record_path(config.state_dir(home)).read_text())
        found = profile(py_spy(work), record["pid"], port, bias)
    finally:
        timed([INVOKE, "serve.stop"], home)
    per_token_ms = 1000 * found["seconds"] / found["tokens"]
    held = {role: n / found["samples_per_s"] / found["tokens"] * 1000 for role, n in found["role_samples"].items()}
    top = "; ".join(
        f"{role}: " + ", ".join(f"{leaf} {n}" for leaf, n in leaves.items()) for role, leaves in found["roles"].items()
    )
    return Result(
        f"The server's own work per streamed token (the tests' tiny model, {PROFILED_TOKENS} tokens, py-spy on the "
        "serving process)",
        f"Python holds the GIL {sum(held.values()):.2f} ms of each token's {per_token_ms:.2f} ms (engine thread "
        f"{held.get('engine', 0):.2f} ms, event loop {held.get('event loop', 0):.2f} ms); the process's CPU time "
        f"{found['cpu_s_per_token'] * 1000:.2f} ms per token",
        "recorded: where a token's time goes (no target)",
        True,
        {
            "per_token_ms": per_token_ms,
            **{f"gil_ms_{role.replace(' ', '_')}": ms for role, ms in held.items()},
            "cpu_ms_per_token": found["cpu_s_per_token"] * 1000,
        },
        (f"GIL samples by thread role: {found['role_samples']}", f"most sampled functions: {top}"),
    )


# An agent's conversation: a system prompt, then short instructions, the whole history re-sent every turn.
AGENT_SYSTEM = (
    "You are a coding assistant working in the user's terminal. You read files, run commands and edit "
    "code when asked. Keep every answer short and exact, and say what you changed."
)
AGENT_TURNS = [
    "List the files in this folder.",
    "Open main.py and say what it does.",
    "Rename the function run to start.",
    "Add a docstring to start.",
    "Run the tests.",
    "One test failed: why?",
    "Fix the failing test.",
    "Run the tests again.",
    "Write a commit message.",
    "Thank you, that is all.",
]
AGENT_REPLY_TOKENS = 8


def agent_conversation(port: int) -> list[float]:
    """Each turn's seconds to its first token, the conversation re-sent in full with the model's own answers."""
    post_streamed(port, "/v1/completions", {"prompt": "Hello", "max_tokens": 1, "stream": True})  # warm up
    messages, firsts = [{"role": "system", "content": AGENT_SYSTEM}], []
    for instruction in AGENT_TURNS:
        messages.append({"role": "user", "content": instruction})
        turn = post_streamed(
            port,
            "/v1/chat/completions",
            {"messages": messages, "max_tokens": AGENT_REPLY_TOKENS, "temperature": 0, "stream": True},
        )
        firsts.append(turn["first"])
        messages.append({"role": "assistant", "content": turn["text"]})
    return firsts


def serve_prompt_cache(work: Path) -> Result:
    home = set_up_home(work)
    models = work / "cache-bench" / "models"
    shutil.copytree(real_model(work), models / ALIAS)
    firsts = {}
    for label, cache_gb in (("cached", "2"), ("uncached", "0")):  # 0 GB: the server keeps no prompt cache
        port = free_port()
        timed(
            [INVOKE, "serve", ALIAS, "--port", str(port), "--models", str(models)],
            home,
            INVOKE_MLX_SERVE_PROMPT_CACHE_GB=cache_gb,
        )
        try:
            firsts[label] = agent_conversation(port)
        finally:
            timed([INVOKE, "serve.stop"], home)
    cached, uncached = firsts["cached"], firsts["uncached"]
    ratio = cached[-1] / cached[0]
    return Result(
        f"The server's prompt cache: a {len(AGENT_TURNS)}-turn agent conversation re-sent in full every turn "
        "(SmolLM2-135M)",
        f"first tokens over all turns {sum(cached):.1f} s with the cache, {sum(uncached):.1f} s without; "
        f"turn {len(AGENT_TURNS)} {cached[-1]:.2f} s, turn 1 {cached[0]:.2f} s ({ratio:.2f}x)",
        f"less prefill with the cache, turn {len(AGENT_TURNS)}'s first token within 1.5x turn 1's",
        sum(cached) < sum(uncached) and ratio <= 1.5,
        {"cached_s": cached, "uncached_s": uncached},
        (
            f"each turn's time to first token is its prefill plus one decode step; {AGENT_REPLY_TOKENS}-token greedy "
            f"answers; without the cache (serve_prompt_cache_gb 0) turn {len(AGENT_TURNS)} took {uncached[-1]:.2f} s",
        ),
    )


# docs/performance.md's account of issue 26's profile, rendered before the CUDA section (run.py's tail()).
FINDINGS_HEADING = "## Where the server's time per token went (issue 26)"
FINDINGS = [
    "",
    FINDINGS_HEADING,
    "",
    "Measured on this 2-core machine on 2026-12-07 (MLX on the CPU, other sessions loading it: load average 3 to 7), "
    "the tests' tiny model, streams of 256 tokens, by `serve_profile` (py-spy `--gil`: samples only the thread "
    "that holds Python's lock, so a thread waiting for the model, the socket or a queue is not counted).",
    "",
    "- Before: per token, the event loop held the GIL 0.81 ms and the engine's thread 0.22 ms (of 5.3 ms a token "
    "on the loaded machine). The loop's largest parts: `asyncio.wait_for` around every event (a task and a timer "
    "each, for the keep-alive), uvicorn's write of each chunk, and the JSON of each whole chunk.",
    "- Done: one keep-alive timer per stream, which looks at the time when it fires; a choice's text chunk made once "
    "around its text; the engine hands each step's text for every stream to the loop in one call (it was one per "
    "token per stream). After: the loop 0.40 ms per token, the engine's thread 0.40 ms (model code of mlx_lm's: "
    "RMSNorm, RoPE, MLP building the step's graph), same benchmark, similar load.",
    "- httptools and uvloop under uvicorn (now installed with the server): the serving process's CPU time per "
    "token 3.16 ms with h11 and asyncio's loop, 2.85 ms with them (medians of 6 alternating 256-token streams).",
    "- Checked and left: the GIL's switch interval (5 ms) against 0.5 ms made no difference here beyond the "
    "noise (6 alternating rounds); mx.eval against mx.async_eval: mlx_lm's BatchGenerator already starts step "
    "n+1 (async_eval) before it waits for step n, and the engine adds no wait between steps; logging per token: "
    "none (one access line per request); detokenizing per token: inside the engine thread's share above.",
    "- Not known yet: what this costs on a GPU, where the model's step is 6 ms and the Python work must fit "
    "beside it. `benchmarks/cuda_bench.py --only serve` measures it against raw stream_generate and BatchGenerator "
    "in one run, with this profile; no GPU was lent while this was written.",
]

BENCHMARKS = [serve_one_stream, serve_parallel_streams, serve_long_prompt, serve_prompt_cache, serve_profile]
