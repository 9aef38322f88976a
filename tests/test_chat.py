"""The chat's commands and output, without a model: everything that does not need MLX."""

import io
import json
import os
import socket
from dataclasses import asdict

import psutil
import pytest

from mlxtasks import chat, config, serve
from mlxtasks.errors import MlxTasksError
from mlxtasks.protocol import ChatModel, Sampling
from mlxtasks.runtime.chat import COMMANDS, DIM, RESET, Output, Session, command, completions, open_block, unfence


class Terminal(io.StringIO):
    def isatty(self):
        return True


def session():
    return Session({"qwen7b": ChatModel("/x", Sampling(0.7, 0.8, 100), ("qwen25-coder-7b", "mlx-community/Qwen2.5"))},
                   "qwen7b", {"max_tokens": 50})


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


@pytest.mark.parametrize("flags, words", [(chat.Flags(max_tokens="abc"), "--max-tokens must be a whole number, got 'abc'."),
                                          (chat.Flags(temp="hot"), "--temp must be a number, got 'hot'."),
                                          (chat.Flags(top_p="x"), "--top-p must be a number, got 'x'.")])
def test_a_sampling_flag_that_is_not_a_number_is_one_sentence(flags, words):
    with pytest.raises(MlxTasksError) as caught:
        flags.overrides()
    assert caught.value.message == words


def test_a_seed_that_is_not_a_whole_number_is_one_sentence():
    with pytest.raises(MlxTasksError, match=r"--seed must be a whole number, got '1\.5'\."):
        chat.Flags(seed="1.5").seed_value


def test_a_chat_caps_a_models_answer_budget_at_half_the_context_that_fits_and_says_so_once():
    """qwen3-8b on an 8 GB Mac: about 5,700 tokens of context fit, below its max_tokens of 8,192, so every reply
    would push out the whole conversation. A chat caps the reply at half the context, once per model; a one-shot,
    or a max_tokens given by a flag, is left as it is."""
    models = {"qwen3-8b": ChatModel("/x", Sampling(0.6, 0.95, 8192), (), 5700),
              "qwen7b": ChatModel("/y", Sampling(0.7, 0.8, 2048), (), 5700)}
    chat_ = Session(models, None, {}, server="http://127.0.0.1:9", keeps_history=True)
    chat_.load("qwen3-8b")
    assert chat_.sampling["max_tokens"] == 2850
    assert chat_.notices == ["(answers are capped at 2,850 tokens, half of the 5,700 tokens of context qwen3-8b has "
                             "here, so the conversation keeps its earlier turns; /set max_tokens N to change it)"]
    chat_.load("qwen7b")
    chat_.load("qwen3-8b")
    assert chat_.sampling["max_tokens"] == 2850 and len(chat_.notices) == 1  # qwen7b's 2,048 fits beside its history
    one_shot = Session(models, None, {}, server="http://127.0.0.1:9")
    one_shot.load("qwen3-8b")
    flagged = Session(models, None, {"max_tokens": 8000}, server="http://127.0.0.1:9", keeps_history=True)
    flagged.load("qwen3-8b")
    assert one_shot.sampling["max_tokens"] == 8192 and flagged.sampling["max_tokens"] == 8000
    assert one_shot.notices == flagged.notices == []
