"""agent: a coding agent (Claude Code, Codex, opencode) on this machine's server, started with it if none runs."""

from collections.abc import Sequence

from invoke import Collection

from ._common import PATH_HELP, require_venv, settings, task

TASK_NAMES = ("agent", "agent.start")
OWN_OPTIONS = ("--model", "--port", "--venv", "--models")  # the task's; each takes a value


def split_command_line(words: Sequence[str]) -> tuple[list[str], list[str]]:
    """A command line (sys.argv, as typed) split into the task's words and the agent's own arguments, which
    pass through untouched (their quoting is the shell's, long gone). After `agent TOOL`, the task's options
    come first; the agent's arguments start at the first other word, or after `--`: `agent codex --model
    qwen7b exec "Say hi"`, `agent codex -- --help`."""
    words = list(words)
    start = next((i for i, word in enumerate(words[1:], 1) if word in TASK_NAMES), None)
    if start is None:
        return words, []
    tool_seen, i = False, start + 1
    while i < len(words):
        word = words[i]
        if word == "--" and tool_seen:
            return words[:i], words[i + 1 :]
        if word in OWN_OPTIONS:
            i += 2
        elif word.split("=")[0] in OWN_OPTIONS:
            i += 1
        elif not tool_seen and not word.startswith("-"):
            tool_seen, i = True, i + 1
        elif tool_seen:
            return words[:i], words[i:]
        else:
            i += 1
    return words, []


@task(
    default=True,
    positional=["tool"],
    auto_shortflags=False,
    help={
        "tool": "claude, codex or opencode; the words after it (or after --) are its own arguments, passed as given",
        "model": "the installed model it uses (default: the running server's, else mlx.default_model)",
        "port": "the server's port (default: mlx.serve_port, 8080)",
        "venv": PATH_HELP["venv"],
        "models": PATH_HELP["models"],
    },
)
def start(c, tool, model=None, port=None, venv=None, models=None):
    """Start a coding agent pointed at this machine's server (started first when none runs):
    mlxtasks agent codex exec "Say hi" (invoke needs -- before the agent's words)."""
    import sys

    from .. import agent, config, serve, ui
    from ..facts import probe

    port = None if port is None else config.port_number("--port", port)
    s = settings(c, venv=venv, models=models, serve_port=port)
    program = agent.find(tool)
    server = serve.running(s.state)
    if server is None:
        require_venv(s)
        ui.note(f"No server is running; starting one (log: {serve.log_path(s.state)})...")
        server = agent.start_server(s, model, probe())
    name = agent.model_name(s, model, server)
    ui.note(  # stderr: the agent's own output (`agent codex exec ...` in a pipe) stays alone on stdout
        f"Starting {agent.AGENTS[tool].name} with {name} at {server.url}; the server keeps running "
        f"afterwards (invoke serve.stop)."
    )
    agent.run(tool, program, server.url, name, split_command_line(sys.argv)[1])


ns = Collection("agent", start)
