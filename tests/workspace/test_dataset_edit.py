import json
from pathlib import Path

import pandas as pd
import pytest

from promptdeck.errors import DatasetError, FileConflictError
from promptdeck.store.db import Store
from promptdeck.workspace.dataset_edit import (
    FROM_APP,
    FROM_FILE,
    cell_text,
    check_table,
    conflict_diff,
    count_categories,
    filter_rows,
    load_table,
    new_table,
    save_table,
)
from promptdeck.workspace.dataset_import import (
    ColumnMap,
    guess_map,
    new_dataset_path,
    normalise,
    plan_import,
    read_source,
    write_import,
)
from promptdeck.workspace.datasets import append_case, load_dataset
from promptdeck.workspace.fileio import fingerprint
from promptdeck.workspace.yamlfile import parse_yaml_rows

# Cells a spreadsheet or pandas would mangle: leading zeros, float-looking text, "nan",
# a formula, an empty cell, text with a comma, a quote and a line break; and characters that
# Python's splitlines() and YAML take for line breaks (pasted from web pages).
TRICKY = ["007", "0.10", "nan", "=SUM(A1:A2)", "", 'say "hi", then\nbye', "1e3", "TRUE"]
TRICKY += ["a\u2028b\x85c\u2029d"]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / ".promptdeck" / "promptdeck.sqlite")


def write_csv(path: Path, newline: str = "\n") -> None:
    rows = ["id,category,input,code", "a,billing,Hello,007"]
    rows += ['b,shipping,"say ""hi"", then\nbye",0.10', "c,,nan,", "d,billing,=SUM(A1:A2),1e3"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(newline.join([*rows, ""]).encode())


def test_csv_round_trip_keeps_every_cell_text_and_the_line_endings(
    tmp_path: Path, store: Store
) -> None:
    path = tmp_path / "datasets" / "d.csv"
    write_csv(path, newline="\r\n")
    table = load_table(path)
    before = {case.id: dict(case.values) for case in load_dataset(path).cases}
    frame = table.frame()
    frame.loc[0, "input"] = "Hello again"
    saved = save_table(table, frame, store, tmp_path)
    assert saved.changed and saved.rows == 4
    after = {case.id: dict(case.values) for case in load_dataset(path).cases}
    assert after["a"]["input"] == "Hello again"
    assert after["a"]["code"] == "007"
    assert {k: v for k, v in after.items() if k != "a"} == {
        k: v for k, v in before.items() if k != "a"
    }
    raw = path.read_bytes()
    assert raw.count(b"\r\n") == 5  # header + 4 rows; the line break inside a cell stays
    assert b'"say ""hi"", then\nbye"' in raw
    assert b"nan" in raw and b"0.10" in raw and b"1e3" in raw


def test_every_tricky_cell_survives_save_in_every_format(tmp_path: Path, store: Store) -> None:
    rows = [{"id": f"r{i}", "input": text} for i, text in enumerate(TRICKY)]
    (tmp_path / "datasets").mkdir()
    for suffix in (".csv", ".jsonl", ".yaml"):
        path = tmp_path / "datasets" / f"t{suffix}"
        table = new_table(path)
        frame = pd.DataFrame(rows, dtype="string")
        with pytest.raises(FileConflictError):  # a new table must not overwrite a file
            path.write_text("x")
            save_table(table, frame, store, tmp_path)
        path.unlink()
        save_table(table, frame, store, tmp_path)
        loaded = load_table(path)
        assert [dict(r) for r in loaded.rows] == rows, suffix
        frame = loaded.frame()
        frame.loc[0, "input"] = "008"
        save_table(loaded, frame, store, tmp_path)
        values = [dict(r) for r in load_table(path).rows]
        assert values == [{"id": "r0", "input": "008"}, *rows[1:]], suffix


def test_jsonl_keeps_typed_values_and_missing_keys(tmp_path: Path, store: Store) -> None:
    path = tmp_path / "datasets" / "d.jsonl"
    path.parent.mkdir()
    lines = [
        {"id": "a", "input": "007", "n": 7, "ok": True, "tags": ["x", "y"], "note": None},
        {"id": "b", "input": "second", "n": 8, "ok": False, "tags": [], "note": None, "x": "1"},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    table = load_table(path)
    assert table.sparse == frozenset({"x"})
    frame = table.frame()
    frame.loc[1, "input"] = "second, edited"
    save_table(table, frame, store, tmp_path)
    written = [json.loads(line) for line in path.read_text().splitlines()]
    assert written[0] == lines[0]  # 7 stays a number, true a boolean, null a null; no "x" key
    assert written[1] == {**lines[1], "input": "second, edited"}


def test_unchanged_cells_keep_their_own_value_and_key_so_ids_stay(
    tmp_path: Path, store: Store
) -> None:
    path = tmp_path / "datasets" / "d.jsonl"
    path.parent.mkdir()
    lines = [
        {"input": "one", "n": 1},
        {"input": "two", "n": "1", "note": ""},  # "1" as text here, 1 as a number above
        {"input": "three", "note": None},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    ids = [case.id for case in load_dataset(path).cases]
    table = load_table(path)
    frame = table.frame()
    frame.loc[0, "input"] = "one, edited"
    save_table(table, frame, store, tmp_path)
    written = [json.loads(line) for line in path.read_text().splitlines()]
    assert written == [{**lines[0], "input": "one, edited"}, *lines[1:]]
    assert [case.id for case in load_dataset(path).cases][1:] == ids[1:]


def test_a_symlinked_dataset_is_saved_into_its_target(tmp_path: Path, store: Store) -> None:
    target = tmp_path / "shared" / "d.csv"
    target.parent.mkdir()
    target.write_text("id,input\na,Hello\n")
    link = tmp_path / "datasets" / "d.csv"
    link.parent.mkdir()
    link.symlink_to(target)
    table = load_table(link)
    frame = table.frame()
    frame.loc[0, "input"] = "Hello again"
    save_table(table, frame, store, tmp_path)
    assert link.is_symlink() and target.read_text() == "id,input\na,Hello again\n"


def test_yaml_keeps_strings_that_look_like_other_types(tmp_path: Path, store: Store) -> None:
    path = tmp_path / "datasets" / "d.yaml"
    path.parent.mkdir()
    path.write_text(
        "# a comment\n- id: a\n  input: '007'\n  when: 2024-05-01\n  flag: 'yes'\n"
        "- id: b\n  input: |\n    two\n    lines\n  when: 2024-05-02\n  flag: 'no'\n"
    )
    table = load_table(path)
    frame = table.frame()
    frame.loc[0, "flag"] = "on"
    save_table(table, frame, store, tmp_path)
    text = path.read_text()
    assert parse_yaml_rows(text) == [  # YAML 1.2, cells as written: dates stay text
        {"id": "a", "input": "007", "when": "2024-05-01", "flag": "on"},
        {"id": "b", "input": "two\nlines\n", "when": "2024-05-02", "flag": "no"},
    ]
    assert "input: |" in text  # multi-line text stays a readable block
    assert "# a comment" not in text  # documented: comments are not kept


def test_unchanged_table_writes_nothing(tmp_path: Path, store: Store) -> None:
    path = tmp_path / "datasets" / "d.csv"
    write_csv(path)
    before = path.read_bytes()
    table = load_table(path)
    saved = save_table(table, table.frame(), store, tmp_path)
    assert not saved.changed
    assert path.read_bytes() == before
    assert store.versions("datasets/d.csv") == []


def test_save_refuses_a_file_changed_on_disk(tmp_path: Path, store: Store) -> None:
    path = tmp_path / "datasets" / "d.csv"
    write_csv(path)
    table = load_table(path)
    path.write_text("id,input\nz,changed by git pull\n")
    frame = table.frame()
    frame.loc[0, "input"] = "mine"
    with pytest.raises(FileConflictError) as info:
        save_table(table, frame, store, tmp_path)
    assert info.value.disk_text == "id,input\nz,changed by git pull\n"
    assert path.read_text() == "id,input\nz,changed by git pull\n"
    assert store.versions("datasets/d.csv") == []
    diff = conflict_diff(info.value.disk_text, "id,input\nz,mine\n", "d.csv")
    assert "-z,changed by git pull\n" in diff and "+z,mine\n" in diff


def test_every_save_is_recorded_in_the_history(tmp_path: Path, store: Store) -> None:
    path = tmp_path / "datasets" / "d.csv"
    write_csv(path)
    original = path.read_text()
    table = load_table(path)
    frame = table.frame()
    frame.loc[0, "input"] = "one"
    first = save_table(table, frame, store, tmp_path)
    table = load_table(path)
    frame = table.frame()
    frame.loc[0, "input"] = "two"
    second = save_table(table, frame, store, tmp_path)
    versions = store.versions("datasets/d.csv")
    assert [v["action"] for v in versions] == ["save", "save", "original"]
    assert versions[2]["content"] == original
    assert versions[2]["fingerprint"] == fingerprint(original)
    assert versions[1]["fingerprint"] == first.fingerprint
    assert versions[0]["fingerprint"] == second.fingerprint == fingerprint(path.read_bytes())
    assert versions[0]["content"] == path.read_text() and versions[0]["name"] == "d"


def test_empty_rows_are_dropped_and_invalid_tables_are_refused(
    tmp_path: Path, store: Store
) -> None:
    path = tmp_path / "datasets" / "d.csv"
    write_csv(path)
    table = load_table(path)
    frame = pd.concat([table.frame(), pd.DataFrame([{"id": None, "input": "  "}])])
    saved = save_table(table, frame, store, tmp_path)
    assert (saved.rows, saved.empty_dropped) == (4, 1)
    assert len(load_dataset(path).cases) == 4

    table = load_table(path)
    frame = table.frame()
    frame.loc[2, "id"] = "a"
    with pytest.raises(DatasetError, match=r"row 3: duplicate id 'a' \(first in row 1\)"):
        save_table(table, frame, store, tmp_path)
    assert check_table(["input", "input", " "], [{"input": "x"}]) == [
        "column 'input' appears twice",
        "column 3 has no name",
    ]
    same = [{"input": "x", "id": ""}, {"input": "", "id": ""}, {"input": "x", "id": ""}]
    assert check_table(["id", "input"], same) == [
        "row 3: same content as row 1 and no id to tell them apart; "
        "remove the copy or give each row an id"
    ]
    assert check_table(["input"], [{"input": ""}]) == ["no rows: a dataset needs at least one case"]


def test_parquet_is_read_only(tmp_path: Path, store: Store) -> None:
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"id": ["a"], "input": ["hi"]}), path)
    table = load_table(path)
    assert not table.writable and [dict(r) for r in table.rows] == [{"id": "a", "input": "hi"}]
    with pytest.raises(DatasetError, match="read-only"):
        save_table(table, table.frame(), store, tmp_path)


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, ""), (float("nan"), ""), (pd.NA, ""), ("007", "007"), (7, "7"), (True, "true")],
)
def test_cell_text(value: object, text: str) -> None:
    assert cell_text(value) == text


# --- import ---------------------------------------------------------------------------------

SOURCE = (
    "id,query,intent,answer,channel\n"
    "9001,Where is my order?,shipping,Check tracking,email\n"
    "9002,  where is MY order?  ,shipping,,chat\n"  # a duplicate once normalised
    "9003,,billing,,chat\n"  # no input
    "9004,I was charged twice,billing,Refund,email\n"
    "9005,How much is shipping if my order is $62?,shipping,,web\n"  # already in the target
    "9006,Can I pay with PayPal?,billing,,web\n"
)


def target_dataset(tmp_path: Path) -> Path:
    path = tmp_path / "datasets" / "cases.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "category,input,expected\n"
        "shipping,How much is shipping if my order is $62?,Free over $50\n"
        "billing,Refund please,\n"
    )
    return path


MAPPING = ColumnMap("query", "intent", "answer")


def test_import_maps_dedupes_and_reports_rows(tmp_path: Path, store: Store) -> None:
    path = target_dataset(tmp_path)
    target = load_table(path)
    old_ids = target.ids
    plan = plan_import("prod.csv", SOURCE.encode(), MAPPING, target)
    report = plan.report
    assert (report.rows_read, report.empty_skipped) == (6, 1)
    assert (report.duplicates_in_file, report.duplicates_in_target) == (1, 1)
    assert (report.not_sampled, report.rows_added) == (0, 3)
    assert report.problems == ("row 3: the input is empty; skipped",)
    assert report.dropped_columns == ("id",)
    assert [r["input"] for r in plan.rows] == [
        "Where is my order?",
        "I was charged twice",
        "Can I pay with PayPal?",
    ]
    assert plan.rows[0]["category"] == "shipping" and plan.rows[0]["expected"] == "Check tracking"
    assert plan.rows[0]["channel"] == "email"
    assert plan.columns == ("id", "category", "input", "expected", "channel")
    assert path.read_text().count("\n") == 3  # planning writes nothing

    saved = write_import(plan, store, tmp_path)
    dataset = load_dataset(path)
    assert saved.rows == 5 == len(dataset.cases)
    assert [c.id for c in dataset.cases[:2]] == list(old_ids)  # a new column changes no id
    assert dataset.cases[4].values["input"] == "Can I pay with PayPal?"
    assert [v["action"] for v in store.versions("datasets/cases.csv")] == ["import", "original"]


def test_import_without_dedupe_and_dropping_other_columns(tmp_path: Path) -> None:
    target = load_table(target_dataset(tmp_path))
    plan = plan_import(
        "prod.csv",
        SOURCE.encode(),
        ColumnMap("query", keep_other=False),
        target,
        dedupe=False,
    )
    assert plan.report.rows_added == 5  # only the empty input is skipped
    assert plan.columns == ("id", "category", "input", "expected")
    assert all(set(r) == {"id", "input"} for r in plan.rows)


def test_import_samples_by_category_with_a_seed(tmp_path: Path) -> None:
    lines = ["q,cat"] + [f"question {i},{'ab'[i % 2]}" for i in range(40)]
    data = ("\n".join(lines) + "\n").encode()
    target = new_table(tmp_path / "datasets" / "new.csv")
    mapping = ColumnMap("q", "cat")
    first = plan_import("p.csv", data, mapping, target, sample=10, seed=3)
    again = plan_import("p.csv", data, mapping, target, sample=10, seed=3)
    other = plan_import("p.csv", data, mapping, target, sample=10, seed=4)
    assert first.rows == again.rows
    assert first.rows != other.rows
    assert [r["category"] for r in first.rows].count("a") == 5
    assert (first.report.rows_added, first.report.not_sampled) == (10, 30)


def test_import_creates_a_new_dataset(tmp_path: Path, store: Store) -> None:
    path = new_dataset_path(tmp_path / "datasets", "prod_queries")
    assert path.name == "prod_queries.csv"
    plan = plan_import(
        "prod.jsonl", b'{"query": "hi", "n": 3}\n', ColumnMap("query"), new_table(path)
    )
    saved = write_import(plan, store, tmp_path)
    assert path.read_text().splitlines()[0] == "id,input,n"
    assert load_dataset(path).cases[0].values["n"] == "3"
    assert saved.rows == 1
    assert [v["action"] for v in store.versions("datasets/prod_queries.csv")] == ["create"]
    with pytest.raises(DatasetError, match="already exists"):
        new_dataset_path(tmp_path / "datasets", "prod_queries.csv")
    with pytest.raises(DatasetError, match="letters, digits"):
        new_dataset_path(tmp_path / "datasets", "../escape")


def test_import_refuses_a_target_changed_since_the_preview(tmp_path: Path, store: Store) -> None:
    path = target_dataset(tmp_path)
    plan = plan_import("prod.csv", SOURCE.encode(), MAPPING, load_table(path))
    append_case(path, {"input": "added meanwhile from Results", "note": "why"})
    changed = path.read_text()
    with pytest.raises(FileConflictError):
        write_import(plan, store, tmp_path)
    assert path.read_text() == changed


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("prod.csv", b'query,intent\nok,a\n"broken,b\nmore,c\n', "prod.csv: line 3: a quoted"),
        ("prod.csv", b"query,intent\nok,a\none,two,three\n", "prod.csv: line 3: 3 fields"),
        ("prod.jsonl", b'{"query": "a"}\n{"query": \n', "prod.jsonl: line 2: invalid JSON"),
        ("prod.csv", b"query\ncaf\xe9\n", "prod.csv: line 2, byte 9: not UTF-8 text (0xe9)"),
        ("prod.xlsx", b"PK", "prod.xlsx: import reads .csv or .jsonl"),
        ("prod.csv", b"query\n", "prod.csv: no rows"),
    ],
)
def test_unreadable_sources_name_the_file_and_line(name: str, data: bytes, message: str) -> None:
    with pytest.raises(DatasetError) as info:
        read_source(name, data)
    assert str(info.value).startswith(message)


def test_a_mapped_column_must_exist(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no column 'nope'"):
        plan_import("p.csv", b"q\nx\n", ColumnMap("q", "nope"), new_table(tmp_path / "n.csv"))


def test_guess_map_and_normalise() -> None:
    assert guess_map(["ID", "Query", "Intent", "Answer"]) == ColumnMap("Query", "Intent", "Answer")
    assert guess_map(["text_body", "x"]) == ColumnMap("text_body")
    # No name says "input": the longest text wins, never the export's id column.
    rows = [("q-0001", "Where is my parcel? It was due Monday.", "shipping"), ("q-0002", "x", "b")]
    assert guess_map(["ticket_id", "body", "topic"], rows) == ColumnMap("body", "topic")
    assert guess_map(
        ["id", "body"], [("1234567890123456789012345678901234567890", "hi")]
    ).input == ("body")
    assert normalise("  Where IS\tmy  order? ") == "where is my order?"


# --- browsing -------------------------------------------------------------------------------


def test_filters_and_counts_see_cases_added_from_the_app(tmp_path: Path) -> None:
    path = target_dataset(tmp_path)
    append_case(path, {"category": "billing", "input": "Bad refund answer", "note": "regressed"})
    append_case(path, {"input": "From the playground", "note": "", "source": "playground"})
    frame = load_table(path).frame()
    assert list(filter_rows(frame, app_only=True)["input"]) == [
        "Bad refund answer",
        "From the playground",
    ]
    assert list(filter_rows(frame, categories=["billing"], search="REFUND")["input"]) == [
        "Refund please",
        "Bad refund answer",
    ]
    assert list(filter_rows(frame, categories=["(none)"])["input"]) == ["From the playground"]
    counts = count_categories(frame)
    assert counts.to_dict("records") == [
        {"category": "(none)", "origin": FROM_APP, "cases": 1},
        {"category": "billing", "origin": FROM_APP, "cases": 1},
        {"category": "billing", "origin": FROM_FILE, "cases": 1},
        {"category": "shipping", "origin": FROM_FILE, "cases": 1},
    ]
    assert count_categories(frame.iloc[0:0]).empty
