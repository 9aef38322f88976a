"""The chat's line editor in a terminal: prompt_toolkit, which `install` puts into the venv. chat.py
imports this module only there, for a terminal that can edit (not a pipe, not TERM=dumb)."""

from __future__ import annotations

import os
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import Completer, Completion
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings


class Choices(Completer):
    """Tab's choices from choices(text before the cursor) -> (the part they replace, the choices)."""

    def __init__(self, choices) -> None:
        self.choices = choices

    def get_completions(self, document, complete_event):
        typed, words = self.choices(document.text_before_cursor)
        for word in words:
            yield Completion(word, -len(typed))


def saved(path: Path | None) -> History:
    """The history file, kept across chats; in memory when there is none, it cannot be written, or it is not a
    regular file (a FIFO would hold the chat before its first prompt)."""
    if path is not None and (path.is_file() or not os.path.lexists(path)):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a"):
                return FileHistory(str(path))
        except OSError:
            pass
    return InMemoryHistory()


def editor(history: Path | None, choices, open_block):
    """read(prompt): Enter sends the text, except inside an open block (open_block(text)) where it starts
    a new line, as Alt-Enter does anywhere. A bracketed paste is inserted whole, newlines included."""
    keys = KeyBindings()

    @keys.add("enter")
    def _enter(event) -> None:
        buffer = event.current_buffer
        if open_block(buffer.text):
            buffer.insert_text("\n")
        else:
            buffer.validate_and_handle()

    @keys.add("escape", "enter")
    def _newline(event) -> None:
        event.current_buffer.insert_text("\n")

    session = PromptSession(
        history=saved(history),
        key_bindings=keys,
        multiline=True,
        prompt_continuation="... ",
        completer=Choices(choices),
        complete_while_typing=False,
    )
    return session.prompt
