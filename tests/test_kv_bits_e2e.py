"""kv_bits end to end on SmolLM2 (real weights; its attention heads of 64 values quantize in groups of 64, which the
tiny model's 16 cannot): chat.ask and the server answer greedily as mlx_lm's own generate does over the same 8-bit
cache, one stream at a time; the server with several streams batched, a prompt-cache hit and a long prompt
through its prefill path. The caches are quantized from the first token (quantized_kv_start 0), so that these
short prompts exercise them."""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from mlxtasks.protocol import KVSettings, ServedModel

from .support.helpers import invoke
from .support.smollm2 import ALIAS
from .test_real_model_e2e import paths, real_setup  # noqa: F401 (a fixture)
from .test_server_e2e import CHAT, call, direct_server  # noqa: F401 (a fixture)

pytestmark = pytest.mark.e2e

TOKENS = 12
# About 150 tokens: longer than a prompt that joins the batch at once, so the engine prefills it in chunks.
LONG = " ".join(f"On day {day} the fox walked to the river." for day in range(1, 13)) + " How many days did it walk?"
QUESTIONS = ["What is the capital of France?", "Write a haiku about the sea.", "List three prime numbers.", LONG]
# mlx_lm's generate, one prompt at a time, over runtime/kvcache.py's cache at 8 bits from the first token; and over
# mlx_lm's own QuantizedKVCache, whose attention reads the packed cache (ours gives it a dequantized copy off a Mac).
REFERENCE = """
import json, sys
from mlx_lm import generate, load
from mlx_lm.models.cache import QuantizedKVCache
from mlxtasks.runtime.kvcache import KVBits, stream_cache
model, tokenizer = load(sys.argv[1])
answers = []
for question in json.loads(sys.argv[2]):
    ids = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True)
    cache = stream_cache(model, KVBits(8, 64, 0))
    answers.append(generate(model, tokenizer, ids, max_tokens=int(sys.argv[3]), prompt_cache=cache))
    assert type(cache[0].cache).__name__ == "QuantizedKVCache"
    own = [QuantizedKVCache(64, 8) for _ in model.layers]
    assert generate(model, tokenizer, ids, max_tokens=int(sys.argv[3]), prompt_cache=own) == answers[-1], question
print(json.dumps(answers))
"""


@pytest.fixture(scope="module")
def expected(real_model, mlx_python):
    import subprocess

    done = subprocess.run(
        [str(mlx_python), "-c", REFERENCE, str(real_model), json.dumps(QUESTIONS), str(TOKENS)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def ask(url: str, question: str) -> dict:
    messages = [{"role": "user", "content": question}]
    status, _, reply = call(url, "POST", CHAT, {"messages": messages, "max_tokens": TOKENS, "temperature": 0})
    assert status == 200, reply
    return reply


def test_the_server_batches_8_bit_streams_and_answers_as_one_stream_does(direct_server, real_model, expected):
    served = ServedModel("smol", str(real_model), [], kv_bits=8)
    url, state = direct_server(model=real_model, alias="smol", installed=[served], kv=KVSettings(64, 0))
    with ThreadPoolExecutor(len(QUESTIONS)) as pool:  # together: the short ones batched, the long one prefilled
        replies = list(pool.map(lambda question: ask(url, question), QUESTIONS))
    assert [reply["choices"][0]["message"]["content"] for reply in replies] == expected
    again = ask(url, QUESTIONS[0])  # its finished cache, 8-bit, from the prompt cache
    assert again["usage"]["prompt_tokens_details"]["cached_tokens"] > 0
    assert again["choices"][0]["message"]["content"] == expected[0]
    assert "16-bit KV cache" not in (state / "serve.log").read_text()


def test_a_model_whose_cache_cannot_be_quantized_is_served_16_bit_with_one_log_line(direct_server, tiny_model):
    url, state = direct_server(installed=[ServedModel("tiny", str(tiny_model), [], kv_bits=4)])
    assert ask(url, "hi")["usage"]["completion_tokens"] == TOKENS
    assert (
        "tiny keeps a 16-bit KV cache (kv_bits 4 is ignored): its attention heads have 16 values, not a multiple "
        "of kv_group_size 64"
    ) in (state / "serve.log").read_text()


def test_chat_ask_with_kv_bits_answers_as_mlx_lm_does_over_the_same_cache(real_setup, expected, home):  # noqa: F811
    done = invoke(
        "chat.ask",
        QUESTIONS[0],
        "--model",
        ALIAS,
        "--kv-bits",
        "8",
        "--temp",
        "0",
        "--max-tokens",
        str(TOKENS),
        "--local",
        *paths(real_setup),
        home=home,
        INVOKE_MLX_QUANTIZED_KV_START="0",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == expected[0] + "\n"


def test_a_kv_bits_flag_other_than_4_or_8_is_refused_before_anything_loads(real_setup, home):  # noqa: F811
    done = invoke("chat.ask", "hi", "--model", ALIAS, "--kv-bits", "6", *paths(real_setup), home=home)
    assert done.returncode == 1 and not done.stdout
    assert "--kv-bits must be 4 or 8 (0 or off: a 16-bit KV cache), got '6'." in done.stderr
