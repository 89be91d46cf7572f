"""A run links to the version of each prompt file it ran."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from promptdeck.analysis.versions import run_versions, runs_of_variant
from promptdeck.evals.plan import build_plan
from promptdeck.evals.suite import Suite
from promptdeck.model.types import CallResult, Usage
from promptdeck.store.db import Store
from promptdeck.store.rows import CellRecord
from promptdeck.workspace.prompts import load_prompts
from tests.helpers import shown
from tests.pages.conftest import ROOT


def stored(workspace: Path) -> tuple[Store, str]:
    """A run of t/alpha and t/beta planned (not called) in the page-test workspace."""
    plan = build_plan(
        Suite(None, workspace / "datasets" / "support_sample.csv", ("t/alpha", "t/beta"),
              baseline="t/alpha"),
        load_prompts(Path("prompts")),
        n=2,
    )  # fmt: skip
    store = Store(workspace / ".promptdeck" / "promptdeck.sqlite")
    run_id = store.create_run(plan.snapshot(), name="linked", total_cells=4)
    for cell in plan.cells():
        result = CallResult("fake/m", "answer", Usage(1, 1), 5.0, 9.0, 0.0)
        record = CellRecord(cell.case.id, cell.variant.name, 0, cell.case.category, result)
        store.add_result(run_id, record, [])
    store.set_run_status(run_id, "done")
    return store, run_id


def test_a_run_records_the_version_of_each_file(workspace: Path) -> None:
    store, run_id = stored(workspace)
    snapshot = store.get_run(run_id).snapshot
    assert [(v.variant, v.state) for v in run_versions(snapshot)] == [
        ("t/alpha", "same"), ("t/beta", "same"),
    ]  # fmt: skip
    alpha = workspace / "prompts" / "t" / "alpha.yaml"
    alpha.write_text(alpha.read_text() + "# a comment\n")
    (workspace / "prompts" / "t" / "beta.yaml").unlink()
    assert [(v.variant, v.state) for v in run_versions(snapshot)] == [
        ("t/alpha", "changed"), ("t/beta", "deleted"),
    ]  # fmt: skip
    assert [r.id for r, _ in runs_of_variant(store.list_runs(), "t/alpha")] == [run_id]
    assert runs_of_variant(store.list_runs(), "t/gamma") == []
    assert run_versions({"variants": {"t/x": {"path": "p.yaml"}}})[0].state == "unknown"


@pytest.mark.parametrize("page", ["results", "prompts"])
def test_the_pages_show_the_link(workspace: Path, page: str) -> None:
    _, run_id = stored(workspace)
    alpha = workspace / "prompts" / "t" / "alpha.yaml"
    alpha.write_text(alpha.read_text() + "# edited after the run\n")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.run()
    at.query_params["variant"] = "t/alpha"
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception
    if page == "results":
        said = " ".join(shown(c.value) for c in at.caption)
        assert "these prompt files changed on disk: t/alpha (changed)" in said
        return
    runs = at.dataframe[-1].value
    assert list(runs["run"]) == [run_id] and list(runs["version"]) == ["an earlier one"]
    assert shown(runs["results"][0]) == f"/results?run={run_id}"
