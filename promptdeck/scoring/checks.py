"""Deterministic checks (output guardrails): plain functions in a dict, promptfoo style.

A variant file lists its checks as mappings; every answer is run through all of them:

    checks:
      - {type: max_chars, value: 800}
      - {type: not_contains, value: ["as an AI", "language model"], case_sensitive: false}
      - {type: similar, threshold: 0.7}          # compares with the row's `expected`

type            value                               passes when
contains        text, or list: ALL must appear      each text occurs in the answer
icontains       text, or list: ALL must appear      the same, ignoring case
not_contains    text, or list: NONE may appear      no text occurs in the answer
regex           pattern, or list: ALL must match    re.search finds each pattern
equals          optional text, or list: ONE OF      answer == value (else == expected)
starts_with     text, or list: ONE OF               the answer starts with one of them
min_chars       whole number                        len(answer) >= value
max_chars       whole number                        len(answer) <= value
max_words       whole number                        number of words <= value
is_json         (none)                              the answer parses as JSON
json_schema     a JSON schema (mapping)             the answer is JSON the schema accepts
similar         optional text                       difflib ratio vs value (else expected)
                                                    >= threshold (default 0.8)
max_latency_ms  number                              the measured latency <= value
max_cost_usd    number                              the known cost <= value
tool_called     `name`: the tool; optional `args`   the model called that tool (with `args`
                (a subset to match), `times`        as a subset of its arguments), `times`
                                                    times exactly if given, else at least once
no_tool_called  optional tool name(s) as value      no tool (none of those tools) was called
tool_args_valid (none)                              every call named a declared tool with
                                                    arguments valid against its schema

Options: `case_sensitive` (default true) on contains, not_contains, regex, equals,
starts_with and similar; `threshold` (0-1) on similar; `name` on every check (shown in
tables instead of the generated label), except on tool_called, where it names the tool.
A variant's `output_schema` adds a json_schema check named `output_schema` by itself.
Answers are compared without their surrounding whitespace: models often add a leading
space or a trailing newline that nobody means. A check that lacks what it needs (no
expected answer, no latency measured) fails with a reason; it never raises.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from promptdeck.errors import CheckConfigError
from promptdeck.model.types import ToolStep

CheckValue = str | int | float | tuple[str, ...] | Mapping[str, Any] | None

DEFAULT_SIMILARITY = 0.8


@dataclass(frozen=True)
class Check:
    """One configured check. Construction validates the value, so a bad Check cannot exist."""

    type: str
    value: CheckValue = None
    threshold: float | None = None
    case_sensitive: bool = True
    name: str = ""
    args: Mapping[str, Any] | None = None  # tool_called: arguments to match, as a subset
    times: int | None = None  # tool_called: how many calls exactly

    def __post_init__(self) -> None:
        problem = _problem(self)
        if problem:
            raise CheckConfigError(problem)

    @property
    def label(self) -> str:
        """The name shown in tables: the configured `name`, else type and value."""
        if self.type == "tool_called":
            with_args = f" {json.dumps(self.args, ensure_ascii=False)}" if self.args else ""
            times = f" ×{self.times}" if self.times is not None else ""
            return f"tool_called {self.name}{with_args}{times}"
        if self.name:
            return self.name
        if self.value is None or isinstance(self.value, Mapping):
            return self.type
        return f"{self.type} {_show(self.value)}"


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    score: float
    reason: str


@dataclass(frozen=True)
class Measurements:
    """What is known about one answer besides its text."""

    expected: str | None = None
    latency_ms: float | None = None
    cost_usd: float | None = None
    tool_steps: tuple[ToolStep, ...] = ()


Handler = Callable[[Check, str, Measurements], CheckResult]


def run_checks(
    checks: Sequence[Check],
    output: str,
    *,
    expected: str | None = None,
    latency_ms: float | None = None,
    cost_usd: float | None = None,
    tool_steps: Sequence[ToolStep] = (),
) -> list[CheckResult]:
    """Run every check on one answer (and the tool calls made on the way), in order."""
    seen = Measurements(expected, latency_ms, cost_usd, tuple(tool_steps))
    return [HANDLERS[check.type](check, output, seen) for check in checks]


def parse_check(raw: object) -> Check:
    """One check from config. The error message names the check's type (not its place)."""
    if not isinstance(raw, Mapping):
        raise CheckConfigError(
            f"a check must be a mapping like {{type: contains, value: ...}}, got {kind_of(raw)}"
        )
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in HANDLERS:
        raise CheckConfigError(_unknown_type(kind))
    allowed = {"type", "value", "name", *_RULES[kind].options}
    unknown = sorted(str(key) for key in raw if key not in allowed)
    if unknown:
        options = ", ".join(sorted(allowed))
        raise CheckConfigError(f"{kind} check: unknown key '{unknown[0]}' (allowed: {options})")
    name = raw.get("name", "")
    if not isinstance(name, str):
        raise CheckConfigError(f"{kind} check: 'name' must be text, got {kind_of(name)}")
    value = raw.get("value")
    if isinstance(value, list):
        value = tuple(value)  # frozen: a list from YAML becomes a tuple
    try:
        return Check(
            type=kind,
            value=value,
            threshold=raw.get("threshold"),
            case_sensitive=raw.get("case_sensitive", True),
            name=name,
            args=raw.get("args"),
            times=raw.get("times"),
        )
    except CheckConfigError as exc:
        raise CheckConfigError(f"{kind} check: {exc}") from None


def kind_of(value: object) -> str:
    """The YAML word for a value's type, for messages read by people who write YAML."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, Sequence | set):
        return "a list"
    return type(value).__name__


# --- validation -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    value: str  # texts | optional_texts | optional_text | count | amount | schema | none
    options: frozenset[str] = frozenset()


_CASE = frozenset({"case_sensitive"})


def _unknown_type(kind: object) -> str:
    known = ", ".join(CHECK_TYPES)
    if not isinstance(kind, str):
        return f"'type' is missing or not text; known types: {known}"
    close = difflib.get_close_matches(kind.replace("-", "_"), list(HANDLERS), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else "."
    return f"unknown check type '{kind}'{hint} Known types: {known}"


def _problem(check: Check) -> str | None:
    rule = _RULES.get(check.type)
    if rule is None:
        return _unknown_type(check.type)
    if not isinstance(check.case_sensitive, bool):
        return f"'case_sensitive' must be true or false, got {kind_of(check.case_sensitive)}"
    threshold = check.threshold
    if threshold is not None and not (_is_amount(threshold) and threshold <= 1):
        return f"'threshold' must be a number between 0 and 1, got {_show(threshold)}"
    if check.type == "tool_called":
        return _tool_called_problem(check)
    if check.args is not None or check.times is not None:
        return "'args' and 'times' belong to tool_called checks"
    problem = _value_problem(rule.value, check.value)
    if problem is None and check.type == "regex":
        problem = _regex_problem(_texts(check.value))
    return problem


def _value_problem(kind: str, value: object) -> str | None:
    if value is None:
        return f"needs a 'value': {_NEEDS[kind]}" if kind in _NEEDS else None
    if kind == "none":
        return "takes no 'value'"
    if kind in ("texts", "optional_texts", "optional_text"):
        return _texts_problem(value, allow_list=kind != "optional_text")
    if kind in ("count", "amount"):
        if not _is_amount(value, whole=kind == "count"):
            return f"'value' must be {_NEEDS[kind]}, got {_show(value)}"
        return None
    if not isinstance(value, Mapping):
        return f"'value' must be a JSON schema (a mapping), got {kind_of(value)}"
    fault = schema_fault(value)
    return f"invalid JSON schema: {fault[1]}" if fault is not None else None


def _jsonschema() -> Any:
    """jsonschema, imported when a schema is first checked: most suites have none, and the
    CLI's first call must not wait for it. It ships no type information; the two entry
    points used here are simple."""
    import jsonschema  # type: ignore[import-untyped]

    return jsonschema


def schema_fault(schema: Mapping[str, Any]) -> tuple[str, str] | None:
    """Why `schema` is not a valid JSON schema: (where inside it, as `.key[0]`, what is
    wrong), or None. Tool declarations and output schemas are checked the same way."""
    jsonschema = _jsonschema()
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        inner = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in exc.path)
        return inner, str(exc.message)
    return None


def schema_violation(schema: Mapping[str, Any], document: object) -> str | None:
    """The first way `document` breaks `schema`, with its place (`at $.status: ...`), or
    None when it fits: the json_schema check's reason, and a tool call's argument check."""
    jsonschema = _jsonschema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    return None if error is None else f"at {error.json_path}: {error.message}"


def _tool_called_problem(check: Check) -> str | None:
    if not check.name:
        return (
            "needs 'name': the tool that must be called, e.g. {type: tool_called, name: get_order}"
        )
    if check.value is not None:
        return "takes no 'value': 'name' is the tool, 'args' the arguments to match"
    if check.args is not None and not isinstance(check.args, Mapping):
        return f"'args' must be a mapping of argument names to values, got {kind_of(check.args)}"
    if check.times is not None and not _is_amount(check.times, whole=True):
        return f"'times' must be a whole number >= 0, got {_show(check.times)}"
    return None


def _texts_problem(value: object, *, allow_list: bool) -> str | None:
    items = value if allow_list and isinstance(value, tuple) else (value,)
    if not items:
        return "'value' must not be an empty list"
    for item in items:
        if not isinstance(item, str):
            wanted = "text or a list of texts" if allow_list else "text"
            got = f"a list with {kind_of(item)} in it" if item is not value else kind_of(item)
            return f"'value' must be {wanted}, got {got}"
        if not item:
            return "'value' must not be empty text"
    return None


def _regex_problem(patterns: tuple[str, ...]) -> str | None:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            return f"invalid regular expression {pattern!r}: {exc}"
    return None


_NEEDS = {  # what a required value must be, by kind
    "texts": "text or a list of texts",
    "count": "a whole number >= 0",
    "amount": "a number >= 0",
    "schema": "a JSON schema (a mapping)",
}


def _is_amount(value: object, *, whole: bool = False) -> bool:
    """A number >= 0 (true/false is not a number here, although Python says it is)."""
    if isinstance(value, bool) or not isinstance(value, int if whole else int | float):
        return False
    return value >= 0  # NaN fails this too


def _show(value: object) -> str:
    """A value as a YAML writer would recognise it, short and on one line."""
    if isinstance(value, tuple):
        return ", ".join(_show(item) for item in value)
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:59] + "…"
        return "'" + text.replace("\n", "\\n") + "'"  # not repr: regexes keep one backslash
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value)


# --- handlers ---------------------------------------------------------------------------


def _done(check: Check, passed: bool, reason: str, score: float | None = None) -> CheckResult:
    if score is None:
        score = 1.0 if passed else 0.0
    return CheckResult(name=check.label, passed=passed, score=score, reason=reason)


def _texts(value: CheckValue) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return value if isinstance(value, tuple) else ()


def _folder(check: Check) -> Callable[[str], str]:
    if check.case_sensitive and check.type != "icontains":
        return lambda text: text
    return str.casefold


def _contains(check: Check, output: str, seen: Measurements) -> CheckResult:
    fold = _folder(check)
    texts = _texts(check.value)
    missing = tuple(text for text in texts if fold(text) not in fold(output))
    if missing:
        return _done(check, False, f"missing {_show(missing)}")
    return _done(check, True, f"contains {_show(texts)}")


def _not_contains(check: Check, output: str, seen: Measurements) -> CheckResult:
    fold = _folder(check)
    found = tuple(text for text in _texts(check.value) if fold(text) in fold(output))
    if found:
        return _done(check, False, f"contains forbidden {_show(found)}")
    return _done(check, True, f"does not contain {_show(check.value)}")


def _regex(check: Check, output: str, seen: Measurements) -> CheckResult:
    flags = 0 if check.case_sensitive else re.IGNORECASE
    patterns = _texts(check.value)
    missing = tuple(p for p in patterns if not re.search(p, output, flags))
    if missing:
        return _done(check, False, f"no match for {_show(missing)}")
    return _done(check, True, f"matches {_show(patterns)}")


def _target(check: Check, seen: Measurements) -> tuple[str, ...]:
    return _texts(check.value) if check.value is not None else _texts(seen.expected)


_NO_EXPECTED = "no expected answer to compare with: give the check a value or the row 'expected'"


def _equals(check: Check, output: str, seen: Measurements) -> CheckResult:
    targets = _target(check, seen)
    if not targets:
        return _done(check, False, _NO_EXPECTED)
    fold = _folder(check)
    answer = fold(output.strip())
    for target in targets:
        if answer == fold(target.strip()):
            return _done(check, True, f"equals {_show(target)}")
    wanted = f"one of {_show(targets)}" if len(targets) > 1 else _show(targets)
    return _done(check, False, f"{_show(output.strip())} is not {wanted}")


def _starts_with(check: Check, output: str, seen: Measurements) -> CheckResult:
    fold = _folder(check)
    prefixes = _texts(check.value)
    if any(fold(output.lstrip()).startswith(fold(prefix)) for prefix in prefixes):
        return _done(check, True, f"starts with {_show(prefixes)}")
    return _done(check, False, f"does not start with {_show(prefixes)}")


def _bound(
    measure: Callable[[str, Measurements], float | None],
    unit: str,
    *,
    at_most: bool,
    unknown: str = "",
) -> Handler:
    """A handler that compares one measurement of the answer with the check's value."""

    def handler(check: Check, output: str, seen: Measurements) -> CheckResult:
        measured = measure(output, seen)
        if measured is None:
            return _done(check, False, unknown)
        limit = float(check.value) if isinstance(check.value, int | float) else 0.0
        passed = measured <= limit if at_most else measured >= limit
        bound = "max" if at_most else "min"
        return _done(check, passed, f"{measured:g} {unit} ({bound} {limit:g})")

    return handler


def _json(check: Check, output: str, seen: Measurements) -> CheckResult:
    """is_json, and json_schema when the check has a schema."""
    try:
        document = json.loads(output)
    except ValueError as exc:
        return _done(check, False, f"not valid JSON: {exc}")
    if check.value is None:
        return _done(check, True, "valid JSON")
    assert isinstance(check.value, Mapping)  # the json_schema check's value is a schema
    violation = schema_violation(check.value, document)
    if violation is not None:
        return _done(check, False, f"schema violation {violation}")
    return _done(check, True, "matches the schema")


def _similar(check: Check, output: str, seen: Measurements) -> CheckResult:
    targets = _target(check, seen)
    if not targets:
        return _done(check, False, _NO_EXPECTED)
    fold = _folder(check)
    ratio = difflib.SequenceMatcher(None, fold(output.strip()), fold(targets[0].strip())).ratio()
    threshold = DEFAULT_SIMILARITY if check.threshold is None else check.threshold
    reason = f"similarity {ratio:.2f} (threshold {threshold:.2f})"
    return _done(check, ratio >= threshold, reason, score=ratio)


def _matches(wanted: object, given: object) -> bool:
    """Is `wanted` a subset of `given`: every key of a mapping matching, recursively?"""
    if isinstance(wanted, Mapping):
        return isinstance(given, Mapping) and all(
            key in given and _matches(value, given[key]) for key, value in wanted.items()
        )
    return bool(wanted == given)


def _calls(steps: Sequence[ToolStep]) -> str:
    if not steps:
        return "no tool was called"
    return "calls: " + ", ".join(
        f"{s.name}({json.dumps(s.arguments, ensure_ascii=False)[:60]})" for s in steps
    )


def _tool_called(check: Check, output: str, seen: Measurements) -> CheckResult:
    named = [s for s in seen.tool_steps if s.name == check.name]
    matching = [s for s in named if check.args is None or _matches(check.args, s.arguments)]
    count = len(matching)
    passed = count >= 1 if check.times is None else count == check.times
    what = check.name + (" with those args" if check.args is not None else "")
    if passed:
        return _done(check, True, f"{what} called {count} time{'s' * (count != 1)}")
    if check.times is not None and count:
        return _done(check, False, f"{what} called {count} times, not {check.times}")
    if named and check.args is not None:
        return _done(
            check,
            False,
            f"{check.name} was called, but not with {_show_args(check)}; {_calls(named)}",
        )
    return _done(check, False, f"{check.name} was not called ({_calls(seen.tool_steps)})")


def _show_args(check: Check) -> str:
    return json.dumps(check.args, ensure_ascii=False)


def _no_tool_called(check: Check, output: str, seen: Measurements) -> CheckResult:
    names = _texts(check.value)
    called = [s for s in seen.tool_steps if not names or s.name in names]
    if called:
        return _done(check, False, _calls(called))
    return _done(check, True, "no tool called" if not names else f"none of {_show(names)} called")


def _tool_args_valid(check: Check, output: str, seen: Measurements) -> CheckResult:
    bad = [s for s in seen.tool_steps if s.error]
    if bad:
        first = bad[0]
        return _done(
            check,
            False,
            f"{first.name}: {first.error}"
            + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""),
        )
    count = len(seen.tool_steps)
    return _done(check, True, f"{count} call{'s' * (count != 1)}, every one valid")


HANDLERS: dict[str, Handler] = {
    "contains": _contains,
    "icontains": _contains,
    "not_contains": _not_contains,
    "regex": _regex,
    "equals": _equals,
    "starts_with": _starts_with,
    "min_chars": _bound(lambda out, _: len(out.strip()), "characters", at_most=False),
    "max_chars": _bound(lambda out, _: len(out.strip()), "characters", at_most=True),
    "max_words": _bound(lambda out, _: len(out.split()), "words", at_most=True),
    "is_json": _json,
    "json_schema": _json,
    "similar": _similar,
    "max_latency_ms": _bound(
        lambda _, seen: seen.latency_ms,
        "ms",
        at_most=True,
        unknown="no latency was measured for this answer",
    ),
    "max_cost_usd": _bound(
        lambda _, seen: seen.cost_usd,
        "USD",
        at_most=True,
        unknown="no cost is known for this answer (has the model a price?)",
    ),
    "tool_called": _tool_called,
    "no_tool_called": _no_tool_called,
    "tool_args_valid": _tool_args_valid,
}

_RULES: dict[str, _Rule] = {
    "contains": _Rule("texts", _CASE),
    "icontains": _Rule("texts"),
    "not_contains": _Rule("texts", _CASE),
    "regex": _Rule("texts", _CASE),
    "equals": _Rule("optional_texts", _CASE),
    "starts_with": _Rule("texts", _CASE),
    "min_chars": _Rule("count"),
    "max_chars": _Rule("count"),
    "max_words": _Rule("count"),
    "is_json": _Rule("none"),
    "json_schema": _Rule("schema"),
    "similar": _Rule("optional_text", frozenset({"threshold", "case_sensitive"})),
    "max_latency_ms": _Rule("amount"),
    "max_cost_usd": _Rule("amount"),
    "tool_called": _Rule("none", frozenset({"args", "times"})),
    "no_tool_called": _Rule("optional_texts"),
    "tool_args_valid": _Rule("none"),
}

CHECK_TYPES: tuple[str, ...] = tuple(sorted(HANDLERS))
