"""The repository's own promises: CI fails when it tests nothing, installs every tool the tests run,
and every command line in the docs pastes into a stock zsh."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .support.helpers import NPM_TOOLS, ROOT, SYSTEM_TOOLS, TOOL_VENV
from .support.logic_lines import logic_lines

SHELL_FENCES = {"sh", "bash", "zsh", "shell", "console", "fish"}
# Interactive zsh has interactivecomments off: `cmd  # note` passes `#`, `note` on to cmd.
TRAILING_COMMENT = re.compile(r"\S\s+#(\s|$)")


def shell_lines(path: Path):
    """(line number, text) of every line inside a fenced sh/bash/zsh/... block of a Markdown file."""
    fence = None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.lstrip().startswith("```"):
            fence = line.strip()[3:].strip() if fence is None else None
        elif fence in SHELL_FENCES:
            yield number, line


def test_no_command_line_in_the_docs_ends_in_a_comment():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    found = [f"{page.relative_to(ROOT)}:{number}: {line.strip()}" for page in pages
             for number, line in shell_lines(page)
             if not line.lstrip().startswith("#") and TRAILING_COMMENT.search(line)]
    assert found == [], "\n".join(found)


def test_the_scan_sees_a_trailing_comment(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```sh\ninvoke setup --dry-run   # what would change\n# own line\n```\n"
                    "```python\nx = 1  # fine in Python\n```\n")
    assert [n for n, line in shell_lines(page) if TRAILING_COMMENT.search(line)] == [2]


def test_ci_installs_every_system_tool_the_tests_run():
    script = (ROOT / ".ci" / "run").read_text()
    assert {f"{tool}:{apt}" for tool, (apt, _) in SYSTEM_TOOLS.items()} <= set(re.findall(r"[\w-]+:[\w-]+", script))
    assert {f"{tool}:{package}" for tool, package in NPM_TOOLS.items()} <= set(re.findall(r"[\w-]+:[\w@/.-]+", script))


@pytest.fixture
def checkout_without_tests(tmp_path: Path) -> Path:
    """.ci/run, scripts/ and the Python range lib.sh reads, in a folder whose tests/ holds no test."""
    for name in [".ci/run", "scripts/test.sh", "scripts/lib.sh", "mlxtasks/data/python-versions"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tmp_path / name)
    (tmp_path / "tests").mkdir()
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options]\ntestpaths = ['tests']\n")
    (tmp_path / ".venv").symlink_to(TOOL_VENV)
    return tmp_path


@pytest.mark.slow
def test_ci_fails_when_no_test_was_collected(checkout_without_tests):
    done = subprocess.run(["bash", ".ci/run"], cwd=checkout_without_tests, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=300)
    assert done.returncode == 5, done.stdout + done.stderr
    assert "collected no tests" in done.stderr


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
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", kept], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.split()
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
    found = [f"{path.relative_to(ROOT)}: {line.strip()}" for path in sorted((ROOT / "tests").rglob("*.py"))
             if path.name != "conftest.py" for line in path.read_text().splitlines()
             if re.match(r"\s*(from\s+\S*conftest\s+import|import\s+\S*conftest)", line)]
    assert found == [], "\n".join(found)


TASK_LOGIC_BUDGET = 60


@pytest.mark.parametrize("path", sorted((ROOT / "mlxtasks" / "tasks").glob("*.py")), ids=lambda p: p.name)
def test_task_modules_stay_thin(path):
    """Tasks parse arguments, call the core and print; what grows past this belongs in a core module."""
    assert logic_lines(path) <= TASK_LOGIC_BUDGET


def test_the_logic_count_leaves_out_imports_docstrings_decorators_and_help(tmp_path):
    code = tmp_path / "x.py"
    code.write_text('"""Doc."""\nimport os\nX_HELP = {\n  "a": 1,\n}\n\n\n@task(help=X_HELP)\ndef f(c):\n'
                    '    """Doc."""\n    # a comment\n    return os.sep\n')
    assert logic_lines(code) == 2
