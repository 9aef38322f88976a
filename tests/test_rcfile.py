"""Writing into a user's rc file: pure block functions (with properties over arbitrary text), the
safe write (backup, atomic, symlink, lock, read-only), and its faults through the real CLI, down to
uninstall's y/N question."""

import os
import stat
import subprocess
from pathlib import Path

import pexpect
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlxtasks import rcfile
from mlxtasks.errors import MlxTasksError
from mlxtasks.rcfile import END, START, apply_block, block_text, remove_block

from .support.helpers import BIN, ROOT, clean_env, invoke, run, tree

BODY = "export MLX_VENV_PATH='/v'\nalias mlx-x=true"
rc_text = st.text(alphabet=st.sampled_from(list("ab #>\t\r\n") + ["é", "\udcff"]), max_size=200).filter(
    lambda t: START not in t and END not in t
)


@given(rc_text)
@settings(max_examples=400)
def test_apply_twice_is_apply_once(text):
    once, warnings = apply_block(text, BODY)
    assert apply_block(once, BODY) == (once, warnings)


@given(rc_text)
@settings(max_examples=400)
def test_remove_after_apply_gives_back_the_original(text):
    applied, _ = apply_block(text, BODY)
    assert remove_block(applied) == text
    changed, _ = apply_block(applied, BODY + "\nalias mlx-y=true")
    assert remove_block(changed) == text


def test_block_goes_after_one_blank_line_and_a_missing_newline_is_added():
    assert apply_block("a\n", "x")[0] == "a\n\n" + block_text("x")
    assert apply_block("a", "x")[0] == "a\n" + block_text("x")
    assert apply_block("", "x")[0] == block_text("x")


def test_the_block_is_replaced_in_place():
    text = "a\n\n" + block_text("old") + "b\n"
    assert apply_block(text, "new")[0] == "a\n\n" + block_text("new") + "b\n"


def test_the_block_is_lf_in_a_crlf_file_which_gets_a_warning():
    new, warnings = apply_block("a\r\nb\r\n", "x", "/h/.zshrc")
    assert new == "a\r\nb\r\n\n" + block_text("x")
    assert remove_block(new) == "a\r\nb\r\n"
    [warning] = warnings
    assert "CRLF" in warning and warning.endswith("perl -pi -e 's/\\r$//' /h/.zshrc")
    assert apply_block("a\nb\n", "x")[1] == []


def test_a_crlf_block_an_older_version_wrote_becomes_lf_and_still_removes_to_the_original():
    old_block = block_text("x").replace("\n", "\r\n")
    for original in ["a\r\n", "a", ""]:
        applied_by_old = original + ("\r\n" if original else "") + old_block
        new, _ = apply_block(applied_by_old, "y")
        assert new == apply_block(original, "y")[0]
        assert remove_block(applied_by_old) == remove_block(new) == original


crlf_lines = st.lists(
    st.tuples(st.sampled_from(["", "a", "echo $x", "fi", "}"]), st.sampled_from(["\n", "\r\n", ""])), max_size=8
)


@given(crlf_lines)
@settings(max_examples=300)
def test_lf_crlf_and_mixed_files_keep_their_bytes_and_get_an_lf_block(lines):
    text = "".join(line + end for line, end in lines)
    applied, _ = apply_block(text, BODY)
    assert applied.startswith(text) and "\r" not in applied[len(text) :]
    assert remove_block(applied) == text


@pytest.mark.parametrize(
    "text, where",
    [
        (f"a\n{START}\nx\n", "line 2 has no"),
        (f"a\nb\n{END}\n", "line 3 has no"),
        (f"{START}\n{START}\n{END}\n", "a second"),
    ],
)
def test_a_damaged_block_is_refused_with_its_line(text, where):
    with pytest.raises(MlxTasksError) as caught:
        apply_block(text, "x")
    assert where in caught.value.message and "left as it is" in caught.value.message


def test_two_blocks_collapse_into_one_with_a_warning():
    text = "a\n\n" + block_text("one") + "mid\n\n" + block_text("two")
    new, warnings = apply_block(text, "x")
    assert new == "a\n\n" + block_text("x") + "mid\n"
    assert warnings == ["found 2 mlxtasks blocks; kept one"]


def install(path: Path, body: str = BODY, dry: bool = False, created: Path | None = None) -> rcfile.Change:
    return rcfile.update(path, lambda text: apply_block(text, body), dry=dry, created=created)


def remove(path: Path, dry: bool = False, created: Path | None = None, own_file: bool = False) -> rcfile.Change:
    return rcfile.update(path, lambda text: (remove_block(text), []), dry=dry, created=created, own_file=own_file)


def test_write_only_when_the_text_changes_with_one_backup_per_change(tmp_path):
    rc = tmp_path / ".zshrc"
    rc.write_bytes(b"export A=1\n")
    assert install(rc).modified
    backup = tmp_path / ".zshrc.mlxtasks.bak"
    assert backup.read_bytes() == b"export A=1\n"
    assert not install(rc).modified  # no change: no write, no new backup
    assert sorted(p.name for p in tmp_path.iterdir()) == [".zshrc", ".zshrc.mlxtasks.bak"]
    for n in range(5):
        install(rc, f"echo {n}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".zshrc",
        ".zshrc.mlxtasks.bak",
        ".zshrc.mlxtasks.bak.1",
        ".zshrc.mlxtasks.bak.2",
    ]
    assert "echo 3" in backup.read_text() and "echo 2" in (tmp_path / ".zshrc.mlxtasks.bak.1").read_text()


def test_mode_is_kept(tmp_path):
    rc = tmp_path / ".bashrc"
    rc.write_text("a\n")
    rc.chmod(0o600)
    install(rc)
    assert rc.stat().st_mode & 0o777 == 0o600


def test_a_symlinked_rc_stays_a_symlink_and_its_target_is_edited(tmp_path):
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    (dotfiles / "zshrc").write_text("a\n")
    rc = tmp_path / ".zshrc"
    rc.symlink_to(dotfiles / "zshrc")
    change = install(rc)
    assert rc.is_symlink() and change.target == dotfiles / "zshrc"
    assert START in (dotfiles / "zshrc").read_text()


def test_a_read_only_rc_is_left_alone(tmp_path):
    rc = tmp_path / ".zshrc"
    rc.write_text("keep me\n")
    rc.chmod(0o444)
    with pytest.raises(MlxTasksError, match="is read-only"):
        install(rc)
    assert rc.read_text() == "keep me\n" and sorted(p.name for p in tmp_path.iterdir()) == [".zshrc"]


def test_an_rc_file_of_another_users_gets_the_chown_fix_and_ones_own_the_chmod_fix(tmp_path):
    rc = tmp_path / ".zshrc"
    rc.write_text("keep me\n")
    rc.chmod(0o444)
    with pytest.raises(MlxTasksError) as own:
        install(rc)
    assert f"chmod u+w {rc}" in own.value.fix
    if os.getuid() != 0:
        pytest.skip("only root can hand a file to another user here")
    os.chown(rc, 65534, -1)  # as a sudo leaves ~/.zshrc owned by root
    with pytest.raises(MlxTasksError) as other:
        install(rc)
    assert f'sudo chown "$USER" {rc}' in other.value.fix and "chmod" not in other.value.fix


def test_dry_run_writes_nothing_and_the_diff_shows_the_block(tmp_path):
    rc = tmp_path / ".zshrc"
    rc.write_text("a\n")
    change = install(rc, dry=True)
    assert rc.read_text() == "a\n" and change.modified
    diff = rcfile.unified_diff(change.old, change.new, rc, "after shell.install")
    assert f"+{START}" in diff and diff.startswith(f"--- {rc} (now)\n+++ {rc} (after shell.install)\n")


def test_bytes_that_are_not_utf8_survive(tmp_path):
    rc = tmp_path / ".bashrc"
    original = b"export X='\xff\xfe'\r\nno final newline"
    rc.write_bytes(original)
    install(rc)
    rcfile.update(rc, lambda text: (remove_block(text), []))
    assert rc.read_bytes() == original


def test_a_file_install_created_is_deleted_by_remove_with_its_backups(tmp_path):
    rc, record = tmp_path / "home" / ".bashrc", tmp_path / "state" / "created-rc-files"
    install(rc, created=record)
    install(rc, "echo changed", created=record)  # a backup holding only the block
    assert (tmp_path / "home" / ".bashrc.mlxtasks.bak").exists()
    assert remove(rc, dry=True, created=record).deleted and rc.exists()
    change = remove(rc, created=record)
    assert change.deleted and sorted(p.name for p in rc.parent.iterdir()) == []
    assert record.read_text() == ""


def test_a_file_the_user_had_or_wrote_into_is_kept(tmp_path):
    record = tmp_path / "created-rc-files"
    theirs = tmp_path / ".bashrc"
    theirs.write_bytes(b"")
    install(theirs, created=record)
    assert not remove(theirs, created=record).deleted and theirs.read_bytes() == b""
    ours = tmp_path / ".zshrc"
    install(ours, created=record)
    ours.write_text(ours.read_text() + "export MINE=1\n")
    assert not remove(ours, created=record).deleted and ours.read_text() == "export MINE=1\n"


def test_a_file_of_our_own_goes_with_its_backups_but_not_a_backup_with_user_lines(tmp_path):
    fish = tmp_path / "mlxtasks.fish"
    install(fish)
    install(fish, "echo changed")
    (tmp_path / "mlxtasks.fish.mlxtasks.bak.1").write_text("set -g MINE 1\n")
    assert remove(fish, own_file=True).deleted
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlxtasks.fish.mlxtasks.bak.1"]


def test_a_file_another_user_owns_gets_chown_and_one_without_a_write_bit_chmod(tmp_path):
    rc = tmp_path / ".zshrc"
    problem = rcfile.read_only_problem(rc, 0o644, owner=0, uid=501, writable=False)
    assert "belongs to another user (uid 0)" in problem.message and problem.fix.startswith(
        f'make it yours: sudo chown "$USER" {rc}'
    )
    assert "chmod u+w" in rcfile.read_only_problem(rc, 0o444, owner=501, uid=501, writable=False).fix
    assert "chmod u+w" in rcfile.read_only_problem(rc, 0o444, owner=0, uid=0, writable=True).fix
    assert rcfile.read_only_problem(rc, 0o644, owner=0, uid=0, writable=True) is None


# Faults, through the real CLI in a temporary HOME: refused in a sentence with its fix, no traceback,
# nothing hangs, and the user's files exactly as they were.

PAGE = 4096


def snapshot(folder: Path) -> dict[str, object]:
    """Every entry under folder as it is: a file's bytes, a symlink's target, or its kind."""
    found: dict[str, object] = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        found[str(path.relative_to(folder))] = (
            os.readlink(path)
            if stat.S_ISLNK(info.st_mode)
            else path.read_bytes()
            if stat.S_ISREG(info.st_mode)
            else stat.S_IFMT(info.st_mode)
        )
    return found


def refused(done, *words: str) -> None:
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    assert "Fix: " in done.stderr and all(word in done.stderr for word in words), done.stderr


def device(folder: Path) -> Path:
    """A character device like /dev/null: made by the test as root, so that a bug replaces only it."""
    if os.getuid() != 0:
        return Path("/dev/null")
    path = folder / "null"
    os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    return path


@pytest.fixture
def mounted(tmp_path):
    """mount(name, options): a tmpfs at tmp_path/name, unmounted afterwards; skips where mounting is not allowed."""
    points = []

    def mount(name: str, options: str) -> Path:
        point = tmp_path / name
        point.mkdir(exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True, text=True
        )
        if done.returncode != 0:
            pytest.skip(f"needs a tmpfs mount, which is not allowed here: {done.stderr.strip()}")
        points.append(point)
        return point

    yield mount
    for point in reversed(points):
        subprocess.run(["umount", str(point)], check=True)


def fill(folder: Path, free_pages: int) -> None:
    """Fill the file system of `folder` until only `free_pages` pages are free."""
    with open(folder / "filler", "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * PAGE)
        except OSError:
            pass
        handle.truncate(os.fstat(handle.fileno()).st_size // PAGE * PAGE - free_pages * PAGE)


def make_rc(home: Path, kind: str) -> None:
    rc = home / ".bashrc"
    if kind == "fifo":
        os.mkfifo(rc)
    elif kind == "device":
        rc.symlink_to(device(home.parent))
    elif kind == "folder":
        (rc / "inside").mkdir(parents=True)
    else:
        rc.symlink_to(".bashrc")


@pytest.mark.parametrize(
    "kind, words",
    [
        ("fifo", ["is not a regular file but a FIFO", "--rc-file"]),
        ("device", ["is not a regular file but a character device", "--rc-file"]),
        ("folder", ["is not a regular file but a folder", "--rc-file"]),
        ("loop", ["Too many levels of symbolic links", "ls -l"]),
    ],
)
@pytest.mark.slow
def test_an_rc_that_is_not_a_regular_file_is_refused_before_it_is_opened(home, kind, words):
    make_rc(home, kind)
    before = snapshot(home)
    refused(invoke("shell", home=home, timeout=60), str(home / ".bashrc"), *words)
    assert snapshot(home) == before


@pytest.mark.slow
@pytest.mark.parametrize("command", [["shell.remove"], ["uninstall", "--yes"], ["setup", "--dry-run"]])
def test_a_fifo_rc_stops_every_command_that_writes_it_instead_of_hanging(home, command):
    os.mkfifo(home / ".bashrc")
    before = snapshot(home)
    refused(invoke(*command, home=home, timeout=120), "is not a regular file but a FIFO")
    assert snapshot(home) == before


@pytest.mark.slow
def test_a_device_rc_is_not_replaced_by_remove(home):
    make_rc(home, "device")
    before = snapshot(home)
    refused(invoke("shell.remove", home=home, timeout=60), "is not a regular file but a character device")
    assert snapshot(home) == before and stat.S_ISCHR(os.stat(home / ".bashrc").st_mode)


@pytest.mark.slow
def test_an_unwritable_home_is_a_sentence_with_its_fix(home, mounted):
    if os.getuid() == 0:  # root writes anywhere, but not on a read-only file system
        mounted("home", "ro")
    else:
        home.chmod(0o555)
    advice = "mounted read-only: remount it writable" if os.getuid() == 0 else f"ls -ld {home}"
    refused(invoke("shell", home=home, timeout=60), f"Cannot write {home / '.bashrc'}", advice)
    assert tree(home) == []


@pytest.mark.slow
def test_a_full_disk_while_backing_up_keeps_every_older_backup(home, mounted):
    dotfiles = mounted("dotfiles", f"size={16 * PAGE}")
    rc = dotfiles / "bashrc"
    rc.write_text("# mine\n" * 900)
    assert invoke("shell", "--rc-file", str(rc), "--shell", "bash", home=home).returncode == 0
    for n, name in enumerate(["bashrc.mlxtasks.bak", "bashrc.mlxtasks.bak.1", "bashrc.mlxtasks.bak.2"]):
        (dotfiles / name).write_text(f"good backup {n}\n")
    fill(dotfiles, free_pages=1)  # less than the new backup needs, even once the oldest is rotated out
    before = snapshot(dotfiles)
    done = invoke("shell", "--rc-file", str(rc), "--shell", "bash", "--venv", "/elsewhere", home=home)
    refused(done, f"Cannot write {rc}: No space left on device", "free some space")
    assert snapshot(dotfiles) == before


@pytest.mark.slow
def test_a_full_disk_while_writing_the_rc_leaves_it_as_it_was(home, mounted):
    dotfiles = mounted("dotfiles", f"size={16 * PAGE}")
    rc = dotfiles / "bashrc"
    rc.write_text("# mine\n" * 900)  # two pages; with the block, three
    fill(dotfiles, free_pages=2)  # room for the backup, none for the new file
    done = invoke("shell", "--rc-file", str(rc), "--shell", "bash", home=home)
    refused(done, f"Cannot write {rc}: No space left on device", "free some space")
    assert rc.read_text() == "# mine\n" * 900
    assert sorted(p.name for p in dotfiles.iterdir()) == ["bashrc", "filler"]


@pytest.mark.parametrize(
    "shell, path, command",
    [
        ("bash", ".bashrc", "shell"),
        ("fish", ".config/fish/conf.d/mlxtasks.fish", "shell.remove"),  # a file of our own, deleted
    ],
)
@pytest.mark.slow
def test_a_block_edited_by_hand_is_replaced_saying_where_the_backup_keeps_it(home, shell, path, command):
    assert invoke("shell", "--shell", shell, home=home).returncode == 0
    rc = home / path
    edited = rc.read_text().replace(END, f"export MINE=1\n{END}")
    rc.write_text(edited)
    done = invoke(command, "--shell", shell, home=home)
    assert done.returncode == 0, done.stderr
    backup = rc.with_name(rc.name + ".mlxtasks.bak")
    assert f"the block had been edited by hand; the backup keeps the edited file: {backup}" in done.stdout
    assert backup.read_text() == edited


def test_an_unedited_block_and_one_an_older_version_wrote_count_as_not_edited():
    text = "a\n\n" + block_text(BODY)
    assert not rcfile.edited_by_hand(text)
    assert rcfile.edited_by_hand(text.replace("alias mlx-x=true", "alias mlx-x=false"))
    assert not rcfile.edited_by_hand(f"{START}\n{rcfile.MANAGED}\nalias mlx-x=false\n{END}\n")


def uninstall_asks(home: Path) -> None:
    """A venv for uninstall to ask about."""
    (home / "venv-mlx").mkdir()
    (home / "venv-mlx" / "pyvenv.cfg").write_text("home = /usr/bin\n")


@pytest.mark.slow
def test_a_question_with_stdin_closed_is_the_no_terminal_answer(home):
    uninstall_asks(home)
    done = run(["sh", "-c", f"exec {BIN / 'invoke'} uninstall <&-"], home)
    refused(done, "needs a yes, and there is no terminal to ask", "invoke uninstall --yes")
    assert (home / "venv-mlx" / "pyvenv.cfg").exists()


@pytest.mark.slow
def test_ctrl_d_at_a_question_stops_with_the_flag_that_answers_it(home):
    uninstall_asks(home)
    child = pexpect.spawn(
        str(BIN / "invoke"), ["uninstall"], cwd=str(ROOT), env=clean_env(home), encoding="utf-8", timeout=120
    )
    child.expect(r"\[y/N\] ")
    child.sendeof()
    output = child.read()
    child.close()
    assert child.exitstatus == 1 and "Traceback" not in output, output
    assert "The input ended before an answer to: Delete the venv" in output and "Fix: invoke uninstall --yes" in output
    assert (home / "venv-mlx" / "pyvenv.cfg").exists()


# What an atomic write must keep, and what a failed or odd write must not cost (issue 29).

OTHER_UID, OTHER_GID = 4242, 4343  # a user and group that are not root's


@pytest.mark.slow  # the CLI as a process, or a real mount
@pytest.mark.skipif(os.getuid() != 0, reason="giving a file to another user needs root (sudo keeping HOME)")
def test_install_and_remove_as_root_keep_the_users_owner_group_and_mode(home):
    rc = home / ".bashrc"
    rc.write_text("# mine\n")
    os.chown(rc, OTHER_UID, OTHER_GID)
    rc.chmod(0o640)
    for command in ("shell.install", "shell.remove"):
        done = invoke(command, "--shell", "bash", home=home)
        assert done.returncode == 0, done.stderr
        info = rc.stat()
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (OTHER_UID, OTHER_GID, 0o640), command
    backup = rc.with_name(".bashrc.mlxtasks.bak").stat()
    assert (backup.st_uid, backup.st_gid, stat.S_IMODE(backup.st_mode)) == (OTHER_UID, OTHER_GID, 0o640)
    assert rc.read_text() == "# mine\n"


@pytest.mark.slow  # the CLI as a process, or a real mount
def test_a_hard_linked_rc_keeps_its_other_names(home):
    dotfiles = home / "dotfiles"
    dotfiles.mkdir()
    (dotfiles / "bashrc").write_text("# mine\n")
    os.link(dotfiles / "bashrc", home / ".bashrc")
    assert invoke("shell.install", "--shell", "bash", home=home).returncode == 0
    assert os.path.samefile(home / ".bashrc", dotfiles / "bashrc") and START in (dotfiles / "bashrc").read_text()
    assert invoke("shell.remove", "--shell", "bash", home=home).returncode == 0
    assert os.path.samefile(home / ".bashrc", dotfiles / "bashrc") and (dotfiles / "bashrc").read_text() == "# mine\n"


@pytest.mark.slow  # the CLI as a process, or a real mount
def test_failed_writes_on_a_full_disk_rotate_no_backup_away(home, mounted):
    dotfiles = mounted("dotfiles", f"size={16 * PAGE}")
    rc = dotfiles / "bashrc"
    rc.write_text("# mine\n" * 900)  # two pages; with the block, three
    backups = ["bashrc.mlxtasks.bak", "bashrc.mlxtasks.bak.1", "bashrc.mlxtasks.bak.2"]
    for n, name in enumerate(backups):
        (dotfiles / name).write_text(f"good backup {n}\n")
    fill(dotfiles, free_pages=3)  # room for the new backup, none left for the new file
    before = snapshot(dotfiles)
    for _ in backups:
        refused(
            invoke("shell", "--rc-file", str(rc), "--shell", "bash", home=home),
            f"Cannot write {rc}: No space left on device",
            "free some space",
        )
    assert snapshot(dotfiles) == before


def test_a_dangling_rc_symlink_makes_no_folder_outside_home(home, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    (home / ".bashrc").symlink_to(elsewhere / "deep" / "bashrc")
    refused(
        invoke("shell.install", "--shell", "bash", home=home),
        f"is a symlink to {elsewhere / 'deep' / 'bashrc'}",
        f"mkdir -p {elsewhere / 'deep'}",
    )
    assert not elsewhere.exists()


@pytest.mark.slow  # the CLI as a process, or a real mount
def test_remove_says_it_deleted_the_file_a_symlink_points_to_and_leaves_the_link(home, tmp_path):
    (tmp_path / "dotfiles").mkdir()
    target = tmp_path / "dotfiles" / "bashrc"
    (home / ".bashrc").symlink_to(target)
    assert invoke("shell.install", "--shell", "bash", home=home).returncode == 0 and target.is_file()
    done = invoke("shell.remove", "--shell", "bash", home=home)
    assert f"deleted {target}, which the symlink {home / '.bashrc'} points to" in done.stdout, done.stdout
    assert (home / ".bashrc").is_symlink() and not target.exists()


def test_a_full_state_folder_stops_install_before_the_rc_is_written(home, mounted):
    state = mounted("state", f"size={4 * PAGE}")
    fill(state, free_pages=0)
    done = invoke("shell.install", "--shell", "bash", home=home, XDG_STATE_HOME=str(state))
    refused(
        done,
        f"Cannot write {state / 'mlxtasks' / 'created-rc-files'}: No space left on device",
        f"so {home / '.bashrc'} was left as it was",
        "free some space",
    )
    assert not (home / ".bashrc").exists()


def test_an_immutable_rc_gets_the_chattr_fix_not_chmod(home):
    rc = home / ".bashrc"
    rc.write_text("# mine\n")
    if subprocess.run(["chattr", "+i", str(rc)], capture_output=True).returncode != 0:
        pytest.skip("needs chattr +i (root, on a file system with attributes)")
    try:
        refused(
            invoke("shell.install", "--shell", "bash", home=home),
            f"{rc} is locked against changes (immutable)",
            f"sudo chattr -i {rc}",
        )
    finally:
        subprocess.run(["chattr", "-i", str(rc)], check=True)
    assert rc.read_text() == "# mine\n"


def test_an_rc_on_a_read_only_mount_gets_the_remount_fix_not_chmod(home, mounted):
    dotfiles = mounted("dotfiles", "size=64k")
    (dotfiles / "bashrc").write_text("# mine\n")
    subprocess.run(["mount", "-o", "remount,ro", str(dotfiles)], check=True)
    done = invoke("shell.install", "--rc-file", str(dotfiles / "bashrc"), "--shell", "bash", home=home)
    refused(done, f"{dotfiles / 'bashrc'} is on a file system mounted read-only", "remount it writable")
    assert "chmod" not in done.stderr


@pytest.mark.parametrize("command", ["shell.install", "shell.remove"])
def test_a_damaged_block_under_shell_all_names_its_rc_file(home, command):
    (home / ".zshrc").write_text("# fine\n")
    (home / ".bashrc").write_text(f"# mine\n{START}\nalias x=y\n")
    before = snapshot(home)
    done = invoke(command, "--shell", "all", home=home)
    refused(done, f"The mlxtasks block in {home / '.bashrc'} is damaged: '{START}' at line 2 has no '{END}' after it")
    assert (home / ".bashrc").read_bytes() == before[".bashrc"]


def test_a_fish_conf_d_that_is_a_file_is_named_itself(home):
    (home / ".config" / "fish").mkdir(parents=True)
    (home / ".config" / "fish" / "conf.d").write_text("# not a folder\n")
    done = invoke("shell.install", "--shell", "fish", home=home)
    conf_d = home / ".config" / "fish" / "conf.d"
    refused(done, f"{conf_d} cannot be a folder: {conf_d} is a file.", f"move {conf_d} aside")
    assert "mlxtasks.fish" not in done.stderr
