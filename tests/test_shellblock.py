"""Rendering the block: golden files per shell, quoting, validation, and which file each shell reads."""

import os
import subprocess
from pathlib import Path

import pytest

from mlxtasks import catalog, config, rcfile, shellblock, status
from mlxtasks.catalog import Model
from mlxtasks.errors import MlxTasksError

GOLDEN = Path(__file__).parent / "golden"
VENV, MODELS = Path("/home/u/venv-mlx"), Path("/home/u/workspace/mlx")
SETUP = "sh '/home/u/my mlxtasks/bootstrap.sh'"


def rendered(shell: str) -> str:
    return rcfile.block_text(shellblock.render(shell, VENV, MODELS, catalog.BUILTIN, SETUP))


@pytest.mark.parametrize("shell", shellblock.SHELLS)
def test_each_shell_renders_its_golden_block(shell):
    golden = GOLDEN / f"block.{shell}"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(rendered(shell))
    assert rendered(shell) == golden.read_text()


@pytest.mark.parametrize("shell, check", [("bash", ["bash", "-n"]), ("zsh", ["zsh", "-n"]), ("fish", ["fish", "-n"])])
def test_each_rendered_block_parses_with_empty_stderr(shell, check, tmp_path):
    path = tmp_path / f"block.{shell}"
    path.write_text(rendered(shell))
    done = subprocess.run([*check, str(path)], capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (0, "")


@pytest.mark.tools("shellcheck")
def test_the_bash_block_passes_shellcheck(tmp_path):
    path = tmp_path / "block.bash"
    path.write_text(rendered("bash"))
    done = subprocess.run(["shellcheck", "--shell=bash", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_every_catalogue_chat_model_gets_a_one_shot_and_a_chat_command_and_embedding_models_none():
    for shell in shellblock.SHELLS:
        text = rendered(shell)
        for model in catalog.BUILTIN:
            made = f"mlx-{model.alias}" in text and f"mlx-chat-{model.alias}" in text
            assert made == (model.kind == "chat"), model.alias


@pytest.mark.parametrize(
    "alias", ["x;rm -rf ~", "$(id)", "it's", 'say"hi', "two\nlines", "Upper", "-dash", "sp ace", ""]
)
def test_unsafe_aliases_are_refused(alias):
    model = Model(alias, "org/repo", "folder", 1.0, "qwen2", "code", "d")
    with pytest.raises(MlxTasksError, match="not allowed in a shell command name"):
        shellblock.render("bash", VENV, MODELS, [model])


def test_a_path_with_a_newline_is_refused():
    with pytest.raises(MlxTasksError, match="control character"):
        shellblock.render("fish", Path("/tmp/a\nb"), MODELS, [])


@pytest.mark.parametrize("shell, command", [("bash", "bash"), ("zsh", "zsh"), ("fish", "fish")])
def test_strange_paths_reach_the_shell_literally(shell, command, tmp_path):
    strange = tmp_path / "it's $(touch pwned) `x` \\ {a,b} *"
    block = tmp_path / f"block.{shell}"
    block.write_text(shellblock.render(shell, strange, strange / "models", []))
    script = f"source {shellblock.quote(shell, str(block))}; printf '%s' \"$MLX_VENV_PATH\""
    done = subprocess.run([command, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert done.stdout == str(strange), done.stderr
    assert not (tmp_path / "pwned").exists()


def test_shell_choice_follows_SHELL_or_the_flag():
    assert shellblock.shells_for("auto", "/usr/bin/zsh") == ["zsh"]
    assert shellblock.shells_for("auto", "/opt/homebrew/bin/fish") == ["fish"]
    assert shellblock.shells_for("bash", "/bin/zsh") == ["bash"]
    assert shellblock.shells_for("all", None) == ["zsh", "bash", "fish"]
    with pytest.raises(MlxTasksError, match="Cannot tell which shell"):
        shellblock.shells_for("auto", "/bin/tcsh")


def test_rc_files_per_shell_and_platform(tmp_path):
    home = tmp_path
    assert shellblock.rc_target("zsh", "darwin", home, {}).path == home / ".zshrc"
    assert shellblock.rc_target("zsh", "linux", home, {"ZDOTDIR": "/z"}).path == Path("/z/.zshrc")
    fish = shellblock.rc_target("fish", "linux", home, {})
    assert fish.path == home / ".config/fish/conf.d/mlxtasks.fish" and fish.own_file
    assert shellblock.rc_target("fish", "linux", home, {"XDG_CONFIG_HOME": "/x"}).path == Path(
        "/x/fish/conf.d/mlxtasks.fish"
    )
    assert shellblock.rc_target("bash", "linux", home, {}).path == home / ".bashrc"


def test_macos_bash_writes_the_file_login_shells_read(tmp_path):
    assert shellblock.rc_target("bash", "darwin", tmp_path, {}).path == tmp_path / ".bash_profile"
    (tmp_path / ".profile").write_text("export A=1\n")
    only_profile = shellblock.rc_target("bash", "darwin", tmp_path, {})
    assert only_profile.path == tmp_path / ".profile" and "would stop bash reading ~/.profile" in only_profile.note
    (tmp_path / ".bash_profile").write_text("")
    assert shellblock.rc_target("bash", "darwin", tmp_path, {}).path == tmp_path / ".bash_profile"


def test_the_bash_block_is_harmless_to_sh_reading_a_profile(tmp_path):
    """On a Mac the bash block may live in ~/.profile, which sh reads too."""
    path = tmp_path / "profile"
    path.write_text(rendered("bash"))
    done = subprocess.run(["sh", "-c", f". {path}; echo ${{MLX_VENV_PATH:-unset}}"], capture_output=True, text=True)
    assert (done.stdout, done.stderr) == ("unset\n", "")


@pytest.mark.parametrize("shell", shellblock.SHELLS)
@pytest.mark.parametrize(
    "original", [b"export A=1\r\necho hi\r\n", b"export A=1\r\necho hi\nexport B=2\r\n# end"], ids=["crlf", "mixed"]
)
def test_a_block_added_to_a_crlf_or_mixed_file_parses_and_removal_restores_its_bytes(shell, original, tmp_path):
    rc = tmp_path / f"rc.{shell}"
    rc.write_bytes(original.replace(b"export A=1", b"set -gx A 1") if shell == "fish" else original)
    before = rc.read_bytes()
    body = shellblock.render(shell, VENV, MODELS, catalog.BUILTIN)
    change = rcfile.update(rc, lambda text: rcfile.apply_block(text, body))
    assert "CRLF" in change.warnings[0]
    done = subprocess.run([shell, "-n", str(rc)], capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (0, "")
    rcfile.update(rc, lambda text: (rcfile.remove_block(text), []))
    assert rc.read_bytes() == before


def test_status_checks_the_rc_file_of_the_shell_the_block_runs_in(tmp_path):
    """zsh started from bash: $SHELL says bash, but the zsh block's mlx-status asks about zsh."""
    (tmp_path / ".zshrc").write_text(rendered("zsh"))
    env = {"HOME": str(tmp_path), "SHELL": "/bin/bash"}
    assert status.shell_line({**env, "MLX_SHELL": "zsh"}) == f"shell     block installed in {tmp_path / '.zshrc'}"
    assert status.shell_line(env) == (
        f"shell     no block in {tmp_path / '.bashrc'}; run: invoke shell.install --shell bash"
    )


@pytest.mark.parametrize("shell", shellblock.SHELLS)
def test_each_block_tells_the_status_its_shell_and_runs_any_task_as_mlxtasks(shell, tmp_path):
    block = tmp_path / f"block.{shell}"
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for tool, says in [("python", "MLX_SHELL=$MLX_SHELL"), ("mlxtasks", "mlxtasks $*")]:
        (venv / "bin" / tool).write_text(f'#!/bin/sh\necho "{says}"\n')
        (venv / "bin" / tool).chmod(0o755)
    block.write_text(shellblock.render(shell, venv, tmp_path / "models", []))
    aliases = "shopt -s expand_aliases\n" if shell == "bash" else ""  # bash -c: aliases as in a terminal
    done = subprocess.run(
        [shell, "-c", f"{aliases}source {block}\nmlx-status\nmlxtasks models.pull qwen7b"],
        capture_output=True,
        text=True,
        env={**os.environ, "SHELL": "/bin/sh"},
        cwd="/",
    )
    assert done.stdout == f"MLX_SHELL={shell}\nmlxtasks models.pull qwen7b\n", done.stderr


def test_an_rc_file_flag_names_one_shells_file_and_several_shells_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert shellblock.targets("bash", "my.rc", tmp_path / "home", {}) == [
        shellblock.RcTarget("bash", tmp_path / "my.rc")
    ]
    assert [t.path for t in shellblock.targets("auto", None, tmp_path, {"SHELL": "/bin/zsh"})] == [tmp_path / ".zshrc"]
    with pytest.raises(MlxTasksError, match="--rc-file needs exactly one shell") as caught:
        shellblock.targets("all", "my.rc", tmp_path, {})
    assert caught.value.fix == "add --shell zsh|bash|fish"


def test_each_change_is_told_as_a_step_line_and_what_follows_it(tmp_path):
    target = shellblock.RcTarget("bash", tmp_path / ".profile", note="wrote to ~/.profile")
    same = rcfile.Change(target.path, target.path, "a\n", "a\n")
    assert shellblock.outcome(same, target, False, "modified", "after x") == (
        "done",
        "shell (bash)",
        f"no change: {target.path}",
        ["    wrote to ~/.profile"],
    )
    change = rcfile.Change(target.path, tmp_path / "dotfiles" / "profile", "a\n", "a\nb\n", ("it was CRLF",))
    kind, name, summary, lines = shellblock.outcome(change, target, True, "modified", "after x")
    assert (kind, summary) == ("dry", f"modified {target.path}")
    assert "+b\n" in lines[0] and f"{target.path} (after x)" in lines[0]
    assert lines[1:] == ["    wrote to ~/.profile", "    it was CRLF"]
    assert shellblock.outcome(change, target, False, "removed the block from", "after x")[:3] == (
        "changed",
        "shell (bash)",
        f"removed the block from {target.path} (a symlink to {change.target})",
    )


def test_install_writes_the_settings_block_and_remove_deletes_a_file_it_created(tmp_path):
    s = config.resolve({}, home=tmp_path)
    target = shellblock.RcTarget("bash", tmp_path / ".bashrc")
    assert shellblock.install(target, s, dry=True).modified and not target.path.exists()
    assert shellblock.install(target, s, dry=False).modified
    assert target.path.read_text() == rcfile.block_text(shellblock.render("bash", s.venv, s.models, s.catalog))
    assert shellblock.remove(target, s.state, dry=False).deleted and not target.path.exists()
    assert shellblock.remove(target, s.state, dry=False) is None
