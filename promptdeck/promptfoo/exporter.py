"""Export a PromptDeck suite as a promptfooconfig.yaml that promptfoo runs as it is.

Each variant becomes one inline prompt (chat JSON, or plain text for a lone user template)
and one provider, both labelled with the variant's name; the provider's `prompts:` filter
pairs them, so promptfoo runs exactly the suite's variants, not every prompt on every model.
Every dataset row becomes a test (or, with `sampled`, every row of the suite's sample).

Checks: when all variants have the same checks, they go in `defaultTest` (or, when one reads
the row's `expected`, in every test); when the variants differ, each row is written once per
group of variants with equal checks, limited to them by the test's `providers:` filter. The
judge's rubric becomes an llm-rubric graded by the judge's model; a row's own `rubric`
replaces it on that row, as in PromptDeck. A variant's tools, tool_choice and output_schema
go in its provider's config (tools.py); the mocks cannot (promptfoo runs no tool rounds), so
each is listed. Anything without a promptfoo counterpart is listed in `ExportResult.unmapped`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from promptdeck.errors import ConfigError
from promptdeck.evals.suite import Suite, load_suite
from promptdeck.model.registry import ProviderConfig, builtin_configs
from promptdeck.promptfoo.checks import SIMILAR_DIFFERS
from promptdeck.promptfoo.config import (
    PARAM_NAMES,
    Unmapped,
    assertions_from_check,
    dump_yaml,
    provider_id_for,
)
from promptdeck.promptfoo.importer import write_files
from promptdeck.promptfoo.tools import (
    MOCKS_NOT_EXPORTED,
    TOOLS_CALL_DIFFERS,
    config_output_schema,
    config_tools,
)
from promptdeck.scoring.checks import Check
from promptdeck.workspace.datasets import RESERVED, Case, load_dataset
from promptdeck.workspace.prompts import PromptVariant, load_prompts
from promptdeck.workspace.sampling import sample_cases
from promptdeck.workspace.tools import DEFAULT_MAX_TOOL_ROUNDS

_PROMPTFOO_PARAMS = {name for name in PARAM_NAMES if name not in ("num_predict",)}
_META_COLUMNS = ("id", "category", "human_score")


@dataclass(frozen=True)
class ExportResult:
    path: Path
    tests: int
    unmapped: tuple[Unmapped, ...]


@dataclass
class _Export:
    unmapped: list[Unmapped] = field(default_factory=list)

    def report(self, where: str, reason: str) -> None:
        self.unmapped.append(Unmapped(where, reason))


def export_promptfoo(
    suite_path: Path,
    out: Path,
    *,
    prompts_dir: Path,
    presets: Mapping[str, ProviderConfig] | None = None,
    sampled: bool = False,
    force: bool = False,
) -> ExportResult:
    """Write `out` for the suite at `suite_path`; refuses to overwrite unless `force`."""
    suite = load_suite(suite_path)
    variants = _variants(suite, prompts_dir)
    dataset = load_dataset(suite.dataset)
    cases = list(dataset.cases)
    if sampled:
        s = suite.sample
        cases = sample_cases(
            cases, n=s.n, fraction=s.fraction, seed=s.seed, stratify=s.stratify, floor=s.floor
        )
    ex = _Export()
    _report_suite(suite, sampled, len(cases), ex)
    providers = _providers(variants, builtin_configs() if presets is None else presets, ex)
    exported = [v for v in variants if v.name in providers]
    if not exported:
        raise ConfigError(f"{suite_path}: no variant has a model promptfoo can call")
    config: dict[str, Any] = {
        "description": f"PromptDeck suite {suite.name}",
        "prompts": [{"label": v.name, "raw": prompt_text(v)} for v in exported],
        "providers": [providers[v.name] for v in exported],
    }
    grader = _grader(suite, presets or builtin_configs(), ex)
    tests, default = _tests(suite, exported, cases, grader, ex)
    if default:
        config["defaultTest"] = default
    config["tests"] = tests
    if suite.repeats > 1:
        config["evaluateOptions"] = {"repeat": suite.repeats}
    write_files({out: dump_yaml(config)}, force=force)
    return ExportResult(out, len(tests), tuple(ex.unmapped))


def _variants(suite: Suite, prompts_dir: Path) -> list[PromptVariant]:
    library = load_prompts(prompts_dir)
    found = []
    for name in suite.variants:
        if name not in library.variants:
            broken = [str(e) for e in library.errors if Path(e.path).stem == name.partition("/")[2]]
            why = broken[0] if broken else f"no file {prompts_dir / name}.yaml"
            raise ConfigError(f"{suite.path}: unknown variant '{name}': {why}")
        found.append(library.variants[name])
    return found


def _report_suite(suite: Suite, sampled: bool, rows: int, ex: _Export) -> None:
    if suite.gates:
        ex.report("gates", "promptfoo has no regression gates; not exported")
    if not sampled and (suite.sample.n is not None or suite.sample.fraction is not None):
        ex.report("sample", f"all {rows} rows exported; --sampled exports the suite's sample")
    if suite.judge is not None:
        if suite.judge.mode == "pairwise":
            ex.report("judge.mode", "pairwise judging is exported as llm-rubric on each answer")
        ex.report("judge.scale", "promptfoo's llm-rubric grades pass/fail (0-1), not on a scale")


def prompt_text(variant: PromptVariant) -> str:
    """promptfoo's raw prompt: the user template alone, else the chat as JSON."""
    if not variant.messages and not variant.system:
        return variant.user or ""
    return json.dumps(
        [{"role": m.role, "content": m.content} for m in variant.templates],
        ensure_ascii=False,
        indent=2,
    )


def _providers(
    variants: Sequence[PromptVariant], presets: Mapping[str, ProviderConfig], ex: _Export
) -> dict[str, dict[str, Any]]:
    providers = {}
    for variant in variants:
        model = variant.model
        if model.startswith("local/"):
            # the embedded model runs in-process; a llama.cpp server serves the same GGUF
            model = "llamacpp/" + model.partition("/")[2]
            ex.report(f"{variant.name}.model", f"{variant.model} is called as {model} (a server)")
        try:
            ident, base_url = provider_id_for(model, presets)
        except ValueError as exc:
            ex.report(f"{variant.name}.model", f"{exc}; variant not exported")
            continue
        config = _params(variant, ident, ex)
        config.update(_tools(variant, ident, ex))
        if base_url:
            parts = urlsplit(base_url)
            if "@" in parts.netloc:  # a user:password@ in the URL stays out of the file
                parts = parts._replace(netloc=parts.netloc.rpartition("@")[2])
                ex.report(f"{variant.name}.model", "the base URL's credentials are not exported")
            config["apiBaseUrl"] = urlunsplit(parts)
        if variant.fallback:
            ex.report(f"{variant.name}.fallback", "promptfoo has no fallback model; not exported")
        entry: dict[str, Any] = {"id": ident, "label": variant.name, "prompts": [variant.name]}
        if config:
            entry["config"] = config
        providers[variant.name] = entry
    return providers


def _params(variant: PromptVariant, ident: str, ex: _Export) -> dict[str, Any]:
    config = {}
    for name, value in variant.params.items():
        if name == "max_tokens" and ident.startswith("ollama:"):
            config["num_predict"] = value
        elif name == "repeat_penalty" and not ident.startswith("ollama:"):
            ex.report(f"{variant.name}.params.{name}", "only promptfoo's ollama provider has it")
        elif name == "thinking" and not ident.startswith("anthropic:"):
            ex.report(f"{variant.name}.params.{name}", "only promptfoo's anthropic provider has it")
        elif name in _PROMPTFOO_PARAMS:
            config[name] = value
        else:
            ex.report(f"{variant.name}.params.{name}", "no promptfoo equivalent; not exported")
    return config


def _tools(variant: PromptVariant, ident: str, ex: _Export) -> dict[str, Any]:
    """The provider config for the variant's tools and output_schema; what has no place in
    promptfoo (the mocks, the rounds, tool checks it reads otherwise) is reported."""
    config: dict[str, Any] = {}
    if variant.tools:
        config["tools"] = config_tools(variant.tools)
        for index, tool in enumerate(variant.tools):
            ex.report(f"{variant.name}.tools[{index}].mock", f"{tool.name}: {MOCKS_NOT_EXPORTED}")
        if variant.max_tool_rounds != DEFAULT_MAX_TOOL_ROUNDS:
            ex.report(f"{variant.name}.max_tool_rounds", "promptfoo runs no tool rounds")
    if variant.output_schema is not None:
        key, value = config_output_schema(variant.output_schema, ident)
        config[key] = value
    for index, check in enumerate(variant.checks):
        if check.type == "tool_args_valid":
            why = TOOLS_CALL_DIFFERS
            if ident.startswith("anthropic:"):
                why = "it reads OpenAI's tool calls, and promptfoo's anthropic provider answers "
                why += "with tool_use blocks: it fails there"
            ex.report(f"{variant.name}.checks[{index}]", f"exported, but {why}")
    return config


def _grader(suite: Suite, presets: Mapping[str, ProviderConfig], ex: _Export) -> str | None:
    if suite.judge is None:
        return None
    try:
        return provider_id_for(suite.judge.model, presets)[0]
    except ValueError as exc:
        ex.report("judge.model", f"{exc}; promptfoo grades with its default model")
        return None


def check_mapping(check: Check) -> dict[str, Any]:
    """A check as its YAML mapping (what `parse_check` reads)."""
    data: dict[str, Any] = {"type": check.type}
    if isinstance(check.value, tuple):
        data["value"] = list(check.value)
    elif isinstance(check.value, Mapping):
        data["value"] = dict(check.value)
    elif check.value is not None:
        data["value"] = check.value
    if check.threshold is not None:
        data["threshold"] = check.threshold
    if not check.case_sensitive:
        data["case_sensitive"] = False
    if check.name:
        data["name"] = check.name
    if check.args is not None:
        data["args"] = dict(check.args)
    if check.times is not None:
        data["times"] = check.times
    return data


def _reads_expected(check: Check) -> bool:
    return check.type in ("equals", "similar") and check.value is None


def _asserts(variant: PromptVariant, case: Case | None, ex: _Export) -> list[dict[str, Any]]:
    """The variant's checks as assertions, for one row (or for every row when case is None)."""
    expected = case.values.get("expected") if case else None
    asserts = []
    for index, check in enumerate(variant.checks):
        try:
            found = assertions_from_check(check_mapping(check), expected)
        except ValueError as exc:
            ex.report(f"{variant.name}.checks[{index}]", str(exc))
            continue
        if check.type == "similar":
            ex.report(f"{variant.name}.checks[{index}]", f"exported, but {SIMILAR_DIFFERS}")
        if check.name and check.type != "tool_called":  # a tool_called's name is the tool
            found = [{**a, "metric": check.name} for a in found]
        asserts.extend(found)
    return asserts


def _tests(
    suite: Suite,
    variants: Sequence[PromptVariant],
    cases: Sequence[Case],
    grader: str | None,
    ex: _Export,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    groups: dict[str, list[PromptVariant]] = {}
    for variant in variants:
        key = json.dumps([check_mapping(c) for c in variant.checks], sort_keys=True)
        groups.setdefault(key, []).append(variant)
    row_checks = any(_reads_expected(c) for v in variants for c in v.checks)
    default: dict[str, Any] = {}
    if len(groups) == 1 and not row_checks and variants[0].checks:
        default["assert"] = _asserts(variants[0], None, ex)
    row_rubrics = any(c.values.get("rubric", "").strip() for c in cases)
    if suite.judge and not row_rubrics:
        default.setdefault("assert", []).append({"type": "llm-rubric", "value": suite.judge.rubric})
    if suite.judge and grader:
        default["options"] = {"provider": grader}
    if row_rubrics and not suite.judge:
        ex.report("rubric", "the suite has no judge: the rows' rubrics are not exported")
    tests = []
    for case in cases:
        for members in groups.values():
            test = _test(case, suite, row_checks)
            asserts = [] if "assert" in default else _asserts(members[0], case, ex)
            if suite.judge and row_rubrics:
                rubric = case.values.get("rubric", "").strip() or suite.judge.rubric
                asserts.append({"type": "llm-rubric", "value": rubric})
            if asserts:
                test["assert"] = asserts
            if len(groups) > 1:
                test["providers"] = [v.name for v in members]
            tests.append(test)
    ex.unmapped[:] = list(dict.fromkeys(ex.unmapped))  # a check fails the same way on each row
    return tests, default


def _test(case: Case, suite: Suite, row_checks: bool) -> dict[str, Any]:
    values = case.values
    test: dict[str, Any] = {"vars": {k: v for k, v in values.items() if k not in RESERVED}}
    if values.get("expected") and not row_checks:
        test["vars"]["expected"] = values["expected"]  # the judge's reference, kept as a var
    metadata = {k: values[k] for k in _META_COLUMNS if values.get(k, "").strip()}
    if metadata:
        test["metadata"] = metadata
    return test
