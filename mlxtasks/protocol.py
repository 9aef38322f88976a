"""What the tool side and the runtime side (the venv's Python) say to each other: specs in, answers out.

The only module of the tool side that the runtime side imports, so it uses the standard library only.
Each message is a frozen dataclass that goes over the boundary as JSON (a file or a line of stdout).
"""

from __future__ import annotations

import dataclasses
import ipaddress
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


# --- serve ---


@dataclasses.dataclass(frozen=True)
class ServeSpec(Message):
    """What `invoke serve` tells the server (mlxtasks.runtime.server): one model, where to listen, its limits."""

    alias: str
    model: str  # the model's folder
    names: list[str]  # what a request may call the model besides the alias: its folder name, its repo id
    host: str = "127.0.0.1"
    port: int = 8080
    allowed_origins: list[str] = dataclasses.field(default_factory=list)  # CORS; none: no page reads answers
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 2048  # a request's default
    max_body_bytes: int = 4 * 1024 * 1024
    queue_limit: int = 32  # requests waiting or generating; more get 429
    batch_size: int = 8  # streams generated together
    prefill_chunk: int = 512  # prompt tokens processed between two steps of the other streams
    prompt_caches: int = 10  # finished conversations whose cache a next request starting the same way reuses
    log_file: str = ""  # the log its output goes to: moved to .1 past log_max_bytes, and a new one started
    log_max_bytes: int = 10 * 1024 * 1024
    exit_file: str = ""  # where the server writes why it ended on a fault, for serve.status


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def host_name(header: str) -> str:
    """The name in a Host header: '127.0.0.1:8080' -> '127.0.0.1', '[::1]:8080' -> '::1', 'LocalHost' -> 'localhost'."""
    if header.startswith("["):
        return header[1:header.find("]")]
    return (header.rsplit(":", 1)[0] if header.count(":") == 1 else header).lower()
