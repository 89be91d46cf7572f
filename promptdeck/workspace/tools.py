"""A variant's tools and structured output, as a prompt file declares them.

    tools:
      - name: get_order
        description: Look up an order by its id
        parameters: {type: object, properties: {order_id: {type: string}}, required: [order_id]}
        mock: '{"status": "{{ status }}", "order": "{{ args.order_id }}"}'
    output_schema: {type: object, properties: {reply: {type: string}}, required: [reply]}
    max_tool_rounds: 5

A tool's `mock` is a Jinja2 template in the same bounded sandbox as the prompt, rendered with
the row's variables plus `args` (the call's parsed arguments); its text is what the model gets
back as the tool's result. Nothing real is called: a prompt is tried against the answers its
tools would give, row by row.

Problems are `ToolSpecError(field, message)`; the prompt loader adds the file and the line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2

from promptdeck.errors import TemplateError
from promptdeck.model.types import Tool
from promptdeck.scoring.checks import kind_of, schema_fault
from promptdeck.workspace.sandbox import RenderLimit, compile_template, render_budget, render_text

DEFAULT_MAX_TOOL_ROUNDS = 5
MAX_TOOL_ROUNDS = 50
# What OpenAI and Anthropic both accept as a function name.
TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
TOOL_KEYS = ("name", "description", "parameters", "mock")
NO_PARAMETERS: Mapping[str, Any] = {"type": "object", "properties": {}}
# tool_choice as a prompt file may say it; OpenAI's spelling is what providers receive.
TOOL_CHOICES = ("auto", "none", "required")


class ToolSpecError(Exception):
    """A tool, a schema or a tool setting that cannot be used: `field` names where."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class ToolDef:
    """One declared tool: what the model is told (`tool`) and the `mock` template source."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    mock: str

    @property
    def tool(self) -> Tool:
        return Tool(self.name, self.description, self.parameters)


def schema_problem(value: object, field: str) -> ToolSpecError | None:
    """Why `value` (the file's `field`) is not a JSON schema PromptDeck can use, or None.
    The error's field goes down to the part of the schema at fault, so its line is right."""
    if not isinstance(value, Mapping):
        wanted = "must be a JSON schema (a mapping like {type: object, ...})"
        return ToolSpecError(field, f"{wanted}, got {kind_of(value)}")
    fault = schema_fault(value)
    if fault is None:
        return None
    inner, message = fault
    return ToolSpecError(field + inner, f"is not a valid JSON schema: {message}")


def parse_tools(value: object) -> tuple[ToolDef, ...]:
    """The `tools:` list of a variant file; ToolSpecError names the tool and its field."""
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        raise ToolSpecError("tools", f"must be a list of tools, got {kind_of(value)}")
    tools: list[ToolDef] = []
    for index, item in enumerate(value):
        where = f"tools[{index}]"
        if not isinstance(item, Mapping):
            raise ToolSpecError(
                where, f"must be a mapping {{name:, parameters:, mock:}}, got {kind_of(item)}"
            )
        for key in item:
            if key not in TOOL_KEYS:
                raise ToolSpecError(
                    f"{where}.{key}", f"unknown key. Allowed: {', '.join(TOOL_KEYS)}"
                )
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise ToolSpecError(f"{where}.name", "missing: every tool needs a name, e.g. get_order")
        if not TOOL_NAME.fullmatch(name):
            raise ToolSpecError(
                f"{where}.name",
                f"{name!r} is not a tool name: use 1-64 letters, digits, _ or - (no spaces)",
            )
        if any(tool.name == name for tool in tools):
            raise ToolSpecError(f"{where}.name", f"a tool named {name!r} is already declared")
        description = item.get("description", "")
        if not isinstance(description, str):
            raise ToolSpecError(f"{where}.description", f"must be text, got {kind_of(description)}")
        parameters = item.get("parameters", NO_PARAMETERS)
        problem = schema_problem(parameters, f"{where}.parameters")
        if problem is not None:
            raise problem
        if parameters.get("type", "object") != "object":
            raise ToolSpecError(
                f"{where}.parameters.type",
                "must be object: a tool's arguments are named (type: object, properties: ...)",
            )
        tools.append(ToolDef(name, description, dict(parameters), _mock(item.get("mock"), where)))
    return tuple(tools)


def _mock(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ToolSpecError(
            f"{where}.mock",
            "missing: a tool needs a mock, a template whose text the model gets back "
            "(it sees the row's variables and args, the call's arguments)",
        )
    try:
        compile_template(value)
    except jinja2.TemplateSyntaxError as exc:
        raise ToolSpecError(f"{where}.mock", f"template syntax error: {exc.message}") from None
    except RenderLimit as exc:
        raise ToolSpecError(f"{where}.mock", str(exc)) from None
    return value


def parse_output_schema(value: object) -> Mapping[str, Any] | None:
    if value is None:
        return None
    problem = schema_problem(value, "output_schema")
    if problem is not None:
        raise problem
    assert isinstance(value, Mapping)
    return dict(value)


def parse_max_rounds(value: object) -> int:
    if value is None:
        return DEFAULT_MAX_TOOL_ROUNDS
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOOL_ROUNDS:
        raise ToolSpecError(
            "max_tool_rounds", f"must be a whole number from 1 to {MAX_TOOL_ROUNDS}, got {value!r}"
        )
    return value


def tool_choice(value: object, tools: tuple[ToolDef, ...]) -> object:
    """`params.tool_choice` in OpenAI's spelling: auto, none, required, or a tool's name
    (which becomes {type: function, function: {name}}); ToolSpecError if it names no tool."""
    names = [tool.name for tool in tools]
    if isinstance(value, Mapping):
        function = value.get("function")
        value = function.get("name") if isinstance(function, Mapping) else None
        if not isinstance(value, str):
            raise ToolSpecError(
                "params.tool_choice", "a mapping must be {type: function, function: {name: ...}}"
            )
    if not isinstance(value, str):
        raise ToolSpecError("params.tool_choice", f"must be text, got {kind_of(value)}")
    if not tools:
        raise ToolSpecError("params.tool_choice", "the variant declares no tools: add tools:")
    if value in TOOL_CHOICES:
        return value
    if value not in names:
        allowed = ", ".join([*TOOL_CHOICES, *names])
        raise ToolSpecError("params.tool_choice", f"names no tool: {value!r}. Allowed: {allowed}")
    return {"type": "function", "function": {"name": value}}


def response_format(schema: Mapping[str, Any]) -> dict[str, Any]:
    """`output_schema` as the request's response_format (OpenAI's spelling; each provider
    translates it, and the call path lowers it for servers that refuse it)."""
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": dict(schema)}}


def render_mock(variant: str, tool: ToolDef, variables: Mapping[str, object], args: object) -> str:
    """The text a tool call gets back: its mock rendered with the row and `args`. A mock that
    fails is a TemplateError naming the variant and the tool."""
    where = f"{variant}: tool {tool.name}: mock template"
    try:
        with render_budget():
            text = render_text(compile_template(tool.mock), {**variables, "args": args})
    except RenderLimit as exc:
        raise TemplateError(f"{where}: {exc}") from None
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"{where}: {exc.message}") from None
    except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise TemplateError(f"{where}: failed to render: {exc}") from None
    return text


def parse_arguments(text: str) -> tuple[object, str | None]:
    """(the arguments as JSON, None), or (the raw text, why it is not a JSON object)."""
    try:
        value = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        shown = text if len(text) <= 80 else text[:79] + "…"
        return text, f"the arguments are not JSON ({exc.msg}): {shown!r}"
    if not isinstance(value, dict):
        return value, f"the arguments must be a JSON object, got {kind_of(value)}"
    return value, None
