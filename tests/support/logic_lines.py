"""How many lines of a Python file are logic: every logical line (a statement, or a compound statement's header,
however many lines the formatter spreads it over) except imports, decorators (with their help dicts),
docstrings and module-level *_HELP assignments. Task modules are held to a budget of these."""

import ast
import io
import tokenize
from pathlib import Path


def logic_lines(path: Path) -> int:
    source = path.read_text()
    tree = ast.parse(source)
    skipped: set[int] = set()

    def skip(node: ast.stmt | ast.expr) -> None:
        skipped.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))

    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            skip(node)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            for decorator in getattr(node, "decorator_list", []):
                skip(decorator)
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                skip(first)
    for node in tree.body:
        if isinstance(node, ast.Assign) and all(
            isinstance(t, ast.Name) and t.id.endswith("_HELP") for t in node.targets
        ):
            skip(node)
    ends = [
        token.start[0]
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.NEWLINE
    ]  # where each logical line ends
    return sum(1 for line in ends if line not in skipped)
