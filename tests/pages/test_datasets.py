"""The Datasets page in AppTest.

AppTest cannot type into `st.data_editor` (`set_value` raises). What the browser sends is the
editor's edit state, so the tests set exactly that on the editor's key before a run:
`{"edited_rows": {row: {column: value}}, "added_rows": [...], "deleted_rows": [row]}`.
"""

import csv
import json
import shutil
from pathlib import Path

from streamlit.testing.v1 import AppTest

from promptdeck.store.db import Store
from promptdeck.workspace.datasets import append_case, load_dataset
from tests.helpers import shown
from tests.pages.conftest import ROOT, open_page

SAMPLE = "datasets/support_sample.csv"


def open_datasets() -> AppTest:
    """The Datasets page on the support sample (the first dataset by name is another one)."""
    at = open_page("pages/datasets.py")
    return at.selectbox(key="ds_path").set_value(Path(SAMPLE).name).run()


def edit(at: AppTest, edits: dict[str, object]) -> AppTest:
    """Send an edit of the data editor, as the browser does, and press Save."""
    (editor,) = at.data_editor
    at.session_state[editor.key] = {"edited_rows": {}, "added_rows": [], "deleted_rows": []} | edits
    return at.button(key="ds_save").click().run()


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_an_edit_in_the_data_editor_is_saved_to_the_csv(workspace: Path) -> None:
    path = workspace / SAMPLE
    before = rows(path)
    at = open_datasets()
    assert at.data_editor[0].editing_mode == "dynamic"
    assert list(at.data_editor[0].value["id"][:2]) == ["billing-01", "billing-02"]
    edit(
        at,
        {
            "edited_rows": {0: {"input": "007"}},
            "added_rows": [{"id": "new-1", "category": "billing", "input": "Invoice?"}, {}],
            "deleted_rows": [1],
        },
    )
    assert not at.exception
    saved = f"Saved {len(before)} cases to datasets/support_sample.csv; 1 empty rows dropped."
    assert saved == shown(at.success[0].value)
    after = rows(path)
    assert after[0] == {**before[0], "input": "007"}  # text stays text
    assert after[1:-1] == before[2:]  # billing-02 deleted, the others untouched
    assert after[-1] == {"id": "new-1", "category": "billing", "input": "Invoice?", "expected": ""}
    store = Store(workspace / ".promptdeck" / "promptdeck.sqlite")
    assert [v["action"] for v in store.versions(SAMPLE)] == ["save", "original"]
    # the editor starts again from the saved file
    assert list(at.data_editor[0].value["input"][:1]) == ["007"]


def test_a_file_changed_on_disk_is_not_overwritten(workspace: Path) -> None:
    path = workspace / SAMPLE
    at = open_datasets()
    theirs = path.read_text().replace("charged twice", "charged three times")
    path.write_text(theirs)
    edit(at, {"edited_rows": {0: {"expected": "My answer"}}})
    assert not at.exception
    assert path.read_text() == theirs
    assert any("changed on disk since you opened it" in e.value for e in at.error)
    diff = next(c.value for c in at.code if c.language == "diff")
    assert '-billing-01,billing,"Hi, I was charged three times' in diff
    assert '+billing-01,billing,"Hi, I was charged twice' in diff and "My answer" in diff
    assert at.button(key="ds_conflict_reload").label.startswith("Reload from disk")

    at.button(key="ds_conflict_reload").click().run()
    assert not any("changed on disk" in e.value for e in at.error)
    assert "charged three times" in at.data_editor[0].value["input"][0]


def test_import_previews_then_appends_rows(workspace: Path) -> None:
    path = workspace / SAMPLE
    count = len(rows(path))
    source = (
        "query,intent,channel\n"
        "Where is my order 123?,shipping,email\n"
        "where is my ORDER 123?,shipping,chat\n"
        "How much is shipping if my order is $62?,shipping,web\n"
        ",billing,web\n"
        "Do you sell gift cards?,other,web\n"
    )
    at = open_datasets()
    at.file_uploader(key="ds_upload").set_value(("prod.csv", source.encode(), "text/csv")).run()
    assert at.selectbox(key="ds_imp_in").value == "query"
    assert at.selectbox(key="ds_imp_category").value == "intent"
    preview = next(m.value for m in at.markdown if m.value.startswith("**Preview**"))
    assert "5 rows read · 1 without input skipped · 1 duplicates in the file" in preview
    assert "1 already in the dataset" in preview and "2 to add" in preview
    assert len(rows(path)) == count  # nothing written before the button

    at.button(key="ds_imp_go").click().run()
    assert not at.exception
    added = rows(path)[count:]
    assert [(r["category"], r["input"], r["channel"]) for r in added] == [
        ("shipping", "Where is my order 123?", "email"),
        ("other", "Do you sell gift cards?", "web"),
    ]
    assert all(r["id"] for r in added)
    assert "Imported 2 cases" in at.success[0].value


def test_import_into_a_new_dataset_with_a_sample(workspace: Path) -> None:
    source = "".join(json.dumps({"text": f"q{i}", "topic": "ab"[i % 2]}) + "\n" for i in range(20))
    at = open_datasets()
    at.file_uploader(key="ds_upload").set_value(("p.jsonl", source.encode(), "text/plain")).run()
    at.number_input(key="ds_imp_n").set_value(6).run()
    at.radio(key="ds_imp_kind").set_value("A new dataset").run()
    at.text_input(key="ds_imp_name").input("prod sample").run()
    assert "letters, digits" in at.error[0].value
    at.text_input(key="ds_imp_name").input("prod_sample").run()
    at.button(key="ds_imp_go").click().run()
    cases = load_dataset(workspace / "datasets" / "prod_sample.csv").cases
    assert at.selectbox(key="ds_path").value == "prod_sample.csv"  # the new dataset is open
    assert len(cases) == 6 and sum(c.category == "a" for c in cases) == 3
    # The form now names it as the existing dataset it is: no "already exists" error.
    assert not at.error and at.radio(key="ds_imp_kind").value == "An existing dataset"
    assert at.selectbox(key="ds_imp_target").value.name == "prod_sample.csv"


def test_a_malformed_upload_names_the_file_and_line(workspace: Path) -> None:
    at = open_datasets()
    bad = b'query,intent\nok,a\n"never closed,b\n'
    at.file_uploader(key="ds_upload").set_value(("prod.csv", bad, "text/csv")).run()
    assert not at.exception
    assert shown(at.error[0].value).startswith("prod.csv: line 3: a quoted field")


def test_a_broken_file_shows_its_error_and_the_others_still_work(workspace: Path) -> None:
    (workspace / "datasets" / "aaa_broken.csv").write_text("id,input\na,one\nb,two,three\n")
    at = open_datasets()
    assert "datasets/aaa_broken.csv: line 3: 3 fields, the header has 2" in shown(at.error[0].value)
    assert at.selectbox(key="ds_path").value == "support_sample.csv"
    assert len(at.data_editor) == 1
    at.selectbox(key="ds_path").select_index(0).run()
    assert not at.exception
    assert "cannot be loaded" in at.warning[0].value
    assert at.file_uploader(key="ds_upload") is not None  # import still offered


def test_cases_added_from_the_app_can_be_filtered(workspace: Path) -> None:
    path = workspace / SAMPLE
    append_case(path, {"category": "billing", "input": "Refund?", "note": "judge was wrong"})
    at = open_datasets()
    assert "1 added from the app" in at.caption[0].value
    at.toggle(key="ds_app_support_sample.csv").set_value(True).run()
    (table,) = at.dataframe[:1]
    assert list(table.value.columns[:3]) == ["id", "category", "note"]
    assert list(table.value["note"]) == ["judge was wrong"]
    spec = json.loads(at.get("vega_lite_chart")[0].proto.spec)
    assert spec["title"] == "Cases per category"


def test_empty_workspace_says_what_to_do(workspace: Path) -> None:
    shutil.rmtree(workspace / "datasets")
    at = open_page("pages/datasets.py")
    assert "No datasets yet" in at.info[0].value
    at.file_uploader(key="ds_upload").set_value(("p.csv", b"input\nhello\n", "text/csv")).run()
    assert at.radio(key="ds_imp_kind").options == ["A new dataset"]
    at.text_input(key="ds_imp_name").input("first").run()
    at.button(key="ds_imp_go").click().run()
    assert [c.values["input"] for c in load_dataset(workspace / "datasets/first.csv").cases] == [
        "hello"
    ]
    assert at.selectbox(key="ds_path").value == "first.csv"


def test_a_playground_case_saved_with_a_note_shows_up_here(workspace: Path) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.run()
    at.switch_page("pages/playground.py").run()
    at.multiselect(key="pg_variants").set_value(["t/alpha"]).run()
    at.text_area(key="pg_in_input").input("My sofa arrived torn").run()
    at.button[0].click().run()
    assert at.session_state["pg_run"].wait(20)
    at.run()
    at.selectbox(key="pg_case_dest").select("support_sample.csv")
    at.text_input(key="pg_case_note").input("damage claims are handled badly")
    at.button(key="pg_case_save").click().run()
    assert not at.exception
    assert "to datasets/support_sample.csv" in shown(at.success[0].value)
    saved = rows(workspace / SAMPLE)[-1]
    assert saved["input"] == "My sofa arrived torn" and saved["source"] == "playground"

    at.switch_page("pages/datasets.py").run()
    at.selectbox(key="ds_path").set_value("support_sample.csv").run()
    at.toggle(key="ds_app_support_sample.csv").set_value(True).run()
    assert list(at.dataframe[0].value["note"]) == ["damage claims are handled badly"]


def test_an_import_into_a_file_changed_since_the_preview_writes_nothing(workspace: Path) -> None:
    path = workspace / SAMPLE
    at = open_datasets()
    source = b"query\nIs the blue sofa back in stock?\n"
    at.file_uploader(key="ds_upload").set_value(("prod.csv", source, "text/csv")).run()
    append_case(path, {"input": "added from Results meanwhile", "note": "x"})
    theirs = path.read_text()
    at.button(key="ds_imp_go").click().run()
    assert not at.exception
    assert path.read_text() == theirs
    assert any("changed on disk since you opened it" in e.value for e in at.error)


def test_unsaved_edits_survive_another_dataset_and_another_page(workspace: Path) -> None:
    path = workspace / SAMPLE
    at = open_datasets()
    for leave_and_come_back, text in (
        (lambda: at.selectbox(key="ds_path").set_value("support_tickets.csv").run(), "first"),
        (lambda: at.switch_page("pages/settings.py").run(), "second"),
    ):
        (editor,) = at.data_editor
        edits = {"edited_rows": {0: {"input": text}}, "added_rows": [], "deleted_rows": []}
        at.session_state[editor.key] = edits
        at.run()
        leave_and_come_back()
        at.switch_page("pages/datasets.py").run()
        at.selectbox(key="ds_path").set_value("support_sample.csv").run()
        assert any(c.value.startswith("Unsaved edits") for c in at.caption)
        at.button(key="ds_save").click().run()
        assert not at.exception and at.success[0].value.startswith("Saved 12 cases")
        assert rows(path)[0]["input"] == text


def test_an_import_waits_for_unsaved_edits_of_its_dataset(workspace: Path) -> None:
    path = workspace / SAMPLE
    before = path.read_text()
    at = open_datasets()
    (editor,) = at.data_editor
    edits = {"edited_rows": {0: {"input": "mine"}}, "added_rows": [], "deleted_rows": []}
    at.session_state[editor.key] = edits
    source = b"query\nIs the blue sofa back in stock?\n"
    at.file_uploader(key="ds_upload").set_value(("prod.csv", source, "text/csv")).run()
    assert any("has unsaved edits in the Edit tab" in w.value for w in at.warning)
    assert not [b for b in at.button if b.key == "ds_imp_go"] and path.read_text() == before
    at.button(key="ds_save").click().run()
    assert rows(path)[0]["input"] == "mine"
    at.button(key="ds_imp_go").click().run()
    assert rows(path)[0]["input"] == "mine" and "Imported 1 cases" in at.success[0].value
