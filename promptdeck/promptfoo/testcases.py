"""Reading promptfoo's test cases: inline, from CSV / YAML / JSON / JSONL files, `defaultTest`.

A test comes out as a `PromptfooTest` whose assertions carry the place they were written
(`tests[3].assert[1]`, `cases.csv row 2 (__expected)`), so that whatever cannot be mapped
later is reported where the person can find it.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from promptdeck.errors import ConfigError
from promptdeck.workspace.fileio import decode_text, read_text
from promptdeck.workspace.yamlfile import parse_yaml

TEST_KEYS = ("vars", "description", "assert", "metadata", "providers", "prompts", "options")
# accepted by promptfoo, with no PromptDeck counterpart: reported, not failed on
_IGNORED_TEST_KEYS = ("threshold", "provider", "assertScoringFunction", "providerOutput")
_CODE_SUFFIXES = (".js", ".cjs", ".mjs", ".ts", ".py", ".rb", ".sh")
_SCRIPT_TYPES = ("javascript", "python", "ruby")  # their file:// value is the code to run
_TRANSFORMS = ("transform", "postprocess")  # options that change the answer before asserts
# promptfoo's assertion types as CSV `__expected` cells name them; the longest match wins
_CSV_TYPES = sorted(
    [
        "equals",
        "contains",
        "icontains",
        "contains-all",
        "contains-any",
        "icontains-all",
        "icontains-any",
        "starts-with",
        "regex",
        "is-json",
        "contains-json",
        "similar",
        "latency",
        "cost",
        "llm-rubric",
        "javascript",
        "python",
        "levenshtein",
        "rouge-n",
        "is-xml",
        "contains-xml",
        "is-sql",
        "contains-sql",
        "webhook",
        "model-graded-closedqa",
        "model-graded-factuality",
        "factuality",
        "answer-relevance",
        "classifier",
        "perplexity",
        "perplexity-score",
        "is-refusal",
        "word-count",
        "moderation",
        "is-valid-openai-tools-call",
        "is-valid-openai-function-call",
        "is-valid-function-call",
        "tool-call-f1",
        "trajectory:tool-used",
        "trajectory:tool-sequence",
        "trajectory:step-count",
    ],
    key=len,
    reverse=True,
)
_CSV_ASSERTION = re.compile(
    rf"^(not-)?({'|'.join(map(re.escape, _CSV_TYPES))})(?:\((\d+(?:\.\d+)?)\))?(?::([\s\S]*))?$"
)
_LIST_TYPES = ("contains-all", "contains-any", "icontains-all", "icontains-any")
_THRESHOLD_TYPES = ("similar", "latency", "cost", "levenshtein", "rouge-n", "starts-with")


@dataclass
class PromptfooTest:
    where: str
    vars: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    asserts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    providers: list[str] | None = None
    prompts: list[str] | None = None
    grader: str | None = None  # options.provider: the model that grades llm-rubric
    transformed: bool = False  # options.transform: the asserts see a changed answer


Report = Callable[[str, str], None]


@dataclass(frozen=True)
class TestReader:
    """Reads tests relative to the config file; `report(where, reason)` collects what is lost."""

    config: Path
    report: Report
    note: Callable[[str], None]

    def fail(self, message: str) -> ConfigError:
        return ConfigError(f"{self.config}: {message}")

    def read(self, raw: object, default: object) -> list[PromptfooTest]:
        base = self.default_test(default)
        if raw is None:
            return []
        items = raw if isinstance(raw, list) else [raw]
        if not isinstance(raw, list | str):
            raise self.fail("'tests' must be a list of tests or a file path like file://tests.csv")
        tests: list[PromptfooTest] = []
        for index, item in enumerate(items):
            where = f"tests[{index}]" if isinstance(raw, list) else "tests"
            if isinstance(item, str):
                tests.extend(self._from_files(item))
            elif isinstance(item, dict):
                tests.append(self.test(item, where))
            else:
                raise self.fail(f"{where}: a test is a mapping or a file path, got {item!r}")
        merged = [self._untransformed(merge(base, test)) for test in tests]
        return [row for test in merged for row in expand(test, self.note)]

    def _untransformed(self, test: PromptfooTest) -> PromptfooTest:
        """A test whose options.transform changes the answer keeps no assertion: PromptDeck
        checks the answer as it came, so a check mapped from it would test something else."""
        if not test.transformed:
            return test
        for where, _ in test.asserts:
            self.report(where, "options.transform changes the answer first; not mapped")
        return replace(test, asserts=[])

    def default_test(self, raw: object) -> PromptfooTest:
        if isinstance(raw, str):
            loaded = self._structured(self.path(raw, "defaultTest"))
            if not isinstance(loaded, dict):
                raise self.fail(f"defaultTest {raw} must hold one mapping")
            raw = loaded
        if raw is not None and not isinstance(raw, dict):
            raise self.fail("'defaultTest' must be a mapping (vars, assert, options, ...)")
        return self.test(raw or {}, "defaultTest")

    def test(self, raw: Mapping[str, Any], where: str) -> PromptfooTest:
        for key in raw:
            if key in _IGNORED_TEST_KEYS:
                self.report(f"{where}.{key}", "not supported by PromptDeck; ignored")
            elif key not in TEST_KEYS:
                raise self.fail(f"{where}: unknown key '{key}'")
        vars_ = raw.get("vars") or {}
        if isinstance(vars_, str):
            self.report(f"{where}.vars", "vars from a file are not supported; ignored")
            vars_ = {}
        if not isinstance(vars_, dict):
            raise self.fail(f"{where}.vars must be a mapping of variable: value")
        metadata = raw.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise self.fail(f"{where}.metadata must be a mapping")
        test = PromptfooTest(
            where,
            {str(k): self._var(v, f"{where}.vars.{k}") for k, v in vars_.items()},
            str(raw.get("description") or ""),
            dict(metadata),
            self._asserts(raw.get("assert"), where),
            self._names(raw.get("providers"), f"{where}.providers"),
            self._names(raw.get("prompts"), f"{where}.prompts"),
        )
        test.grader = self._options(raw.get("options"), where)
        test.transformed = any((raw.get("options") or {}).get(key) for key in _TRANSFORMS)
        return test

    def path(self, ref: str, where: str) -> Path:
        paths = self.paths(ref, where)
        if not paths:
            raise self.fail(f"{where}: no file matches {ref}")
        return paths[0]

    def paths(self, ref: str, where: str) -> list[Path]:
        try:
            return local_paths(self.config.parent, ref)
        except ValueError as exc:
            raise self.fail(f"{where}: {exc}") from None

    def _asserts(self, raw: object, where: str) -> list[tuple[str, dict[str, Any]]]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise self.fail(f"{where}.assert must be a list of assertions")
        asserts = []
        for index, item in enumerate(raw):
            if not isinstance(item, dict) or not isinstance(item.get("type"), str):
                raise self.fail(f"{where}.assert[{index}] must be a mapping with a 'type'")
            if assertion := self._assertion(item, f"{where}.assert[{index}]"):
                asserts.append((f"{where}.assert[{index}]", assertion))
        return asserts

    def _assertion(self, raw: Mapping[str, Any], where: str) -> dict[str, Any] | None:
        """The assertion with its `file://` value read, as promptfoo reads it when it runs."""
        if "value" not in raw or raw["type"].removeprefix("not-") in _SCRIPT_TYPES:
            return dict(raw)
        try:
            return {**raw, "value": self._value(raw["value"], where)}
        except ValueError as exc:
            self.report(where, str(exc))
            return None

    def _value(self, value: object, where: str) -> object:
        if isinstance(value, list):
            return [self._value(item, where) for item in value]
        if not isinstance(value, str) or not value.startswith("file://"):
            return value
        if Path(value.removeprefix("file://").partition(":")[0]).suffix in _CODE_SUFFIXES:
            raise ValueError(f"the value {value} is computed by code; not mapped")
        path = self.path(value, where)
        return (
            self._structured(path)
            if path.suffix in (".json", ".yaml", ".yml")
            else self._text(path)
        )

    def _names(self, raw: object, where: str) -> list[str] | None:
        if raw is None:
            return None
        if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
            raise self.fail(f"{where} must be a list of labels")
        return list(raw)

    def _options(self, raw: object, where: str) -> str | None:
        if raw is None:
            return None
        if not isinstance(raw, dict):
            raise self.fail(f"{where}.options must be a mapping")
        for key in raw:
            if key not in ("provider", *_TRANSFORMS):
                self.report(f"{where}.options.{key}", "not supported by PromptDeck; ignored")
        grader = raw.get("provider")
        if isinstance(grader, dict):
            grader = grader.get("id")
        if grader is not None and not isinstance(grader, str):
            self.report(f"{where}.options.provider", "only a provider id can become the judge")
            return None
        return grader

    def _var(self, value: object, where: str) -> object:
        if isinstance(value, list):
            return [self._var(item, where) for item in value]
        if isinstance(value, str) and value.startswith("file://"):
            path = self.path(value, where)
            if path.suffix in _CODE_SUFFIXES:
                self.report(where, f"{value} is computed by code; kept as the literal text")
                return value
            try:
                raw = path.read_bytes()
            except OSError as exc:
                raise self.fail(f"{where}: {path}: cannot read: {exc.strerror}") from None
            try:
                return decode_text(raw)
            except ValueError:  # an image or a PDF: promptfoo sends it, PromptDeck cannot
                self.report(where, f"{value} is not text; kept as the literal text")
                return value
        return value

    def _text(self, path: Path) -> str:
        try:
            return read_text(path)
        except ValueError as exc:
            raise self.fail(f"{path}: {exc}") from None

    def _structured(self, path: Path) -> object:
        text = self._text(path)
        try:
            return json.loads(text) if path.suffix == ".json" else parse_yaml(text)
        except (ValueError, json.JSONDecodeError) as exc:
            raise self.fail(f"{path}: {exc}") from None

    def _from_files(self, ref: str) -> list[PromptfooTest]:
        paths = self.paths(ref, "tests")
        if not paths:
            raise self.fail(f"tests: no file matches {ref}")
        tests: list[PromptfooTest] = []
        for path in paths:
            shown = path.relative_to(self.config.parent).as_posix()
            if path.suffix == ".csv":
                tests.extend(self._from_csv(path, shown))
            elif path.suffix == ".jsonl":
                lines = self._text(path).splitlines()
                tests.extend(self._from_list(path, shown, [_json_line(ln) for ln in lines if ln]))
            elif path.suffix in (".yaml", ".yml", ".json"):
                tests.extend(self._from_list(path, shown, self._structured(path)))
            else:
                self.report(shown, f"tests from {path.suffix or 'this'} files are not supported")
        return tests

    def _from_list(self, path: Path, shown: str, data: object) -> list[PromptfooTest]:
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise self.fail(f"{path}: a tests file must hold a list of test mappings")
        return [self.test(item, f"{shown}[{i}]") for i, item in enumerate(data)]

    def _from_csv(self, path: Path, shown: str) -> list[PromptfooTest]:
        try:
            rows = list(csv.DictReader(io.StringIO(self._text(path), newline=""), strict=True))
        except csv.Error as exc:
            raise self.fail(f"{path}: malformed CSV: {exc}") from None
        tests = []
        for number, row in enumerate(rows, start=1):
            if None in row or None in row.values():
                raise self.fail(f"{path}: row {number} has a different number of fields")
            tests.append(self._csv_test(row, f"{shown} row {number}"))
        return tests

    def _csv_test(self, row: Mapping[str, str], where: str) -> PromptfooTest:
        test = PromptfooTest(where)
        for raw_key, value in row.items():
            key = raw_key.strip()
            if key.startswith("__expected"):
                if value.strip():
                    cell = f"{where} ({key})"
                    if assertion := self._assertion(assertion_from_text(value.strip()), cell):
                        test.asserts.append((cell, assertion))
            elif key == "__description":
                test.description = value
            elif key.startswith("__metadata:"):
                name = key.removeprefix("__metadata:")
                if name.endswith("[]") and value.strip():
                    test.metadata[name[:-2]] = [v.strip() for v in value.split(",")]
                elif value.strip():
                    test.metadata[name] = value
            elif key.startswith("__"):
                self.report(f"{where} ({key})", "not supported by PromptDeck; ignored")
            else:
                test.vars[key] = self._var(value, f"{where} ({key})")
        return test


def local_paths(base: Path, ref: str) -> list[Path]:
    """The files `file://ref` names in the config's folder `base` (a glob may name several).

    promptfoo reads any path, but an import copies what it reads into the workspace's files,
    so a shared config must not pull `../.env` or `/home/me/.ssh/...` into a dataset."""
    pattern, root = Path(ref.removeprefix("file://")), base.resolve()
    outside = ValueError(f"{ref} is outside the config's folder {base}; copy the file into it")
    if pattern.is_absolute():
        if not pattern.is_relative_to(root):
            raise outside
        pattern = pattern.relative_to(root)  # glob takes relative patterns only
    paths = sorted(base.glob(str(pattern))) if "*" in str(pattern) else [base / pattern]
    if any(not path.resolve().is_relative_to(root) for path in paths):
        raise outside
    return paths


def _json_line(line: str) -> object:
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None  # reported by _from_list as "not a list of test mappings"


def assertion_from_text(text: str) -> dict[str, Any]:
    """An assertion from a CSV `__expected` cell, as promptfoo's assertionFromString reads it."""
    for prefix in ("javascript:", "fn:", "eval:"):
        if text.startswith(prefix):
            return {"type": "javascript", "value": text[len(prefix) :].strip()}
    for prefix in ("grade:", "llm-rubric:"):
        if text.startswith(prefix):
            # promptfoo keeps the space after the colon; a rubric's edges carry no meaning
            return {"type": "llm-rubric", "value": text[len(prefix) :].strip()}
    if text.startswith("python:"):
        return {"type": "python", "value": text[7:].strip()}
    match = _CSV_ASSERTION.match(text)
    if match is None:
        return {"type": "equals", "value": text}
    negated, kind, threshold, value = match.groups()
    assertion: dict[str, Any] = {"type": f"not-{kind}" if negated else kind}
    if kind in _LIST_TYPES:
        assertion["value"] = [v.strip().strip('"') for v in value.split(",")] if value else value
    elif kind in ("is-json", "contains-json"):
        assertion["value"] = value
    else:
        assertion["value"] = value.strip() if value is not None else None
    if kind in _THRESHOLD_TYPES:
        default = 0.8 if kind == "similar" else 0.75
        assertion["threshold"] = float(threshold) if threshold is not None else default
    if assertion.get("value") is None:
        assertion.pop("value")
    return assertion


def merge(default: PromptfooTest, test: PromptfooTest) -> PromptfooTest:
    """`defaultTest` under a test: its vars and metadata yield, its assertions come first."""
    return replace(
        test,
        vars={**default.vars, **test.vars},
        metadata={**default.metadata, **test.metadata},
        asserts=[*default.asserts, *test.asserts],
        providers=test.providers if test.providers is not None else default.providers,
        prompts=test.prompts if test.prompts is not None else default.prompts,
        grader=test.grader or default.grader,
        transformed=test.transformed or default.transformed,
    )


def expand(test: PromptfooTest, note: Callable[[str], None]) -> list[PromptfooTest]:
    """promptfoo runs a test once per combination of its list-valued vars; so do the rows."""
    lists = {k: v for k, v in test.vars.items() if isinstance(v, list)}
    if not lists:
        return [test]
    combos = list(itertools.product(*lists.values()))
    note(f"{test.where}: list-valued vars expand into {len(combos)} rows, as in promptfoo")
    return [replace(test, vars={**test.vars, **dict(zip(lists, c, strict=True))}) for c in combos]
