"""The Results page computes a run's analysis once per version of the run: a human
override or a new cell makes a new one, a rerun with nothing changed (or time passing)
does not."""

import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from promptdeck import ui
from promptdeck.model.types import CallResult, Usage
from promptdeck.scoring.scorers import Score
from promptdeck.store.db import Store
from promptdeck.store.rows import CellRecord
from tests.pages.test_results import open_results, stored_run


def summary(at: AppTest) -> dict[str, tuple[int, float]]:
    """Per variant in the page's summary table: (cells, mean score)."""
    frame = next(d for d in at.dataframe if "mean score" in d.value.columns).value
    return {
        str(r["variant"]): (int(r["cells"]), round(float(r["mean score"]), 6))
        for _, r in frame.iterrows()
    }


def add_cell(store: Store, run_id: str, row_id: str, variant: str, score: float) -> None:
    result = CallResult("fake/m", "late answer", Usage(10, 5), 50.0, 200.0, 0.0)
    record = CellRecord(row_id, variant, 0, "a", result)
    store.add_result(run_id, record, [Score("judge", score, None, "late", "fake/judge")])


def test_the_cached_analysis_follows_overrides_and_new_cells_not_time(workspace: Path) -> None:
    run_id = stored_run(workspace, rows=10)
    store = Store(workspace / ".promptdeck" / "promptdeck.sqlite")
    try:
        version = ui.run_version(store, run_id)
        first = ui.run_analysis(store, run_id, version)
        time.sleep(0.05)
        again = ui.run_version(store, run_id)
        assert again == version and ui.run_analysis(store, run_id, again) is first

        store.review_cell(run_id, "r0", "t/new", 0, score=1.0)  # a human override
        reviewed = ui.run_version(store, run_id)
        assert reviewed != version
        after = ui.run_analysis(store, run_id, reviewed)
        assert after is not first
        assert after.cells["overridden"].sum() == 1

        add_cell(store, run_id, "r10", "t/new", 5.0)  # a new cell
        grown = ui.run_version(store, run_id)
        assert grown != reviewed
        assert len(ui.run_analysis(store, run_id, grown).cells) == len(after.cells) + 1
    finally:
        store.close()


def test_the_page_shows_an_override_and_a_new_cell_on_its_next_rerun(workspace: Path) -> None:
    run_id = stored_run(workspace, rows=10)
    at = open_results()
    assert not at.exception
    before = summary(at)
    at.run()  # nothing changed: the same figures
    assert summary(at) == before

    store = Store(workspace / ".promptdeck" / "promptdeck.sqlite")
    try:
        store.review_cell(run_id, "r0", "t/new", 0, score=1.0)
        at.run()
        assert not at.exception
        reviewed = summary(at)
        assert reviewed["t/new"][0] == before["t/new"][0]
        assert reviewed["t/new"][1] != before["t/new"][1]
        assert reviewed["t/base"] == before["t/base"]

        add_cell(store, run_id, "r10", "t/base", 5.0)
        at.run()
        assert not at.exception
        assert summary(at)["t/base"][0] == before["t/base"][0] + 1
    finally:
        store.close()
