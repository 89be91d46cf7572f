"""How well the judge agrees with human scores: exact and within-one agreement, and Cohen's
weighted kappa (agreement beyond chance, partial credit for near misses).

Only pairs where both scores exist count. Every statistic answers None, never 0.0, when it is
undefined: no pairs, fewer than two pairs (kappa), or no expected disagreement (all ratings
in one category), so an empty review never reads as "the judge disagrees".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Weights = Literal["linear", "quadratic"]


@dataclass(frozen=True)
class Agreement:
    """n pairs; exact / within_one are fractions of them; kappas are Cohen's weighted kappa."""

    n: int
    exact: float | None
    within_one: float | None
    kappa_linear: float | None
    kappa_quadratic: float | None


def agreement(judge: Sequence[float | None], human: Sequence[float | None]) -> Agreement:
    """Judge-human agreement over the cases that both scored.

    Exact and within-one compare the scores as given; kappa needs categories, so it rounds
    each score to the nearest whole number (halves up) over the range the scores span.
    """
    if len(judge) != len(human):
        raise ValueError(f"{len(judge)} judge scores but {len(human)} human scores")
    pairs = [(j, h) for j, h in zip(judge, human, strict=True) if j is not None and h is not None]
    n = len(pairs)
    if n == 0:
        return Agreement(0, None, None, None, None)
    exact = sum(j == h for j, h in pairs) / n
    within_one = sum(abs(j - h) <= 1 for j, h in pairs) / n
    a = [_nearest(j) for j, _ in pairs]
    b = [_nearest(h) for _, h in pairs]
    categories = range(min(a + b), max(a + b) + 1)
    return Agreement(
        n,
        exact,
        within_one,
        weighted_kappa(a, b, categories, "linear"),
        weighted_kappa(a, b, categories, "quadratic"),
    )


def _nearest(score: float) -> int:
    return math.floor(score + 0.5)


def weighted_kappa(
    a: Sequence[int], b: Sequence[int], categories: Sequence[int], weights: Weights
) -> float | None:
    """Cohen's weighted kappa of two raters over ordered `categories`.

    kappa = 1 - sum(w * observed) / sum(w * expected), where observed is the joint
    distribution of the pairs, expected the product of the two raters' marginals, and the
    disagreement weight of categories i, j (by position) is |i - j| / (k - 1), squared for
    "quadratic". None when undefined: fewer than two pairs, or no expected disagreement.
    """
    if len(a) != len(b):
        raise ValueError(f"the raters scored {len(a)} and {len(b)} items")
    if weights not in ("linear", "quadratic"):
        raise ValueError(f"weights must be 'linear' or 'quadratic', not {weights!r}")
    index = {category: i for i, category in enumerate(categories)}
    unknown = sorted({x for x in (*a, *b) if x not in index})
    if unknown:
        raise ValueError(f"ratings {unknown} are not among the categories {list(categories)}")
    n, k = len(a), len(index)
    if n < 2 or k < 2:
        return None
    power = 1 if weights == "linear" else 2
    weight = [[(abs(i - j) / (k - 1)) ** power for j in range(k)] for i in range(k)]
    observed = sum(weight[index[x]][index[y]] for x, y in zip(a, b, strict=True)) / n
    count_a, count_b = [0] * k, [0] * k
    for x, y in zip(a, b, strict=True):
        count_a[index[x]] += 1
        count_b[index[y]] += 1
    expected = sum(weight[i][j] * count_a[i] * count_b[j] for i in range(k) for j in range(k)) / (
        n * n
    )
    if expected == 0:
        return None
    return 1 - observed / expected


def run_agreement(
    cases: Sequence[Mapping[str, object]],
    scores: Sequence[Mapping[str, object]],
    overrides: Mapping[tuple[str, str, int], float] | None = None,
) -> Agreement | None:
    """Judge vs human on one run: human labels from the dataset's `human_score` column
    (per case) and human overrides from review (per cell). None when there are no labels."""
    labels = {str(c["id"]): _number(c.get("human_score")) for c in cases}
    judge, human = [], []
    for s in scores:
        if s["scorer"] != "judge":
            continue
        key = (str(s["row_id"]), str(s["variant"]), int(str(s["repeat"])))
        label = (overrides or {}).get(key, labels.get(key[0]))
        if label is not None:
            judge.append(_number(s["value"]))
            human.append(label)
    return agreement(judge, human) if human else None


def _number(value: object) -> float | None:
    try:
        return None if value in (None, "") else float(str(value))
    except ValueError:
        return None


def describe(a: Agreement) -> str:
    """One line for a PM: 'Judge vs human on 12 answers: exact 58%, within one 92%, κ 0.61'."""

    def pct(x: float | None) -> str:
        return "–" if x is None else f"{x:.0%}"

    kappa = "–" if a.kappa_quadratic is None else f"{a.kappa_quadratic:.2f}"
    return (
        f"Judge vs human on {a.n} answer{'s' if a.n != 1 else ''}: exact {pct(a.exact)}, "
        f"within one {pct(a.within_one)}, weighted κ {kappa}"
    )
