"""How close is the plan's time estimate to the time a run then takes? Measured, on the
embedded model, the way a PM meets it:

1. the first-run demo (no history, so no estimate: the page promises `demo.DEMO_DURATION`,
   measured from the click to the results in a browser by tests/e2e/test_first_run_browser.py
   and test_newcomer_journey.py, which include the page and the browser; here the run alone);
2. the demo again (estimated from run 1 by `evals.timing`, as the Evaluate page shows it);
3. a 20-row sample of the demo suite, all three variants judged, at the demo's concurrency
   (estimated from runs 1-2: the "20-row eval" a newcomer plans next).

Each run has the response cache off, so every call really happens. For each: the estimate
(range), the measured wall time, and measured / estimate (1.00 = exact; the range's middle
is used). Usage: .venv/bin/python bench/estimates.py [--rows 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from promptdeck.evals import demo
from promptdeck.evals.plan import EvalPlan, estimate, every_case
from promptdeck.evals.start import RunOptions, open_run, run_in_foreground
from promptdeck.evals.timing import TimeRange, estimate_time
from promptdeck.model.registry import Registry
from promptdeck.model.secrets import Secrets
from promptdeck.store.db import Store
from promptdeck.workspace.paths import Workspace
from promptdeck.workspace.providers_file import open_registry
from promptdeck.workspace.sampling import sample_cases

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = RunOptions(concurrency=demo.DEMO_CONCURRENCY, use_cache=False, resume=False)


def timed(registry: Registry, store: Store, plan: EvalPlan) -> float:
    opened = open_run(store, plan, resume=False, name="bench", concurrency=OPTIONS.concurrency)
    start = time.perf_counter()
    run_in_foreground(registry, store, opened, plan, OPTIONS)
    return time.perf_counter() - start


def guess(registry: Registry, store: Store, plan: EvalPlan) -> TimeRange | None:
    """The Evaluate page's Time figure for `plan`."""
    latency = {v.model: store.typical_latency_ms(v.model) for v in plan.variants}
    judge_calls = estimate(plan, registry.prices).judge_calls
    return estimate_time(store, plan, OPTIONS.concurrency, latency, judge_calls)


def larger(plan: EvalPlan, rows: int) -> EvalPlan:
    """The demo suite with `rows` rows, stratified and seeded as the suite says."""
    sample = plan.suite.sample
    cases = sample_cases(
        every_case(plan), n=rows, fraction=None, seed=sample.seed,
        stratify=sample.stratify, floor=1,
    )  # fmt: skip
    return replace(plan, cases=tuple(cases))


def report(name: str, took: TimeRange | None, seconds: float) -> None:
    load = os.getloadavg()[0]
    if took is None:
        print(f"{name:<34} estimate: none      measured {seconds:6.1f} s  (load {load:.2f})")
        return
    middle = (took.low + took.high) / 2
    inside = "inside" if took.low <= seconds <= took.high else "outside"
    print(
        f"{name:<34} estimate {took.low:6.1f}-{took.high:6.1f} s ({took.runs} runs)  "
        f"measured {seconds:6.1f} s  measured/middle {seconds / middle:.2f}  {inside} the range"
        f"  (load {load:.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20, help="rows of the larger run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for folder in ("prompts", "datasets"):
            shutil.copytree(ROOT / folder, root / folder)
        ws = Workspace(root)
        registry = open_registry(ws.providers_file, Secrets())
        ws.home.mkdir(parents=True)
        store = Store(ws.store_path)
        plan = demo.demo_plan(ws, registry)
        print(f"{os.cpu_count()} cores; demo: {len(plan.cells())} cells; cache off everywhere")
        seconds = timed(registry, store, plan)
        report("1. demo, first run (no history)", None, seconds)
        took = guess(registry, store, plan)
        report("2. demo again (from run 1)", took, timed(registry, store, plan))
        bigger = larger(plan, args.rows)
        took = guess(registry, store, bigger)
        report(f"3. {args.rows} rows (from runs 1-2)", took, timed(registry, store, bigger))
        store.close()


if __name__ == "__main__":
    main()
