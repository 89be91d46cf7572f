"""A gate as a suite declares it, and its one validator: `parse_gate`.

Apart from `analysis.gates` (which decides gates on a run's cells, with pandas and
numpy) so that loading a suite checks its gates before any call without importing them:
`promptdeck run` sends its first request within a few hundred milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from promptdeck.errors import ConfigError

METRICS: dict[str, tuple[str, ...]] = {  # metric -> the limit keys it takes
    "judge_score": ("max_drop", "min"),
    "win_rate": ("min",),
    "error_rate": ("max",),
    "check_pass_rate": ("min",),
    "latency_p95_ms": ("max",),
    "cost_per_answer_usd": ("max",),
    "confidence": ("min",),
}
INTERVAL_METRICS = ("judge_score", "win_rate")
GATE_KEYS = ("metric", "max_drop", "min", "max", "category", "on")


@dataclass(frozen=True)
class Gate:
    metric: str
    kind: str  # "max_drop" | "min" | "max"
    limit: float
    category: str | None = None
    on: str = "ci"  # "ci" | "mean"

    @property
    def name(self) -> str:
        """'judge_score drop ≤ 0.2 (billing)'."""
        op = {"max_drop": "drop ≤", "min": "≥", "max": "≤"}[self.kind]
        notes = [self.category] if self.category is not None else []
        notes += ["point estimate"] if self.on == "mean" else []
        return f"{self.metric} {op} {self.limit:g}" + (f" ({', '.join(notes)})" if notes else "")

    @property
    def interval(self) -> bool:
        """Decided on an interval (module docstring), so it shares a family's error."""
        return self.metric in INTERVAL_METRICS and self.on == "ci"


def parse_gate(raw: object) -> Gate:
    """One gate as a suite declares it: the one validator, used when a suite is loaded (so a
    bad gate is refused before any call) and when a stored run's gates are evaluated.
    ConfigError says what is wrong; its `field` names the key at fault."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"a gate is a mapping like {{metric: judge_score, max_drop: 0.2}}; "
                          f"got {raw!r}")  # fmt: skip
    unknown = [str(k) for k in raw if k not in GATE_KEYS]
    if unknown:
        raise ConfigError(
            f"unknown key {unknown[0]!r}; allowed: {', '.join(GATE_KEYS)}", field=unknown[0]
        )
    metric = raw.get("metric")
    if metric not in METRICS:
        raise ConfigError(
            f"unknown metric {metric!r}; use one of {', '.join(METRICS)}", field="metric"
        )
    kinds = [k for k in ("max_drop", "min", "max") if raw.get(k) is not None]
    if len(kinds) != 1 or kinds[0] not in METRICS[metric]:
        given = ", ".join(kinds) or "none"
        raise ConfigError(
            f"{metric} takes exactly one of {', '.join(METRICS[metric])} (given: {given})",
            field=kinds[0] if kinds else "metric",
        )
    kind = kinds[0]
    limit = raw[kind]
    if isinstance(limit, bool) or not isinstance(limit, int | float) or not math.isfinite(limit):
        raise ConfigError(
            f"{kind} must be a number (a share as 0.02, not 2%); got {limit!r}", field=kind
        )
    if kind == "max_drop" and limit < 0:
        raise ConfigError("max_drop is a size of drop, so 0 or more", field=kind)
    if metric == "win_rate" and not 0 <= limit <= 1:
        raise ConfigError("win_rate min is a share of comparisons, 0 to 1 (0.5: even)", field=kind)
    on = raw.get("on")
    if on is not None and (metric != "judge_score" or on not in ("ci", "mean")):
        raise ConfigError("'on' is for judge_score gates: ci (default) or mean", field="on")
    category = raw.get("category")
    if category is not None and not isinstance(category, str | int):
        raise ConfigError(f"category must be a category name or 'each'; got {category!r}",
                          field="category")  # fmt: skip
    return Gate(metric, kind, float(limit), None if category is None else str(category), on or "ci")


def parse_gates(raw: Sequence[object]) -> list[Gate]:
    """Every gate of a stored run's snapshot (validated when its suite was loaded)."""
    out = []
    for i, gate in enumerate(raw):
        try:
            out.append(parse_gate(gate))
        except ConfigError as exc:
            where = f"gates[{i}]" + (f".{exc.field}" if exc.field else "")
            raise ConfigError(f"'{where}': {exc}", field=where) from None
    return out
