"""Time to compute every Results statistic and build every Results chart, for 1,000 and
10,000 cells (target: < 1.5 s at 10,000), against loading the same run from SQLite.

The run is simulated in a temporary store (3 variants, 6 categories, judge scores and
checks), then timed as the Results page does it: load_cells, comparisons per category,
gates, the per-variant table, the score distribution, the five Altair charts (to_dict,
which is what Streamlit serialises), and the HTML report.

Usage: .venv/bin/python bench/render.py
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from promptdeck.analysis import charts
from promptdeck.analysis.cells import load_cells
from promptdeck.analysis.gates import evaluate_gates
from promptdeck.analysis.report import html_report
from promptdeck.analysis.results import (
    comparison_frame,
    comparisons,
    score_distribution,
    variant_frame,
)
from promptdeck.analysis.run import analyze_run
from promptdeck.model.types import CallResult, Usage
from promptdeck.scoring.scorers import Score
from promptdeck.store.db import Store
from promptdeck.store.rows import CellRecord

VARIANTS = ("support/production", "support/concise", "support/empathetic")
GATES = [
    {"metric": "judge_score", "max_drop": 0.2},
    {"metric": "judge_score", "category": "billing", "max_drop": 0.3},
    {"metric": "error_rate", "max": 0.02},
    {"metric": "check_pass_rate", "min": 0.95},
    {"metric": "latency_p95_ms", "max": 4000},
]


def simulate(store: Store, cells: int) -> str:
    rows = cells // len(VARIANTS)
    rng = random.Random(7)
    cases = [{"id": f"r{i}", "category": f"c{i % 6}", "input": f"q{i}"} for i in range(rows)]
    run_id = store.create_run(
        {"suite": {"baseline": VARIANTS[0], "gates": GATES}, "cases": cases},
        name="bench",
        total_cells=cells,
    )
    for case in cases:
        for shift, variant in enumerate(VARIANTS):
            result = CallResult(
                "local/smollm2",
                f"answer {case['id']}",
                Usage(50, 80),
                rng.uniform(50, 300),
                rng.uniform(500, 3000),
                0.0,
            )
            score = float(min(5, max(1, round(rng.gauss(3 + 0.2 * shift, 1)))))
            store.add_result(
                run_id,
                CellRecord(case["id"], variant, 0, case["category"], result),
                [
                    Score("judge", score, None, "why", "local/smollm2"),
                    Score("check:max_chars 800", 1.0, rng.random() > 0.03, "ok"),
                ],
            )
    return run_id


def report_html(store: Store, run_id: str) -> str:
    return html_report(analyze_run(store, run_id).report_data())


def results_page(store: Store, run_id: str) -> None:
    cells = load_cells(store, run_id)
    table = comparison_frame(comparisons(cells, VARIANTS[0]))
    evaluate_gates(cells, VARIANTS[0], GATES)
    per_variant = variant_frame(cells)
    for chart in (
        charts.delta_by_category(table),
        charts.win_tie_loss(table),
        charts.score_distribution(score_distribution(cells)),
        charts.latency_cost(per_variant),
        charts.quality_vs_cost(per_variant),
    ):
        chart.to_dict()


def best_of(fn, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    out = {}
    print(
        f"{'cells':>6}  {'load only s':>11}  {'Results page s':>14}  {'HTML report s':>13}  "
        "page / load"
    )
    for cells in (1_000, 10_000):
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(Path(tmp) / "s.sqlite")
            run_id = simulate(store, cells)
            load = best_of(lambda s=store, r=run_id: load_cells(s, r))
            page = best_of(lambda s=store, r=run_id: results_page(s, r))
            report = best_of(
                lambda s=store, r=run_id: html_report(analyze_run(s, r).report_data()), repeat=1
            )
            store.close()
        out[cells] = {
            "load_s": round(load, 3),
            "page_s": round(page, 3),
            "report_s": round(report, 3),
        }
        print(f"{cells:>6}  {load:11.3f}  {page:14.3f}  {report:13.3f}  {page / load:10.1f}x")
    verdict = "PASS" if out[10_000]["page_s"] < 1.5 else "MISS"
    print(f"target: Results page < 1.5 s at 10,000 cells: {verdict}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
