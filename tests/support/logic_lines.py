"""How many lines of a Python file are logic: every line with code except imports, decorators (with their
help dicts), docstrings and module-level *_HELP assignments. Task modules are held to a budget of these."""

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
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                skip(first)
    for node in tree.body:
        if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) and t.id.endswith("_HELP") for t in node.targets):
            skip(node)
    layout = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)
    code = {line for token in tokenize.generate_tokens(io.StringIO(source).readline) if token.type not in layout
            for line in range(token.start[0], token.end[0] + 1)}
    return len(code - skipped)
