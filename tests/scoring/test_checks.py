"""Deterministic checks: every kind passes, fails and rejects bad configuration, exactly."""

from __future__ import annotations

from typing import Any

import pytest

from promptdeck.errors import CheckConfigError
from promptdeck.model.types import ToolStep
from promptdeck.scoring.checks import CHECK_TYPES, Check, CheckResult, parse_check, run_checks

SCHEMA = {
    "type": "object",
    "required": ["answer"],
    "properties": {"answer": {"type": "string"}},
}
NO_EXPECTED = "no expected answer to compare with: give the check a value or the row 'expected'"
KNOWN = (
    "contains, equals, icontains, is_json, json_schema, max_chars, max_cost_usd, "
    "max_latency_ms, max_words, min_chars, no_tool_called, not_contains, regex, similar, "
    "starts_with, tool_args_valid, tool_called"
)
LOOKUP = ToolStep(
    1, "call_0", "get_order", {"order_id": "A1", "verbose": True}, '{"status": "shipped"}'
)
BAD_ARGS = ToolStep(1, "call_1", "get_order", "{oops", "Error: ...", "the arguments are not JSON")

# (check config, answer, measurements, expected result)
RUN_CASES: list[tuple[dict[str, Any], str, dict[str, Any], CheckResult]] = [
    # contains: a list means every item must appear
    (
        {"type": "contains", "value": "refund"},
        "Your refund is on its way",
        {},
        CheckResult("contains 'refund'", True, 1.0, "contains 'refund'"),
    ),
    (
        {"type": "contains", "value": "refund"},
        "Sorry!",
        {},
        CheckResult("contains 'refund'", False, 0.0, "missing 'refund'"),
    ),
    (
        {"type": "contains", "value": "Refund"},
        "your refund",
        {},
        CheckResult("contains 'Refund'", False, 0.0, "missing 'Refund'"),
    ),
    (
        {"type": "contains", "value": "Refund", "case_sensitive": False},
        "your refund",
        {},
        CheckResult("contains 'Refund'", True, 1.0, "contains 'Refund'"),
    ),
    (
        {"type": "contains", "value": ["30 days", "$50"]},
        "Returns within 30 days.",
        {},
        CheckResult("contains '30 days', '$50'", False, 0.0, "missing '$50'"),
    ),
    (
        {"type": "contains", "value": ["30 days", "$50"]},
        "30 days; free over $50",
        {},
        CheckResult("contains '30 days', '$50'", True, 1.0, "contains '30 days', '$50'"),
    ),
    # icontains
    (
        {"type": "icontains", "value": "ACME"},
        "Thanks for shopping at Acme",
        {},
        CheckResult("icontains 'ACME'", True, 1.0, "contains 'ACME'"),
    ),
    (
        {"type": "icontains", "value": ["acme", "sorry"]},
        "ACME here",
        {},
        CheckResult("icontains 'acme', 'sorry'", False, 0.0, "missing 'sorry'"),
    ),
    # not_contains: a list means none may appear
    (
        {"type": "not_contains", "value": "as an AI"},
        "Happy to help!",
        {},
        CheckResult("not_contains 'as an AI'", True, 1.0, "does not contain 'as an AI'"),
    ),
    (
        {"type": "not_contains", "value": "as an AI"},
        "As an ai, I",
        {},
        CheckResult("not_contains 'as an AI'", True, 1.0, "does not contain 'as an AI'"),
    ),
    (
        {"type": "not_contains", "value": ["as an AI", "language model"], "case_sensitive": False},
        "As an ai language model, I",
        {},
        CheckResult(
            "not_contains 'as an AI', 'language model'",
            False,
            0.0,
            "contains forbidden 'as an AI', 'language model'",
        ),
    ),
    # regex: re.search, a list means every pattern must match
    (
        {"type": "regex", "value": r"\d+ days"},
        "within 30 days",
        {},
        CheckResult(r"regex '\d+ days'", True, 1.0, r"matches '\d+ days'"),
    ),
    (
        {"type": "regex", "value": r"\d+ days"},
        "within a month",
        {},
        CheckResult(r"regex '\d+ days'", False, 0.0, r"no match for '\d+ days'"),
    ),
    (
        {"type": "regex", "value": "^hello"},
        "Hello there",
        {},
        CheckResult("regex '^hello'", False, 0.0, "no match for '^hello'"),
    ),
    (
        {"type": "regex", "value": "^hello", "case_sensitive": False},
        "Hello there",
        {},
        CheckResult("regex '^hello'", True, 1.0, "matches '^hello'"),
    ),
    (
        {"type": "regex", "value": ["refund", "5-7"]},
        "a refund",
        {},
        CheckResult("regex 'refund', '5-7'", False, 0.0, "no match for '5-7'"),
    ),
    # equals: the value, else the row's expected answer; a list means one of; whitespace ignored
    (
        {"type": "equals", "value": "yes"},
        "  yes\n",
        {},
        CheckResult("equals 'yes'", True, 1.0, "equals 'yes'"),
    ),
    (
        {"type": "equals", "value": "yes"},
        "Yes",
        {},
        CheckResult("equals 'yes'", False, 0.0, "'Yes' is not 'yes'"),
    ),
    (
        {"type": "equals", "value": "yes", "case_sensitive": False},
        "Yes",
        {},
        CheckResult("equals 'yes'", True, 1.0, "equals 'yes'"),
    ),
    (
        {"type": "equals", "value": ["yes", "no"]},
        "no",
        {},
        CheckResult("equals 'yes', 'no'", True, 1.0, "equals 'no'"),
    ),
    (
        {"type": "equals", "value": ["yes", "no"]},
        "maybe\n",
        {},
        CheckResult("equals 'yes', 'no'", False, 0.0, "'maybe' is not one of 'yes', 'no'"),
    ),
    (
        {"type": "equals"},
        "Paris",
        {"expected": "Paris"},
        CheckResult("equals", True, 1.0, "equals 'Paris'"),
    ),
    (
        {"type": "equals"},
        "Lyon",
        {"expected": "Paris"},
        CheckResult("equals", False, 0.0, "'Lyon' is not 'Paris'"),
    ),
    ({"type": "equals"}, "Paris", {}, CheckResult("equals", False, 0.0, NO_EXPECTED)),
    # starts_with: a list means one of; leading whitespace ignored
    (
        {"type": "starts_with", "value": "Hi"},
        "\n Hi Anna",
        {},
        CheckResult("starts_with 'Hi'", True, 1.0, "starts with 'Hi'"),
    ),
    (
        {"type": "starts_with", "value": ["Hi", "Hello"]},
        "Dear Anna",
        {},
        CheckResult("starts_with 'Hi', 'Hello'", False, 0.0, "does not start with 'Hi', 'Hello'"),
    ),
    (
        {"type": "starts_with", "value": "hello", "case_sensitive": False},
        "Hello!",
        {},
        CheckResult("starts_with 'hello'", True, 1.0, "starts with 'hello'"),
    ),
    # lengths: counted without surrounding whitespace
    (
        {"type": "min_chars", "value": 5},
        "hi",
        {},
        CheckResult("min_chars 5", False, 0.0, "2 characters (min 5)"),
    ),
    (
        {"type": "min_chars", "value": 2},
        " hi\n",
        {},
        CheckResult("min_chars 2", True, 1.0, "2 characters (min 2)"),
    ),
    (
        {"type": "max_chars", "value": 5},
        "hello\n",
        {},
        CheckResult("max_chars 5", True, 1.0, "5 characters (max 5)"),
    ),
    (
        {"type": "max_chars", "value": 5},
        "hello world",
        {},
        CheckResult("max_chars 5", False, 0.0, "11 characters (max 5)"),
    ),
    (
        {"type": "max_words", "value": 3},
        "one two\nthree",
        {},
        CheckResult("max_words 3", True, 1.0, "3 words (max 3)"),
    ),
    (
        {"type": "max_words", "value": 3},
        "one two three four",
        {},
        CheckResult("max_words 3", False, 0.0, "4 words (max 3)"),
    ),
    # JSON
    ({"type": "is_json"}, '{"a": 1}', {}, CheckResult("is_json", True, 1.0, "valid JSON")),
    (
        {"type": "is_json"},
        "Sure! {}",
        {},
        CheckResult(
            "is_json", False, 0.0, "not valid JSON: Expecting value: line 1 column 1 (char 0)"
        ),
    ),
    (
        {"type": "json_schema", "value": SCHEMA},
        '{"answer": "hi"}',
        {},
        CheckResult("json_schema", True, 1.0, "matches the schema"),
    ),
    (
        {"type": "json_schema", "value": SCHEMA},
        '{"answer": 3}',
        {},
        CheckResult(
            "json_schema", False, 0.0, "schema violation at $.answer: 3 is not of type 'string'"
        ),
    ),
    (
        {"type": "json_schema", "value": SCHEMA},
        "{}",
        {},
        CheckResult(
            "json_schema", False, 0.0, "schema violation at $: 'answer' is a required property"
        ),
    ),
    (
        {"type": "json_schema", "value": SCHEMA},
        "oops",
        {},
        CheckResult(
            "json_schema", False, 0.0, "not valid JSON: Expecting value: line 1 column 1 (char 0)"
        ),
    ),
    # similar: difflib ratio; "abcf" vs "abcd" shares 3 of 4 characters -> 2*3/8 = 0.75
    (
        {"type": "similar"},
        "abcf",
        {"expected": "abcd"},
        CheckResult("similar", False, 0.75, "similarity 0.75 (threshold 0.80)"),
    ),
    (
        {"type": "similar", "threshold": 0.7},
        "abcf",
        {"expected": "abcd"},
        CheckResult("similar", True, 0.75, "similarity 0.75 (threshold 0.70)"),
    ),
    (
        {"type": "similar", "value": "abcd"},
        " abcd\n",
        {"expected": "zzzz"},
        CheckResult("similar 'abcd'", True, 1.0, "similarity 1.00 (threshold 0.80)"),
    ),
    (
        {"type": "similar", "case_sensitive": False},
        "ABCD",
        {"expected": "abcd"},
        CheckResult("similar", True, 1.0, "similarity 1.00 (threshold 0.80)"),
    ),
    ({"type": "similar"}, "abcd", {}, CheckResult("similar", False, 0.0, NO_EXPECTED)),
    # measurements the runner passes in; missing ones fail with a reason
    (
        {"type": "max_latency_ms", "value": 2000},
        "",
        {"latency_ms": 1500.0},
        CheckResult("max_latency_ms 2000", True, 1.0, "1500 ms (max 2000)"),
    ),
    (
        {"type": "max_latency_ms", "value": 2000},
        "",
        {"latency_ms": 2500.5},
        CheckResult("max_latency_ms 2000", False, 0.0, "2500.5 ms (max 2000)"),
    ),
    (
        {"type": "max_latency_ms", "value": 2000},
        "",
        {},
        CheckResult("max_latency_ms 2000", False, 0.0, "no latency was measured for this answer"),
    ),
    (
        {"type": "max_cost_usd", "value": 0.01},
        "",
        {"cost_usd": 0.0042},
        CheckResult("max_cost_usd 0.01", True, 1.0, "0.0042 USD (max 0.01)"),
    ),
    (
        {"type": "max_cost_usd", "value": 0.01},
        "",
        {"cost_usd": 0.02},
        CheckResult("max_cost_usd 0.01", False, 0.0, "0.02 USD (max 0.01)"),
    ),
    (
        {"type": "max_cost_usd", "value": 0.01},
        "",
        {},
        CheckResult(
            "max_cost_usd 0.01",
            False,
            0.0,
            "no cost is known for this answer (has the model a price?)",
        ),
    ),
    # a configured name replaces the generated label
    (
        {"type": "max_chars", "value": 10, "name": "short answer"},
        "hi",
        {},
        CheckResult("short answer", True, 1.0, "2 characters (max 10)"),
    ),
    # tools: `name` is the tool; `args` match as a subset; `times` exactly
    (
        {"type": "tool_called", "name": "get_order", "args": {"order_id": "A1"}},
        "Shipped.",
        {"tool_steps": [LOOKUP]},
        CheckResult(
            'tool_called get_order {"order_id": "A1"}',
            True,
            1.0,
            "get_order with those args called 1 time",
        ),
    ),
    (
        {"type": "tool_called", "name": "get_order", "args": {"order_id": "B2"}},
        "Shipped.",
        {"tool_steps": [LOOKUP]},
        CheckResult(
            'tool_called get_order {"order_id": "B2"}',
            False,
            0.0,
            'get_order was called, but not with {"order_id": "B2"}; calls: '
            'get_order({"order_id": "A1", "verbose": true})',
        ),
    ),
    (
        {"type": "tool_called", "name": "get_order", "times": 1},
        "",
        {"tool_steps": [LOOKUP, LOOKUP]},
        CheckResult("tool_called get_order ×1", False, 0.0, "get_order called 2 times, not 1"),
    ),
    (
        {"type": "tool_called", "name": "get_order"},
        "I could not look it up.",
        {},
        CheckResult(
            "tool_called get_order", False, 0.0, "get_order was not called (no tool was called)"
        ),
    ),
    (
        {"type": "no_tool_called"},
        "Hello!",
        {},
        CheckResult("no_tool_called", True, 1.0, "no tool called"),
    ),
    (
        {"type": "no_tool_called", "value": "get_order"},
        "",
        {"tool_steps": [LOOKUP]},
        CheckResult(
            "no_tool_called 'get_order'",
            False,
            0.0,
            'calls: get_order({"order_id": "A1", "verbose": true})',
        ),
    ),
    (
        {"type": "tool_args_valid"},
        "",
        {"tool_steps": [LOOKUP]},
        CheckResult("tool_args_valid", True, 1.0, "1 call, every one valid"),
    ),
    (
        {"type": "tool_args_valid"},
        "",
        {"tool_steps": [LOOKUP, BAD_ARGS]},
        CheckResult("tool_args_valid", False, 0.0, "get_order: the arguments are not JSON"),
    ),
]


@pytest.mark.parametrize(("config", "output", "seen", "expected"), RUN_CASES)
def test_run_check(
    config: dict[str, Any], output: str, seen: dict[str, Any], expected: CheckResult
) -> None:
    checks = [parse_check(config)]
    assert run_checks(checks, output, **seen) == [expected]


def test_every_check_type_has_a_passing_and_a_failing_case() -> None:
    outcomes = {(config["type"], result.passed) for config, _, _, result in RUN_CASES}
    assert {kind for kind, passed in outcomes if passed} == set(CHECK_TYPES)
    assert {kind for kind, passed in outcomes if not passed} == set(CHECK_TYPES)


def test_check_types_are_the_documented_ones() -> None:
    assert ", ".join(CHECK_TYPES) == KNOWN


def test_run_checks_keeps_order_and_runs_all() -> None:
    checks = [
        parse_check({"type": "max_chars", "value": 3}),
        parse_check({"type": "contains", "value": "ok"}),
    ]
    assert run_checks(checks, "ok!!") == [
        CheckResult("max_chars 3", False, 0.0, "4 characters (max 3)"),
        CheckResult("contains 'ok'", True, 1.0, "contains 'ok'"),
    ]


def test_no_checks() -> None:
    assert run_checks((), "anything") == []


def test_parse_turns_lists_into_tuples() -> None:
    check = parse_check({"type": "contains", "value": ["a", "b"]})
    assert check == Check(type="contains", value=("a", "b"))


# A check's message names its type; the prompt loader adds the file, line and index.
BAD_CONFIG: list[tuple[object, str]] = [
    ([5], "a check must be a mapping like {type: contains, value: ...}, got a number"),
    ([{"value": "x"}], f"'type' is missing or not text; known types: {KNOWN}"),
    (
        [{"type": "contain", "value": "x"}],
        f"unknown check type 'contain'; did you mean 'contains'? Known types: {KNOWN}",
    ),
    (
        [{"type": "not-contains", "value": "x"}],
        f"unknown check type 'not-contains'; did you mean 'not_contains'? Known types: {KNOWN}",
    ),
    ([{"type": "frobnicate"}], f"unknown check type 'frobnicate'. Known types: {KNOWN}"),
    ([{"type": "contains"}], "contains check: needs a 'value': text or a list of texts"),
    (
        [{"type": "contains", "value": 5}],
        "contains check: 'value' must be text or a list of texts, got a number",
    ),
    ([{"type": "contains", "value": []}], "contains check: 'value' must not be an empty list"),
    ([{"type": "contains", "value": ""}], "contains check: 'value' must not be empty text"),
    (
        [{"type": "not_contains", "value": ["a", None]}],
        "not_contains check: 'value' must be text or a list of texts, "
        "got a list with nothing in it",
    ),
    (
        [{"type": "contains", "value": "x", "threshold": 0.5}],
        "contains check: unknown key 'threshold' (allowed: case_sensitive, name, type, value)",
    ),
    (
        [{"type": "icontains", "value": "x", "case_sensitive": True}],
        "icontains check: unknown key 'case_sensitive' (allowed: name, type, value)",
    ),
    (
        [{"type": "contains", "value": "x", "case_sensitive": "no"}],
        "contains check: 'case_sensitive' must be true or false, got text",
    ),
    (
        [{"type": "contains", "value": "x", "name": 5}],
        "contains check: 'name' must be text, got a number",
    ),
    (
        [{"type": "regex", "value": "("}],
        "regex check: invalid regular expression '(': "
        "missing ), unterminated subpattern at position 0",
    ),
    (
        [{"type": "regex", "value": ["ok", "[a-"]}],
        "regex check: invalid regular expression '[a-': unterminated character set at position 0",
    ),
    ([{"type": "max_chars"}], "max_chars check: needs a 'value': a whole number >= 0"),
    (
        [{"type": "max_chars", "value": "800"}],
        "max_chars check: 'value' must be a whole number >= 0, got '800'",
    ),
    (
        [{"type": "max_words", "value": 1.5}],
        "max_words check: 'value' must be a whole number >= 0, got 1.5",
    ),
    (
        [{"type": "min_chars", "value": -1}],
        "min_chars check: 'value' must be a whole number >= 0, got -1",
    ),
    (
        [{"type": "max_chars", "value": True}],
        "max_chars check: 'value' must be a whole number >= 0, got true",
    ),
    (
        [{"type": "max_cost_usd", "value": -0.5}],
        "max_cost_usd check: 'value' must be a number >= 0, got -0.5",
    ),
    ([{"type": "max_latency_ms"}], "max_latency_ms check: needs a 'value': a number >= 0"),
    ([{"type": "is_json", "value": True}], "is_json check: takes no 'value'"),
    (
        [{"type": "json_schema"}],
        "json_schema check: needs a 'value': a JSON schema (a mapping)",
    ),
    (
        [{"type": "json_schema", "value": "object"}],
        "json_schema check: 'value' must be a JSON schema (a mapping), got text",
    ),
    (
        [{"type": "json_schema", "value": {"type": "strin"}}],
        "json_schema check: invalid JSON schema: "
        "'strin' is not valid under any of the given schemas",
    ),
    (
        [{"type": "similar", "threshold": 1.5}],
        "similar check: 'threshold' must be a number between 0 and 1, got 1.5",
    ),
    (
        [{"type": "similar", "threshold": "high"}],
        "similar check: 'threshold' must be a number between 0 and 1, got 'high'",
    ),
    (
        [{"type": "similar", "value": ["a", "b"]}],
        "similar check: 'value' must be text, got a list",
    ),
]


@pytest.mark.parametrize(("raw", "message"), BAD_CONFIG)
def test_bad_configuration(raw: list[object], message: str) -> None:
    with pytest.raises(CheckConfigError) as caught:
        parse_check(raw[0])
    assert str(caught.value) == message


def test_a_bad_check_cannot_be_built_directly() -> None:
    with pytest.raises(CheckConfigError) as caught:
        Check(type="max_chars", value="800")
    assert str(caught.value) == "'value' must be a whole number >= 0, got '800'"
