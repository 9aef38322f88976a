"""The one internal request every API's body becomes, and what the APIs share in making it: how text parts
join, which tool choice means what. No HTTP and no MLX here: web.py and the dialects (openai.py,
anthropic.py, responses.py) fill an Ask; core.py answers it."""

from __future__ import annotations

from dataclasses import dataclass, field

from .problems import invalid, refuse

PART_SEPARATOR = "\n\n"  # between the text parts (blocks) of one message, in every API
MAX_STOPS = 4
MAX_CHOICES = 8  # n times the number of prompts
MAX_INPUTS = 2048  # texts (or token lists) in one embedding request, as OpenAI allows
TEXT_ONLY = "this model reads text only"


@dataclass
class Sampling:
    """None: the served model's default (temperature, top_p) or off."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repetition_penalty: float | None = None
    logit_bias: dict[int, float] | None = None


@dataclass
class Format:
    """A structured answer: any JSON object (schema None), or JSON that matches schema; or, with tools, a call of
    one of them (its arguments matching its parameters), in the model's tool-call syntax. param: where the request
    gave it (response_format.json_schema.schema, text.format, format, tool_choice), for a refusal that names it."""

    schema: dict | None = None
    param: str = "response_format"
    tools: list[dict] | None = None


@dataclass
class Embed:
    """Texts (or token ids) to embed, from any API; dimensions: keep the first this many (None: all)."""

    model: str | None
    inputs: list[str] | list[list[int]]
    dimensions: int | None = None
    keep_alive: float | None = None
    truncate: bool = True  # an input past the model's context is cut (False: refused)


@dataclass
class Embedded:
    vectors: list[list[float]]
    prompt_tokens: int
    model: str  # the alias that answered
    load_s: float = 0.0  # seconds this request waited for the model to load


@dataclass
class Ask:
    """A chat (messages) or a text completion (prompts), from any API.

    messages: as chat templates take them ({"role", "content": str, "tool_calls"?, "tool_call_id"?, "name"?}).
    prompts: a completion's texts, or its token ids. tools: as chat templates take them ({"type": "function",
    "function": {...}}), already dropped where tool_choice is "none"."""

    model: str | None
    messages: list[dict] | None = None
    prompts: list[str] | list[list[int]] | None = None
    suffix: str | None = None
    echo: bool = False
    max_tokens: int | None = None  # None: as much as fits, up to the served model's default
    n: int = 1
    sampling: Sampling = field(default_factory=Sampling)
    stop: list[str] = field(default_factory=list)
    tools: list[dict] | None = None
    keep_alive: float | None = None  # seconds the model stays loaded after this; negative: forever
    stream: bool = False
    count_only: bool = False  # tokenize and count, generate nothing (no context limit applies)
    format: Format | None = None  # a structured answer (JSON), constrained while it is decoded
    thinking: bool | None = None  # a thinking model's template told to think or not (None: as the template does)


def joined(texts: list[str]) -> str:
    return PART_SEPARATOR.join(texts)


def stops(given: str | list[str] | None, param: str) -> list[str]:
    found = [given] if isinstance(given, str) else list(given or [])
    if len(found) > MAX_STOPS or not all(found):
        raise invalid(param, f"up to {MAX_STOPS} strings, none of them empty.")
    return found


def chosen_tools(tools: list[dict], choice: str | None, param: str = "tool_choice") -> list[dict] | None:
    """The tools the model sees for a tool choice: "auto" (or none given), "none", "required" (also a named
    tool), normalized by each API to these words."""
    if choice == "required" and not tools:
        raise invalid(param, '"required" (or a named tool) needs tools to choose from.')
    if not tools or choice == "none":
        return None
    return tools


def forced_call(
    tools: list[dict] | None, choice: str | None, name: str | None = None, param: str = "tool_choice"
) -> Format | None:
    """The structured answer a tool choice asks for: a call of one of the tools ("required"), or of the one named
    (name); None where the model may answer freely."""
    if choice != "required" or not tools:
        return None
    if name is None:
        return Format(param=param, tools=tools)
    named = [tool for tool in tools if tool["function"]["name"] == name]
    if not named:
        raise invalid(param, f"no tool is named {name!r}.")
    return Format(param=param, tools=named)


def json_format(kind: object, schema: object, param: str, schema_param: str) -> Format | None:
    """A structured answer as the APIs ask for one: type "text" (or none) for none, "json_object" for any JSON
    object, "json_schema" for JSON that matches the schema (none given: any JSON object)."""
    if kind in (None, "text"):
        return None
    if kind not in ("json_object", "json_schema"):
        raise invalid(f"{param}.type", '"text", "json_object" or "json_schema".')
    if kind == "json_object" or schema is None:
        return Format(None, param)
    if not isinstance(schema, dict):
        raise invalid(schema_param, "a JSON schema (an object).")
    return Format(schema, schema_param)


def openai_format(given: dict | None, param: str = "response_format") -> Format | None:
    """OpenAI's response_format: {"type": "json_schema", "json_schema": {"name", "schema", "strict"}} and the rest."""
    given = given or {}
    spec = given.get("json_schema")
    if spec is not None and not isinstance(spec, dict):
        raise invalid(f"{param}.json_schema", "an object with the schema in its field schema.")
    return json_format(given.get("type"), (spec or {}).get("schema"), param, f"{param}.json_schema.schema")


def answer_format(structured: Format | None, call: Format | None) -> Format | None:
    """The one constraint on an answer: a required tool call, or a structured answer (not both)."""
    if structured is not None and call is not None:
        raise refuse(structured.param, "a structured answer and a required tool call cannot be asked for at once")
    return structured or call


def text_only(param: str, kind: str):
    """The refusal of a part that is not text (an image, a document, audio)."""
    return refuse(param, f"{TEXT_ONLY} (this request has a part of type {kind!r}).")
