"""`invoke serve`'s server (issue 18) on the tests' SmolLM2-135M-Instruct, with mlx_lm.server beside it on the
same model and requests: one stream against raw stream_generate, 8 parallel streams against one, and how
much a 4,000-token prompt delays another client's first token; and the prompt cache (issue 20) on an agent's
conversation re-sent every turn."""

from __future__ import annotations

import functools
import http.client
import json
import shutil
import socket
import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness import INVOKE, Result, real_model, set_up_home, timed, user_env, venv_python

ALIAS = "smollm2-135m"
TOKENS, STREAMS, RUNS = 48, 8, 3
LONG_PROMPT, CHUNK = 4000, 512  # CHUNK: the server's prefill chunk (ServeSpec.prefill_chunk)
PROMPT = "Once upon a time, in a small village by the sea,"

RAW = """
import json, sys
from mlx_lm import load, stream_generate
from mlx_lm.sample_utils import make_logits_processors
model, tokenizer = load(sys.argv[1])
bias = make_logits_processors({int(i): -100.0 for i in sys.argv[4].split(",")})
rates = []
for _ in range(int(sys.argv[3]) + 1):
    for last in stream_generate(model, tokenizer, sys.argv[2], max_tokens=int(sys.argv[5]), logits_processors=bias):
        pass
    rates.append(last.generation_tps)
print(json.dumps(rates[1:]))
"""

# The backend's own gain from batching: mlx_lm's BatchGenerator decoding 1 and then 8 streams, no server.
CEILING = """
import json, sys, time
from mlx_lm import load
from mlx_lm.generate import BatchGenerator
from mlx_lm.sample_utils import make_logits_processors
model, tokenizer = load(sys.argv[1])
bias = make_logits_processors({int(i): -100.0 for i in sys.argv[4].split(",")})
rates = {}
for streams in (1, int(sys.argv[3])):
    generator = BatchGenerator(model)
    prompts = [tokenizer.encode(f"{sys.argv[2]} ({n})") for n in range(streams)]
    generator.insert(prompts, max_tokens=[int(sys.argv[5])] * streams, logits_processors=[bias] * streams)
    counted, start = 0, None
    while True:
        _, responses = generator.next()
        if not responses and start is not None:
            break
        if len(responses) == streams and start is None:  # every stream has its first token: decoding from here
            start = time.perf_counter()
        elif start is not None:
            counted += len(responses)
    rates[streams] = counted / (time.perf_counter() - start)
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
    return post_streamed(port, "/v1/completions", {"prompt": prompt, "max_tokens": tokens, "temperature": 0,
                                                   "stream": True, "stream_options": {"include_usage": True},
                                                   "logit_bias": bias})


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


def parallel(port: int, tokens: int, bias: dict[str, float]) -> tuple[list[dict], float]:
    """STREAMS streams at once: each one's figures, and the seconds until the last ended."""
    start = time.perf_counter()
    with ThreadPoolExecutor(STREAMS) as pool:
        many = list(pool.map(lambda n: stream(port, f"{PROMPT} ({n})", tokens, bias), range(STREAMS)))
    return many, time.perf_counter() - start


def measure(port: int, bias: dict[str, float]) -> dict:
    stream(port, PROMPT, 4, bias)  # warm up, a batch of STREAMS too (a GPU compiles kernels for each shape once)
    parallel(port, 4, bias)
    one = [stream(port, PROMPT, TOKENS, bias) for _ in range(RUNS)]
    many, wall = parallel(port, TOKENS, bias)
    alone = statistics.median(stream(port, f"{n} {PROMPT}", 1, bias)["first"] for n in range(RUNS))
    chunk = statistics.median(stream(port, f"{n} " + "word " * (CHUNK - 1), 1, bias)["first"] for n in range(RUNS))
    long = http.client.HTTPConnection("127.0.0.1", port, timeout=1800)
    long.request("POST", "/v1/completions", json.dumps({"prompt": "word " * LONG_PROMPT, "max_tokens": 1}),
                 {"Content-Type": "application/json"})
    time.sleep(chunk * 1.5)  # the long prompt's prefill is under way
    short = stream(port, f"{RUNS} {PROMPT}", 1, bias)
    long.close()  # its answer is not measured
    return {"one_tps": statistics.median(map(decode_rate, one)),
            "many_tps": sum(run["tokens"] for run in many) / wall, "many_first": max(run["first"] for run in many),
            "alone_first": alone, "chunk_s": chunk, "behind_long_first": short["first"]}


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
    raw = subprocess.run([str(venv_python(work)), "-c", RAW, str(models / ALIAS), PROMPT, str(RUNS),
                          ",".join(bias), str(TOKENS)], check=True, capture_output=True, text=True)
    ceiling = subprocess.run([str(venv_python(work)), "-c", CEILING, str(models / ALIAS), PROMPT, str(STREAMS),
                              ",".join(bias), str(TOKENS)], check=True, capture_output=True, text=True)
    port = free_port()
    timed([INVOKE, "serve", ALIAS, "--port", str(port), "--models", str(models)], home)
    try:
        ours = measure(port, bias)
    finally:
        timed([INVOKE, "serve.stop"], home)
    port = free_port()
    theirs_process = subprocess.Popen([str(venv_python(work)), "-m", "mlx_lm.server", "--model", str(models / ALIAS),
                                       "--port", str(port)], env=user_env(home, HF_HUB_OFFLINE="1"),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(port, theirs_process)
        theirs = measure(port, bias)
    finally:
        theirs_process.terminate()
        theirs_process.wait(timeout=60)
    rates = json.loads(ceiling.stdout)
    return {"raw_tps": statistics.median(json.loads(raw.stdout)), "ours": ours, "mlx_lm": theirs,
            "backend_gain": rates[str(STREAMS)] / rates["1"]}


def serve_one_stream(work: Path) -> Result:
    found = numbers(work)
    ours, raw = found["ours"]["one_tps"], found["raw_tps"]
    return Result(
        f"The server, one stream: decode rate against raw stream_generate (SmolLM2-135M, {TOKENS} tokens)",
        f"{ours:.1f} tokens/s, raw stream_generate {raw:.1f} tokens/s ({ours / raw:.0%})",
        ">= 97% of raw stream_generate", ours >= 0.97 * raw,
        {"ours_tps": ours, "raw_tps": raw, "mlx_lm_server_tps": found["mlx_lm"]["one_tps"]},
        (f"mlx_lm.server on the same requests: {found['mlx_lm']['one_tps']:.1f} tokens/s",))


def serve_parallel_streams(work: Path) -> Result:
    found = numbers(work)
    ours = found["ours"]
    ratio = ours["many_tps"] / ours["one_tps"]
    return Result(
        f"The server, {STREAMS} parallel streams: aggregate rate and the slowest first token",
        f"{ours['many_tps']:.1f} tokens/s ({ratio:.1f}x one stream), slowest first token {ours['many_first']:.2f} s",
        ">= 2x one stream, every first token within 2 s", ratio >= 2 and ours["many_first"] <= 2,
        {"ours_tps": ours["many_tps"], "ours_first_s": ours["many_first"], "backend_gain": found["backend_gain"],
         "mlx_lm_server_tps": found["mlx_lm"]["many_tps"], "mlx_lm_server_first_s": found["mlx_lm"]["many_first"]},
        (f"mlx_lm.server: {found['mlx_lm']['many_tps']:.1f} tokens/s "
         f"({found['mlx_lm']['many_tps'] / found['mlx_lm']['one_tps']:.1f}x its one stream), slowest first token "
         f"{found['mlx_lm']['many_first']:.2f} s",
         f"the backend's own gain, mlx_lm's BatchGenerator decoding {STREAMS} streams against 1 with no server: "
         f"{found['backend_gain']:.2f}x (the most any server can reach on this machine)"))


def serve_long_prompt(work: Path) -> Result:
    found = numbers(work)
    ours = found["ours"]
    delay = ours["behind_long_first"] - ours["alone_first"]
    return Result(
        f"The server: a short request's first token while a {LONG_PROMPT}-token prompt is prefilled",
        f"delayed {delay:.2f} s (alone {ours['alone_first']:.2f} s); one {CHUNK}-token chunk takes {ours['chunk_s']:.2f} s",
        f"delay <= one prefill chunk ({CHUNK} tokens)", delay <= ours["chunk_s"],
        {"ours_delay_s": delay, "ours_chunk_s": ours["chunk_s"],
         "mlx_lm_server_delay_s": found["mlx_lm"]["behind_long_first"] - found["mlx_lm"]["alone_first"]},
        (f"mlx_lm.server: delayed {found['mlx_lm']['behind_long_first'] - found['mlx_lm']['alone_first']:.2f} s",))


# An agent's conversation: a system prompt, then short instructions, the whole history re-sent every turn.
AGENT_SYSTEM = ("You are a coding assistant working in the user's terminal. You read files, run commands and edit "
                "code when asked. Keep every answer short and exact, and say what you changed.")
AGENT_TURNS = ["List the files in this folder.", "Open main.py and say what it does.", "Rename the function run to start.",
               "Add a docstring to start.", "Run the tests.", "One test failed: why?", "Fix the failing test.",
               "Run the tests again.", "Write a commit message.", "Thank you, that is all."]
AGENT_REPLY_TOKENS = 8


def agent_conversation(port: int) -> list[float]:
    """Each turn's seconds to its first token, the conversation re-sent in full with the model's own answers."""
    post_streamed(port, "/v1/completions", {"prompt": "Hello", "max_tokens": 1, "stream": True})  # warm up
    messages, firsts = [{"role": "system", "content": AGENT_SYSTEM}], []
    for instruction in AGENT_TURNS:
        messages.append({"role": "user", "content": instruction})
        turn = post_streamed(port, "/v1/chat/completions", {"messages": messages, "max_tokens": AGENT_REPLY_TOKENS,
                                                             "temperature": 0, "stream": True})
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
        timed([INVOKE, "serve", ALIAS, "--port", str(port), "--models", str(models)], home,
              INVOKE_MLX_SERVE_PROMPT_CACHE_GB=cache_gb)
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
        sum(cached) < sum(uncached) and ratio <= 1.5, {"cached_s": cached, "uncached_s": uncached},
        (f"each turn's time to first token is its prefill plus one decode step; {AGENT_REPLY_TOKENS}-token greedy "
         f"answers; without the cache (serve_prompt_cache_gb 0) turn {len(AGENT_TURNS)} took {uncached[-1]:.2f} s",))


BENCHMARKS = [serve_one_stream, serve_parallel_streams, serve_long_prompt, serve_prompt_cache]
