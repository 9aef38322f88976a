"""The repository's own promises: CI fails when it tests nothing, installs every tool the tests run (under
CI=true only, tested with stand-in installers: no test installs anything), and every command line in the
docs pastes into a stock zsh."""

import ast
import os
import re
import shlex
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from mlxtasks import catalog
from mlxtasks.tasks import ns

from .support.helpers import NPM_TOOLS, ROOT, SYSTEM_TOOLS, TOOL_VENV
from .support.logic_lines import logic_lines

SHELL_FENCES = {"sh", "bash", "zsh", "shell", "console", "fish"}
# Interactive zsh has interactivecomments off: `cmd  # note` passes `#`, `note` on to cmd.
TRAILING_COMMENT = re.compile(r"\S\s+#(\s|$)")


def lines_in_fences(path: Path):
    """(line number, text, the language of the fenced block it is in: None outside one) of a Markdown file's
    lines, the fences themselves left out."""
    fence = None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.lstrip().startswith("```"):
            fence = line.strip()[3:].strip() if fence is None else None
        else:
            yield number, line, fence


def shell_lines(path: Path):
    """(line number, text) of every line inside a fenced sh/bash/zsh/... block of a Markdown file."""
    return ((number, line) for number, line, fence in lines_in_fences(path) if fence in SHELL_FENCES)


def test_no_command_line_in_the_docs_ends_in_a_comment():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    found = [
        f"{page.relative_to(ROOT)}:{number}: {line.strip()}"
        for page in pages
        for number, line in shell_lines(page)
        if not line.lstrip().startswith("#") and TRAILING_COMMENT.search(line)
    ]
    assert found == [], "\n".join(found)


def test_the_scan_sees_a_trailing_comment(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "```sh\ninvoke setup --dry-run   # what would change\n# own line\n```\n"
        "```python\nx = 1  # fine in Python\n```\n"
    )
    assert [n for n, line in shell_lines(page) if TRAILING_COMMENT.search(line)] == [2]


def test_ci_installs_every_system_tool_the_tests_run():
    script = (ROOT / ".ci" / "run").read_text()
    assert {f"{tool}:{apt}" for tool, (apt, _) in SYSTEM_TOOLS.items()} <= set(re.findall(r"[\w-]+:[\w-]+", script))
    assert {f"{tool}:{package}" for tool, package in NPM_TOOLS.items()} <= set(re.findall(r"[\w-]+:[\w@/.-]+", script))


def ci_step(step: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess:
    """One function of .ci/run (sourced, so nothing else of it runs), under bash with exactly this environment."""
    return subprocess.run(
        ["/bin/bash", "-c", f'source "{ROOT}/.ci/run" && {step}'],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


@pytest.fixture
def stand_ins(tmp_path: Path):
    """A PATH folder of stand-ins, each recording its command line (and DEBIAN_FRONTEND) in a log: the
    installers CI calls, and any commands to count as installed. Returns (make, read the log)."""
    folder, log = tmp_path / "bin", tmp_path / "calls.log"
    folder.mkdir()

    def make(*names: str, status: int = 0) -> Path:
        for name in names:
            (folder / name).write_text(
                f'#!/bin/sh\necho "${{DEBIAN_FRONTEND:-}}|{name} $*" >> "{log}"\nexit {status}\n'
            )
            (folder / name).chmod(0o755)
        return folder

    return make, lambda: log.read_text().splitlines() if log.exists() else []


def test_ci_installs_each_missing_tool_with_apt_get_and_npm(stand_ins):
    make, calls = stand_ins
    done = ci_step("install_missing_tools", PATH=str(make("apt-get", "npm")), CI="true")
    assert done.returncode == 0, done.stderr
    apt = " ".join(package for package, _ in SYSTEM_TOOLS.values())
    assert calls() == [
        "|apt-get update -qq",
        f"noninteractive|apt-get install -y -qq {apt}",
        *(f"|npm install -g --silent {package}" for package in NPM_TOOLS.values()),
    ]


def test_ci_installs_nothing_that_is_there(stand_ins):
    make, calls = stand_ins
    make(*SYSTEM_TOOLS, *NPM_TOOLS)
    done = ci_step("install_missing_tools", PATH=str(make("apt-get", "npm")), CI="true")
    assert done.returncode == 0 and calls() == [], done.stderr  # no installer, and no tool, was run


def test_ci_stops_when_an_install_fails(stand_ins):
    make, calls = stand_ins
    make("npm")
    done = ci_step("install_missing_tools", PATH=str(make("apt-get", status=100)), CI="true")
    assert done.returncode == 1
    assert calls() == ["|apt-get update -qq"]


def test_outside_ci_nothing_is_installed_and_the_missing_tools_are_named(stand_ins):
    make, calls = stand_ins
    done = ci_step("install_missing_tools", PATH=str(make("apt-get", "npm", "zsh")))
    assert done.returncode == 0 and calls() == []
    assert "Not installing fish shellcheck" in done.stderr and " zsh" not in done.stderr
    assert "@openai/codex" in done.stderr


@pytest.mark.slow
def test_ci_fails_a_run_that_collected_no_test(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options]\ntestpaths = ['tests']\n")
    done = ci_step(
        f'tests_must_run "{sys.executable}" -m pytest -p no:cacheprovider', cwd=tmp_path, PATH=os.environ["PATH"]
    )
    assert done.returncode == 5, done.stdout + done.stderr
    assert "collected no tests (exit 5): a run that tests nothing fails." in done.stderr


@pytest.mark.parametrize("command, status", [("true", 0), ("false", 1), ("exit 3", 3)])
def test_ci_keeps_every_other_status_as_it_is(command, status):
    done = ci_step(f"tests_must_run bash -c '{command}'", PATH=os.environ["PATH"])
    assert done.returncode == status and done.stderr == ""


def test_ci_installs_then_runs_the_readme_s_test_command_and_stops_when_an_install_fails():
    steps = 'tests_must_run() { echo "tests $*"; }; '
    done = ci_step(steps + "install_missing_tools() { echo install; }; main", PATH=os.environ["PATH"])
    assert (done.returncode, done.stdout) == (0, "install\ntests sh scripts/test.sh -p no:cacheprovider\n")
    done = ci_step(steps + "install_missing_tools() { return 1; }; main", PATH=os.environ["PATH"])
    assert (done.returncode, done.stdout) == (1, "")


def _cuda_bench():
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import cuda_bench

    return cuda_bench


def test_the_kept_gpu_run_is_committed_and_the_doc_shows_what_it_renders():
    # Issue 15: the doc's GPU figures were once made from a file that was never committed.
    cuda_bench = _cuda_bench()
    kept = cuda_bench.KEPT.relative_to(ROOT).as_posix()
    # What a clone holds: tracked files, and new ones git does not ignore (the file was once ignored).
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", kept], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert cuda_bench.KEPT.is_file() and listed == [kept], f"{kept} is missing or ignored, so a clone cannot render it"
    doc = (ROOT / "docs" / "performance.md").read_text()
    section = "\n".join(cuda_bench.section()) + "\n"
    assert doc.endswith(section), "docs/performance.md's CUDA section is stale: run benchmarks/run.py --cuda-section"
    import serve_bench

    assert "\n".join(serve_bench.FINDINGS) + "\n" + section in doc, "the profile's account is stale: the same command"


def test_rendering_without_the_kept_gpu_run_fails_loudly(tmp_path):
    with pytest.raises(FileNotFoundError, match="kept GPU run"):
        _cuda_bench().section(tmp_path / "cuda-gone.json")


def test_test_modules_import_helpers_from_support_never_from_conftest():
    # conftest.py holds fixtures and hooks; importing it as a module ties a test to how pytest loads it.
    found = [
        f"{path.relative_to(ROOT)}: {line.strip()}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if path.name != "conftest.py"
        for line in path.read_text().splitlines()
        if re.match(r"\s*(from\s+\S*conftest\s+import|import\s+\S*conftest)", line)
    ]
    assert found == [], "\n".join(found)


TASK_LOGIC_BUDGET = 60


@pytest.mark.parametrize("path", sorted((ROOT / "mlxtasks" / "tasks").glob("*.py")), ids=lambda p: p.name)
def test_task_modules_stay_thin(path):
    """Tasks parse arguments, call the core and print; what grows past this belongs in a core module."""
    assert logic_lines(path) <= TASK_LOGIC_BUDGET


def test_the_logic_count_leaves_out_imports_docstrings_decorators_and_help(tmp_path):
    code = tmp_path / "x.py"
    code.write_text(
        '"""Doc."""\nimport os\nX_HELP = {\n  "a": 1,\n}\n\n\n@task(help=X_HELP)\ndef f(c):\n'
        '    """Doc."""\n    # a comment\n    return os.sep\n'
    )
    assert logic_lines(code) == 2


def _loads_mlx_at_main(path: Path) -> bool:
    source = path.read_text()
    return 'if __name__ == "__main__":' in source and re.search(r"^\s*(import mlx|from mlx)", source, re.M) is not None


@pytest.mark.parametrize(
    "path",
    [
        p
        for p in sorted((ROOT / "mlxtasks" / "runtime").rglob("*.py"))
        if _loads_mlx_at_main(p) or p.name == "__main__.py"
    ],  # the server's loads it later
    ids=lambda p: p.relative_to(ROOT / "mlxtasks" / "runtime").as_posix(),
)
def test_each_runtime_entry_point_sets_the_kernel_cache_before_anything_else(path):
    # Importing mlxtasks.runtime changes nothing (tests/test_gpu.py); the entry point makes the call.
    main = next(
        node for node in ast.parse(path.read_text()).body if isinstance(node, ast.FunctionDef) and node.name == "main"
    )
    first = main.body[0]
    assert isinstance(first, ast.Expr) and ast.unparse(first) == "gpu.use_kernel_cache()", ast.unparse(first)


def module_tree(page: Path) -> set[str]:
    """The paths the module tree of docs/architecture.md's "Layers" names, relative to mlxtasks/: the first
    column of each entry (several names may share one), a 4-space entry inside the folder named above it."""
    block = page.read_text().split("## Layers", 1)[1].split("```", 2)[1]
    names, folder, inside = set(), "", False
    for line in block.splitlines():
        inside = inside or line == "mlxtasks/"
        entry = re.match(r"( {2}| {4})(\S+(?: \S+)*)", line) if inside else None
        if inside and not line.startswith(" ") and line != "mlxtasks/":
            break
        if entry:
            depth, first = entry.groups()
            for name in first.split():
                folder = name if depth == "  " and name.endswith("/") else folder
                names.add(name if depth == "  " else folder + name)
    return names


def test_the_architecture_page_names_every_module_and_no_module_that_is_gone():
    names = module_tree(ROOT / "docs" / "architecture.md")
    modules = {path.relative_to(ROOT / "mlxtasks").as_posix() for path in (ROOT / "mlxtasks").rglob("*.py")}
    assert sorted(modules - names - {m for m in modules if m.endswith("__init__.py")}) == [], "missing from the tree"
    assert sorted(name for name in names if name.endswith(".py") and name not in modules) == [], "gone from the code"


def test_the_tree_reader_sees_names_in_folders_and_shared_lines(tmp_path):
    page = tmp_path / "a.md"
    page.write_text(
        "## Layers\n\n```\ntasks.py   x\nmlxtasks/\n  a.py b.py      what\n                 more a.py\n"
        "  sub/           folder\n    c.py         in sub\n  d.py\nshell/   y\n  e.py\n```\n"
    )
    assert module_tree(page) == {"a.py", "b.py", "sub/", "sub/c.py", "d.py"}


def test_the_docs_cite_nothing_outside_the_repository():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    found = [
        f"{page.relative_to(ROOT)}: {hit}"
        for page in pages
        for hit in re.findall(r"(?<![\w.])(?:shared/\S+|/work/\S+)", page.read_text())
    ]
    assert found == [], "\n".join(found)


def test_the_logic_count_is_the_same_however_the_formatter_wraps_a_statement(tmp_path):
    one, wrapped = tmp_path / "one.py", tmp_path / "wrapped.py"
    one.write_text("def f(c, a=1, b=2):\n    return g(a, b, c)\n")
    wrapped.write_text(
        "def f(\n    c,\n    a=1,\n    b=2,\n):\n    return g(\n        a,\n        b,\n        c,\n    )\n"
    )
    assert logic_lines(one) == logic_lines(wrapped) == 2


def tool_env_sh(script: str, root: Path, **env: str) -> subprocess.CompletedProcess:
    """Run script after sourcing scripts/lib.sh with root as the checkout, as scripts/test.sh does."""
    versions = root / "mlxtasks" / "data" / "python-versions"  # lib.sh reads the supported range there
    versions.parent.mkdir(parents=True, exist_ok=True)
    versions.write_text((ROOT / "mlxtasks" / "data" / "python-versions").read_text())
    return subprocess.run(
        ["/bin/sh", "-c", f'set -eu; root="{root}"; . "{ROOT}/scripts/lib.sh"; {script}'],
        env={"PATH": os.environ["PATH"], "HOME": str(root), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_tool_environment_is_ready_when_its_modules_are_found_without_importing_them(tmp_path):
    (tmp_path / "loud.py").write_text("raise SystemExit('imported')\n")  # finding it must not run it
    found = tool_env_sh(
        f'modules_found "{sys.executable}" "json, loud"; echo found', tmp_path, PYTHONPATH=str(tmp_path)
    )
    assert found.stdout == "found\n", found.stderr
    missing = tool_env_sh(f'modules_found "{sys.executable}" "json, no_such_module" || echo missing', tmp_path)
    assert missing.stdout == "missing\n"


def test_a_ready_tool_environment_is_used_without_looking_for_a_python(tmp_path):
    (tmp_path / ".venv").symlink_to(TOOL_VENV)  # this run's environment holds the [test] extra
    # Looking for a Python (pyenv's shims made it take seconds) would say so and fail.
    done = tool_env_sh("find_python() { echo looked; return 1; }; ensure_test_env; echo ready", tmp_path)
    assert done.stdout == "ready\n", done.stdout + done.stderr
    assert "Installing" not in done.stderr and "Making" not in done.stderr


def test_a_run_of_some_benchmarks_replaces_their_rows_by_place_and_keeps_the_rest(tmp_path, monkeypatch):
    _cuda_bench()  # benchmarks/ on the path
    import run
    from harness import Result

    doc = tmp_path / "performance.md"
    doc.write_text(
        "# Performance\n\n| Benchmark | Figure | Target | Held |\n|---|---|---|---|\n| Old A | 1 | t | yes |\n"
        "| B | 2 | t | yes |\n\n## Notes and raw numbers (seconds)\n\n### a\n\n- Raw: x=1.000\n\n### b\n\n"
        "- Raw: y=2.000\n\n## Where the server's time per token went (issue 26)\n\nkept\n"
    )
    monkeypatch.setattr(run, "DOC", doc)
    run.update_doc(
        {"a": Result("New A", "10", "t", False, {"x": 3.0}, ()), "c": Result("C", "5", "t", True, {"z": 4.0}, ())},
        datetime(2026, 12, 7, 21, 0),
    )
    text = doc.read_text()
    assert "| New A | 10 | t | no |\n| B | 2 | t | yes |\n| C | 5 | t | yes |\n" in text and "Old A" not in text
    assert (
        text.index("### a")
        < text.index("x=3.000")
        < text.index("### b")
        < text.index("### c")
        < text.index("z=4.000")
        < text.index("## Where the server's")
        and "x=1.000" not in text
    )


# --- What the docs tell a user to type exists (issue 28's walk of every page) -----------------------------

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PROGRAMS = {"invoke", "mlxtasks", ".venv/bin/invoke", "~/venv-mlx/bin/mlxtasks"}
PLACEHOLDER = re.compile(
    r"^(--?)?([A-Z][A-Z_.]*|.*\.\.\..*|.*<.*>.*|.*\*.*|\[.*\])$"
)  # TASK, ..., <name>, cluster.*, [options]
ENDS = {"|", "||", "&&", ";", ">", ">>", "<", "2>&1", "2>/dev/null"}
BLOCK_COMMANDS = {
    "activate",
    "deactivate",
    "status",
    "models",
    "validate",
    "pull",
    "search",
    "serve",
    "serve-stop",
    "ps",
    "ask",
    "chat",
}
MLX_PACKAGES = {"lm", "metal", "cpu", "cuda-12", "cuda-13"}  # mlx-lm and friends, named where packages are


def code_texts(path: Path):
    """(line number, text) of every inline code span and every line of a fenced shell block."""
    for number, line, fence in lines_in_fences(path):
        if fence in SHELL_FENCES:
            yield number, line
        elif fence is None:
            for span in re.findall(r"`([^`]+)`", line.replace("\\|", "|")):
                yield number, span


def commands(text: str):
    """The words of each command in a piece of code (split at |, &&, ; and redirections)."""
    try:
        words = shlex.split(text)
    except ValueError:  # a span that is part of a command
        words = text.split()
    command: list[str] = []
    for word in [*words, "|"]:
        if word.rstrip(";") != word:
            command.append(word.rstrip(";"))
            word = ";"
        if word in ENDS:
            if command:
                yield command
            command = []
        elif command or not re.fullmatch(r"\w+=.*", word):  # leading VAR=value assignments are not the command
            command.append(word)


def documented(program_words: bool):
    """(where, words) of every command in the docs that runs a task (program_words) or a shell-block command."""
    for page in PAGES:
        for number, text in code_texts(page):
            for words in commands(text):
                if (words[0] in PROGRAMS) == program_words and (program_words or words[0].startswith("mlx-")):
                    yield f"{page.relative_to(ROOT)}:{number}", words


def parsed(words: list[str]):
    """Invoke's parse of a documented command line (as `mlxtasks` parses it: an agent's own words left out),
    the collection mounted as mlx. read as ours; None for a line with a placeholder in a task's place."""
    from invoke import Program
    from invoke.parser import Parser

    from mlxtasks.tasks.agent import split_command_line

    contexts = ns.to_contexts()
    takes_value = {flag for context in contexts for flag in context.flags if context.flags[flag].takes_value}
    typed = split_command_line(words)[0][1:]
    ours = [
        word.removeprefix("mlx.")
        for before, word in zip(["", *typed], typed, strict=False)
        if word != "..." or before in takes_value
    ]  # `...`: more words, or an option's value
    if not ours or PLACEHOLDER.match(ours[0]) or re.fullmatch(r"[\d.]+", ours[0]):  # `invoke 3.0.3`: a package
        return None
    ours = ["X" if PLACEHOLDER.match(word) and not word.startswith("-") else word for word in ours]
    initial = Program(namespace=ns).initial_context
    return [task for task in Parser(initial=initial, contexts=contexts).parse_argv(ours) if task.name]


@pytest.mark.slow  # every command line of the docs through Invoke's parser: seconds
def test_every_command_in_the_docs_parses_as_the_tool_reads_it():
    """Each task exists, with the options given, and its positional arguments are there."""
    from invoke.exceptions import ParseError

    found = []
    for where, words in documented(program_words=True):
        try:
            parsed(words)
        except ParseError as err:  # `invoke serve` in a sentence names the task: its arguments may be left out
            if "did not receive required positional arguments" not in str(err):
                found.append(f"{where}: {' '.join(words)}: {err}")
    assert found == [], "\n".join(found)


@pytest.mark.slow  # every command line of the docs through Invoke's parser: seconds
def test_every_model_the_docs_hand_a_task_or_run_as_mlx_alias_is_in_the_catalogue():
    from invoke.exceptions import ParseError

    known = {name for model in catalog.BUILTIN for name in (model.alias, *model.also, model.folder, model.repo)}
    known |= {"default", "auto", "none", "all"}
    known |= {
        repo.split("/")[1].lower()
        for _, words in documented(program_words=True)
        for repo in words
        if re.fullmatch(r"[\w.-]+/[\w.-]+", repo)
    }  # a model pulled by repo id is named after its folder
    found = []
    for where, words in documented(program_words=True):
        try:
            contexts = parsed(words) or []
        except ParseError:
            continue  # the test above names it
        for context in contexts:
            model = context.args["model"].value if "model" in context.args else None
            for name in model if isinstance(model, list) else [model]:
                if name and name not in known and "/" not in name and not PLACEHOLDER.match(name):
                    found.append(f"{where}: {' '.join(words)}: {name}")
    for where, words in documented(program_words=False):
        alias = words[0].removeprefix("mlx-").removeprefix("chat-")
        if (
            alias not in known | BLOCK_COMMANDS | MLX_PACKAGES
            and not PLACEHOLDER.match(alias)
            and not alias.startswith("lm.")
        ):  # mlx-lm.import: a check's name
            found.append(f"{where}: {words[0]}")
    for page in PAGES:  # what the model tables in the YAML examples send names to
        for number, line in enumerate(page.read_text().splitlines(), 1):
            target = re.match(r'\s+("[^"]+"|default_model):\s*([\w.-]+)\s*$', line)
            if target and target[2] not in known:
                found.append(f"{page.relative_to(ROOT)}:{number}: {target[2]}")
    assert found == [], "\n".join(found)


def test_no_command_in_the_docs_names_one_mac_users_home():
    found = [
        f"{page.relative_to(ROOT)}:{number}: {text.strip()}"
        for page in PAGES
        for number, text in code_texts(page)
        if "/Users/" in text
    ]
    assert found == [], "\n".join(found)


def test_the_docs_scan_reads_spans_fences_and_the_words_of_each_command(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        'Run `invoke models.verify qwen7b` or `X=1 mlxtasks chat.ask "- hi" --model phi4 | head -c 5`.\n'
        "```sh\ninvoke --dry setup --yes && mlx-qwen7b hi; mlx-status\n```\n```\nnot a command: invoke x\n```\n"
    )
    found = [words for _, text in code_texts(page) for words in commands(text)]
    assert found == [
        ["invoke", "models.verify", "qwen7b"],
        ["mlxtasks", "chat.ask", "- hi", "--model", "phi4"],
        ["head", "-c", "5"],
        ["invoke", "--dry", "setup", "--yes"],
        ["mlx-qwen7b", "hi"],
        ["mlx-status"],
    ]
    assert [c.name for c in parsed(["invoke", "--dry", "mlx.setup", "--yes", "models.verify", "qwen7b"])] == [
        "setup",
        "models.verify",
    ]


def test_a_short_flag_the_docs_pair_with_a_long_one_means_it():
    """`--venv PATH`, `-e` in an options table: -e is --venv's short form in the tasks that have it."""
    contexts = ns.to_contexts()
    found = []
    for page in PAGES:
        for number, line in enumerate(page.read_text().splitlines(), 1):
            for long, short in re.findall(r"`(--[a-z-]+)[^`]*`, `(-[a-zA-Z])`", line):
                if not any(long in c.flags and short in c.flags and c.flags[long] is c.flags[short] for c in contexts):
                    found.append(f"{page.relative_to(ROOT)}:{number}: {short} is not {long}")
    assert found == [], "\n".join(found)
