"""Tools, structured output and tool checks, between PromptDeck and promptfoo.

    PromptDeck                           promptfoo
    tools: [{name, description,          provider config.tools, OpenAI's shape
             parameters, mock}]            [{type: function, function: {name, description,
                                           parameters}}] (Anthropic's {name, input_schema}
                                           is read too)
    params.tool_choice                   config.tool_choice (OpenAI's spelling)
    output_schema                        config.response_format {type: json_schema, ...};
                                           config.output_format on promptfoo's anthropic provider
    tool_args_valid                      is-valid-openai-tools-call
    tool_called / no_tool_called         a javascript assertion PromptDeck writes over the
                                           tool calls in promptfoo's output; read back, as are
                                           trajectory:tool-used, trajectory:tool-args-match and
                                           not-trajectory:tool-used

What has no counterpart: a promptfoo tool has no mock (PromptDeck gives it one that says so,
and the import lists it to complete); PromptDeck's mocks have no place in promptfoo, whose
chat providers run no tool rounds (their `functionToolCallbacks` run JavaScript and its
result becomes the answer), so a promptfoo test ends at the model's first tool calls.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from promptdeck.workspace.tools import (
    ToolDef,
    ToolSpecError,
    parse_tools,
    response_format,
    schema_problem,
)

Report = Callable[[str, str], None]

MOCKS_NOT_EXPORTED = (
    "the mock is not exported: promptfoo has no mocked tool results (functionToolCallbacks run "
    "JavaScript and their result becomes the answer), so a promptfoo test ends at the model's "
    "first tool calls"
)
TOOLS_CALL_DIFFERS = (
    "promptfoo's is-valid-openai-tools-call also fails an answer that calls no tool, which "
    "PromptDeck's tool_args_valid passes"
)


def mock_placeholder(name: str) -> str:
    """The mock an imported tool gets: promptfoo has none, and the text says so."""
    return json.dumps({"note": f"no mock for {name}: edit this template"})


# --- provider config -> variant -------------------------------------------------------------


def tools_from_config(raw: object, where: str, report: Report) -> list[dict[str, Any]]:
    """The `tools:` of a variant for a promptfoo provider's `config.tools`; each imported tool
    is reported too, as its mock is a placeholder to complete."""
    if isinstance(raw, str):
        report(where, "tools from a file are not supported; not imported")
        return []
    if not isinstance(raw, list):
        report(where, "must be a list of tools; not imported")
        return []
    tools: list[dict[str, Any]] = []
    for index, item in enumerate(raw):
        at = f"{where}[{index}]"
        tool = _tool(item, at, report)
        if tool is None:
            continue
        try:
            parse_tools([*tools, tool])  # the name's shape, its uniqueness, the schema
        except ToolSpecError as exc:
            field = exc.field.partition(".")[2] or "tool"
            report(at, f"{field}: {exc.message}; tool not imported")
            continue
        tools.append(tool)
        report(
            at,
            f"{tool['name']} has no mock in promptfoo: its mock is a placeholder that says so; "
            "write what the tool should return",
        )
    return tools


def _tool(item: object, at: str, report: Report) -> dict[str, Any] | None:
    if not isinstance(item, Mapping):
        report(at, "a tool is a mapping {type: function, function: {...}}; not imported")
        return None
    if item.get("type") == "function" and isinstance(item.get("function"), Mapping):
        spec, schema_key, known = item["function"], "parameters", ("name", "description")
        for key in item:
            if key not in ("type", "function"):
                report(f"{at}.{key}", "not supported by PromptDeck; ignored")
        at = f"{at}.function"
    elif "type" not in item and "input_schema" in item:  # Anthropic's own shape
        spec, schema_key, known = item, "input_schema", ("name", "description")
    else:
        report(at, "only function tools can be imported (type: function)")
        return None
    for key in spec:
        if key == "strict":
            report(f"{at}.strict", "PromptDeck sends the schema without strict; not kept")
        elif key not in (*known, schema_key):
            report(f"{at}.{key}", "not supported by PromptDeck; ignored")
    tool: dict[str, Any] = {"name": spec.get("name")}
    if spec.get("description") is not None:
        tool["description"] = spec["description"]
    if spec.get(schema_key) is not None:
        tool["parameters"] = spec[schema_key]
    tool["mock"] = mock_placeholder(str(spec.get("name")))
    return tool


_ANTHROPIC_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


def tool_choice_from_config(value: object) -> object:
    """`params.tool_choice` for promptfoo's `config.tool_choice`: OpenAI's spelling as it is,
    Anthropic's ({type: any}, {type: tool, name}) in OpenAI's."""
    if isinstance(value, Mapping) and "function" not in value:
        kind = value.get("type")
        if kind in _ANTHROPIC_CHOICES:
            return _ANTHROPIC_CHOICES[str(kind)]
        if kind == "tool" and isinstance(value.get("name"), str):
            return {"type": "function", "function": {"name": value["name"]}}
    return value


def output_schema_from_config(
    key: str, value: object, where: str, report: Report
) -> dict[str, Any] | None:
    """The `output_schema` a `response_format` / `output_format` of type json_schema asks
    for, or None (reported) when there is none PromptDeck can use."""
    if not isinstance(value, Mapping):
        report(where, f"a {key} from a file is not supported; not imported")
        return None
    wrapper = value.get("json_schema") if key == "response_format" else value
    schema = wrapper.get("schema") if isinstance(wrapper, Mapping) else None
    inner = "json_schema." if key == "response_format" else ""
    problem = schema_problem(schema, f"{inner}schema")
    if problem is not None or not isinstance(schema, Mapping) or not isinstance(wrapper, Mapping):
        said = f"{problem.field}: {problem.message}" if problem else f"{inner}schema is missing"
        report(where, f"{said}; not imported")
        return None
    allowed = ("name", "schema", "description") if key == "response_format" else ("type", "schema")
    for name in wrapper:
        if name not in allowed:
            why = "PromptDeck sends the schema without it" if name == "strict" else "ignored"
            report(f"{where}.{inner}{name}", f"not kept: {why}")
    return dict(schema)


# --- variant -> provider config -------------------------------------------------------------


def config_tools(tools: Sequence[ToolDef]) -> list[dict[str, Any]]:
    """A variant's tools as promptfoo's `config.tools` (promptfoo converts OpenAI's shape for
    its other providers)."""
    found = []
    for tool in tools:
        function: dict[str, Any] = {"name": tool.name}
        if tool.description:
            function["description"] = tool.description
        function["parameters"] = dict(tool.parameters)
        found.append({"type": "function", "function": function})
    return found


def config_output_schema(schema: Mapping[str, Any], provider_id: str) -> tuple[str, Any]:
    """(config key, value) that asks promptfoo's provider for `output_schema`."""
    if provider_id.startswith("anthropic:"):
        return "output_format", {"type": "json_schema", "schema": dict(schema)}
    return "response_format", response_format(schema)


# --- tool checks <-> assertions -------------------------------------------------------------
# promptfoo's chat providers give a reply with tool calls as its output: OpenAI's
# tool_calls (alone, or in the message beside its text), Anthropic's tool_use blocks as
# JSON text. The javascript PromptDeck writes reads both; its first line says which check it
# is, so that an import reads it back, as long as nobody changed the code.

_MARK = "// PromptDeck check: "
_CALLS = """\
const parse = (text) => {
  try { return JSON.parse(text); } catch (e) { return undefined; }
};
// the tool calls in the reply: OpenAI's tool_calls, or Anthropic's tool_use blocks
const calls = (Array.isArray(output) ? output
  : Array.isArray(output?.tool_calls) ? output.tool_calls
  : String(output ?? '').split('\\n\\n').map(parse).filter((block) => block?.type === 'tool_use'))
  .map((call) => call.function
    ? { name: call.function.name, args: typeof call.function.arguments === 'string'
        ? parse(call.function.arguments) : call.function.arguments }
    : { name: call.name, args: call.input });
"""
# `args` as a subset of a call's arguments, as PromptDeck's tool_called matches them
_MATCHES = """\
const own = (value) => value !== null && typeof value === 'object' && !Array.isArray(value);
const same = (a, b) => Array.isArray(a)
  ? Array.isArray(b) && a.length === b.length && a.every((item, i) => same(item, b[i]))
  : own(a)
    ? own(b) && Object.keys(a).length === Object.keys(b).length
      && Object.keys(a).every((key) => Object.hasOwn(b, key) && same(a[key], b[key]))
    : a === b;
const matches = (wanted, given) => own(wanted)
  ? own(given) && Object.keys(wanted).every(
      (key) => Object.hasOwn(given, key) && matches(wanted[key], given[key]))
  : same(wanted, given);
"""
# promptfoo renders an assertion's value as a Nunjucks template first: no `{{`, `{%`, `{#`
# may reach it (outside a JSON string no `{` comes before them, so only strings are touched)
_TEMPLATE_OPENERS = re.compile(r"\{(?=[{%#])")


def _literal(value: object) -> str:
    return _TEMPLATE_OPENERS.sub(r"\\u007b", json.dumps(value, ensure_ascii=True))


def tool_check_javascript(check: Mapping[str, Any]) -> str:
    """The javascript assertion's code for a tool_called or no_tool_called check."""
    spec = {k: v for k, v in check.items() if k in ("type", "name", "value", "args", "times")}
    if check["type"] != "tool_called":
        spec.pop("name", None)  # a no_tool_called's name is its label: the assertion's metric
    code = _MARK + _literal(spec) + "\n" + _CALLS
    if check["type"] == "no_tool_called":
        value = check.get("value")
        if value is None:
            return code + "return calls.length === 0;"
        names = list(value) if isinstance(value, list | tuple) else [value]
        return (
            code
            + f"const names = {_literal(names)};\n"
            + "return !calls.some((call) => names.includes(call.name));"
        )
    test = f"call.name === {_literal(check['name'])}"
    if check.get("args") is not None:
        code += _MATCHES + f"const wanted = {_literal(check['args'])};\n"
        test += " && matches(wanted, call.args)"
    times = check.get("times")
    count = f"calls.filter((call) => {test}).length"
    return code + f"return {count} {'>= 1' if times is None else f'=== {times}'};"


def tool_check_from_javascript(code: str) -> dict[str, Any] | None:
    """The check a javascript assertion PromptDeck wrote stands for; None for any other
    javascript; ValueError when it was PromptDeck's but has been changed since."""
    first, _, _ = code.strip().partition("\n")
    if not first.startswith(_MARK):
        return None
    try:
        spec = json.loads(first.removeprefix(_MARK))
    except json.JSONDecodeError:
        spec = None
    if not isinstance(spec, dict) or spec.get("type") not in ("tool_called", "no_tool_called"):
        raise ValueError("javascript written by PromptDeck for a tool check, but changed")
    if tool_check_javascript(spec).strip() != code.strip():
        raise ValueError(
            f"javascript written by PromptDeck for a {spec['type']} check, but changed since; "
            "not mapped"
        )
    return dict(spec)


def _tool_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} needs a tool name")
    if any(c in value for c in "*?"):
        raise ValueError(f"{what} with a pattern ({value}): PromptDeck's checks name one tool")
    return value.strip()


def tool_checks_from_trajectory(kind: str, value: object) -> list[dict[str, Any]]:
    """Checks for promptfoo's trajectory:tool-used, not-trajectory:tool-used and
    trajectory:tool-args-match (which read traced tool calls; PromptDeck reads the calls it
    made); ValueError says why there are none."""
    if kind == "not-trajectory:tool-used":
        if value == "*":
            return [{"type": "no_tool_called"}]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise ValueError(f"{kind} with a count has no PromptDeck equivalent")
        return [{"type": "no_tool_called", "value": [_tool_name(v, kind) for v in value]}]
    if kind == "trajectory:tool-used":
        if isinstance(value, str | list) and value:
            names = [value] if isinstance(value, str) else value
            return [{"type": "tool_called", "name": _tool_name(n, kind)} for n in names]
        if not isinstance(value, Mapping):
            raise ValueError(f"{kind} needs a tool name, a list of them or {{name, min, max}}")
        _keys(value, kind, ("name", "pattern", "min", "max"))
        check = {"type": "tool_called", "name": _tool_name(_named(value, kind), kind)}
        low, high = value.get("min", 1), value.get("max")
        if (low, high) == (1, None):
            return [check]
        if low == high and isinstance(low, int) and not isinstance(low, bool) and low >= 0:
            return [{**check, "times": low}]
        raise ValueError(
            f"{kind} from {low} to {high} times: PromptDeck's tool_called counts exactly "
            "(times) or at least once"
        )
    if not isinstance(value, Mapping):
        raise ValueError(f"{kind} needs {{name, args}}")
    _keys(value, kind, ("name", "pattern", "args", "arguments", "mode"))
    if value.get("mode", "partial") != "partial":
        raise ValueError(f"{kind} with mode {value['mode']}: PromptDeck matches args as a subset")
    args = value.get("args", value.get("arguments"))
    if not isinstance(args, Mapping):
        raise ValueError(f"{kind}: PromptDeck matches args given as a mapping")
    if _mapping_in_list(args):
        raise ValueError(
            f"{kind} with a mapping inside a list: promptfoo matches it as a subset, "
            "PromptDeck's tool_called compares it whole"
        )
    return [{"type": "tool_called", "name": _tool_name(_named(value, kind), kind), "args": args}]


def _named(value: Mapping[str, Any], kind: str) -> object:
    if "name" in value and "pattern" in value:
        raise ValueError(f"{kind} with both name and pattern")
    return value.get("name", value.get("pattern"))


def _keys(value: Mapping[str, Any], kind: str, allowed: tuple[str, ...]) -> None:
    for key in value:
        if key not in allowed:
            raise ValueError(f"{kind} with {key} has no PromptDeck equivalent")


def _mapping_in_list(args: object, inside: bool = False) -> bool:
    if isinstance(args, Mapping):
        return inside or any(_mapping_in_list(v, inside) for v in args.values())
    if isinstance(args, list | tuple):
        return any(_mapping_in_list(v, True) for v in args)
    return False
