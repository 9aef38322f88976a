"""docs/quickstart.md as a new user follows it: every command of its shell blocks, word for word, in a
fresh HOME, each in a new terminal's shell (interactive bash, as a Linux terminal starts it)."""

import pexpect
import pytest

from .support.helpers import ROOT, clean_env

pytestmark = pytest.mark.e2e

QUICKSTART = ROOT / "docs" / "quickstart.md"
# The quickstart's commands this machine cannot run, and why.
NOT_HERE = {
    "git clone <this repository> mlxtasks && cd mlxtasks": "the bootstrapped fixture copies the checkout instead",
    "brew install python@3.12": "needs a Mac with Homebrew",
    "sh bootstrap.sh --yes --python /opt/homebrew/bin/python3.12": "needs a Mac with Homebrew's Python",
}
# What each command must print (the tiny stand-in model answers, but not sensibly).
SAYS = {
    "mlxtasks models.pull qwen7b": "qwen25-coder-7b",
    '~/venv-mlx/bin/python -c "import mlx.core as mx; print(mx.sum(mx.array([1, 2, 3])), mx.default_device())"': "array(6, dtype=int32) Device(cpu, 0)",
}


def commands(page):
    """Every line of the page's sh blocks, in order."""
    inside, found = False, []
    for line in page.read_text().splitlines():
        if line.strip().startswith("```"):
            inside = not inside and line.strip() == "```sh"
        elif inside and line.strip():
            found.append(line.strip())
    return found


def in_new_terminal(command, home, **env):
    """Run one command as typed into a new terminal window; a chat is left with Ctrl-D at its prompt (drawn by
    prompt_toolkit, its trailing space a cursor move; pexpect answers no cursor position request, so none is made)."""
    child = pexpect.spawn(
        "bash",
        ["-i", "-c", command],
        cwd=str(home),
        env=clean_env(home, PWD=str(home), PROMPT_TOOLKIT_NO_CPR="1", **env),
        encoding="utf-8",
        timeout=600,
        dimensions=(40, 200),
    )
    if command.startswith("mlx-chat"):
        child.expect_exact(">>>")
        child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus, child.before.replace("\r\n", "\n")


def test_every_quickstart_command_works_as_written(bootstrapped, fake_hub):
    clone, home, bootstrap = bootstrapped
    listed = commands(QUICKSTART)
    assert set(NOT_HERE) <= set(listed), "NOT_HERE names a line the quickstart no longer has"
    runnable = [command for command in listed if command not in NOT_HERE]
    assert runnable[0] == "sh bootstrap.sh --yes" and bootstrap.args == ["sh", "bootstrap.sh", "--yes"]
    assert bootstrap.returncode == 0, bootstrap.stderr
    hub = {"HF_ENDPOINT": fake_hub.url, "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    for command in runnable[1:]:
        status, output = in_new_terminal(command, home, **hub)
        assert status == 0, f"{command}\n{output}"
        assert "command not found" not in output, f"{command}\n{output}"
        assert SAYS.get(command, "") in output, f"{command}\n{output}"
