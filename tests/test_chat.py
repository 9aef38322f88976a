"""The chat's commands and output, without a model: everything that does not need MLX."""

import io
import json
import os
import socket
import subprocess
import sys
from dataclasses import asdict

import pexpect
import psutil
import pytest

from mlxtasks import chat, config, serve
from mlxtasks.errors import MlxTasksError
from mlxtasks.protocol import ChatModel, ChatSpec, Sampling
from mlxtasks.runtime.chat import COMMANDS, DIM, RESET, Output, Session, command, completions, open_block, unfence

from .support.helpers import BIN, ROOT, clean_env, invoke, run


class Terminal(io.StringIO):
    def isatty(self):
        return True


def session():
    return Session(
        {"qwen7b": ChatModel("/x", Sampling(0.7, 0.8, 100), ("qwen25-coder-7b", "mlx-community/Qwen2.5"))},
        "qwen7b",
        {"max_tokens": 50},
    )


def test_thinking_sections_are_dimmed_on_a_terminal_only(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    terminal = Terminal()
    Output(terminal).write("<think>hmm</think>Answer")
    assert terminal.getvalue() == f"{DIM}<think>hmm</think>{RESET}Answer"
    plain = io.StringIO()
    Output(plain).write("<think>hmm</think>Answer")
    assert plain.getvalue() == "<think>hmm</think>Answer"


def test_commands_change_the_session_and_report(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    said = []
    s = session()
    s.messages += [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert s.sampling == {"temp": 0.7, "top_p": 0.8, "max_tokens": 50}  # flags win over the model's defaults
    assert command(s, "/set temp 0.2", said.append) and s.sampling["temp"] == 0.2 and s.overrides["temp"] == 0.2
    command(s, "/set top_p lots", said.append)
    assert (
        said[-1] == "(top_p must be a number above 0, up to 1, got 'lots'; it stays 0.8)" and s.sampling["top_p"] == 0.8
    )
    command(s, "/set colour red", said.append)
    assert said[-1].startswith("usage: /set")
    command(s, "/save", said.append)
    [saved] = tmp_path.glob("chat-qwen7b-*.md")
    assert "## You\n\nhi\n\n## qwen7b\n\nhello" in saved.read_text()
    command(s, "/system Be terse.", said.append)
    assert s.system == "Be terse." and s.messages == []
    command(s, "/save t.json --json", said.append)
    assert json.loads((tmp_path / "t.json").read_text())["messages"] == [{"role": "system", "content": "Be terse."}]
    command(s, "/model phi4", said.append)
    assert "no installed model 'phi4'" in said[-1] and s.alias == "qwen7b"
    command(s, "/stats", said.append)
    assert said[-1] == "(no reply yet)"
    assert command(s, "/quit", said.append) is False


def test_tab_offers_the_commands_of_help_and_then_model_names_or_settings():
    s = session()
    assert COMMANDS == ("/help", "/reset", "/system", "/set", "/model", "/save", "/stats", "/quit")
    assert completions(s, "/mo") == ("/mo", ["/model"])
    assert completions(s, "/s") == ("/s", ["/system", "/set", "/save", "/stats"])
    assert completions(s, "/model q") == ("q", ["qwen25-coder-7b", "qwen7b"])
    assert completions(s, "/model mlx") == ("mlx", ["mlx-community/Qwen2.5"])
    assert completions(s, "/set t") == ("t", ["temp", "top_p"])
    assert completions(s, "hello /mo")[1] == completions(s, "/save x")[1] == completions(s, "/mo\nx")[1] == []


def test_a_block_of_three_double_quotes_stays_open_until_its_closing_line():
    assert open_block('"""') and open_block('"""\none') and not open_block('"""\none\n"""')
    assert not open_block("one") and not open_block('say """')
    assert unfence('"""\none\ntwo\n"""') == "one\ntwo" and unfence('"""\n"""') == ""
    assert unfence("one\ntwo") == "one\ntwo" and unfence('"""') == '"""'


def test_one_shots_ask_a_server_only_where_one_runs_on_the_configured_port_and_answers(tmp_path):
    """No record; a live record for another port; one for this port with nothing answering: no server to ask."""
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    s = config.resolve({}, home=tmp_path, serve_port=str(port))
    assert chat.server_url(s) == ""
    s.state.mkdir(parents=True)
    for recorded in (port + 1, port):
        record = serve.Server(os.getpid(), "qwen7b", "127.0.0.1", recorded, psutil.Process().create_time())
        serve.record_path(s.state).write_text(json.dumps(asdict(record)))
        assert serve.running(s.state) == record and chat.server_url(s) == ""


@pytest.mark.slow  # the CLI or the chat runtime as a process
@pytest.mark.parametrize(
    "flag, value, words",
    [
        ("--max-tokens", "abc", "--max-tokens must be a whole number from 1 to 1000000, got 'abc'."),
        ("--max-tokens", "0", "--max-tokens must be a whole number from 1 to 1000000, got '0'."),
        ("--seed", "-1", "--seed must be a whole number from 0 to 4294967295, got '-1'."),
        (
            "--seed",
            "99999999999999999999",
            "--seed must be a whole number from 0 to 4294967295, got '99999999999999999999'.",
        ),
        ("--seed", "1.5", "--seed must be a whole number from 0 to 4294967295, got '1.5'."),
        ("--temp", "nan", "--temp must be a number from 0 to 2, got 'nan'."),
        ("--temp", "inf", "--temp must be a number from 0 to 2, got 'inf'."),
        ("--temp", "-1", "--temp must be a number from 0 to 2, got '-1'."),
        ("--temp", "hot", "--temp must be a number from 0 to 2, got 'hot'."),
        ("--top-p", "7", "--top-p must be a number above 0, up to 1, got '7'."),
        ("--top-p", "0", "--top-p must be a number above 0, up to 1, got '0'."),
    ],
)
def test_a_sampling_flag_out_of_range_is_one_sentence_before_anything_loads(home, flag, value, words):
    done = invoke("chat.ask", "hi", flag, value, home=home)  # no venv, no model: the flag is named first
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert words in done.stderr and "Fix: pass " + flag in done.stderr, done.stderr


def test_a_seed_that_is_not_a_whole_number_is_one_sentence():
    with pytest.raises(MlxTasksError, match=r"--seed must be a whole number from 0 to 4294967295, got '1\.5'\."):
        chat.Flags(seed="1.5").seed_value


def test_a_chat_caps_a_models_answer_budget_at_half_the_context_that_fits_and_says_so_once():
    """qwen3-8b on an 8 GB Mac: about 5,700 tokens of context fit, below its max_tokens of 8,192, so every reply
    would push out the whole conversation. A chat caps the reply at half the context, once per model; a one-shot,
    or a max_tokens given by a flag, is left as it is."""
    models = {
        "qwen3-8b": ChatModel("/x", Sampling(0.6, 0.95, 8192), (), 5700),
        "qwen7b": ChatModel("/y", Sampling(0.7, 0.8, 2048), (), 5700),
    }
    chat_ = Session(models, None, {}, server="http://127.0.0.1:9", keeps_history=True)
    chat_.load("qwen3-8b")
    assert chat_.sampling["max_tokens"] == 2850
    assert chat_.notices == [
        "(answers are capped at 2,850 tokens, half of the 5,700 tokens of context qwen3-8b has "
        "here, so the conversation keeps its earlier turns; /set max_tokens N to change it)"
    ]
    chat_.load("qwen7b")
    chat_.load("qwen3-8b")
    assert chat_.sampling["max_tokens"] == 2850 and len(chat_.notices) == 1  # qwen7b's 2,048 fits beside its history
    one_shot = Session(models, None, {}, server="http://127.0.0.1:9")
    one_shot.load("qwen3-8b")
    flagged = Session(models, None, {"max_tokens": 8000}, server="http://127.0.0.1:9", keeps_history=True)
    flagged.load("qwen3-8b")
    assert one_shot.sampling["max_tokens"] == 8192 and flagged.sampling["max_tokens"] == 8000
    assert one_shot.notices == flagged.notices == []


@pytest.mark.slow  # the CLI or the chat runtime as a process
def test_a_slash_command_that_fails_is_one_line_and_the_chat_goes_on(tmp_path):
    """The runtime's chat as a process, its input from a pipe: a failed /save or a refused /set costs nothing,
    and /save onto an existing file keeps it where there is no terminal to ask."""
    (tmp_path / "kept.md").write_text("mine\n")
    spec = tmp_path / "spec.json"
    spec.write_text(ChatSpec({}, None, {}, {}, server="http://127.0.0.1:9").to_json())  # no MLX is imported
    lines = ["/system Be terse.", "/save /no/such/dir/x.md", "/set max_tokens 0", "/save kept.md", "/save new.md", ""]
    done = subprocess.run(
        [sys.executable, "-m", "mlxtasks.runtime.chat", "--spec", str(spec)],
        cwd=tmp_path,
        input="\n".join(lines),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "(could not save to /no/such/dir/x.md: No such file or directory; the conversation is kept" in done.stdout
    assert "(max_tokens must be a whole number from 1 to 1000000, got '0'" in done.stdout
    assert "(kept.md exists and there is no terminal to ask about replacing it; it is kept" in done.stdout
    assert (tmp_path / "kept.md").read_text() == "mine\n"
    assert "## System\n\nBe terse." in (tmp_path / "new.md").read_text()  # the session lived on, its prompt kept


@pytest.mark.slow  # the CLI or the chat runtime as a process
def test_save_onto_an_existing_file_asks_at_a_terminal(tmp_path):
    """At a terminal (a real pty), /save onto a file asks; no keeps it, yes replaces it."""
    (tmp_path / "kept.md").write_text("mine\n")
    spec = tmp_path / "spec.json"
    spec.write_text(ChatSpec({}, None, {}, {}, server="http://127.0.0.1:9").to_json())  # no MLX is imported
    child = pexpect.spawn(
        sys.executable,
        ["-m", "mlxtasks.runtime.chat", "--spec", str(spec)],
        cwd=str(tmp_path),
        env={**os.environ, "TERM": "dumb"},
        encoding="utf-8",
        timeout=60,
    )
    child.expect(">>> ")
    child.sendline("/save kept.md")
    child.expect(r"kept.md exists. Replace it\? \[y/N\] ")
    child.sendline("n")
    child.expect(r"kept.md is kept")
    child.sendline("/save kept.md")
    child.expect(r"Replace it\? \[y/N\] ")
    child.sendline("y")
    child.expect("saved to ")
    child.sendeof()
    child.expect(pexpect.EOF)
    assert (tmp_path / "kept.md").read_text().startswith("# Chat with None")


@pytest.mark.slow  # the CLI or the chat runtime as a process
@pytest.mark.parametrize(
    "argv, stdin, words",
    [
        (["chat.ask", "-"], b"caf\xe9?\n", "The prompt on stdin is not UTF-8 text: byte 0xe9 at offset 3"),
        (["chat.ask", b"caf\xe9?"], b"", "The prompt is not UTF-8 text: byte 0xe9 at offset 3"),
        (["chat.ask", "hi", "--system", b"\xff"], b"", "--system is not UTF-8 text: byte 0xff at offset 0"),
        (["chat.ask", ""], b"", "The prompt is empty, so there is nothing to answer."),
        (["chat.ask", "-"], b" \n\n", "The prompt is empty, so there is nothing to answer."),
    ],
)
def test_a_prompt_that_is_not_utf8_or_is_empty_is_refused_before_anything_loads(home, argv, stdin, words):
    done = subprocess.run(
        [str(BIN / "invoke"), *argv], cwd=ROOT, env=clean_env(home), input=stdin, capture_output=True, timeout=60
    )
    err = done.stderr.decode()
    assert done.returncode == 1 and "Traceback" not in err and words in err and "Fix: " in err, err


@pytest.mark.slow  # the CLI or the chat runtime as a process
def test_chat_ask_dash_with_stdin_closed_says_so(home):
    done = run(["sh", "-c", f"exec {BIN / 'invoke'} chat.ask - <&-"], home)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "chat.ask - reads the prompt from stdin, which is closed." in done.stderr
