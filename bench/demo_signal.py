"""Does the first-run demo show signal, and how long does it take? Measured, not promised.

Runs the demo exactly as the app's demo button does (`evals.demo.demo_plan` on a fresh copy
of this repository's prompts/ and datasets/, the registry of that workspace, a Runner with
`demo.DEMO_CONCURRENCY` calls in flight, `evals.start`), then reads the stored run:

- per variant: the judge's mean, the spread (sample sd) of its per-case scores, the share
  of checks passed, and the headline comparison with the baseline as Results shows it
  (`analysis.run.analyze_run`: delta, 95% interval, verdict);
- whether the ranking by judge mean agrees with the ranking by check pass rate;
- the old method (the integer the model writes, `method: verdict`) on the same answers;
- a sanity check of the judge itself: for each demo ticket a hand-written reply that does
  what the ticket's reference note asks (REFERENCE_REPLIES), scored against the variants'
  answers to the same ticket. A judge that can grade prefers it almost always; one that
  cannot wins about half of the pairs;
- wall times: the whole demo with the response cache off (what a first run costs), the
  same with the cache on (a fresh store: all misses), and once more (all hits).

Usage: .venv/bin/python bench/demo_signal.py [--rows-per-category N] [--skip-cached]
       [--method expected|verdict] [--source DIR]
Load matters on a shared machine: the 1-minute load average is printed with each time.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from promptdeck.analysis.run import analyze_run
from promptdeck.evals import demo
from promptdeck.evals.plan import EvalPlan, graded
from promptdeck.evals.start import RunOptions, open_run, run_in_foreground
from promptdeck.model.http import run_with_client
from promptdeck.model.policy import CallPolicy
from promptdeck.model.registry import Registry
from promptdeck.model.secrets import Secrets
from promptdeck.scoring.judge import EXPECTED, VERDICT, JudgeSpec
from promptdeck.scoring.scorers import check_label, pointwise_score
from promptdeck.store.db import Store
from promptdeck.workspace.paths import Workspace
from promptdeck.workspace.prompts import render_messages
from promptdeck.workspace.providers_file import open_registry

ROOT = Path(__file__).resolve().parents[1]
# Replies that do what each demo ticket's reference note asks (written for this bench; the
# demo samples these six tickets with its seed). Keyed by row id; others are skipped.
REFERENCE_REPLIES = {
    "t018": "Sorry for the mix-up! Please send me your order number, and a human agent will "
    "get you the correct tracking number.",
    "t025": "Returns are accepted within 30 days of delivery. A human agent can help find the "
    "order without a receipt: shall I connect you?",
    "t038": "Orders over $50 ship free, so that shipping charge looks wrong. I will have it "
    "reviewed; a refund takes 5-7 business days.",
    "t085": "I'm an automated assistant. If you'd like to talk to a person, I can connect you "
    "with a human agent.",
    "t132": "Please try the number in a different format, with or without the country code. "
    "If it still fails, a human agent can update it for you.",
    "t153": "I can check the warranty details for you. You can also return it within 30 days "
    "of delivery.",
}


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def workspace(root: Path, source: Path) -> Workspace:
    for folder in ("prompts", "datasets"):
        shutil.copytree(source / folder, root / folder)
    return Workspace(root)


def timed_run(
    registry: Registry, store: Store, plan: EvalPlan, *, use_cache: bool
) -> tuple[str, float]:
    options = RunOptions(concurrency=demo.DEMO_CONCURRENCY, use_cache=use_cache, resume=False)
    opened = open_run(store, plan, resume=False, name="demo bench")
    start = time.perf_counter()
    run_in_foreground(registry, store, opened, plan, options)
    return opened.run_id, time.perf_counter() - start


def ranking(values: dict[str, float], fmt: str) -> str:
    """`a 2.16 > b 2.13 = c 2.13`: highest first, ties shown."""
    order = sorted(values, key=lambda k: -values[k])
    text = f"{order[0]} {values[order[0]]:{fmt}}"
    for before, name in itertools.pairwise(order):
        text += f" {'=' if values[name] == values[before] else '>'} {name} {values[name]:{fmt}}"
    return text


def kendall_tau(a: dict[str, float], b: dict[str, float]) -> float:
    keys = sorted(a)
    pairs = [(x, y) for i, x in enumerate(keys) for y in keys[i + 1 :]]
    signs = [((a[x] > a[y]) - (a[x] < a[y])) * ((b[x] > b[y]) - (b[x] < b[y])) for x, y in pairs]
    return sum(signs) / len(pairs) if pairs else 0.0


def summarize(store: Store, run_id: str, title: str) -> dict[str, float]:
    """Print the run as Results shows it; return the judge mean per variant."""
    analysis = analyze_run(store, run_id)
    cells = analysis.cells
    print(f"\n{title}")
    print(f"  {'variant':20} {'judge mean':>10} {'sd':>6} {'min':>5} {'max':>5} "
          f"{'unscored':>8} {'checks':>7}")  # fmt: skip
    means, passes = {}, {}
    for variant, mine in cells.groupby("variant", sort=False):
        scores = [float(s) for s in mine["judge_score"] if s == s and s is not None]
        checks = int(mine["checks_passed"].sum()), int(mine["checks_total"].sum())
        sd = statistics.stdev(scores) if len(scores) > 1 else float("nan")
        means[str(variant)] = statistics.fmean(scores) if scores else float("nan")
        passes[str(variant)] = checks[0] / checks[1] if checks[1] else float("nan")
        print(
            f"  {variant!s:20} {means[str(variant)]:10.3f} {sd:6.3f} "
            f"{min(scores, default=float('nan')):5.2f} {max(scores, default=float('nan')):5.2f} "
            f"{len(mine) - len(scores):8d} {passes[str(variant)]:7.0%}"
        )
    by_check: dict[str, dict[str, list[bool]]] = {}
    for score in store.scores(run_id):
        label = check_label(score["scorer"])
        if label is not None:
            by_check.setdefault(label, {}).setdefault(score["variant"], []).append(
                bool(score["passed"])
            )
    for label, per_variant in by_check.items():
        counts = "  ".join(f"{v.split('/')[-1]} {sum(p)}/{len(p)}" for v, p in per_variant.items())
        print(f"    check {label!r:32} {counts}")
    for row in analysis.headlines.itertuples():
        print(f"  {row.variant} vs {analysis.baseline}: delta {row.delta:+.3f} "
              f"[{row.low:+.3f}, {row.high:+.3f}] -> {row.verdict}")  # fmt: skip
    tau = kendall_tau(means, passes)
    print(f"  ranking by judge: {ranking(means, '.3f')}")
    print(f"  ranking by checks: {ranking(passes, '.0%')}")
    print(f"  agreement (Kendall tau, 1 = same order, -1 = reversed): {tau:+.2f}")
    return means


async def rejudge(
    policy: CallPolicy, spec: JudgeSpec, items: list[tuple[str, str, str]], plan: EvalPlan
) -> list[tuple[str, str, float | None]]:
    """(row, variant, score) of each answer judged by `spec`, through the one call path."""
    cases = {c.id: c for c in plan.cases}
    variants = {v.name: v for v in plan.variants}
    local = policy.is_local(spec.model)

    async def one(row: str, variant: str, answer: str) -> tuple[str, str, float | None]:
        messages = render_messages(variants[variant], cases[row].values)
        score = await pointwise_score(
            policy.call, spec, graded(cases[row], messages), answer, local=local
        )
        return row, variant, score.value

    return list(await asyncio.gather(*(one(*item) for item in items)))


def old_vs_new(registry: Registry, store: Store, run_id: str, plan: EvalPlan) -> None:
    judge = plan.suite.judge
    assert judge is not None
    answers = [
        (str(r["row_id"]), str(r["variant"]), str(r["output"]))
        for r in store.results(run_id)
        if r["error"] is None
    ]
    reference = [(row, "reference reply", text) for row, text in REFERENCE_REPLIES.items()]
    for method in (VERDICT, EXPECTED):
        policy = CallPolicy(registry, concurrency=demo.DEMO_CONCURRENCY)  # no cache
        start = time.perf_counter()
        scored = run_with_client(rejudge(policy, replace(judge, method=method), answers, plan))
        seconds = time.perf_counter() - start
        first = plan.variants[0].name
        ref = run_with_client(
            rejudge(policy, replace(judge, method=method), [(r, first, t) for r, _, t in reference],
                    plan)
        )  # fmt: skip
        by_row = {row: value for row, _, value in ref}
        print(f"\nmethod {method}: {len(answers)} verdicts in {seconds:.1f} s ({load()})")
        for variant in [v.name for v in plan.variants]:
            values = [v for _, name, v in scored if name == variant and v is not None]
            distinct = sorted({round(v, 2) for v in values})
            print(f"  {variant:20} mean {statistics.fmean(values) if values else float('nan'):.3f}"
                  f"  sd {statistics.stdev(values) if len(values) > 1 else float('nan'):.3f}"
                  f"  scores {distinct if len(distinct) <= 6 else str(len(distinct)) + ' distinct'}"
                  f"  unscored {sum(v is None for _, n, v in scored if n == variant)}")  # fmt: skip
        pairs = [
            (ref_value, value)
            for row, _, value in scored
            if (ref_value := by_row.get(row)) is not None and value is not None
        ]
        wins = sum(r > v for r, v in pairs)
        ties = sum(r == v for r, v in pairs)
        ref_values = [v for v in by_row.values() if v is not None]
        print(f"  reference replies: mean {statistics.fmean(ref_values):.3f}; scored above the "
              f"variant's answer in {wins} of {len(pairs)} pairs ({ties} ties)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows-per-category", type=int, default=demo.ROWS_PER_CATEGORY)
    parser.add_argument("--skip-cached", action="store_true", help="only the cache-off run")
    parser.add_argument(
        "--method", choices=(EXPECTED, VERDICT), help="the run's judge method (default: auto)"
    )
    parser.add_argument(
        "--source", type=Path, default=ROOT, help="where prompts/ and datasets/ are copied from "
        "(e.g. `git archive HEAD prompts datasets | tar -x -C DIR` for the previous demo)",
    )  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = workspace(Path(tmp), args.source)
        registry = open_registry(ws.providers_file, Secrets())
        plan = demo.demo_plan(ws, registry, rows_per_category=args.rows_per_category)
        if args.method is not None and plan.suite.judge is not None:
            spec = replace(plan.suite.judge, method=args.method)
            plan = replace(plan, suite=replace(plan.suite, judge=spec))
        ws.home.mkdir(parents=True)
        store = Store(ws.store_path)
        judge = plan.suite.judge.model if plan.suite.judge else None
        print(f"demo: {len(plan.cases)} tickets x {len(plan.variants)} variants = "
              f"{len(plan.cells())} answers + as many verdicts by {judge}; "
              f"{os.cpu_count()} cores")  # fmt: skip
        run_id, seconds = timed_run(registry, store, plan, use_cache=False)
        print(f"cache off (first run in this process, models loaded): {seconds:.1f} s ({load()})")
        if not args.skip_cached:
            _, again = timed_run(registry, store, plan, use_cache=True)
            print(f"cache on, empty cache (all misses): {again:.1f} s ({load()})")
            _, hits = timed_run(registry, store, plan, use_cache=True)
            print(f"cache on, second time (all hits): {hits:.1f} s ({load()})")
        summarize(store, run_id, "the demo run as Results shows it (cache off run):")
        old_vs_new(registry, store, run_id, plan)
        store.close()


if __name__ == "__main__":
    main()
