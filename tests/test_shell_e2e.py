"""The block in real shells, after a real `invoke setup`, with HOME in a temporary folder."""

import shlex
import subprocess

import pexpect
import pytest

from .support.helpers import BIN, ROOT, clean_env, invoke, run, tree
from .test_serve_e2e import free_port

pytestmark = pytest.mark.e2e

COMMANDS = [
    "mlx-activate",
    "mlx-deactivate",
    "mlx-status",
    "mlx-models",
    "mlx-validate",
    "mlx-pull",
    "mlx-search",
    "mlx-serve",
    "mlx-serve-stop",
    "mlx-ps",
    "mlx-ask",
    "mlx-chat",
    "mlx-qwen7b",
    "mlx-chat-qwen7b",
    "mlx-deepseek",
    "mlx-chat-phi4",
    "mlx-mistral7b",
]
DEFINED = {
    "bash": "for n in {names}; do type -t $n; done",
    "zsh": "for n in {names}; do whence -w $n; done",
    "fish": "for n in {names}; functions -q $n; and echo $n: function; end",
}
ROUND_TRIP = {
    "bash": 'cd /tmp; mlx-activate; echo "VE=$VIRTUAL_ENV"; mlx-status; mlx-deactivate; echo "VE=${VIRTUAL_ENV:-none}"',
    "zsh": 'cd /tmp; mlx-activate; echo "VE=$VIRTUAL_ENV"; mlx-status; mlx-deactivate; echo "VE=${VIRTUAL_ENV:-none}"',
    "fish": 'cd /tmp; mlx-activate; echo "VE=$VIRTUAL_ENV"; mlx-status; mlx-deactivate; echo "VE="(set -q VIRTUAL_ENV; and echo $VIRTUAL_ENV; or echo none)',
}


def interactive(shell: str, script: str, home, **extra: str) -> str:
    """Run `script` in an interactive shell on a terminal, as a new terminal window would."""
    env = clean_env(home, TERM="dumb", **extra)
    output = pexpect.run(f"{shell} -i -c {shlex.quote(script)}", env=env, encoding="utf-8", timeout=120)
    return output.replace("\r\n", "\n")


@pytest.fixture(scope="module")
def shells_home(bootstrapped):
    """The bootstrapped HOME (setup wrote the bash block) with the zsh and fish blocks added."""
    clone, home, done = bootstrapped
    assert done.returncode == 0, done.stderr
    assert "[changed] shell (bash): modified" in done.stdout
    added = run([str(clone / ".venv" / "bin" / "invoke"), "shell", "--shell", "all"], home, cwd=clone)
    assert added.returncode == 0, added.stderr
    return home


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_every_command_exists_in_a_new_interactive_shell(shells_home, shell):
    output = interactive(shell, DEFINED[shell].format(names=" ".join(COMMANDS)), shells_home)
    kinds = {"bash": "alias", "zsh": "function", "fish": "function"}
    found = [line for line in output.splitlines() if line.strip()]
    if shell == "bash":
        assert found == ["alias"] * len(COMMANDS), output
    else:
        assert found == [f"{name}: {kinds[shell]}" for name in COMMANDS], output


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_activate_status_deactivate_from_any_folder(shells_home, shell):
    venv = shells_home / "venv-mlx"
    output = interactive(shell, ROUND_TRIP[shell], shells_home)
    assert f"VE={venv}\n" in output, output
    assert f"venv      {venv} (active)" in output
    assert "mlx       0.32.4 (backend cpu)" in output
    assert output.rstrip().endswith("VE=none"), output


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_model_commands_work_without_activation_and_say_what_is_missing(shells_home, shell):
    status = "$status" if shell == "fish" else "$?"
    output = interactive(shell, f'cd /; mlx-phi4 hello; echo "rc={status}"; mlx-models', shells_home)
    assert "phi4 is not downloaded." in output and "invoke models.pull phi4" in output
    assert "rc=1" in output
    assert "mistral7b" in output and "Models folder" not in output  # mlx-models ran the venv's mlxtasks


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_pull_then_ask_a_model_from_the_shell(shells_home, shell, fake_hub, tiny_model):
    """mlx-pull fetches from the (stand-in) hub; mlx-qwen7b "..." answers with the real, tiny model."""
    hub = {"HF_ENDPOINT": fake_hub.url, "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    output = interactive(
        shell, 'cd /; mlx-pull qwen7b && mlx-qwen7b "hello there" --max-tokens 5 > /tmp/answer', shells_home, **hub
    )
    assert "qwen25-coder-7b" in output, output
    script = (
        'mlx-qwen7b "hello there" --max-tokens 5 | wc -l; echo hi | mlx-qwen7b - --max-tokens 3 | wc -l; '
        'mlx-ask qwen25-coder-7b "hi" --max-tokens 3 | wc -l'
    )  # any installed model, by any of its names
    assert interactive(shell, script, shells_home).split() == ["1", "1", "1"]  # only the answer, on stdout


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_one_shot_answers_pipe_through_the_shell_command(shells_home, shell, fake_hub):
    hub = {"HF_ENDPOINT": fake_hub.url, "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    interactive(shell, "mlx-pull qwen7b", shells_home, **hub)
    done = subprocess.run(
        [shell, "-i", "-c", 'mlx-qwen7b --prompt "hi" --max-tokens 4 --temp 0'],
        env=clean_env(shells_home),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and done.stdout.endswith("\n")
    assert "Generation:" not in done.stdout + done.stderr  # not mlx_lm's report: the answer alone


def test_the_model_command_asks_the_running_server(shells_home, fake_hub):
    """With `mlx-serve qwen7b` up on the configured port, `mlx-qwen7b "..."` is answered by it (its log shows the
    request); --local loads the model in the shell's own process."""
    hub = {"HF_ENDPOINT": fake_hub.url, "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    interactive("bash", "mlx-pull qwen7b", shells_home, **hub)
    port = str(free_port())
    try:
        output = interactive(
            "bash",
            'cd /; mlx-serve qwen7b && mlx-qwen7b "hello there" --max-tokens 3 --verbose && '
            'mlx-qwen7b "hello there" --max-tokens 3 --verbose --local',
            shells_home,
            INVOKE_MLX_SERVE_PORT=port,
        )
    finally:
        interactive("bash", "mlx-serve-stop", shells_home)
    assert f"answered by the server at http://127.0.0.1:{port}/v1" in output and "peak memory" in output, output
    log = (shells_home / ".local" / "state" / "mlxtasks" / "serve.log").read_text()
    assert log.count("POST /v1/chat/completions 200") == 1, log


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_chat_takes_the_default_model_when_none_is_named(shells_home, shell):
    """mlx-chat with no model, or options first, opens mlx.default_model (here phi4, never pulled)."""
    script = "cd /; mlx-chat; mlx-chat --temp 0.2; mlx-chat mistral7b; mlx-chat-mistral7b --temp 0.2; mlx-ask nope hi"
    output = interactive(shell, script, shells_home, INVOKE_MLX_DEFAULT_MODEL="phi4")
    assert output.count("phi4 is not downloaded.") == 2 and output.count("mistral7b is not downloaded.") == 2, output
    assert "There is no model called 'nope'" in output, output
    usage = interactive(shell, "mlx-ask; mlx-qwen7b", shells_home)
    assert usage.count('usage: mlx-ask MODEL "question"') == 2 and "Flag" not in usage, usage


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_serve_takes_the_default_model_when_none_is_named(shells_home, shell):
    """With no model, or options first, mlx-serve serves mlx.default_model (here phi4, never pulled)."""
    script = "cd /; mlx-serve; mlx-serve --port 1; mlx-serve mistral7b --port 1; mlx-serve-stop"
    output = interactive(shell, script, shells_home, INVOKE_MLX_DEFAULT_MODEL="phi4")
    assert output.count("phi4 is not downloaded.") == 2 and "mistral7b is not downloaded." in output, output
    assert output.rstrip().endswith("No server is running."), output


def test_status_says_when_another_venv_is_active(shells_home, tmp_path):
    other = tmp_path / "other"
    subprocess.run(["python3", "-m", "venv", "--without-pip", str(other)], check=True)
    output = interactive("bash", f"source {other}/bin/activate; mlx-status", shells_home)
    assert f"(not active; another venv is: {other})" in output


def test_remove_gives_back_the_exact_bytes(home):
    original = b"# mine\r\nexport EDITOR=vim\r\nno final newline"
    (home / ".zshrc").write_bytes(original)
    assert invoke("shell", "--shell", "zsh", home=home).returncode == 0
    assert b"no final newline\n# >>> mlxtasks >>>\n" in (home / ".zshrc").read_bytes()
    done = invoke("shell.remove", home=home)
    assert done.returncode == 0, done.stderr
    assert (home / ".zshrc").read_bytes() == original


def test_fish_gets_a_file_of_its_own_that_remove_deletes(home):
    assert invoke("shell", "--shell", "fish", home=home).returncode == 0
    path = home / ".config" / "fish" / "conf.d" / "mlxtasks.fish"
    assert path.read_text().startswith("# >>> mlxtasks >>>")
    assert invoke("shell", "--shell", "fish", "--venv", str(home / "other"), home=home).returncode == 0  # a backup
    assert invoke("shell.remove", "--shell", "fish", home=home).returncode == 0
    assert list(path.parent.iterdir()) == []


def test_remove_deletes_the_bashrc_install_created_but_keeps_one_the_user_had(home):
    assert invoke("shell", home=home).returncode == 0
    dry = invoke("uninstall", "--dry-run", home=home)
    assert f"--- {home / '.bashrc'} (now)\n+++ {home / '.bashrc'} (after shell.remove)" in dry.stdout
    assert f"[would] shell (bash): deleted {home / '.bashrc'}" in dry.stdout
    done = invoke("shell.remove", home=home)
    assert f"[changed] shell (bash): deleted {home / '.bashrc'}" in done.stdout
    assert not (home / ".bashrc").exists()
    (home / ".bashrc").write_bytes(b"")
    invoke("shell", home=home)
    invoke("shell.remove", home=home)
    assert (home / ".bashrc").read_bytes() == b""


def test_a_second_install_reports_no_change_and_writes_no_backup(home):
    invoke("shell", home=home)
    done = invoke("shell", home=home)
    assert f"[done] shell (bash): no change: {home / '.bashrc'}" in done.stdout
    assert [name for name in tree(home) if not name.startswith(".local")] == [".bashrc"]


def test_dry_run_prints_a_diff_and_writes_nothing(home):
    done = invoke("shell", "--dry-run", "--shell", "zsh", home=home)
    assert done.returncode == 0
    assert "+# >>> mlxtasks >>>" in done.stdout and "+function mlx-activate" in done.stdout
    assert tree(home) == []


def test_a_missing_end_marker_is_refused_and_the_file_kept(home):
    text = "a\n# >>> mlxtasks >>>\nalias x=y\n"
    (home / ".bashrc").write_text(text)
    done = invoke("shell", home=home)
    assert done.returncode == 1
    assert "'# >>> mlxtasks >>>' at line 2 has no '# <<< mlxtasks <<<' after it" in done.stderr
    assert (home / ".bashrc").read_text() == text and tree(home) == [".bashrc"]


def test_an_unknown_shell_is_one_sentence_and_the_flag(home):
    done = invoke("shell", home=home, SHELL="/bin/tcsh")
    assert done.returncode == 1
    assert "Cannot tell which shell you use from SHELL=/bin/tcsh." in done.stderr and "--shell" in done.stderr


def test_uninstall_without_a_terminal_changes_nothing_and_with_yes_removes_the_block_and_the_venv(home):
    assert invoke("venv", home=home).returncode == 0
    (home / ".bashrc").write_text("export A=1\n")
    assert invoke("shell", home=home).returncode == 0
    with_block = (home / ".bashrc").read_text()
    models = home / "workspace" / "mlx" / "tiny"
    models.mkdir(parents=True)
    (models / "config.json").write_text("{}")

    done = invoke("uninstall", home=home)
    assert done.returncode == 1
    assert (home / ".bashrc").read_text() == with_block != "export A=1\n"  # refused before anything changed
    assert "needs a yes, and there is no terminal to ask" in done.stderr and (home / "venv-mlx").exists()

    done = invoke("uninstall", "--yes", home=home)
    assert done.returncode == 0, done.stderr
    assert (home / ".bashrc").read_text() == "export A=1\n"
    assert not (home / "venv-mlx").exists() and models.exists()  # models only with --delete-models

    assert invoke("uninstall", "--yes", "--delete-models", home=home).returncode == 0
    assert not models.exists()


def test_ten_concurrent_installs_write_exactly_one_block(home):
    (home / ".bashrc").write_text("export A=1\n")
    runs = [
        subprocess.Popen(
            [str(BIN / "invoke"), "shell"],
            cwd=ROOT,
            env=clean_env(home),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(10)
    ]
    assert [p.wait(timeout=120) for p in runs] == [0] * 10
    text = (home / ".bashrc").read_text()
    assert text.count("# >>> mlxtasks >>>") == 1 and text.count("# <<< mlxtasks <<<") == 1
    assert sorted(p.name for p in home.iterdir()) == [".bashrc", ".bashrc.mlxtasks.bak"]


@pytest.mark.parametrize("venv", ["/tmp/a\nb", "/tmp/x\rrm -rf ~"])
def test_a_path_with_a_control_character_writes_nothing(home, venv):
    (home / ".bashrc").write_text("export A=1\n")
    done = invoke("shell", "--venv", venv, home=home)
    assert done.returncode == 1 and "contains a control character" in done.stderr
    assert (home / ".bashrc").read_text() == "export A=1\n" and tree(home) == [".bashrc"]
