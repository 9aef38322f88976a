"""Chat and one-shot answers, driven in a real terminal (pexpect) against the tiny generated model."""

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pexpect
import pytest

from mlxtasks.protocol import ChatModel, ChatSpec, Sampling

from .support.helpers import BIN, ROOT, clean_env, invoke
from .test_serve_e2e import free_port, state_of

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def chat_setup(bootstrapped, tiny_model, tmp_path_factory):
    """The session's venv, and a models folder of our own with the tiny model as qwen7b and mistral7b."""
    _, shared_home, _ = bootstrapped
    models = tmp_path_factory.mktemp("chat") / "models"
    for folder in ("qwen25-coder-7b", "mistral-7b"):
        shutil.copytree(tiny_model, models / folder)
    return shared_home / "venv-mlx", models


def paths(chat_setup):
    venv, models = chat_setup
    return ["--venv", str(venv), "--models", str(models)]


# prompt_toolkit draws the prompt's trailing space as a cursor move, and redraws the line being typed.
PROMPT = ">>>"
READ = "\x1b[?2004l"  # the editor turns bracketed paste off once it has the message: what follows is the chat's
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def start(program, args, home, **env):
    """A program of the venv (its mlxtasks: chat from any folder) in a terminal of 40x200. pexpect answers
    no cursor position request as a terminal does, so prompt_toolkit is told not to wait for one."""
    return pexpect.spawn(
        str(program),
        args,
        cwd=str(home),
        env=clean_env(home, PWD=str(home), PROMPT_TOOLKIT_NO_CPR="1", **env),
        encoding="utf-8",
        timeout=120,
        dimensions=(40, 200),
    )


def spawn(chat_setup, home, *args, model="qwen7b"):
    child = start(chat_setup[0] / "bin" / "mlxtasks", ["chat", model, *paths(chat_setup), *args], home)
    child.expect_exact(f"Chatting with {model}")
    child.expect_exact(PROMPT)
    return child


def answer(child):
    """What the chat printed between the message being sent and its next prompt."""
    child.expect_exact(READ)
    child.expect_exact(PROMPT)
    return ESCAPES.sub("", child.before)


def say(child, text):
    child.sendline(text)
    return answer(child)


def leave(child):
    """Ctrl-D at the prompt; the session's exit status."""
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus


def sent(child, home):
    """The user's messages, as /save --json writes them; then Ctrl-D, which leaves with status 0."""
    say(child, "/save sent.json --json")
    assert leave(child) == 0
    return [m["content"] for m in json.loads((home / "sent.json").read_text())["messages"] if m["role"] == "user"]


def test_a_session_streams_replies_and_obeys_its_commands(chat_setup, home):
    child = spawn(chat_setup, home, "--max-tokens", "12", "--seed", "3")
    assert say(child, "hello there").strip()  # a reply came back, then the prompt
    assert "(temp = 0.3)" in say(child, "/set temp 0.3")
    assert "(max_tokens = 6)" in say(child, "/set max_tokens 6")
    assert "first token after" in say(child, "/stats")
    assert "(system prompt set; conversation cleared)" in say(child, "/system Answer briefly.")
    child.sendline('"""')
    child.sendline("line one")
    child.sendline("line two")
    child.sendline('"""')
    answer(child)
    assert "saved to" in say(child, "/save talk.md")
    assert "saved to" in say(child, "/save talk.json --json")
    assert "(now mistral7b; the conversation is kept; sampling temp 0.3, top_p 0.95, max_tokens 6)" in say(
        child, "/model mistral7b"
    )
    assert "unknown command /frob" in say(child, "/frob")
    assert "Tab completes commands" in say(child, "/help")
    assert leave(child) == 0
    saved = json.loads((home / "talk.json").read_text())
    assert saved["messages"][0] == {"role": "system", "content": "Answer briefly."}
    assert saved["messages"][1] == {"role": "user", "content": "line one\nline two"}
    assert saved["sampling"] == {"temp": 0.3, "top_p": 0.8, "max_tokens": 6}
    markdown = (home / "talk.md").read_text()
    assert markdown.startswith("# Chat with qwen7b") and "## You\n\nline one\nline two" in markdown
    assert (home / ".local" / "state" / "mlxtasks" / "chat_history").exists()


def test_auto_lets_the_router_pick_on_the_first_message(chat_setup, home):
    child = start(chat_setup[0] / "bin" / "mlxtasks", ["chat", "auto", *paths(chat_setup), "--max-tokens", "3"], home)
    child.expect_exact("The router picks the model for your first message.")
    child.expect_exact(PROMPT)
    assert "(using mistral7b: general (no keywords matched))" in say(child, "write a short poem")
    assert leave(child) == 0


def test_ctrl_c_stops_a_long_reply_or_clears_the_prompt_and_the_session_goes_on(chat_setup, home):
    child = spawn(chat_setup, home, "--max-tokens", "100000", "--temp", "1.0")
    child.sendline("tell me everything")
    child.expect_exact(READ)
    child.expect(r"\S")  # the reply has started
    child.sendintr()
    child.expect_exact("[stopped]")
    child.expect_exact(PROMPT)
    assert "(max_tokens = 4)" in say(child, "/set max_tokens 4")
    child.send("never sent")
    child.expect_exact("never sent")
    child.sendintr()
    answer(child)
    say(child, "still there?")
    assert sent(child, home) == ["tell me everything", "still there?"]


def test_a_bracketed_paste_of_several_lines_is_one_message_and_so_is_alt_enter(chat_setup, home):
    child = spawn(chat_setup, home, "--max-tokens", "3")
    child.send("\x1b[200~line1\nline2\nline3\x1b[201~")  # as a terminal sends a paste
    child.expect_exact("... line3")  # on screen, still being edited
    child.send("\r")
    answer(child)
    child.send("first\x1b\rsecond\r")  # Alt-Enter between the two lines
    answer(child)
    assert sent(child, home) == ["line1\nline2\nline3", "first\nsecond"]


def test_up_recalls_a_message_of_an_earlier_session(chat_setup, home):
    first = spawn(chat_setup, home, "--max-tokens", "3")
    say(first, "remember this line")
    assert leave(first) == 0
    second = spawn(chat_setup, home, "--max-tokens", "3")
    second.send("\x1b[A")  # Up
    second.expect_exact("remember this line")
    second.send("\r")
    answer(second)
    assert sent(second, home) == ["remember this line"]


def test_tab_completes_commands_and_model_names(chat_setup, home):
    child = spawn(chat_setup, home, "--max-tokens", "3")
    child.send("/mo\t")
    child.expect_exact("del")  # /mo became /model on screen
    child.send(" mistral-\t")
    child.expect_exact("7b")
    child.send("\r")
    assert "(now mistral7b;" in answer(child)
    assert leave(child) == 0


def runtime_spec(chat_setup, tmp_path):
    """A ChatSpec file for the runtime's chat on its own: qwen7b, 3 tokens a reply."""
    path = tmp_path / "spec.json"
    path.write_text(
        ChatSpec(
            {"qwen7b": ChatModel(str(chat_setup[1] / "qwen25-coder-7b"), Sampling(0.7, 0.8, 3))},
            "qwen7b",
            {},
            {},
            history=str(tmp_path / "history"),
        ).to_json()
    )
    return str(path)


# The runtime as in a venv made before the chat needed prompt_toolkit: importing it fails.
WITHOUT_PROMPT_TOOLKIT = (
    "import sys; sys.modules['prompt_toolkit'] = None; "
    "from mlxtasks.runtime.chat import main; sys.exit(main(sys.argv[1:]))"
)


@pytest.mark.parametrize("terminal", ["TERM=dumb", "no prompt_toolkit"])
def test_a_terminal_without_the_editor_reads_plain_lines_with_no_escape_codes(chat_setup, home, tmp_path, terminal):
    if terminal == "TERM=dumb":
        child = start(
            chat_setup[0] / "bin" / "mlxtasks",
            ["chat", "qwen7b", *paths(chat_setup), "--max-tokens", "3"],
            home,
            TERM="dumb",
        )
    else:
        child = start(
            chat_setup[0] / "bin" / "python",
            ["-c", WITHOUT_PROMPT_TOOLKIT, "--spec", runtime_spec(chat_setup, tmp_path)],
            home,
        )
        child.expect_exact("(plain line input: prompt_toolkit is not installed; invoke install adds it)")
    child.logfile_read = shown = io.StringIO()
    child.expect_exact(">>> ")
    child.sendline("hello")
    child.expect_exact(">>> ")
    for line in ('"""', "line one", "line two"):
        child.sendline(line)
        child.expect_exact("... ")
    child.sendline('"""')
    child.expect_exact(">>> ")
    child.sendline("/save plain.json --json")
    child.expect_exact(">>> ")
    assert leave(child) == 0 and "\x1b" not in shown.getvalue()
    messages = json.loads((home / "plain.json").read_text())["messages"]
    assert [m["content"] for m in messages if m["role"] == "user"] == ["hello", "line one\nline two"]


def test_the_chat_reads_piped_stdin_line_by_line(chat_setup, home, tmp_path):
    done = subprocess.run(
        [
            str(chat_setup[0] / "bin" / "python"),
            "-m",
            "mlxtasks.runtime.chat",
            "--spec",
            runtime_spec(chat_setup, tmp_path),
        ],
        cwd=home,
        env=clean_env(home),
        input='hello\nagain\n"""\nline one\nline two\n"""\n/save piped.json --json\n',
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.startswith("Chatting with qwen7b") and "\x1b" not in done.stdout
    messages = json.loads((home / "piped.json").read_text())["messages"]
    assert [m["content"] for m in messages if m["role"] == "user"] == ["hello", "again", "line one\nline two"]


def test_the_first_greedy_reply_is_exactly_mlx_lm_generate(chat_setup, home, mlx_run):
    _, models = chat_setup
    done = invoke(
        "chat.ask",
        "How do I sort a list?",
        "--model",
        "qwen7b",
        "--temp",
        "0",
        "--max-tokens",
        "24",
        *paths(chat_setup),
        home=home,
    )
    assert done.returncode == 0, done.stderr
    code = (
        "import sys; from mlx_lm import load, generate; m, t = load(sys.argv[1]); "
        "p = t.apply_chat_template([{'role': 'user', 'content': 'How do I sort a list?'}], add_generation_prompt=True); "
        "sys.stdout.write(generate(m, t, p, max_tokens=24))"
    )
    expected = mlx_run(code, str(models / "qwen25-coder-7b")).stdout
    assert done.stdout == expected + "\n"


def test_ask_reads_stdin_and_puts_only_the_answer_on_stdout(chat_setup, home):
    done = subprocess.run(
        [str(BIN / "invoke"), "chat.ask", "-", "--max-tokens", "5", *paths(chat_setup)],
        cwd=ROOT,
        env=clean_env(home),
        input="what is 2+2?",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("\n") and done.stderr == ""


def test_ask_verbose_adds_the_answers_speed_on_stderr_only(chat_setup, home):
    quiet = invoke("chat.ask", "hello", "--max-tokens", "5", "--seed", "1", *paths(chat_setup), home=home)
    loud = invoke("chat.ask", "hello", "--max-tokens", "5", "--seed", "1", "--verbose", *paths(chat_setup), home=home)
    assert loud.returncode == 0, loud.stderr
    assert loud.stdout == quiet.stdout and quiet.stderr == ""
    stats = re.fullmatch(
        r"prompt: (\d+) tokens at [\d.]+ tokens/s; reply: (\d+) tokens at [\d.]+ tokens/s; "
        r"first token after [\d.]+ s; peak memory [\d.]+ GB\n",
        loud.stderr,
    )
    assert stats and int(stats[1]) > 0 and 0 < int(stats[2]) <= 5


@pytest.mark.parametrize(
    "args, sentence",
    [
        (["--model", "phi4"], "phi4 is not downloaded."),
        (["--model", "nope"], "There is no model called 'nope' in the catalogue or the models folder."),
    ],
)
def test_ask_for_a_missing_or_unknown_model_is_one_sentence(chat_setup, home, args, sentence):
    done = invoke("chat.ask", "hi", *args, *paths(chat_setup), home=home)
    assert done.returncode == 1 and sentence in done.stderr and done.stdout == ""


def test_route_explains_its_choice_and_ask_auto_says_it_on_stderr(chat_setup, home):
    done = invoke("chat.route", "fix this python bug", "--explain", *paths(chat_setup)[2:], home=home)
    assert done.returncode == 0, done.stderr
    first, *scores = done.stdout.splitlines()
    assert first.startswith("qwen7b: code (score 4: bug, python); the best model for it, qwen32b, is not installed")
    assert scores[0].split() == ["code", "4", "bug,", "python"]
    asked = invoke("chat.ask", "--auto", "write a poem", "--max-tokens", "3", *paths(chat_setup), home=home)
    assert asked.returncode == 0, asked.stderr
    assert asked.stderr.startswith("Using mistral7b: general (no keywords matched)")


def test_routing_with_nothing_installed_is_a_clear_error(home, tmp_path):
    done = invoke("chat.route", "hello", "--models", str(tmp_path / "empty"), home=home)
    assert done.returncode == 1 and "No model is installed" in done.stderr and "invoke models.pull" in done.stderr


def test_a_conversation_longer_than_the_context_drops_the_oldest_turns(chat_setup, mlx_run):
    _, models = chat_setup
    code = """
import sys
from mlxtasks.protocol import ChatModel, Sampling
from mlxtasks.runtime.chat import Session
s = Session({"qwen7b": ChatModel(sys.argv[1], Sampling(0.0, 1.0, 4))}, "qwen7b", {})
s.load("qwen7b")
s.context = 120  # a small window, so a few turns overflow it
for n in range(8):
    s.reply(f"turn {n} " + "words " * 10, lambda text: None)
print(len(s.messages), s.messages[0]["content"].split()[1], len(s.notices))
"""
    done = mlx_run(code, str(models / "qwen25-coder-7b"))
    assert done.returncode == 0, done.stderr
    kept, first_turn, notices = done.stdout.split()
    assert int(kept) < 16 and int(first_turn) > 0 and int(notices) > 0


WORKING_SET_RUN = """
import sys
import mlx.core as mx
if sys.argv[2] == "near-limit":  # Metal's figure on a Mac, as data: a working set this model is above 90% of
    mx.device_info = lambda: {"max_recommended_working_set_size": 2**15}
from mlxtasks.protocol import ChatModel, Sampling
from mlxtasks.runtime.chat import Session
s = Session({"qwen7b": ChatModel(sys.argv[1], Sampling(0.0, 1.0, 8))}, "qwen7b", {}, seed=1)
s.load("qwen7b")
for question in ("hello", "and again"):
    s.reply(question, sys.stdout.write)
    print("|")
"""


def test_mlx_lms_working_set_warning_stays_off_stdout_and_is_said_once_on_stderr(chat_setup, mlx_run):
    """mlx_lm prints "[WARNING] Generating with a model that requires..." on stdout when the model is above 90% of
    Metal's recommended working set: the answers on stdout are the same as without it, and stderr says it once."""
    _, models = chat_setup
    plain, near = (mlx_run(WORKING_SET_RUN, str(models / "qwen25-coder-7b"), how) for how in ("plain", "near-limit"))
    assert plain.returncode == near.returncode == 0, plain.stderr + near.stderr
    assert near.stdout == plain.stdout and near.stdout.count("|") == 2 and "WARNING" not in near.stdout
    assert near.stderr.count("Metal recommends the GPU use at most, so answers may be slow") == 1
    assert "[WARNING]" not in near.stderr and plain.stderr == ""


def test_a_prompt_longer_than_the_context_is_refused_before_any_of_it_is_read(chat_setup, home):
    """1 MB on stdin, far over the tiny model's 4096 tokens: refused with both counts, --auto too (no argv limit)."""
    for auto in ([], ["--auto"]):
        done = subprocess.run(
            [str(BIN / "invoke"), "chat.ask", "-", *auto, *paths(chat_setup)],
            cwd=ROOT,
            env=clean_env(home),
            input="word " * 200_000,
            capture_output=True,
            text=True,
            timeout=600,
        )
        counted = re.search(r"The prompt is (\d+) tokens long, but (\w+)'s context holds 4096 tokens", done.stderr)
        assert done.returncode == 1 and counted and int(counted[1]) > 4096, done.stderr
        assert done.stdout == "" and "Traceback" not in done.stderr and "shorten the prompt" in done.stderr


def test_a_prompt_that_looks_like_an_option_is_still_a_prompt(chat_setup, home):
    done = invoke("chat.ask", "--prompt=--help", "--max-tokens", "3", *paths(chat_setup), home=home)
    assert done.returncode == 0 and done.stdout.strip() and done.stderr == "", done.stderr


def test_ctrl_c_ends_an_answer_at_once_with_130_and_no_traceback(chat_setup, home):
    mlxtasks = str(chat_setup[0] / "bin" / "mlxtasks")
    child = pexpect.spawn(
        mlxtasks,
        ["chat.ask", "tell me everything", "--max-tokens", "100000", "--temp", "1.0", *paths(chat_setup)],
        cwd=str(home),
        env=clean_env(home),
        encoding="utf-8",
        timeout=120,
    )
    child.expect(r"\S")  # the answer has started
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130 and "Traceback" not in child.before and "Interrupted" not in child.before


@pytest.mark.parametrize("into", ["a pipe whose reader left", "/dev/full"])
def test_an_answer_that_cannot_be_written_ends_quietly_or_in_one_sentence(chat_setup, home, into):
    """`mlx-qwen7b "..." | head -c 20`: the answer is written by the venv's runtime, a process of its own."""
    read, write = os.pipe()
    os.close(read)
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [
                str(chat_setup[0] / "bin" / "mlxtasks"),
                "chat.ask",
                "tell me a long story",
                "--max-tokens",
                "40",
                *paths(chat_setup),
            ],
            cwd=home,
            env=clean_env(home),
            stdin=subprocess.DEVNULL,
            stdout=write if into.startswith("a pipe") else full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
        )
    os.close(write)
    if into.startswith("a pipe"):
        assert (done.returncode, done.stderr) == (141, "")
    else:
        assert (done.returncode, done.stderr.splitlines()) == (
            1,
            [
                "[error] The output could not be written: No space left on device.",
                "  Fix: free some space, or send the output to another disk (> FILE)",
            ],
        )


def test_a_chat_fed_from_a_pipe_says_it_needs_a_terminal(chat_setup, home):
    done = subprocess.run(
        [str(BIN / "invoke"), "chat", "qwen7b", *paths(chat_setup)],
        cwd=ROOT,
        env=clean_env(home),
        input="hi\n",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1 and "Chatting" not in done.stdout
    assert "A chat needs a terminal" in done.stderr and "invoke chat.ask - --model qwen7b" in done.stderr


def test_model_takes_any_name_and_a_command_typed_ahead_stays_a_line_of_its_own(chat_setup, home):
    child = spawn(chat_setup, home, "--max-tokens", "3")
    assert "(now qwen7b;" in say(child, "/model mlx-community/Qwen2.5-Coder-7B-Instruct-4bit")
    child.send("/model mistral-7b\nhello again\n")  # both waiting at once, as when typed during a reply
    child.expect_exact("(now mistral7b;")
    answer(child)  # the reply to "hello again"
    say(child, "/save ahead.json --json")
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    saved = json.loads((home / "ahead.json").read_text())
    assert saved["model"] == "mistral7b" and saved["messages"][0] == {"role": "user", "content": "hello again"}


@pytest.fixture
def broken_models(chat_setup, tmp_path):
    """qwen7b whole; phi4 with a truncated shard; mistral7b of a model type mlx_lm does not know; qwen32b whole
    but with a context of 64 tokens."""
    _, good = chat_setup
    models = tmp_path / "models"
    for folder in ("qwen25-coder-7b", "phi4-14b", "mistral-7b", "qwen25-coder-32b"):
        shutil.copytree(good / "qwen25-coder-7b", models / folder)
    small = models / "qwen25-coder-32b" / "config.json"
    small.write_text(json.dumps({**json.loads(small.read_text()), "max_position_embeddings": 64}))
    shard = sorted((models / "phi4-14b").glob("*.safetensors"))[0]
    shard.write_bytes(shard.read_bytes()[:-100])
    config = models / "mistral-7b" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "model_type": "frobnicator"}))
    return ["--venv", str(chat_setup[0]), "--models", str(models)]


def test_a_model_that_fails_to_load_is_a_sentence_with_the_fix(broken_models, home):
    for args in (["chat", "phi4"], ["chat.ask", "hi", "--model", "phi4"]):
        done = invoke(*args, *broken_models, home=home)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert "phi4 cannot be loaded: model-00001-of-00002.safetensors is" in done.stderr
        assert "invoke models.pull phi4 --force" in done.stderr and "invoke models.verify phi4" in done.stderr
    done = invoke("chat.ask", "hi", "--model", "mistral7b", *broken_models, home=home)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "mistral7b could not be loaded: Model type frobnicator not supported" in done.stderr
    assert "invoke models.verify mistral7b" in done.stderr


def test_a_chat_keeps_its_model_when_another_fails_to_load(broken_models, home):
    child = start(
        Path(broken_models[1]) / "bin" / "mlxtasks", ["chat", "qwen7b", *broken_models, "--max-tokens", "3"], home
    )
    child.expect_exact(PROMPT)
    said = say(child, "/model mistral7b")
    assert "mistral7b could not be loaded: Model type frobnicator not supported. Still qwen7b." in said
    assert say(child, "hello").strip()
    say(child, "/save kept.json --json")
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and json.loads((home / "kept.json").read_text())["model"] == "qwen7b"


def test_a_message_longer_than_the_context_is_refused_and_the_chat_goes_on(broken_models, home):
    child = start(
        Path(broken_models[1]) / "bin" / "mlxtasks", ["chat", "qwen32b", *broken_models, "--max-tokens", "3"], home
    )
    child.expect_exact(PROMPT)
    assert say(child, "hi").strip()
    refused = say(child, "word " * 100)
    counted = re.search(r"The prompt is (\d+) tokens long, but qwen32b's context holds 64 tokens", refused)
    assert counted and int(counted[1]) >= 64, refused
    say(child, "/save short.json --json")
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    messages = json.loads((home / "short.json").read_text())["messages"]
    assert [m["content"] for m in messages if m["role"] == "user"] == ["hi"]


# --- with a server running (invoke serve): asked first, unless --local ---


def log_of(home) -> str:
    return (state_of(home) / "serve.log").read_text()


def chat_requests(home, status: int = 200) -> int:
    return len(re.findall(rf"POST /v1/chat/completions {status} ", log_of(home)))


def logged(home, count: int, status: int = 200) -> int:
    """The log's chat requests with this status, once there are `count` (the server writes a request's line just
    after its last byte)."""
    for _ in range(600):
        if chat_requests(home, status) >= count:
            break
        time.sleep(0.1)
    return chat_requests(home, status)


@contextlib.contextmanager
def serving(alias: str, args: list[str], home):
    """A real server for `alias` in `home` on a free port; yields the port and the environment that makes it the
    configured one; stopped at the end."""
    port = free_port()
    started = invoke("serve", alias, "--port", str(port), *args, home=home)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield port, {"INVOKE_MLX_SERVE_PORT": str(port)}
    finally:
        assert invoke("serve.stop", home=home).returncode == 0


@pytest.fixture(scope="module")
def tiny_server(chat_setup, tmp_path_factory):
    """A server for the models of chat_setup, qwen7b loaded: its HOME, port, and the environment that makes its port the
    configured one."""
    home = tmp_path_factory.mktemp("serve-home")
    with serving("qwen7b", paths(chat_setup), home) as (port, env):
        yield home, port, env


def test_a_model_the_server_does_not_serve_is_loaded_in_process(chat_setup, tiny_server, tiny_model, tmp_path):
    server_home, port, env = tiny_server
    venv, _ = chat_setup
    missed = chat_requests(server_home, 404)
    asked = ["chat.ask", "hello there", "--temp", "0", "--max-tokens", "20", "--verbose"]
    others = tmp_path / "models"  # not the server's models folder: deepseek is unknown to it
    shutil.copytree(tiny_model, others / "deepseek-r1-8b")
    elsewhere = invoke(
        *asked, "--model", "deepseek", "--venv", str(venv), "--models", str(others), home=server_home, **env
    )
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert logged(server_home, missed + 1, 404) == missed + 1  # asked first, refused: model_not_found
    assert "peak memory" in elsewhere.stderr
    served = invoke(*asked, "--model", "qwen7b", *paths(chat_setup), home=server_home, **env)
    assert "answered by the server" in served.stderr
    assert served.stdout == elsewhere.stdout  # the same weights, greedy: the same answer either way


def test_ctrl_c_through_the_server_ends_the_answer_with_130_and_the_server_goes_on(chat_setup, tiny_server):
    server_home, port, env = tiny_server
    before = chat_requests(server_home)
    child = pexpect.spawn(
        str(chat_setup[0] / "bin" / "mlxtasks"),
        [
            "chat.ask",
            "tell me everything",
            "--model",
            "qwen7b",
            "--temp",
            "0",
            "--max-tokens",
            "4000",
            *paths(chat_setup),
        ],
        cwd=str(server_home),
        env=clean_env(server_home, **env),
        encoding="utf-8",
        timeout=120,
    )
    child.expect(r"\S")  # the answer has started
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130 and "Traceback" not in child.before, child.before
    assert logged(server_home, before + 1) == before + 1  # the stream ended when the client left
    again = invoke(
        "chat.ask",
        "hi",
        "--model",
        "qwen7b",
        "--max-tokens",
        "3",
        "--verbose",
        *paths(chat_setup),
        home=server_home,
        **env,
    )
    assert again.returncode == 0 and "answered by the server" in again.stderr, again.stderr


def test_a_chat_session_talks_to_the_server(chat_setup, tiny_server):
    server_home, port, env = tiny_server
    before = chat_requests(server_home)
    child = start(
        chat_setup[0] / "bin" / "mlxtasks",
        ["chat", "qwen7b", *paths(chat_setup), "--max-tokens", "5"],
        server_home,
        **env,
    )
    child.expect_exact("Chatting with qwen7b")
    child.expect_exact(PROMPT)
    say(child, "hello there")
    say(child, "and again")  # the whole conversation goes to the server each turn
    assert f"answered by the server at http://127.0.0.1:{port}/v1" in say(child, "/stats")
    assert leave(child) == 0
    assert logged(server_home, before + 2) == before + 2


FIFO_HISTORY = """
import os, sys
from pathlib import Path
from mlxtasks.runtime.editor import saved
os.mkfifo(sys.argv[1])
print(type(saved(Path(sys.argv[1]))).__name__)
"""


def test_a_fifo_where_the_chat_history_goes_is_left_alone_and_the_history_kept_in_memory(mlx_run, tmp_path):
    """prompt_toolkit lives in the MLX venv; opening a FIFO for appending would wait for a reader forever."""
    done = mlx_run(FIFO_HISTORY, str(tmp_path / "history"), timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "InMemoryHistory"), done.stderr
