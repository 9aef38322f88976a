"""The chat's commands and output, without a model: everything that does not need MLX."""

import io
import json

from mlxtasks.protocol import ChatModel, Sampling
from mlxtasks.runtime.chat import DIM, RESET, Output, Session, command


class Terminal(io.StringIO):
    def isatty(self):
        return True


def session():
    return Session({"qwen7b": ChatModel("/x", Sampling(0.7, 0.8, 100))}, "qwen7b", {"max_tokens": 50})


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
