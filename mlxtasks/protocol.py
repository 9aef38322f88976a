"""What the tool side and the runtime side (the venv's Python) say to each other: specs in, answers out.

The only module of the tool side that the runtime side imports, so it uses the standard library only.
Each message is a frozen dataclass that goes over the boundary as JSON (a file or a line of stdout).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, TypeVar

M = TypeVar("M", bound="Message")


@dataclasses.dataclass(frozen=True)
class Message:
    """The JSON round trip every spec and answer shares."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls: type[M], data: dict[str, Any]) -> M:
        """Build from decoded JSON; a missing or unknown key is a ValueError, not a silent default."""
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        if not isinstance(data, dict) or not required <= set(data) or not set(data) <= names:
            raise ValueError(f"not a {cls.__name__}: {data!r:.200}")
        return cls(**data)

    @classmethod
    def from_json(cls: type[M], text: str) -> M:
        return cls.from_dict(json.loads(text))

    def write(self, path: Path) -> None:
        path.write_text(self.to_json())

    @classmethod
    def read(cls: type[M], path: Path) -> M:
        return cls.from_json(Path(path).read_text())


# --- probe ---

@dataclasses.dataclass(frozen=True)
class ProbeSpec(Message):
    """What validate asks the venv's Python (runtime/probe.py): the answers of these check groups (of mlx,
    accelerator, mlx-lm), and a load and a short generation with each model folder (--deep)."""

    groups: list[str]
    models: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class ProbeAnswer(Message):
    """MLX's answers by group name or model folder ({"crashed": cause} where asking raised), judged on the
    tool side, and the seconds each took."""

    answers: dict[str, dict[str, Any]]
    seconds: dict[str, float]
