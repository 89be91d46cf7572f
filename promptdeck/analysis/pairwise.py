"""Pairwise verdicts against the baseline: win, tie and loss rates, and how often the
judge changes its mind when the two answers swap places.

`scoring.scorers.pairwise_score` asks the judge twice, the variant's answer (the
candidate) first as A, then swapped as B; only agreement is a win or a loss, anything
else a tie. The stored value is 1.0 (win), 0.5 (tie) or 0.0 (loss), None when unscored;
the stored reason names both raw verdicts: "tie: candidate first, the judge chose A;
swapped, it chose A". A position-swap disagreement is a comparison whose two raw verdicts
do not name the same answer (A then B is the candidate both times: agreement; A then A
is the first slot both times: disagreement; a tie against a choice: disagreement).

Counts are per comparison (per cell: with repeats, each repeat is one comparison). Every
share's interval is `stats.mean_ci` of 0/1 values on [0, 1] (for 0/1 values the Gaffke
bound is the Clopper–Pearson bound), 95% by default; the win rate (ties count half) is
the mean value, with the same interval as the `win_rate` gate.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from promptdeck.analysis.stats import Interval, mean_ci

_SWAP = re.compile(r"candidate first, the judge chose (\w+); swapped, it chose (\w+)")
_CANDIDATE = ({"A": "candidate", "B": "baseline"}, {"B": "candidate", "A": "baseline"})


@dataclass(frozen=True)
class Share:
    count: int
    n: int
    ci: Interval | None  # the share and its interval; None when n = 0

    @property
    def text(self) -> str:
        """'12 of 40 (30%, 95% CI 17% to 46%)'."""
        if self.ci is None or self.ci.low is None or self.ci.high is None:
            return f"{self.count} of {self.n}"
        return (f"{self.count} of {self.n} ({self.ci.mean:.0%}, CI {self.ci.low:.0%} to "
                f"{self.ci.high:.0%})")  # fmt: skip


@dataclass(frozen=True)
class PairwiseRates:
    n: int  # scored comparisons
    unscored: int
    wins: Share
    ties: Share
    losses: Share
    win_rate: Interval | None  # mean value, ties half
    disagreements: Share  # over the comparisons whose reason names both raw verdicts
    same_slot: int  # of those disagreements: the judge chose the same slot (A, A or B, B)


def swap_verdicts(reason: str | None) -> tuple[str, str] | None:
    """The two raw verdicts a stored pairwise reason names ('A', 'B' or 'tie'), or None."""
    match = _SWAP.search(reason or "")
    return (match.group(1), match.group(2)) if match else None


def swap_disagrees(first: str, second: str) -> bool:
    """Whether the verdicts of the two orders (candidate as A, then as B) name different
    answers: A then B agree (the candidate), B then A agree, tie and tie agree."""
    return _CANDIDATE[0].get(first, first) != _CANDIDATE[1].get(second, second)


def _share(count: int, n: int, level: float, seed: int) -> Share:
    values = [1.0] * count + [0.0] * (n - count)
    return Share(count, n, mean_ci(values, low=0.0, high=1.0, level=level, seed=seed))


def pairwise_rates(
    values: Sequence[float | None],
    reasons: Sequence[str | None] | None = None,
    *,
    level: float = 0.95,
    seed: int = 0,
) -> PairwiseRates:
    """Win, tie and loss shares of the scored comparisons, the win rate, and the share of
    position-swap disagreements, each with its interval (module docstring). `reasons`, if
    given, are the stored reasons of the same comparisons, in the same order."""
    if reasons is not None and len(reasons) != len(values):
        raise ValueError("values and reasons must be as long as each other")
    scored = [float(v) for v in values if v is not None and not math.isnan(v)]
    n = len(scored)
    wins, losses = sum(v > 0.5 for v in scored), sum(v < 0.5 for v in scored)
    verdicts = [swap_verdicts(r) for r in reasons or []]
    swaps = [v for v in verdicts if v is not None]
    disagreeing = [v for v in swaps if swap_disagrees(*v)]
    same_slot = sum(first == second and first != "tie" for first, second in disagreeing)
    return PairwiseRates(
        n=n, unscored=len(values) - n,
        wins=_share(wins, n, level, seed), ties=_share(n - wins - losses, n, level, seed),
        losses=_share(losses, n, level, seed),
        win_rate=mean_ci(scored, low=0.0, high=1.0, level=level, seed=seed),
        disagreements=_share(len(disagreeing), len(swaps), level, seed), same_slot=same_slot,
    )  # fmt: skip


def pairwise_frame(cells: pd.DataFrame, baseline: str, *, seed: int = 0) -> pd.DataFrame:
    """Per variant with pairwise verdicts: comparisons, unscored, win/tie/loss shares and
    the win rate with 95% intervals, and position-swap disagreements. Reads the cells'
    `pairwise` column, and `pairwise_reason` when the cells have it."""
    rows: list[dict[str, object]] = []
    if "pairwise" not in cells.columns:
        return pd.DataFrame(rows)
    judged = cells[cells["variant"] != baseline]
    for variant, mine in judged.groupby("variant", sort=True):
        values = [None if pd.isna(v) else float(v) for v in mine["pairwise"]]
        if all(v is None for v in values):
            continue
        reasons = list(mine["pairwise_reason"]) if "pairwise_reason" in mine.columns else None
        r = pairwise_rates(values, reasons, seed=seed)
        rate = r.win_rate
        rows.append({
            "variant": variant, "comparisons": r.n, "unscored": r.unscored,
            "wins": r.wins.text, "ties": r.ties.text, "losses": r.losses.text,
            "win_rate": rate.mean if rate else None,
            "low": rate.low if rate else None, "high": rate.high if rate else None,
            "swap_disagreements": r.disagreements.text if r.disagreements.n else "-",
            "same_slot": r.same_slot,
        })  # fmt: skip
    return pd.DataFrame(rows)
