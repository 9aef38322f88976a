"""The boundary between the tool and the runtime: the runtime imports nothing of the tool side but
protocol.py, and every spec and answer survives its trip through JSON."""

import ast
import dataclasses
import sys
import typing
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlxtasks import protocol

RUNTIME = Path(protocol.__file__).parent / "runtime"
# What the runtime may import of the tool side: the specs and answers, and how one of our processes ends
# (exits.py, standard library only, which every process of ours starts from mlxtasks/__init__.py anyway).
SHARED = ("mlxtasks.protocol", "mlxtasks.exits")


def tool_imports(path: Path, package: list[str] | None = None) -> list[str]:
    """The mlxtasks modules a runtime file imports (at module level or in a function), other than SHARED and
    mlxtasks.runtime.*. package: the file's package (where it lies under mlxtasks/, by default)."""
    package = package or ["mlxtasks", *path.parent.relative_to(RUNTIME.parent).parts]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative to the file's package
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{alias.name}" if not node.module or base == "mlxtasks" else base for alias in node.names]
        else:
            continue
        found += [
            name
            for name in names
            if name.split(".")[0] == "mlxtasks"
            and not any(name == shared or name.startswith(shared + ".") for shared in SHARED)
            and not name.startswith("mlxtasks.runtime.")
            and name != "mlxtasks.runtime"
        ]
    return found


@pytest.mark.parametrize("path", sorted(RUNTIME.rglob("*.py")), ids=lambda p: p.relative_to(RUNTIME).as_posix())
def test_the_runtime_imports_only_the_protocol_from_the_tool_side(path):
    assert tool_imports(path) == []


def test_the_import_scan_sees_relative_function_level_and_absolute_imports(tmp_path):
    code = tmp_path / "x.py"
    code.write_text(
        "from .. import bench\nfrom ..protocol import ChatSpec\nfrom . import gpu\n"
        "import mlxtasks.facts\ndef f():\n    from ..router import route\n    from ...x import y\n"
    )
    assert tool_imports(code, ["mlxtasks", "runtime"]) == ["mlxtasks.bench", "mlxtasks.facts", "mlxtasks.router"]
    assert tool_imports(code, ["mlxtasks", "runtime", "server"]) == ["mlxtasks.facts", "mlxtasks.x"]


def test_the_protocol_uses_the_standard_library_only():
    tree = ast.parse(Path(protocol.__file__).read_text())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported <= sys.stdlib_module_names, imported - sys.stdlib_module_names


# --- round trips -----------------------------------------------------------------------------------

text = st.text(max_size=20)
numbers = st.floats(allow_nan=False, allow_infinity=False)
rules = st.dictionaries(
    text,
    st.fixed_dictionaries(
        {"keywords": st.dictionaries(text, numbers, max_size=3), "models": st.lists(text, max_size=3)}
    ),
    max_size=3,
)


# Fields typed loosely (a dict of any JSON), given values of the JSON they hold.
SPECIAL = {
    "rules": rules,
    "response_format": st.none() | st.dictionaries(text, text | st.dictionaries(text, text, max_size=2), max_size=3),
}


def strategy(kind):
    """Values of a field's type, nested messages included (floats without NaN, which equals nothing)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if isinstance(kind, type) and issubclass(kind, protocol.Message):
        hints = typing.get_type_hints(kind)
        fields = {
            f.name: SPECIAL[f.name] if f.name in SPECIAL else strategy(hints[f.name]) for f in dataclasses.fields(kind)
        }
        return st.builds(kind, **fields)
    if kind is float:
        return numbers
    if origin is tuple:
        return st.lists(strategy(args[0]), max_size=3).map(tuple)
    if origin is list:
        return st.lists(strategy(args[0]), max_size=3)
    if origin is dict:
        return st.dictionaries(text, strategy(args[1]), max_size=3)
    if args:  # X | None
        return st.one_of(st.none(), *(strategy(arg) for arg in args if arg is not type(None)))
    return st.from_type(kind)


MESSAGES = [
    protocol.ChatSpec,
    protocol.BenchSpec,
    protocol.BenchAnswer,
    protocol.ClusterSpec,
    protocol.Capabilities,
    protocol.ServeSpec,
]


@pytest.mark.parametrize("kind", MESSAGES, ids=lambda k: k.__name__)
def test_every_spec_and_answer_survives_json(kind):
    @given(strategy(kind))
    def round_trip(message):
        assert kind.from_json(message.to_json()) == message

    round_trip()


def test_a_spec_with_a_missing_or_unknown_key_is_refused():
    spec = protocol.BenchSpec((protocol.BenchModel("a", "/m"),), (4,), 3, 1, 0).to_dict()
    with pytest.raises(ValueError, match="not a BenchSpec"):
        protocol.BenchSpec.from_dict({**spec, "extra": 1})
    with pytest.raises(ValueError, match="not a BenchModel"):
        protocol.BenchSpec.from_dict({**spec, "models": [{"alias": "a"}]})


def test_nested_messages_come_back_as_messages_and_lists_as_tuples():
    spec = protocol.ChatSpec.from_json(
        '{"models": {"q": {"path": "/q", "sampling": {"temp": 0.5, "top_p": 1, '
        '"max_tokens": 9}, "names": ["x"]}}, "alias": null, "overrides": {}, "rules": {}}'
    )
    assert spec.models["q"] == protocol.ChatModel("/q", protocol.Sampling(0.5, 1, 9), ("x",))
    assert spec.system is None
