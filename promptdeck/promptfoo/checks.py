"""From promptfoo tests to PromptDeck rows, variant checks and the judge's rubric.

promptfoo attaches assertions to each test; PromptDeck attaches checks to each variant and
runs them on every row. So an assertion becomes a variant check when every test the variant
runs has it; equals / similar whose value differs by test become a value-less check reading
the row's `expected` column; an llm-rubric becomes the suite's rubric (the most common one)
or the row's `rubric` column. Any other assertion that differs by test has no place in
PromptDeck: it is reported where it is written.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jinja2

from promptdeck.errors import CheckConfigError
from promptdeck.promptfoo.config import checks_from_assertion
from promptdeck.promptfoo.testcases import PromptfooTest
from promptdeck.promptfoo.tools import TOOLS_CALL_DIFFERS
from promptdeck.scoring.checks import parse_check
from promptdeck.workspace.sandbox import RenderLimit, compile_template, render_budget, render_text

if TYPE_CHECKING:
    from promptdeck.promptfoo.importer import Pair

Report = Callable[[str, str], None]
_ASSERT_KEYS = ("type", "value", "threshold", "metric", "provider", "transform")
_USES_THRESHOLD = ("similar", "latency", "cost")
_ROW_VALUED = ("equals", "similar")
SIMILAR_DIFFERS = (
    "promptfoo compares embeddings, PromptDeck compares the characters (difflib ratio); "
    "the same threshold passes fewer paraphrases: review it"
)  # without a value, they compare with the row's expected
# promptfoo renders assertion values with the test's vars (Nunjucks; missing ones are empty)


@dataclass(frozen=True, eq=False)  # by identity: two equal assertions are two items
class Item:
    """One mapped assertion: a check (as a mapping) or a rubric, and where it was written."""

    where: str
    check: dict[str, Any] | None = None
    rubric: str | None = None
    grader: str | None = None


@dataclass
class Mapped:
    rows: list[dict[str, str]] = field(default_factory=list)
    checks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    rubric: str | None = None
    grader: str | None = None  # promptfoo provider id that grades llm-rubric

    def csv(self) -> str:
        columns = list(dict.fromkeys(key for row in self.rows for key in row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        return buffer.getvalue()


def map_tests(
    tests: Sequence[PromptfooTest],
    pairs: Sequence[Pair],
    report: Report,
    note: Callable[[str], None],
) -> Mapped:
    mapped = Mapped()
    row_of = _rows(tests, mapped.rows, report)
    items = [[i for w, a in t.asserts for i in classify(w, a, t.vars, report)] for t in tests]
    if any(i.check and i.check["type"] == "similar" for its in items for i in its):
        note(f"similar: {SIMILAR_DIFFERS}")
    if any(i.check and i.check["type"] == "tool_args_valid" for its in items for i in its):
        note(f"tool_args_valid: {TOOLS_CALL_DIFFERS}")
    runs = {pair.name: [i for i, t in enumerate(tests) if _runs(t, pair)] for pair in pairs}
    _check_coverage(tests, row_of, runs, report)
    for pair in pairs:
        applied = [(row_of[i], items[i]) for i in runs[pair.name]]
        mapped.checks[pair.name] = _variant_checks(applied, mapped.rows, report)
    _rubrics(mapped, row_of, items, report, note)
    graders = [t.grader for t in tests] + [i.grader for its in items for i in its]
    mapped.grader = next((g for g in graders if g), None)
    return mapped


def _cell(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _rows(tests: Sequence[PromptfooTest], rows: list[dict[str, str]], report: Report) -> list[int]:
    """One row per distinct test content (vars, description, metadata); test -> row index."""
    seen: dict[str, int] = {}
    row_of = []
    for test in tests:
        row = {key: _cell(value) for key, value in test.vars.items()}
        extra = {"description": test.description} if test.description else {}
        for key, value in {**extra, **test.metadata}.items():
            if key in row:
                report(f"{test.where}.metadata.{key}", f"a var is also called {key}; not kept")
            else:
                row[key] = _cell(value)
        key = json.dumps(row, sort_keys=True)
        if key not in seen:
            seen[key] = len(rows)
            rows.append(row)
        row_of.append(seen[key])
    return row_of


def _matches(refs: list[str] | None, names: Sequence[str]) -> bool:
    """promptfoo's filter: an exact label or id, a `prefix*`, or a `label:` prefix."""
    if refs is None:
        return True
    return any(
        name == ref
        or (ref.endswith("*") and name.startswith(ref[:-1]))
        or name.startswith(f"{ref}:")
        for ref in refs
        for name in names
    )


def _runs(test: PromptfooTest, pair: Pair) -> bool:
    return _matches(test.providers, pair.provider.refs) and _matches(test.prompts, pair.prompt.refs)


def _check_coverage(
    tests: Sequence[PromptfooTest], row_of: list[int], runs: dict[str, list[int]], report: Report
) -> None:
    by_row: dict[int, set[str]] = {}
    for name, indexes in runs.items():
        for i in indexes:
            by_row.setdefault(row_of[i], set()).add(name)
    for i, test in enumerate(tests):
        if len(by_row.get(row_of[i], ())) < len(runs):
            report(test.where, "runs on only some providers or prompts; PromptDeck runs every row")
            by_row[row_of[i]] = set(runs)  # once per row


def render_value(value: object, variables: dict[str, Any]) -> object:
    if isinstance(value, list):
        return [render_value(item, variables) for item in value]
    if not isinstance(value, str) or ("{{" not in value and "{%" not in value):
        return value
    try:  # bounded like any prompt template: a config file is untrusted input
        with render_budget():
            return render_text(compile_template(value), variables)
    except RenderLimit:
        return value  # too costly to expand: compared with the text as written
    except (jinja2.TemplateError, TypeError, ValueError):
        return value  # Nunjucks-only syntax: compare with the text as written


def classify(
    where: str, assertion: dict[str, Any], variables: dict[str, Any], report: Report
) -> list[Item]:
    """The mapped form of one assertion (several checks for a trajectory:tool-used naming
    several tools), or none (reported)."""
    kind = assertion["type"]
    for key in assertion:
        if key not in _ASSERT_KEYS or (key == "provider" and kind != "llm-rubric"):
            report(f"{where}.{key}", "not supported by PromptDeck; ignored")
    if "transform" in assertion:  # the check would test the answer, not what promptfoo tests
        report(f"{where}.transform", "PromptDeck checks the answer as it came; not mapped")
        return []
    if "threshold" in assertion and kind not in _USES_THRESHOLD:
        report(f"{where}.threshold", f"{kind} has no threshold in PromptDeck; ignored")
    value = render_value(assertion.get("value"), variables)
    if kind == "llm-rubric":
        grader = assertion.get("provider")
        grader = grader.get("id") if isinstance(grader, dict) else grader
        if not isinstance(value, str) or not value.strip():
            report(where, "llm-rubric needs the rubric as text")
            return []
        return [Item(where, rubric=value, grader=grader if isinstance(grader, str) else None)]
    try:
        checks = checks_from_assertion({**assertion, "value": value})
        for check in checks:
            _name(check, assertion.get("metric"), where, report)
            parse_check(check)  # a value PromptDeck rejects (a bad regex, ...) is reported here
    except (ValueError, CheckConfigError) as exc:
        report(where, str(exc))
        return []
    return [Item(where, check=check) for check in checks]


def _name(check: dict[str, Any], metric: object, where: str, report: Report) -> None:
    """The assertion's metric names the check, except a tool_called's: its name is the tool."""
    if not isinstance(metric, str):
        return
    if check["type"] == "tool_called":
        report(f"{where}.metric", "a tool_called check's name is the tool; metric not kept")
    else:
        check["name"] = metric


def _key(check: dict[str, Any]) -> str:
    return json.dumps(check, sort_keys=True)


def _variant_checks(
    applied: list[tuple[int, list[Item]]], rows: list[dict[str, str]], report: Report
) -> list[dict[str, Any]]:
    """Checks every test has; then equals/similar by row (into `expected`); report the rest."""
    if not applied:
        return []
    found = [[i for i in items if i.check is not None] for _, items in applied]
    counts = Counter(k for items in found for k in {_key(i.check or {}) for i in items})
    # (position in the first test, check): the checks keep the order they were written in
    checks = [
        (n, i.check or {})
        for n, i in enumerate(found[0])
        if counts[_key(i.check or {})] == len(applied)
    ]
    checks = list({_key(c): (n, c) for n, c in reversed(checks)}.values())
    fixed = {_key(c) for _, c in checks}
    left = [[i for i in items if _key(i.check or {}) not in fixed] for items in found]
    for shape in _shapes(left):
        chosen = [next((i for i in items if _shape(i) == shape), None) for items in left]
        targets = [(r, i) for (r, _), i in zip(applied, chosen, strict=True) if i is not None]
        if len(targets) < len(applied) or _conflicts(targets, rows):
            continue
        for row, item in targets:
            rows[row]["expected"] = str((item.check or {})["value"])
        checks.append((found[0].index(targets[0][1]), json.loads(shape)))
        left = [[i for i in items if i not in chosen] for items in left]
    for item in dict.fromkeys(i for items in left for i in items):
        check = item.check or {}
        what = f"{check['type']} with a value that differs by test"
        if check["type"] in _ROW_VALUED:
            report(item.where, f"{what}, not on every test (or clashing with 'expected')")
        else:
            report(item.where, f"{what}; PromptDeck checks have one value for every row")
    return [check for _, check in sorted(checks, key=lambda pair: pair[0])]


def _shape(item: Item) -> str | None:
    check = item.check or {}
    if check.get("type") not in _ROW_VALUED:
        return None
    return _key({k: v for k, v in check.items() if k != "value"})


def _shapes(left: list[list[Item]]) -> list[str]:
    return list(dict.fromkeys(s for items in left for i in items if (s := _shape(i))))


def _conflicts(targets: list[tuple[int, Item]], rows: list[dict[str, str]]) -> bool:
    wanted: dict[int, str] = {}
    for row, item in targets:
        value = str((item.check or {})["value"])
        if wanted.setdefault(row, rows[row].get("expected", value)) != value:
            return True
    return False


def _rubrics(
    mapped: Mapped,
    row_of: list[int],
    items: list[list[Item]],
    report: Report,
    note: Callable[[str], None],
) -> None:
    """The most common rubric is the suite's; a row with another one gets its `rubric` cell."""
    by_row: dict[int, str] = {}
    for row, its in zip(row_of, items, strict=True):
        for item in (i for i in its if i.rubric is not None):
            if by_row.setdefault(row, item.rubric or "") != item.rubric:
                report(item.where, "a second llm-rubric: PromptDeck judges a row with one rubric")
    if not by_row:
        return
    counts = Counter(by_row.values())
    mapped.rubric = max(counts, key=lambda text: counts[text])  # ties: the first seen
    for row, text in by_row.items():
        if text != mapped.rubric:
            mapped.rows[row]["rubric"] = text
    if len(by_row) < len(mapped.rows):
        missing = len(mapped.rows) - len(by_row)
        note(f"{missing} rows have no llm-rubric; PromptDeck's judge grades them with the suite's")
