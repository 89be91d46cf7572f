"""What a tool costs on the embedded model, and whether its answers hold: measured, not promised.

Runs the `orders` demo task (datasets/orders.suite.yaml) on SmolLM2 through the real runner,
without the judge and with the response cache off, on a fresh copy of this repository's
prompts/ and datasets/:

- `orders/lookup` calls `get_order` (a grammar-constrained call, its mock's result sent back,
  then a schema-constrained answer: two model calls a row);
- `orders/no_tool` answers from the customer's message alone (one call a row), the baseline.

Prints, per variant: rows, wall time, seconds per row, the share of answers valid against
the output schema, of rows where get_order was called with the row's order id, and of answers
that state the mock's status; then the time of the tool variant as a ratio to the baseline
measured in the same run. Run twice in a row to see the spread; the load average is printed.

Usage: .venv/bin/python bench/tools.py [--rows N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from promptdeck.evals.plan import build_plan
from promptdeck.evals.start import RunOptions, open_run, run_in_foreground
from promptdeck.evals.suite import load_suite
from promptdeck.model.secrets import Secrets
from promptdeck.store.db import Store
from promptdeck.store.rows import stored_steps
from promptdeck.workspace.paths import Workspace
from promptdeck.workspace.prompts import load_prompts
from promptdeck.workspace.providers_file import open_registry

ROOT = Path(__file__).resolve().parents[1]
SUITE = "orders.suite.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20, help="rows of the sample (<= 20)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for folder in ("prompts", "datasets"):
            shutil.copytree(ROOT / folder, root / folder)
        workspace = Workspace(root)
        store = Store(root / "home" / "promptdeck.sqlite")
        registry = open_registry(workspace.providers_file, Secrets())
        library = load_prompts(workspace.prompts_dir)
        suite = load_suite(workspace.datasets_dir / SUITE)
        suite = replace(suite, judge=None, gates=())
        rows = {}
        times = {}
        for name in suite.variants:
            one = replace(suite, variants=(name,), baseline=None)
            plan = build_plan(one, library, n=args.rows)
            options = RunOptions(concurrency=2, use_cache=False, resume=False)
            opened = open_run(store, plan, resume=False, concurrency=2)
            start = time.perf_counter()
            run_in_foreground(registry, store, opened, plan, options)
            times[name] = time.perf_counter() - start
            run_id = opened.run_id
            rows[name] = (plan, store.results(run_id), store.scores(run_id))
        load = os.getloadavg()[0]
        print(f"orders task on the embedded model, {args.rows} rows, cache off, load {load:.1f}")
        head = f"{'variant':16} {'rows':>4} {'wall s':>7} {'s/row':>6} {'schema ok':>9}"
        print(f"{head} {'tool ok':>8} {'status said':>11}")
        for name, (plan, results, scores) in rows.items():
            cases = {c.id: c for c in plan.cases}
            schema = [s for s in scores if s["scorer"] == "check:output_schema"]
            valid = sum(bool(s["passed"]) for s in schema)
            called = said = 0
            for r in results:
                case = cases[r["row_id"]].values
                steps = stored_steps(r["tool_calls_json"])
                called += any(
                    s.name == "get_order"
                    and isinstance(s.arguments, dict)
                    and s.arguments.get("order_id") == case["order_id"]
                    for s in steps
                )
                said += case["status"].lower() in _status_of(r["output"]).lower()
            n = len(results)
            tool = f"{called}/{n}" if name.endswith("lookup") else "-"
            print(
                f"{name:16} {n:>4} {times[name]:>7.1f} {times[name] / n:>6.2f} "
                f"{valid:>4}/{len(schema):<4} {tool:>8} {said:>6}/{n:<4}"
            )
        tool_name, base_name = suite.variants[1], suite.variants[0]
        ratio = times[tool_name] / times[base_name]
        print(f"{tool_name} takes {ratio:.2f}x the time of {base_name} (same run)")
        store.close()


def _status_of(output: str) -> str:
    """The answer's status field, else the whole answer."""
    try:
        value = json.loads(output)
    except ValueError:
        return output
    return str(value.get("status", "")) if isinstance(value, dict) else output


if __name__ == "__main__":
    main()
