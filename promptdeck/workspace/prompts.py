"""Prompt variants: one YAML file per variant, `prompts/<task>/<variant>.yaml`.

Loading is strict within a file and forgiving across files: an unknown key, a wrong type
or a template that does not parse is a PromptFileError naming the file, the line and the
field, while `load_prompts` collects one error per broken file and still returns every
good variant. Line numbers come from YAML's node marks, so they point at the key the
person has to fix.

Templates render in a Jinja2 sandbox with StrictUndefined: a prompt cannot reach Python
internals, and a missing variable is an error naming itself instead of silently rendering
as an empty string (which would make an eval quietly measure the wrong prompt). The sandbox
also bounds the work (workspace/sandbox.py): a runaway loop or a huge text is a
TemplateError naming the variant and the limit, not a stuck core or a MemoryError.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import yaml
from jinja2 import meta
from jinja2.exceptions import SecurityError, UndefinedError

from promptdeck.errors import CheckConfigError, PromptFileError, TemplateError
from promptdeck.model.types import Message, Role
from promptdeck.scoring.checks import Check, kind_of, parse_check
from promptdeck.workspace.fileio import NotUTF8, read_text
from promptdeck.workspace.sandbox import (
    ENV,
    RenderLimit,
    compile_template,
    render_budget,
    render_text,
)
from promptdeck.workspace.tools import (
    DEFAULT_MAX_TOOL_ROUNDS,
    ToolDef,
    ToolSpecError,
    parse_max_rounds,
    parse_output_schema,
    parse_tools,
    response_format,
    tool_choice,
)
from promptdeck.workspace.yamlfile import YAMLProblem, parse_yaml_document

TOP_LEVEL_KEYS = (
    "description",
    "model",
    "params",
    "system",
    "user",
    "messages",
    "checks",
    "fallback",
    "tags",
    "tools",
    "output_schema",
    "max_tool_rounds",
)
ROLES: tuple[Role, ...] = ("system", "user", "assistant")
# provider part: a short name like `local` or `staging-vllm`; model part: anything without
# spaces, since real names hold slashes and colons (openrouter/meta-llama/x, ollama/llama3.2:1b).
_MODEL_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/\S+")


@dataclass(frozen=True)
class PromptVariant:
    """One prompt variant. `name` is 'task/variant'; templates are Jinja2 sources."""

    name: str
    path: str
    model: str
    description: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    system: str | None = None
    user: str | None = None
    messages: tuple[Message, ...] = ()
    checks: tuple[Check, ...] = ()
    fallback: str | None = None
    tags: tuple[str, ...] = ()
    tools: tuple[ToolDef, ...] = ()
    output_schema: Mapping[str, Any] | None = None
    max_tool_rounds: int = DEFAULT_MAX_TOOL_ROUNDS

    @property
    def request_params(self) -> dict[str, Any]:
        """The params a call of this variant sends: `params`, with `output_schema` asked as
        the provider's structured output."""
        if self.output_schema is None:
            return dict(self.params)
        return {**self.params, "response_format": response_format(self.output_schema)}

    @property
    def task(self) -> str:
        return self.name.partition("/")[0]

    @property
    def templates(self) -> tuple[Message, ...]:
        """The message templates in order: `messages`, else the system and user templates."""
        if self.messages:
            return self.messages
        head = (Message("system", self.system),) if self.system else ()
        return (*head, Message("user", self.user or ""))


@dataclass(frozen=True)
class PromptLibrary:
    """Every variant that loaded, by name, and one error per file that did not."""

    variants: dict[str, PromptVariant] = field(default_factory=dict)
    errors: list[PromptFileError] = field(default_factory=list)


# --- loading ----------------------------------------------------------------------------


def load_prompts(root: Path) -> PromptLibrary:
    """All variants under `root` (the prompts/ folder); a broken file never hides the others."""
    variants: dict[str, PromptVariant] = {}
    errors: list[PromptFileError] = []
    for path in _variant_files(root):
        try:
            variant = load_variant(path, root)
        except PromptFileError as exc:
            errors.append(exc)
            continue
        if variant.name in variants:
            other = variants[variant.name].path
            errors.append(PromptFileError(path, f"'{variant.name}' is already defined by {other}"))
            continue
        variants[variant.name] = variant
    return PromptLibrary(variants=variants, errors=errors)


def load_variant(path: Path, root: Path) -> PromptVariant:
    """Load one variant file; every problem is a PromptFileError with the line and field."""
    return variant_from_text(_read_text(path), name=variant_name(path, root), path=path)


def variant_from_text(text: str, *, name: str, path: Path) -> PromptVariant:
    """A variant from the text of its file (as the Prompts page is about to save it)."""
    node, data = _parse_yaml(text, path)
    if node is None:
        raise PromptFileError(path, "the file is empty; a variant needs at least model and user")
    if not isinstance(node, yaml.MappingNode) or not isinstance(data, dict):
        raise PromptFileError(
            path,
            f"a variant file must be a mapping of keys (model:, user:, ...), not {kind_of(data)}",
            line=node.start_mark.line + 1,
        )
    return _build(data, name=name, source=_index_lines(node, path))


def variant_from_dict(data: Mapping[str, object], *, name: str, path: str) -> PromptVariant:
    """A variant from an in-memory mapping (e.g. the Playground's scratch prompt)."""
    return _build(data, name=name, source=_Source(path))


def _variant_files(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(
        path
        for path in root.rglob("*")
        if path.suffix in (".yaml", ".yml")
        and path.is_file()
        # editor backups and checkpoints live in hidden folders; they are not variants
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
    )


def variant_name(path: Path, root: Path) -> str:
    """'task/variant' of a file under the prompts folder `root`; PromptFileError if misplaced."""
    try:
        relative = path.relative_to(root)
    except ValueError:
        try:
            relative = path.resolve().relative_to(root.resolve())
        except ValueError:
            raise PromptFileError(path, f"is not inside the prompts folder {root}") from None
    if len(relative.parts) != 2:
        raise PromptFileError(path, "put each variant in a task folder: <task>/<variant>.yaml")
    name = f"{relative.parts[0]}/{path.stem}"
    problem = name_problem(name)
    if problem is not None:
        raise PromptFileError(path, f"{problem}; rename the file")
    return name


# A task or variant name: letters and digits (any script), spaces, and - _ . ( ); it starts
# with a letter or digit and does not end with a space or a dot. The same rule for files
# found on disk and for names typed in the app, so every variant the loader lists can be
# opened, saved and renamed. Longer names than this make file names too long for most disks.
NAME_PART = re.compile(r"[^\W_](?:[\w .()-]*[\w)-])?")
MAX_NAME_BYTES = 200


def name_problem(name: str) -> str | None:
    """Why `name` is not a usable task/variant name, or None."""
    parts = name.split("/")
    if len(parts) != 2 or not all(NAME_PART.fullmatch(part) for part in parts):
        return (
            f"{name!r} is not a variant name: use task/variant with letters, digits, spaces "
            "and - _ . ( ), starting with a letter or digit"
        )
    if max(len(part.encode()) for part in parts) > MAX_NAME_BYTES:
        return f"{name[:60]!r}... is too long for a file name (at most {MAX_NAME_BYTES} bytes)"
    return None


def _read_text(path: Path) -> str:
    try:
        return read_text(path)
    except NotUTF8 as exc:
        raise PromptFileError(path, exc.detail, line=exc.line) from None
    except ValueError as exc:  # cannot read
        raise PromptFileError(path, str(exc)) from None


def _parse_yaml(text: str, path: Path) -> tuple[yaml.Node | None, object]:
    try:  # duplicate keys are left to _index_lines, which names the field
        return parse_yaml_document(text, strict_keys=False)
    except YAMLProblem as exc:
        raise PromptFileError(path, exc.detail, line=exc.line) from None


# --- line numbers -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    """Where a variant's data came from, so an error can point at the line to fix."""

    path: str
    keys: Mapping[str, int] = field(default_factory=dict)  # field path -> 1-based line
    texts: Mapping[str, int] = field(default_factory=dict)  # field path -> first line of text

    def error(self, field: str, message: str, template_line: int | None = None) -> PromptFileError:
        line = self.line(field, template_line)
        if template_line is not None and line is None:
            message += f" (line {template_line} of the template)"
        return PromptFileError(self.path, message, line=line, field=field)

    def line(self, path: str, template_line: int | None = None) -> int | None:
        if template_line is not None and path in self.texts:
            return self.texts[path] + template_line - 1
        while path not in self.keys and path:
            # a missing field is reported at its parent: `params.top_p` -> `params` -> root
            parent = re.sub(r"(\.[^.\[]*|\[\d+\])$", "", path)
            path = "" if parent == path else parent
        return self.keys.get(path)


def _index_lines(root: yaml.Node, path: Path) -> _Source:
    """Field paths ('model', 'params.top_p', 'checks[1]', '' for the root) to their lines."""
    keys: dict[str, int] = {"": root.start_mark.line + 1}
    texts: dict[str, int] = {}
    seen: set[int] = set()  # an alias repeats a node; a recursive one would loop forever

    def walk(node: yaml.Node, prefix: str) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                child = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
                if child in keys:
                    raise PromptFileError(
                        path,
                        f"duplicate key (first on line {keys[child]})",
                        line=key_node.start_mark.line + 1,
                        field=child,
                    )
                keys[child] = key_node.start_mark.line + 1
                walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                keys[f"{prefix}[{index}]"] = item.start_mark.line + 1
                walk(item, f"{prefix}[{index}]")
        elif isinstance(node, yaml.ScalarNode):
            # a block scalar (`|` or `>`) starts its text on the line after the indicator
            texts[prefix] = node.start_mark.line + (2 if node.style in ("|", ">") else 1)

    walk(root, "")
    return _Source(str(path), keys, texts)


# --- validation -------------------------------------------------------------------------


def _build(data: Mapping[Any, object], *, name: str, source: _Source) -> PromptVariant:
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            # `temperature: 0.2` at the top is the most common slip; say where it belongs
            param = difflib.get_close_matches(str(key), list(PARAM_RULES), n=1, cutoff=0.8)
            message = _unknown("key", str(key), TOP_LEVEL_KEYS)
            if param:
                message = f"unknown key; '{param[0]}' is a model parameter: put it under params:"
            raise source.error(str(key), message)
    system, user, messages = _templates(data, source)
    params = _params(data.get("params"), source)
    try:
        tools = parse_tools(data.get("tools"))
        output_schema = parse_output_schema(data.get("output_schema"))
        max_rounds = parse_max_rounds(data.get("max_tool_rounds"))
        if "tool_choice" in params:
            params["tool_choice"] = tool_choice(params["tool_choice"], tools)
    except ToolSpecError as exc:
        raise source.error(exc.field, exc.message) from None
    if output_schema is not None and "response_format" in params:
        raise source.error(
            "params.response_format", "use output_schema or params.response_format, not both"
        )
    if data.get("max_tool_rounds") is not None and not tools:
        raise source.error("max_tool_rounds", "the variant declares no tools: add tools:")
    return PromptVariant(
        name=name,
        path=source.path,
        model=_model_ref(data.get("model"), "model", source, required=True) or "",
        description=_text(data.get("description"), "description", source),
        params=params,
        system=system,
        user=user,
        messages=messages,
        checks=_checks(data.get("checks"), source) + _schema_check(output_schema),
        fallback=_model_ref(data.get("fallback"), "fallback", source, required=False),
        tags=_tags(data.get("tags"), source),
        tools=tools,
        output_schema=output_schema,
        max_tool_rounds=max_rounds,
    )


OUTPUT_SCHEMA_CHECK = "output_schema"


def _schema_check(schema: Mapping[str, Any] | None) -> tuple[Check, ...]:
    """An `output_schema` is checked on every answer, as a check of its own name."""
    if schema is None:
        return ()
    return (Check("json_schema", dict(schema), name=OUTPUT_SCHEMA_CHECK),)


def _unknown(what: str, key: str, allowed: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(allowed), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else "."
    return f"unknown {what}{hint} Allowed: {', '.join(allowed)}"


def _model_ref(value: object, name: str, source: _Source, *, required: bool) -> str | None:
    if value is None or value == "":  # "" is what an empty text box in the UI gives
        if required:
            raise source.error(name, "missing: every variant names its model, e.g. local/smollm2")
        return None
    if not isinstance(value, str) or not _MODEL_REF.fullmatch(value):
        shown = repr(value) if isinstance(value, str) else kind_of(value)
        raise source.error(name, f"must be a model reference provider/model, got {shown}")
    return value


def _text(value: object, name: str, source: _Source) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise source.error(name, f"must be text, got {kind_of(value)}")
    return value


def _tags(value: object, source: _Source) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(tag, str) and tag for tag in value):
        raise source.error("tags", f"must be a list of texts, e.g. [baseline], got {value!r}")
    return tuple(value)


def _checks(value: object, source: _Source) -> tuple[Check, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise source.error("checks", f"must be a list of checks, got {kind_of(value)}")
    checks = []
    for index, item in enumerate(value):
        try:
            checks.append(parse_check(item))
        except CheckConfigError as exc:
            raise source.error(f"checks[{index}]", str(exc)) from None
    return tuple(checks)


# name: (kind, lowest, highest); kinds: number, whole, texts, format, flag (true/false)
PARAM_RULES: dict[str, tuple[str, float | None, float | None]] = {
    "temperature": ("number", 0, 2),
    "max_tokens": ("whole", 1, None),
    "top_p": ("number", 0, 1),
    "stop": ("texts", None, None),
    "seed": ("whole", None, None),
    "presence_penalty": ("number", -2, 2),
    "frequency_penalty": ("number", -2, 2),
    "response_format": ("format", None, None),
    # Honoured by the embedded model (llama.cpp) and most self-hosted servers, not by OpenAI.
    "top_k": ("whole", 1, None),
    "repeat_penalty": ("number", 0, None),
    # Token log-probabilities for the answer's confidence: OpenAI-compatible servers and the
    # embedded model report them; Anthropic has none (the call then has no confidence).
    "logprobs": ("flag", None, None),
    # Which tool the model must call: auto, none, required or a tool's name (needs tools:).
    "tool_choice": ("choice", None, None),
    # Reasoning models: OpenAI-compatible servers take reasoning_effort; Anthropic takes
    # thinking: {type: enabled, budget_tokens: N}. Other providers ignore them.
    "reasoning_effort": ("effort", None, None),
    "thinking": ("mapping", None, None),
}
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high")


def _param_problem(name: str, value: object) -> str | None:
    if name not in PARAM_RULES:
        return _unknown("parameter", name, PARAM_RULES)
    kind, low, high = PARAM_RULES[name]
    if kind == "texts":
        if isinstance(value, str) or (
            isinstance(value, list) and all(isinstance(item, str) for item in value)
        ):
            return None
        return f"must be text or a list of texts, got {kind_of(value)}"
    if kind == "format":
        if isinstance(value, dict) and isinstance(value.get("type"), str):
            return None
        return "must be a mapping with a 'type', e.g. {type: json_object}"
    if kind == "flag":
        return None if isinstance(value, bool) else f"must be true or false, got {kind_of(value)}"
    if kind == "choice":
        return None  # checked against the variant's tools when they are known
    if kind == "effort":
        if value in REASONING_EFFORTS:
            return None
        return f"must be one of {', '.join(REASONING_EFFORTS)}, got {value!r}"
    if kind == "mapping":
        if isinstance(value, dict) and isinstance(value.get("type"), str):
            return None
        return "must be a mapping like {type: enabled, budget_tokens: 2048}"
    wanted = "a whole number" if kind == "whole" else "a number"
    if isinstance(value, bool) or not isinstance(value, int if kind == "whole" else int | float):
        return f"must be {wanted}, got {kind_of(value)}"
    if (low is not None and not value >= low) or (high is not None and not value <= high):
        bounds = f"from {low:g} to {high:g}" if high is not None else f">= {low:g}"
        return f"must be {wanted} {bounds}, got {value:g}"
    return None


def _params(value: object, source: _Source) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise source.error("params", f"must be a mapping like {{temperature: 0.2}}, got {value!r}")
    for key, item in value.items():
        problem = _param_problem(str(key), item)
        if problem:
            raise source.error(f"params.{key}", problem)
    return dict(value)


def _templates(
    data: Mapping[Any, object], source: _Source
) -> tuple[str | None, str | None, tuple[Message, ...]]:
    if data.get("messages") is None:
        system = _template(data.get("system"), "system", source, required=False)
        user = _template(data.get("user"), "user", source, required=True)
        return system, user, ()
    for key in ("system", "user"):
        if data.get(key) is not None:
            raise source.error(key, "use either 'messages' or 'system'/'user', not both")
    return None, None, _messages(data["messages"], source)


def _messages(value: object, source: _Source) -> tuple[Message, ...]:
    if not isinstance(value, list) or not value:
        raise source.error("messages", "must be a list of {role: ..., content: ...} mappings")
    messages = []
    for index, item in enumerate(value):
        where = f"messages[{index}]"
        if not isinstance(item, dict):
            raise source.error(where, f"must be a mapping {{role:, content:}}, got {kind_of(item)}")
        for key in item:
            if key not in ("role", "content"):
                raise source.error(f"{where}.{key}", _unknown("key", str(key), ("role", "content")))
        role = item.get("role")
        if role not in ROLES:
            raise source.error(f"{where}.role", f"must be one of {', '.join(ROLES)}, got {role!r}")
        content = _template(item.get("content"), f"{where}.content", source, required=True)
        messages.append(Message(role, content or ""))
    if not any(message.role == "user" for message in messages):
        raise source.error("messages", "needs at least one message with role user")
    return tuple(messages)


def _template(value: object, name: str, source: _Source, *, required: bool) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if not required:
            return None  # an empty system prompt means: no system message
        if name == "user":
            raise source.error(name, "missing: a variant needs a user template (or messages)")
        raise source.error(name, "must not be empty")
    if not isinstance(value, str):
        raise source.error(name, f"must be text (a template), got {kind_of(value)}")
    try:
        _compile(value)
    except jinja2.TemplateSyntaxError as exc:
        raise source.error(name, f"template syntax error: {exc.message}", exc.lineno) from None
    except RenderLimit as exc:  # thousands of tags, or nested hundreds deep
        raise source.error(name, str(exc)) from None
    return value


# --- rendering --------------------------------------------------------------------------
# In the bounded sandbox (workspace/sandbox.py): a template runs for at most RENDER_SECONDS
# and builds at most MAX_OUTPUT_CHARS characters, wherever it is rendered (the Prompts
# preview, the Playground, every eval cell).


@lru_cache(maxsize=512)
def _compile(source: str) -> jinja2.Template:
    # an eval renders the same few templates for every row; compiling once saves most of it
    return compile_template(source)


def template_variables(variant: PromptVariant) -> list[str]:
    """The names every template of `variant` reads from its inputs, sorted."""
    names: set[str] = set()
    for message in variant.templates:
        names |= _variables(message.content)
    return sorted(names)


@lru_cache(maxsize=512)
def _variables(source: str) -> frozenset[str]:
    return frozenset(meta.find_undeclared_variables(ENV.parse(source)))


def render_messages(variant: PromptVariant, variables: Mapping[str, object]) -> tuple[Message, ...]:
    """The chat messages for one input; TemplateError names what is missing or not allowed,
    or the limit a template ran into (time, size: see workspace/sandbox.py)."""
    missing = [name for name in template_variables(variant) if name not in variables]
    if missing:
        given = ", ".join(sorted(variables)) or "none"
        raise TemplateError(
            f"{variant.name}: missing variable {', '.join(map(repr, missing))}: the template "
            f"uses it but the input has no such field (given: {given})"
        )
    with render_budget():  # one budget for all the messages of the prompt
        rendered = tuple(
            Message(message.role, _render(variant.name, message, variables))
            for message in variant.templates
        )
    if HISTORY not in variables or HISTORY in template_variables(variant):
        return rendered
    # A row's conversation so far goes after the system messages, before the new turn.
    history = conversation_history(variables[HISTORY], variant.name)
    head = tuple(m for m in rendered if m.role == "system")
    return (*head, *history, *rendered[len(head) :])


# A row may carry a conversation so far: a `messages` column holding a JSON list of
# {role: user|assistant, content: text}. A variant whose templates do not use `messages`
# gets it as those messages, before its own user message; one that does reads it itself.
HISTORY = "messages"


def conversation_history(value: object, variant: str = "") -> tuple[Message, ...]:
    """The `messages` of a row as chat messages; TemplateError says what is wrong with it."""
    where = f"{variant}: " if variant else ""
    if isinstance(value, str):
        if not value.strip():
            return ()
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise TemplateError(
                f"{where}the row's messages column is not JSON ({exc}): it must be a list of "
                '{"role": "user" or "assistant", "content": text}'
            ) from None
    if not isinstance(value, list):
        raise TemplateError(f"{where}the row's messages must be a list, got {kind_of(value)}")
    history = []
    for index, item in enumerate(value):
        role = item.get("role") if isinstance(item, dict) else None
        content = item.get("content") if isinstance(item, dict) else None
        if role not in ("user", "assistant") or not isinstance(content, str):
            raise TemplateError(
                f"{where}the row's messages[{index}] must be "
                '{"role": "user" or "assistant", "content": text}'
            )
        history.append(Message(role, content))
    return tuple(history)


def _render(name: str, message: Message, variables: Mapping[str, object]) -> str:
    where = f"{name}: {message.role} template"
    try:
        return render_text(_compile(message.content), variables)
    except RenderLimit as exc:
        raise TemplateError(f"{where}: {exc}") from None
    except SecurityError as exc:
        raise TemplateError(f"{where}: blocked by the sandbox: {exc}") from None
    except UndefinedError as exc:
        raise TemplateError(f"{where}: {exc.message}") from None
    except RecursionError:  # a macro that calls itself
        raise TemplateError(
            f"{where}: stopped: nested too deeply (a macro calling itself?)"
        ) from None
    except MemoryError:
        raise TemplateError(f"{where}: stopped: out of memory") from None
    except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise TemplateError(f"{where}: failed to render: {exc}") from None
