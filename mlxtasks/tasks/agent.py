"""agent: a coding agent (Claude Code, Codex, opencode) on this machine's server, started with it if none runs."""

from invoke import Collection

from ._common import PATH_HELP, require_venv, settings, task


@task(default=True, positional=["tool"], auto_shortflags=False,
      help={"tool": "claude, codex or opencode",
            "model": "the installed model it uses (default: the running server's, else mlx.default_model)",
            "port": "the server's port (default: mlx.serve_port, 8080)",
            "venv": PATH_HELP["venv"], "models": PATH_HELP["models"]})
def start(c, tool, model=None, port=None, venv=None, models=None):
    """Start a coding agent pointed at this machine's server (started first when none runs)."""
    from .. import agent, config, serve, ui
    from ..facts import probe

    port = None if port is None else config.port_number("--port", port)
    s = settings(c, venv=venv, models=models, serve_port=port)
    program = agent.find(tool)
    server = serve.running(s.state)
    if server is None:
        require_venv(s)
        ui.out(f"No server is running; starting one (log: {serve.log_path(s.state)})...")
        server = agent.start_server(s, model, probe())
    name = agent.model_name(s, model, server)
    ui.out(f"Starting {agent.AGENTS[tool].name} with {name} at {server.url}; the server keeps running "
           f"afterwards (invoke serve.stop).")
    agent.run(tool, program, server.url, name)


ns = Collection("agent", start)
