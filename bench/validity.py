"""How often the release gates and verdicts decide wrongly, by simulation with known truth.

Paired per-row deltas (variant − baseline) are drawn from exactly known distributions
whose mean is set to 0 (a harmless change) or to −m (a drop of exactly the margin m), and
each rule decides on them as `analysis.gates` does. Shapes, on the judge scale [1, 5]
(m = 0.2) unless noted:
    symmetric     deltas −2…+2 (40% ties), sd 1.0
    tie-heavy     86% ties, ±1, ±2, ±3 (a few large moves both ways), sd 0.8
    rare drops    ties and ±1 jitter (90% ties); at the margin, 8% of rows break by −2/−3
    worst case    ties; at the margin, 5% of rows drop by −4 (the whole scale)
    noise + −4    the symmetric shape at Δ = 0; at the margin, 5% of rows drop by −4 instead
    repeats k=3   a row's score is the mean of 3 repeats: deltas in steps of 1/3
    binary        pass/fail scores on [0, 1] (m = 0.1): 20% of rows flip at Δ = 0
The rules:
    OLD   95% percentile bootstrap of the mean delta (2,000 resamples), the rule gates
          used before; families Bonferroni-widened; fewer than 10 rows: insufficient
    NEW   `analysis.bounds.gaffke_bounds` (fixed n, the default seed 0, as evaluate_gates
          runs it), 2.5% per side, families at 2.5%/k per side; fewer than 10: insufficient
    ANY   `analysis.bounds.cs_bounds`, looked at after every batch of 10 rows up to 200
Columns: cover = the 95% interval contains the true mean (pooled over Δ = 0 and Δ = −m);
false pass = pass when the true drop is exactly m; false fail = fail when nothing changed
(Δ = 0); fail@m = fail when the drop is exactly m; pass@0 = pass when nothing changed
(power). A family "passes falsely" when any of its gates does.

Also: `evaluate_gates` itself on a few samples of each shape, which must agree with the
vectorised rule the tables use.

Usage: .venv/bin/python bench/validity.py [--quick] [--sims N]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from promptdeck.analysis.bounds import cs_bounds, gaffke_bounds
from promptdeck.analysis.gates import ALPHA, evaluate_gates
from promptdeck.analysis.planning import default_sd, rows_needed
from promptdeck.analysis.stats import MIN_PAIRS

Floats = npt.NDArray[np.float64]
SIZES = (10, 15, 20, 30, 60, 200)
SIDE = ALPHA / 2
BOOT = 2000
TIE_EPS = 1e-9


# --- shapes: exactly known distributions of per-row values -------------------------------


@dataclass(frozen=True)
class Shape:
    name: str
    scale: tuple[float, float]
    margin: float
    pmf: Callable[[float], tuple[Floats, Floats]]  # true mean -> (values, probabilities)

    @property
    def width(self) -> float:
        return self.scale[1] - self.scale[0]

    def draw(self, mean: float, size: tuple[int, ...], rng: np.random.Generator) -> Floats:
        values, probs = self.pmf(mean)
        return np.asarray(rng.choice(values, size=size, p=probs), dtype=np.float64)

    def sd(self, mean: float) -> float:
        values, probs = self.pmf(mean)
        return float(np.sqrt(probs @ (values - mean) ** 2))


def tilted(values: list[float], base: list[float]) -> Callable[[float], tuple[Floats, Floats]]:
    """The exponential tilt of `base` with the given mean (exact to 1e-12)."""
    v, p0 = np.array(values, dtype=np.float64), np.array(base, dtype=np.float64)

    def pmf(mean: float) -> tuple[Floats, Floats]:
        low, high = -60.0, 60.0
        for _ in range(200):
            theta = (low + high) / 2
            p = p0 * np.exp(theta * (v - v.mean()))
            p /= p.sum()
            low, high = (theta, high) if p @ v < mean else (low, theta)
        return v, p

    return pmf


def mixture(
    jitter: dict[float, float], broken: dict[float, float]
) -> Callable[..., tuple[Floats, Floats]]:
    """Rows from `jitter` (mean 0), a share q of them broken (drawn from `broken`)."""
    values = np.array(sorted(set(jitter) | set(broken)), dtype=np.float64)
    drop = sum(v * p for v, p in broken.items())

    def pmf(mean: float) -> tuple[Floats, Floats]:
        q = mean / drop
        probs = [(1 - q) * jitter.get(v, 0.0) + q * broken.get(v, 0.0) for v in values]
        return values, np.array(probs)

    return pmf


def repeats(
    row: Callable[[float], tuple[Floats, Floats]], k: int = 3
) -> Callable[..., tuple[Floats, Floats]]:
    """A row delta from `row` plus the mean of k repeat jitters (−1, 0, +1: 15/70/15)."""

    def pmf(mean: float) -> tuple[Floats, Floats]:
        values, probs = row(mean)
        jitter = {0.0: 1.0}
        for _ in range(k):
            nxt: dict[float, float] = {}
            for s, p in jitter.items():
                for e, q in ((-1.0, 0.15), (0.0, 0.7), (1.0, 0.15)):
                    nxt[s + e] = nxt.get(s + e, 0.0) + p * q
            jitter = nxt
        out: dict[float, float] = {}
        for v, p in zip(values, probs, strict=True):
            for s, q in jitter.items():
                key = round(v + s / k, 9)
                out[key] = out.get(key, 0.0) + p * q
        keys = sorted(out)
        return np.array(keys), np.array([out[x] for x in keys])

    return pmf


NOISE = [0.06, 0.24, 0.4, 0.24, 0.06]
SYMMETRIC = tilted([-2, -1, 0, 1, 2], NOISE)
TIE_HEAVY = tilted([-3, -2, -1, 0, 1, 2, 3], [0.02, 0.02, 0.03, 0.86, 0.03, 0.02, 0.02])
SHAPES = [
    Shape("symmetric", (1, 5), 0.2, SYMMETRIC),
    Shape("tie-heavy", (1, 5), 0.2, TIE_HEAVY),
    Shape("rare drops", (1, 5), 0.2, mixture({-1: 0.05, 0: 0.9, 1: 0.05}, {-2: 0.5, -3: 0.5})),
    Shape("worst case", (1, 5), 0.2, mixture({0: 1.0}, {-4: 1.0})),
    Shape("noise + −4", (1, 5), 0.2, mixture(dict(zip(range(-2, 3), NOISE, strict=True)), {-4: 1})),
    Shape(
        "repeats k=3", (1, 5), 0.2, repeats(tilted([-2, -1, 0, 1, 2], [0.03, 0.1, 0.74, 0.1, 0.03]))
    ),
    Shape("binary", (0, 1), 0.1, tilted([-1, 0, 1], [0.1, 0.8, 0.1])),
]


# --- the rules, vectorised over simulated samples (rows of a matrix) ----------------------


def old_bounds(x: Floats, alpha: float, seed: int) -> tuple[Floats, Floats]:
    """The percentile bootstrap (BOOT resamples) of each row's mean, `alpha` per side."""
    n = x.shape[1]
    counts = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=BOOT)
    means = counts @ x.T / n  # BOOT × samples
    low, high = np.quantile(means, [alpha, 1 - alpha], axis=0)
    return low, high


def new_bounds(x: Floats, alpha: float, width: float) -> tuple[Floats, Floats]:
    return gaffke_bounds(x, low=-width, high=width, alpha=alpha)


def decide(low: Floats, high: Floats, target: float, n: int) -> npt.NDArray[np.int64]:
    """+1 pass, −1 fail, 0 insufficient: the rule of analysis.gates._decide_interval."""
    if n < MIN_PAIRS:
        return np.zeros(low.shape, dtype=np.int64)
    out = np.where(low >= target - TIE_EPS, 1, np.where(high < target - TIE_EPS, -1, 0))
    return out.astype(np.int64)


@dataclass
class Rates:
    cover: float
    false_pass: float
    false_fail: float
    fail_at_margin: float
    power: float


def single_gate(shape: Shape, n: int, sims: int, seed: int) -> dict[str, Rates]:
    rng = np.random.default_rng(seed)
    at_margin = shape.draw(-shape.margin, (sims, n), rng)
    at_zero = shape.draw(0.0, (sims, n), rng)
    out = {}
    for rule in ("OLD", "NEW"):
        rows = []
        for x, truth in ((at_margin, -shape.margin), (at_zero, 0.0)):
            low, high = (
                old_bounds(x, SIDE, seed) if rule == "OLD" else new_bounds(x, SIDE, shape.width)
            )
            rows.append(
                (
                    (low <= truth + TIE_EPS) & (truth - TIE_EPS <= high),
                    decide(low, high, -shape.margin, n),
                )
            )
        (cover_m, dec_m), (cover_0, dec_0) = rows
        out[rule] = Rates(
            float(np.mean(np.concatenate([cover_m, cover_0]))),
            float(np.mean(dec_m == 1)), float(np.mean(dec_0 == -1)),
            float(np.mean(dec_m == -1)), float(np.mean(dec_0 == 1)),
        )  # fmt: skip
    return out


def family(
    shape: Shape, k: int, n: int, sims: int, seed: int
) -> dict[str, tuple[float, float, float]]:
    """k category gates of n rows each, every category at the margin or at 0: the share
    of runs where any gate passes falsely, any fails falsely, all pass (power)."""
    rng = np.random.default_rng(seed)
    at_margin = shape.draw(-shape.margin, (sims * k, n), rng)
    at_zero = shape.draw(0.0, (sims * k, n), rng)
    out = {}
    for rule in ("OLD", "NEW"):
        alpha = SIDE / k
        decisions = []
        for x in (at_margin, at_zero):
            low, high = (
                old_bounds(x, alpha, seed) if rule == "OLD" else new_bounds(x, alpha, shape.width)
            )
            decisions.append(decide(low, high, -shape.margin, n).reshape(sims, k))
        dec_m, dec_0 = decisions
        out[rule] = (
            float(np.mean((dec_m == 1).any(axis=1))),
            float(np.mean((dec_0 == -1).any(axis=1))),
            float(np.mean((dec_0 == 1).all(axis=1))),
        )
    return out


def verdicts(shape: Shape, k: int, n: int, sims: int, seed: int) -> dict[str, float]:
    """No change in any of k categories: the share of runs where some category reads
    'better' or 'worse' (OLD: unadjusted 95% bootstrap; NEW: 1 − 0.05/k per category)."""
    x = shape.draw(0.0, (sims * k, n), np.random.default_rng(seed))
    out = {}
    for rule, alpha in (("OLD", SIDE), ("NEW", SIDE / k)):
        low, high = (
            old_bounds(x, alpha, seed) if rule == "OLD" else new_bounds(x, alpha, shape.width)
        )
        moved = ((low > 0) | (high < 0)).reshape(sims, k)
        out[rule] = float(np.mean(moved.any(axis=1)))
    return out


MIN_SHAPES = [  # scores, not deltas: a min gate on the mean score (limit s, harmless s + d)
    ("judge 1-5, s=4", (1, 5), 4.0, 0.3, tilted([1, 2, 3, 4, 5], [0.05, 0.05, 0.1, 0.4, 0.4])),
    ("mostly 5s, s=4.5", (1, 5), 4.5, 0.2, tilted([1, 3, 5], [0.05, 0.05, 0.9])),
    ("binary, s=0.8", (0, 1), 0.8, 0.1, tilted([0, 1], [0.2, 0.8])),
    ("win rate, w=0.4", (0, 1), 0.4, 0.1, tilted([0, 0.5, 1], [0.2, 0.6, 0.2])),
]


Pmf = Callable[[float], tuple[Floats, Floats]]


def min_gate(
    scale: tuple[float, float], limit: float, lift: float, pmf: Pmf, n: int, sims: int, seed: int
) -> tuple[float, float, float, float]:
    """NEW rule for `min: limit`: cover, false pass (mean = limit), false fail (mean =
    limit), pass at mean = limit + lift."""
    rng = np.random.default_rng(seed)
    shape = Shape("", scale, 0.0, pmf)
    at_limit, above = shape.draw(limit, (sims, n), rng), shape.draw(limit + lift, (sims, n), rng)
    low, high = gaffke_bounds(at_limit, low=scale[0], high=scale[1], alpha=SIDE)
    low_a, high_a = gaffke_bounds(above, low=scale[0], high=scale[1], alpha=SIDE)
    dec, dec_a = decide(low, high, limit, n), decide(low_a, high_a, limit, n)
    hits = [(low <= limit) & (limit <= high), (low_a <= limit + lift) & (limit + lift <= high_a)]
    cover = np.mean(np.concatenate(hits))
    return (
        float(cover),
        float(np.mean(dec == 1)),
        float(np.mean(dec == -1)),
        float(np.mean(dec_a == 1)),
    )


def anytime(
    shape: Shape, sims: int, seed: int, batch: int = 10, most: int = 200
) -> dict[str, tuple[float, ...]]:
    """Looks after every batch: ANY (confidence sequence) and NEW used at every look
    (peeking): P(ever false pass | margin), P(ever false fail | 0), P(pass by `most` | 0),
    mean rows used at 0 and at the margin (stop at the first decision); and NEW with one
    look at `most` rows, on the same data."""
    rng = np.random.default_rng(seed)
    looks = np.arange(batch, most + 1, batch)
    out = {}
    data = {truth: shape.draw(truth, (sims, most), rng) for truth in (-shape.margin, 0.0)}
    for rule in ("ANY", "NEW peeking"):
        stats = {}
        for truth, x in data.items():
            if rule == "ANY":
                low, high = cs_bounds(x, low=-shape.width, high=shape.width, alpha=SIDE)
                steps = [decide(low[:, t - 1], high[:, t - 1], -shape.margin, t) for t in looks]
            else:
                steps = [
                    decide(*new_bounds(x[:, :t], SIDE, shape.width), -shape.margin, t)
                    for t in looks
                ]
            dec = np.stack(steps, axis=1)
            decided = dec != 0
            first = np.where(decided.any(axis=1), decided.argmax(axis=1), len(looks) - 1)
            final = dec[np.arange(sims), first]
            stats[truth] = (final, looks[first])
        (final_m, rows_m), (final_0, rows_0) = stats[-shape.margin], stats[0.0]
        out[rule] = (*rates(final_m, final_0), float(rows_0.mean()), float(rows_m.mean()))
    once = [decide(*new_bounds(x, SIDE, shape.width), -shape.margin, most) for x in data.values()]
    out[f"NEW at {most}"] = (*rates(*once), float(most), float(most))
    return out


def rates(at_margin: npt.NDArray[np.int64], at_zero: npt.NDArray[np.int64]) -> tuple[float, ...]:
    """P(pass | margin), P(fail | 0), P(pass | 0) of decisions."""
    return (
        float(np.mean(at_margin == 1)),
        float(np.mean(at_zero == -1)),
        float(np.mean(at_zero == 1)),
    )


def planned(shape: Shape, sims: int, seed: int) -> tuple[int | None, int | None, float | None]:
    """rows_needed from the shape's true sd (and with no history), and the NEW rule's pass
    rate at that n when nothing changed."""
    gate = {"metric": "judge_score", "max_drop": shape.margin}
    need = rows_needed(gate, scale=shape.scale, sd=shape.sd(0.0))
    fallback = rows_needed(gate, scale=shape.scale)
    if need is None:
        return None, fallback, None
    x = shape.draw(0.0, (sims, need), np.random.default_rng(seed))
    low, high = new_bounds(x, SIDE, shape.width)
    return need, fallback, float(np.mean(decide(low, high, -shape.margin, need) == 1))


# --- a cross-check: evaluate_gates decides as the vectorised rule ------------------------


def cross_check(shape: Shape, samples: int, seed: int) -> int:
    """The number of samples where evaluate_gates and `decide(new_bounds)` differ."""
    rng = np.random.default_rng(seed)
    status = {"pass": 1, "fail": -1, "insufficient evidence": 0}
    differ = 0
    for i in range(samples):
        n = SIZES[i % len(SIZES)]
        x = shape.draw(-shape.margin if i % 2 else 0.0, (1, n), rng)
        low, high = shape.scale
        base = np.clip(np.full(n, high), low - np.minimum(x[0], 0), high - np.maximum(x[0], 0))
        cells = pd.DataFrame(
            [{"row_id": f"r{j:03d}", "category": "c", "variant": v, "repeat": 0, "error": None,
              "latency_ms": 1.0, "cost_usd": 0.0, "judge_score": s, "checks_passed": 0,
              "checks_total": 0} for j in range(n)
             for v, s in (("base", base[j]), ("new", base[j] + x[0, j]))]
        )  # fmt: skip
        gate = {"metric": "judge_score", "max_drop": shape.margin}
        [result] = evaluate_gates(cells, "base", [gate], scale=shape.scale)
        low, high = new_bounds(x, SIDE, shape.width)
        differ += status[result.status] != int(decide(low, high, -shape.margin, n)[0])
    return differ


# --- the report --------------------------------------------------------------------------


def pct(x: float) -> str:
    return f"{100 * x:5.1f}%"


def table(title: str, head: str, rows: list[str]) -> None:
    print(title)
    print(head)
    print("\n".join(rows), end="\n\n")


RATES = "  cover f.pass f.fail fail@m pass@0"


def section_single(shapes: list[Shape], sizes: tuple[int, ...], sims: int) -> None:
    rows = []
    for s, shape in enumerate(shapes):
        for n in sizes:
            r = single_gate(shape, n, sims, seed=1000 + 100 * s + n)
            cols = " | ".join(" ".join(pct(v) for v in vars(r[k]).values()) for k in ("OLD", "NEW"))
            rows.append(f"{shape.name:12} {n:>4} | {cols}")
    head = f"{'shape':12} {'n':>4} |{RATES} |{RATES}"
    table("1. One judge_score gate `max_drop: m`: OLD | NEW", head, rows)


def section_families(shapes: list[Shape], sizes: tuple[int, ...], sims: int) -> None:
    rows = []
    for s, shape in enumerate(shapes):
        for k in (2, 5):
            for n in sizes:
                r = family(shape, k, n, sims, seed=7000 + 100 * s + 10 * k + n)
                cols = " | ".join(" ".join(pct(v) for v in r[rule]) for rule in ("OLD", "NEW"))
                rows.append(f"{shape.name:12} {f'{k}×{n}':>7} | {cols}")
    three = " f.pass f.fail pass@0"
    table(
        f"2. Families of k category gates, every category at the margin (f.pass: any passes) "
        f"or at 0 (f.fail: any fails; pass@0: all pass); {sims} sims. OLD | NEW",
        f"{'shape':12} {'k×n':>7} |{three} |{three}",
        rows,
    )


def section_verdicts(shapes: list[Shape], sims: int) -> None:
    rows = []
    for s, shape in enumerate(shapes):
        for n in (10, 15, 30, 60):
            r = verdicts(shape, 5, n, sims, seed=9000 + 100 * s + n)
            rows.append(f"{shape.name:12} {f'5×{n}':>6} | {pct(r['OLD'])} | {pct(r['NEW'])}")
    table(
        f"3. Results-page verdicts, no change in any of 5 categories: some category reads "
        f"better or worse ({sims} sims)",
        f"{'shape':12} {'5×n':>6} | {'OLD':>6} | {'NEW':>6}",
        rows,
    )


def section_min(sizes: tuple[int, ...], sims: int) -> None:
    rows = []
    for s, (name, scale, limit, lift, pmf) in enumerate(MIN_SHAPES):
        for n in sizes:
            r = min_gate(scale, limit, lift, pmf, n, sims, seed=11000 + 100 * s + n)
            rows.append(f"{name:17} {n:>4} | {' '.join(pct(v) for v in r)}  (d={lift:g})")
    table(
        "4. `min` gates on a mean (NEW): cover; false pass and false fail with the mean on the "
        "limit; pass with the mean d above it",
        f"{'shape':17} {'n':>4} |  cover f.pass f.fail pass+d",
        rows,
    )


def section_anytime(shapes: list[Shape], sims: int) -> None:
    rows = []
    for s, shape in enumerate(shapes):
        for rule, v in anytime(shape, sims, seed=13000 + s).items():
            shown = " ".join(pct(x) for x in v[:3])
            rows.append(f"{shape.name:12} {rule:11} | {shown} {v[3]:6.0f} {v[4]:6.0f}")
    table(
        f"5. Run until decided: a look after every 10 rows up to 200 ({sims} sims). f.pass: "
        "ever passes at the margin; f.fail: ever fails at 0; pass@0: passes by 200 at 0; rows: "
        "mean rows used (stop at the first decision)",
        f"{'shape':12} {'rule':11} | f.pass f.fail pass@0 rows@0 rows@m",
        rows,
    )


def section_planning(shapes: list[Shape], sims: int) -> None:
    rows = []
    for s, shape in enumerate(shapes):
        need, fallback, power = planned(shape, sims, seed=15000 + s)
        shown = "     -" if power is None else pct(power)
        rows.append(
            f"{shape.name:12} {shape.sd(0.0):5.2f} | {need or '-':>6} {shown} | "
            f"{fallback or '-':>6} (sd {default_sd(shape.scale):.2f})"
        )
    table(
        "6. Planning, nothing changed: rows_needed for `max_drop: m` from the shape's sd, "
        "NEW's pass rate at that n; rows_needed without history",
        f"{'shape':12} {'sd':>5} |   rows   pass | no history",
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized: few sims, few sizes")
    parser.add_argument("--sims", type=int, default=None, help="simulations per cell")
    args = parser.parse_args()
    sims = args.sims or (300 if args.quick else 2000)
    sizes = (10, 30, 200) if args.quick else SIZES
    shapes = [s for s in SHAPES if not args.quick or s.name in QUICK]
    started = time.perf_counter()
    error = 100 * np.sqrt(0.05 * 0.95 / sims)
    print(f"{sims} simulations per cell, seeded (one standard error at 5%: {error:.1f} points)\n")
    section_single(shapes, sizes, sims)
    few = max(100, sims // 2)
    family_shapes = [s for s in shapes if s.name in FAMILY]
    section_families(family_shapes, (10, 15, 30) if args.quick else (10, 15, 20, 30, 60), few)
    section_verdicts(shapes, few)
    section_min(sizes, sims)
    section_anytime(shapes, max(100, sims // 4))
    section_planning(shapes, sims)
    checked = 12 if args.quick else 30
    differ = sum(cross_check(shape, checked, seed=17000 + s) for s, shape in enumerate(shapes))
    print(f"7. evaluate_gates against the vectorised NEW rule on {checked * len(shapes)} samples: "
          f"{differ} differ")  # fmt: skip
    print(f"\nRun time: {time.perf_counter() - started:.0f} s")


QUICK = ("symmetric", "tie-heavy", "rare drops", "binary")
FAMILY = ("symmetric", "tie-heavy", "rare drops", "binary")

if __name__ == "__main__":
    main()
