"""The Datasets page's import at scale: an upload is parsed once and planned once per set of
options (a rerun neither parses nor plans again), and large tables are shown a page at a time."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from promptdeck.workspace import dataset_edit, dataset_import
from tests.pages.test_datasets import open_datasets


def counted(calls: Counter[str], name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls[name] += 1
        return function(*args, **kwargs)

    return wrapper


def upload(rows: int) -> bytes:
    """Rows no other test uploads: Streamlit's caches live as long as the process."""
    run = uuid.uuid4().hex
    return "".join(
        json.dumps({"query": f"question {i} of {run}", "intent": "ab"[i % 2]}) + "\n"
        for i in range(rows)
    ).encode()


def test_a_rerun_neither_parses_nor_plans_the_upload_again(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: Counter[str] = Counter()
    for name in ("parse_upload", "plan_upload", "upload_digest"):
        monkeypatch.setattr(
            dataset_import, name, counted(calls, name, getattr(dataset_import, name))
        )
    at = open_datasets()
    at.file_uploader(key="ds_upload").set_value(("q.jsonl", upload(50), "text/plain")).run()
    assert not at.exception
    assert calls == {"parse_upload": 1, "plan_upload": 1, "upload_digest": 1}
    at.run()  # a rerun, as any click makes
    at.checkbox(key="ds_imp_keep").uncheck().run()  # another mapping: planned, not parsed
    at.checkbox(key="ds_imp_keep").check().run()  # back: the first plan, kept
    assert calls == {"parse_upload": 1, "plan_upload": 2, "upload_digest": 1}
    preview = next(m.value for m in at.markdown if m.value.startswith("**Preview**"))
    assert "50 rows read" in preview


def test_a_large_preview_is_shown_a_page_at_a_time(workspace: Path) -> None:
    at = open_datasets()
    at.file_uploader(key="ds_upload").set_value(("q.jsonl", upload(1_200), "text/plain")).run()
    (table,) = at.dataframe[-1:]
    assert len(table.value) == 500
    assert "Rows 1 to 500 of 1,200" in [c.value for c in at.caption]
    at.number_input(key="ds_imp_page").set_value(3).run()
    shown = at.dataframe[-1].value
    assert len(shown) == 200 and shown["input"].iloc[0].startswith("question 1000 of ")


def test_a_large_dataset_is_browsed_a_page_at_a_time(workspace: Path) -> None:
    lines = ["id,category,input"] + [f"r{i},{'ab'[i % 2]},question {i}" for i in range(1_200)]
    (workspace / "datasets" / "big.csv").write_text("\n".join(lines) + "\n")
    at = open_datasets()
    at = at.selectbox(key="ds_path").set_value("big.csv").run()
    assert len(at.dataframe[0].value) == 500
    at.number_input(key="ds_page_big.csv").set_value(3).run()
    assert list(at.dataframe[0].value["id"][:1]) == ["r1000"]


def test_a_dataset_too_large_to_edit_is_read_a_page_at_a_time(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dataset_edit, "EDITABLE_BYTES", 10_000)  # big.csv: ~30 KB
    lines = ["id,category,input"] + [f"r{i},{'ab'[i % 2]},question {i}" for i in range(1_200)]
    (workspace / "datasets" / "big.csv").write_text("\n".join(lines) + "\n")
    at = open_datasets()
    at = at.selectbox(key="ds_path").set_value("big.csv").run()
    assert not at.exception and not at.data_editor  # nothing to edit
    assert [t.label for t in at.tabs] == ["Browse", "Import", "History"]
    assert len(at.dataframe[0].value) == 500
    assert "1,200 cases: over 0 MB" in at.caption[0].value
    at.number_input(key="ds_page_big.csv").set_value(3).run()
    shown = at.dataframe[0].value
    assert list(shown["id"]) == [f"r{i}" for i in range(1000, 1200)]
    at.file_uploader(key="ds_upload").set_value(("q.jsonl", upload(3), "text/plain")).run()
    targets = at.selectbox(key="ds_imp_target").options  # too large to import into
    assert "support_sample.csv" in targets and "big.csv" not in targets
