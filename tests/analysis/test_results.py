from pathlib import Path

import pandas as pd
import pytest

from promptdeck.analysis.cells import load_cells
from promptdeck.analysis.results import (
    case_scores,
    check_comparisons,
    examples,
    run_changes,
    score_distribution,
)
from promptdeck.model.types import CallResult, Usage
from promptdeck.scoring.scorers import Score
from promptdeck.store.db import Store
from promptdeck.store.rows import CellRecord


def add(
    store: Store,
    run_id: str,
    row: str,
    variant: str,
    repeat: int,
    score: float | None,
    checks_ok: bool = True,
    text: str = "answer",
) -> None:
    result = CallResult("m/x", f"{text} {row}", Usage(1, 1), 10.0, 20.0, 0.0)
    store.add_result(
        run_id,
        CellRecord(row, variant, repeat, "c", result),
        [
            Score("judge", score, None, "why", "m/j"),
            Score("check:x", float(checks_ok), checks_ok, "r"),
        ],
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "s.sqlite")


def test_overrides_apply_and_repeats_are_averaged(store: Store) -> None:
    run_id = store.create_run({}, name="t", total_cells=6)
    for rep, score in enumerate((3.0, 5.0)):
        add(store, run_id, "r1", "new", rep, score)
    add(store, run_id, "r1", "base", 0, 4.0)
    add(store, run_id, "r2", "base", 0, None)  # unscored stays None, never 0
    store.review_cell(run_id, "r1", "base", 0, score=2.0)
    cells = load_cells(store, run_id)
    base = cells[(cells["variant"] == "base") & (cells["row_id"] == "r1")].iloc[0]
    assert (base["judge_score"], base["judge_raw"], base["overridden"]) == (2.0, 4.0, True)
    per_case = case_scores(cells).set_index(["row_id", "variant"])
    assert per_case.loc[("r1", "new"), "value"] == 4.0 and per_case.loc[("r1", "new"), "flaky"]
    assert not per_case.loc[("r1", "base"), "flaky"]
    assert per_case.loc[("r2", "base"), "value"] != per_case.loc[("r2", "base"), "value"]  # NaN
    dist = score_distribution(cells).set_index(["variant", "score"])["answers"].to_dict()
    assert dist == {("base", "2"): 1, ("base", "unscored"): 1, ("new", "3"): 1, ("new", "5"): 1}


def test_check_flips_and_run_changes_and_examples(store: Store) -> None:
    run_id = store.create_run({}, name="t", total_cells=8)
    for row, (b_ok, n_ok) in {
        "a": (True, False),
        "b": (True, False),
        "c": (False, True),
        "d": (True, True),
    }.items():
        add(store, run_id, row, "base", 0, 3.0, b_ok)
        add(store, run_id, row, "new", 0, 4.0 if row != "a" else 1.0, n_ok)
    [row] = check_comparisons(load_cells(store, run_id), "base").to_dict("records")
    assert (row["pass→fail"], row["fail→pass"], row["rows"]) == (2, 1, 4)
    assert row["McNemar p"] == pytest.approx(1.0)  # 2 vs 1 flips: 2·P(X≤1 | n=3) = 2·4/8, capped
    picked = examples(load_cells(store, run_id), "base", [{"id": "a", "input": "q"}], k=1)
    assert [(e["row_id"], e["delta"]) for e in picked] == [("d", 1.0), ("a", -2.0)]  # stable
    later = store.create_run({}, name="t", total_cells=1)
    add(store, later, "a", "new", 0, 3.0, text="changed")
    changes = run_changes(load_cells(store, later), load_cells(store, run_id), "new")
    first = changes.iloc[0]
    assert (first["row_id"], first["change"], first["answer changed"]) == ("a", 2.0, True)


def test_continuous_scores_are_counted_in_half_point_bins() -> None:
    cells = pd.DataFrame(
        {
            "variant": ["a", "a", "a", "b"],
            "judge_score": [2.08, 2.31, 2.6, None],
            "failed": [False, False, False, False],
        }
    )
    dist = score_distribution(cells).set_index(["variant", "score"])["answers"].to_dict()
    assert dist == {("a", "2–2.5"): 2, ("a", "2.5–3"): 1, ("b", "unscored"): 1}
