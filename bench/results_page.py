"""The Results page at scale, one measurement per process (bench/scale.py `results` runs it).

    results_page.py fill WORKSPACE ROWS   a finished run of 2 variants x ROWS cases (judge
                                          score and 2 checks per cell, 6 categories) in
                                          WORKSPACE/.promptdeck/promptdeck.sqlite
    results_page.py measure WORKSPACE     the app in AppTest, opened at Home, then timed:
                                          the Results page's first render (a fresh process:
                                          nothing cached), a change of the category filter,
                                          and the "Regressions only" toggle; prints JSON

The run is created with its cases and gets them in its snapshot at the end
(`update_run_plan`): every `add_result` also stamps the run's heartbeat, and rewriting a
run row that holds 50,000 cases for every cell stores ~200 cells/s (measured here).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

VARIANTS = ("support/production", "support/concise")
CATEGORIES = ("billing", "shipping", "returns", "account", "product", "legal")
GATES = [
    {"metric": "judge_score", "max_drop": 0.2},
    {"metric": "judge_score", "category": "billing", "max_drop": 0.3},
    {"metric": "error_rate", "max": 0.02},
    {"metric": "check_pass_rate", "min": 0.95},
    {"metric": "latency_p95_ms", "max": 4000},
]


def fill(workspace: Path, rows: int) -> None:
    from promptdeck.model.types import CallResult, Usage
    from promptdeck.scoring.scorers import Score
    from promptdeck.store.db import Store
    from promptdeck.store.rows import CellRecord

    (workspace / ".promptdeck").mkdir(parents=True, exist_ok=True)
    store = Store(workspace / ".promptdeck" / "promptdeck.sqlite")
    cases = [
        {"id": f"r{i}", "category": CATEGORIES[i % 6], "input": f"question {i}"}
        for i in range(rows)
    ]
    snapshot = {"suite": {"baseline": VARIANTS[0], "gates": GATES}, "cases": cases}
    run_id = store.create_run({**snapshot, "cases": []}, name="scale", total_cells=2 * rows)
    rng = random.Random(7)
    for case in cases:
        for shift, variant in enumerate(VARIANTS):
            error = "timeout" if rng.random() < 0.005 else None
            result = CallResult(
                "local/m",
                f"answer to {case['id']}" if error is None else "",
                Usage(50, 80),
                rng.uniform(50, 300),
                rng.uniform(500, 3000),
                0.0001,
                error=error,
            )
            score = float(min(5, max(1, round(rng.gauss(3 + 0.2 * shift, 1)))))
            scores = [
                Score("judge", score, None, "why", "local/judge"),
                Score("check:max_chars 800", 1.0, rng.random() > 0.03, "ok"),
                Score("check:contains order", 1.0, rng.random() > 0.05, "ok"),
            ]
            record = CellRecord(str(case["id"]), variant, 0, str(case["category"]), result)
            store.add_result(run_id, record, [] if error else scores)
    store.update_run_plan(run_id, snapshot, total_cells=2 * rows)
    store.set_run_status(run_id, "done")
    store.close()


def measure(workspace: Path) -> dict[str, float]:
    from streamlit.testing.v1 import AppTest

    os.chdir(workspace)
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=600)
    at.run()
    at.switch_page("pages/results.py")
    start = time.perf_counter()
    at.run()
    first = time.perf_counter() - start
    if at.exception or not at.dataframe:
        raise RuntimeError(f"the Results page failed: {at.exception}")
    start = time.perf_counter()
    at.selectbox(key="res_category").set_value("billing").run()
    category = time.perf_counter() - start
    start = time.perf_counter()
    at.toggle(key="res_regress").set_value(True).run()
    regressions = time.perf_counter() - start
    if at.exception:
        raise RuntimeError(f"a filter failed: {at.exception}")
    return {"first_s": first, "category_s": category, "regressions_s": regressions}


if __name__ == "__main__":
    if sys.argv[1:2] == ["fill"]:
        fill(Path(sys.argv[2]), int(sys.argv[3]))
    elif sys.argv[1:2] == ["measure"]:
        print(json.dumps(measure(Path(sys.argv[2]))))
    else:
        raise SystemExit(__doc__)
