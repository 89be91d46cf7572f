"""The plan's advice: rows each gate needs, from history or a cautious default."""

from __future__ import annotations

import pandas as pd

from promptdeck.analysis.needs import gate_needs

GATES = [
    {"metric": "judge_score", "max_drop": 0.5},
    {"metric": "judge_score", "category": "billing", "max_drop": 0.5},
    {"metric": "error_rate", "max": 0.05},  # measured: any run decides it
]


def test_without_history_a_cautious_spread_is_assumed() -> None:
    overall, billing = gate_needs(GATES, scale=(1, 5))
    assert overall.sd == billing.sd == 1.0 and "No earlier run" in overall.source
    assert overall.rows is not None and billing.rows is not None
    assert billing.rows >= overall.rows  # a family of one category still pays for its share
    assert billing.per_category and "per category" in billing.advice(30)
    assert overall.advice(overall.rows).endswith("(enough). " + overall.source)


def test_a_calmer_history_needs_fewer_rows() -> None:
    history = pd.DataFrame(
        [{"variant": "v", "category": "(all)", "sd": 0.3},
         {"variant": "v", "category": "billing", "sd": 0.6}]
    )  # fmt: skip
    before = gate_needs(GATES, scale=(1, 5))
    after = gate_needs(GATES, scale=(1, 5), history=history, history_name="r1")
    assert after[0].sd == 0.3 and after[1].sd == 0.6 and "run r1" in after[0].source
    assert after[0].rows is not None and before[0].rows is not None
    assert after[0].rows < before[0].rows
