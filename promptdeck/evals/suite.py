"""Eval suites (`datasets/<name>.suite.yaml`): what an eval run is made of.

    dataset: support_tickets.csv         # relative to the suite file
    sample: {n: 60, stratify: category, seed: 7}   # or fraction: 0.3; floor: 1
    variants: [support/production, support/concise]
    baseline: support/production
    repeats: 1                           # run each (case, variant) k times
    judge: {model: local/smollm2, rubric: ..., scale: [1, 5], mode: pointwise}
    gates: [{metric: judge_score, max_drop: 0.2}, ...]

Errors name the file, the line and the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from promptdeck.analysis.gate_spec import parse_gate
from promptdeck.errors import ConfigError
from promptdeck.scoring.judge import JUDGE_METHODS, JudgeSpec
from promptdeck.workspace.fileio import outside, read_text
from promptdeck.workspace.yamlfile import parse_yaml_document

DEFAULT_RUBRIC = """Score 1-5: does the reply answer the user's message correctly, completely and
politely, without inventing facts? 5 = fully resolves it; 3 = partly helpful; 1 = wrong,
harmful or off-topic."""
SUITE_KEYS = ("dataset", "sample", "variants", "baseline", "repeats", "judge", "gates")
SAMPLE_KEYS = ("n", "fraction", "stratify", "seed", "floor")
JUDGE_KEYS = ("model", "rubric", "scale", "mode", "method")


@dataclass(frozen=True)
class SampleSpec:
    n: int | None = None
    fraction: float | None = None
    stratify: str | None = "category"
    seed: int = 0
    floor: int = 1


@dataclass(frozen=True)
class Suite:
    path: Path | None
    dataset: Path
    variants: tuple[str, ...]
    sample: SampleSpec = SampleSpec()
    baseline: str | None = None
    repeats: int = 1
    judge: JudgeSpec | None = None
    gates: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        return self.path.name.removesuffix(".suite.yaml") if self.path else self.dataset.stem

    def to_dict(self) -> dict[str, Any]:
        """The suite as plain data, for the run snapshot."""
        s, j = self.sample, self.judge
        return {
            "path": str(self.path) if self.path else None,
            "dataset": str(self.dataset),
            "sample": {
                "n": s.n,
                "fraction": s.fraction,
                "stratify": s.stratify,
                "seed": s.seed,
                "floor": s.floor,
            },
            "variants": list(self.variants),
            "baseline": self.baseline,
            "repeats": self.repeats,
            "judge": None if j is None else _judge_dict(j),
            "gates": [dict(g) for g in self.gates],
        }


def find_suites(root: Path) -> list[Path]:
    return sorted(root.glob("*.suite.yaml")) if root.is_dir() else []


def load_suite(path: Path) -> Suite:
    try:  # YAML 1.2 scalars: a gate's `on: mean` is the key "on", not True
        node, data = parse_yaml_document(read_text(path))
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if data is None:
        raise ConfigError(f"{path}: the file is empty; a suite needs dataset and variants")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a suite is a mapping with dataset, variants, sample, ...")
    lines = _key_lines(node)

    def fail(key: str, message: str) -> ConfigError:
        line = f", line {lines[key]}" if key in lines else ""
        return ConfigError(f"{path}{line}: '{key}': {message}")

    _reject_unknown(data, SUITE_KEYS, fail, "")
    if not isinstance(data.get("dataset"), str) or not data["dataset"].strip():
        raise fail("dataset", "required: the dataset file, relative to this suite")
    dataset = path.parent / data["dataset"]
    if outside(dataset, path.parent) is not None:  # ../../etc/passwd, or a link elsewhere
        raise fail("dataset", "must be a file in this suite's folder (or below it)")
    variants = data.get("variants")
    if (
        not isinstance(variants, list)
        or not variants
        or not all(isinstance(v, str) for v in variants)
    ):
        raise fail("variants", "required: a list of task/variant names")
    baseline = data.get("baseline")
    if baseline is not None and baseline not in variants:
        raise fail("baseline", f"{baseline!r} is not one of the variants")
    repeats = data.get("repeats", 1)
    if not isinstance(repeats, int) or isinstance(repeats, bool) or not 1 <= repeats <= 20:
        raise fail("repeats", "must be a whole number from 1 to 20")
    return Suite(
        path=path,
        dataset=dataset,
        variants=tuple(variants),
        sample=_sample(data.get("sample") or {}, fail),
        baseline=baseline,
        repeats=repeats,
        judge=_judge(data.get("judge"), fail),
        gates=_gates(path, data.get("gates") or [], node, fail),
    )


def _key_lines(node: yaml.Node | None) -> dict[str, int]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(k.value): k.start_mark.line + 1 for k, _ in node.value}


def _reject_unknown(
    data: Mapping[Any, Any], allowed: tuple[str, ...], fail: Any, where: str
) -> None:
    unknown = [str(k) for k in data if k not in allowed]
    if unknown:
        key = where or unknown[0]
        raise fail(key, f"unknown key {unknown[0]!r}; allowed: {', '.join(allowed)}")


def _sample(raw: Any, fail: Any) -> SampleSpec:
    if not isinstance(raw, dict):
        raise fail("sample", "must be a mapping like {n: 60, stratify: category, seed: 7}")
    _reject_unknown(raw, SAMPLE_KEYS, fail, "sample")
    n, fraction = raw.get("n"), raw.get("fraction")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise fail("sample", "n must be a whole number of rows ≥ 1")
    if fraction is not None and (not isinstance(fraction, int | float) or not 0 < fraction <= 1):
        raise fail("sample", "fraction must be a number in (0, 1]")
    if n is not None and fraction is not None:
        raise fail("sample", "give n or fraction, not both")
    seed, floor = raw.get("seed", 0), raw.get("floor", 1)
    if not isinstance(seed, int) or not isinstance(floor, int) or floor < 0:
        raise fail("sample", "seed and floor must be whole numbers")
    stratify = raw.get("stratify", "category")
    if stratify is not None and not isinstance(stratify, str):
        raise fail("sample", "stratify must be a column name (or null)")
    return SampleSpec(n, None if fraction is None else float(fraction), stratify, seed, floor)


def _judge(raw: Any, fail: Any) -> JudgeSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise fail("judge", "must be a mapping with model and rubric")
    _reject_unknown(raw, JUDGE_KEYS, fail, "judge")
    model, rubric = raw.get("model"), raw.get("rubric")
    if not isinstance(model, str) or "/" not in model:
        raise fail("judge", "model must be a provider/model reference")
    if not isinstance(rubric, str) or not rubric.strip():
        raise fail("judge", "rubric is required text")
    scale = raw.get("scale", [1, 5])
    if (
        not isinstance(scale, list)
        or len(scale) != 2
        or not all(isinstance(x, int) for x in scale)
        or scale[0] >= scale[1]
    ):
        raise fail("judge", "scale must be [low, high] whole numbers, e.g. [1, 5]")
    mode = raw.get("mode", "pointwise")
    if mode not in ("pointwise", "pairwise"):
        raise fail("judge", "mode must be pointwise or pairwise")
    method = raw.get("method")
    if method is not None and method not in JUDGE_METHODS:
        raise fail("judge", f"method must be {' or '.join(JUDGE_METHODS)}")
    return JudgeSpec(model, rubric, (scale[0], scale[1]), mode, method)


def _judge_dict(j: JudgeSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"model": j.model, "rubric": j.rubric, "scale": list(j.scale)}
    out["mode"] = j.mode
    if j.method is not None:  # only when set: the fingerprints of earlier runs stay the same
        out["method"] = j.method
    return out


def _gates(
    path: Path, raw: Any, node: yaml.Node | None, fail: Any
) -> tuple[Mapping[str, Any], ...]:
    """Every gate checked by the one gate validator now, before any call is made; an error
    names the file, the line and the field (`gates[2].max`)."""
    if not isinstance(raw, list):
        raise fail("gates", "must be a list of {metric: ..., max_drop|min|max: ...}")
    items = _value_node(node, "gates")
    for i, gate in enumerate(raw):
        try:
            parse_gate(gate)
        except ConfigError as exc:
            item = items.value[i] if isinstance(items, yaml.SequenceNode) else None
            line = _line(item, exc.field)
            where = f"gates[{i}]" + (f".{exc.field}" if exc.field else "")
            raise ConfigError(
                f"{path}{f', line {line}' if line else ''}: '{where}': {exc}", field=where
            ) from None
    return tuple(raw)


def _value_node(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    return next((v for k, v in node.value if k.value == key), None)


def _line(node: yaml.Node | None, field: str | None) -> int | None:
    """The line of `field` inside a gate's mapping node, else of the gate itself."""
    if node is None:
        return None
    if field is not None and isinstance(node, yaml.MappingNode):
        for key, _ in node.value:
            if str(key.value) == field:
                return int(key.start_mark.line) + 1
    return int(node.start_mark.line) + 1
