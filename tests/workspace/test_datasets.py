import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from promptdeck.errors import DatasetError
from promptdeck.workspace.datasets import (
    MAX_CELL_CHARS,
    Dataset,
    check_variables,
    find_datasets,
    load_dataset,
    stable_id,
)


def write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


def write_parquet(tmp_path: Path, name: str, columns: dict[str, list[object]]) -> Path:
    path = tmp_path / name
    pq.write_table(pa.table(columns), path)
    return path


def test_every_format_loads_the_same_cases(tmp_path: Path) -> None:
    paths = [
        write(tmp_path, "a.csv", "id,category,input\n1,billing,Refund?\n2,shipping,Where?\n"),
        write(
            tmp_path,
            "b.jsonl",
            '{"id": "1", "category": "billing", "input": "Refund?"}\n\n'
            '{"id": "2", "category": "shipping", "input": "Where?"}\n',
        ),
        write(
            tmp_path,
            "c.yaml",
            "- {id: '1', category: billing, input: 'Refund?'}\n"
            "- {id: '2', category: shipping, input: 'Where?'}\n",
        ),
        write_parquet(
            tmp_path,
            "d.parquet",
            {"id": [1, 2], "category": ["billing", "shipping"], "input": ["Refund?", "Where?"]},
        ),
        write(
            tmp_path,
            "e.yml",
            "- {id: 1, category: billing, input: 'Refund?'}\n"
            "- {id: 2, category: shipping, input: 'Where?'}\n",
        ),
    ]
    for path in paths:
        ds = load_dataset(path)
        assert [c.id for c in ds.cases] == ["1", "2"], path
        assert [c.category for c in ds.cases] == ["billing", "shipping"], path
        assert ds.cases[0].values["input"] == "Refund?"
        assert ds.columns == ("id", "category", "input")
        assert ds.variables == ("input",)
        assert ds.name == path.stem
    assert find_datasets(tmp_path) == paths


def test_find_datasets_lists_spreadsheets_but_not_suites_or_other_files(tmp_path: Path) -> None:
    for name in ("a.csv", "b.suite.yaml", "c.xlsx", "d.txt", "e.PARQUET", "f.json"):
        write(tmp_path, name, "x")
    assert [p.name for p in find_datasets(tmp_path)] == ["a.csv", "c.xlsx", "e.PARQUET"]
    assert find_datasets(tmp_path / "missing") == []


def test_stable_ids_without_an_id_column(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", "input\nhello\nworld\n")
    first = [c.id for c in load_dataset(path).cases]
    assert first == [stable_id({"input": "hello"}), stable_id({"input": "world"})]
    assert first == [c.id for c in load_dataset(path).cases]


def test_human_score_is_reserved_not_a_variable(tmp_path: Path) -> None:
    path = write(
        tmp_path, "a.csv", "id,category,input,expected,rubric,human_score,tone\n1,b,x,y,z,4,kind\n"
    )
    assert load_dataset(path).variables == ("input", "tone")


def test_cells_are_kept_as_written(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "a.csv",
        'id,input\n1,=HYPERLINK("http://x")\n2,+1\n3,"two\nlines, and a ""quote"""\n',
    )
    assert [c.values["input"] for c in load_dataset(path).cases] == [
        '=HYPERLINK("http://x")',
        "+1",
        'two\nlines, and a "quote"',
    ]


def test_non_text_values_become_text(tmp_path: Path) -> None:
    jsonl = write(
        tmp_path,
        "a.jsonl",
        '{"id": 7, "n": 3, "ok": true, "none": null, "tags": ["café"], "x": 1.5}\n',
    )
    assert dict(load_dataset(jsonl).cases[0].values) == {
        "id": "7",
        "n": "3",
        "ok": "true",
        "none": "",
        "tags": '["café"]',
        "x": "1.5",
    }
    yml = write(tmp_path, "b.yaml", "- {id: a, when: 2024-01-02}\n")
    assert load_dataset(yml).cases[0].values["when"] == "2024-01-02"
    parquet = write_parquet(
        tmp_path, "c.parquet", {"id": ["a"], "when": [datetime.date(2024, 1, 2)], "n": [None]}
    )
    assert dict(load_dataset(parquet).cases[0].values) == {
        "id": "a",
        "when": "2024-01-02",
        "n": "",
    }


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("e.csv", "", "the file is empty (no rows)"),
        ("w.jsonl", "\n  \n", "the file is empty (no rows)"),
        ("h.csv", "id,input\n", "no rows; add at least one case"),
        ("hb.csv", "id,input\n\n,\n", "no rows; add at least one case"),
        ("l.yaml", "[]\n", "no rows; add at least one case"),
        ("c.yaml", "# nothing yet\n", "no rows; add at least one case"),
        ("r.csv", "id,input\n1,a\n2,b,c\n", "line 3: 3 fields, the header has 2"),
        (
            "q.csv",
            'id,input\n1,a\n2,"never closed\n3,c\n',
            "line 3: a quoted field starts here but its closing quote",
        ),
        ("m.csv", 'id,input\n1,"a"b\n', "line 2: malformed CSV"),
        ("n.csv", "id,\n1,a\n", "line 1: column 2 of the header has no name"),
        ("t.csv", "\nid,id\n1,a\n", "line 2: column 'id' appears twice in the header"),
        ("d.csv", "id,input\n1,a\n1,b\n", "row 2: duplicate id '1' (first in row 1)"),
        (
            "s.csv",
            "input\nhi\nho\nhi\n",
            "row 3: same content as row 1 and no id to tell them apart",
        ),
        ("b.csv", b"id,input\n1,caf\xe9\n", "line 2, byte 14: not UTF-8 text (0xe9"),
        ("j.jsonl", '{"input": "a"}\n{"input": \n', "line 2: invalid JSON: Expecting value"),
        (
            "o.jsonl",
            '{"input": "a"}\n["a"]\n',
            "line 2: expected an object of column: value, got a list",
        ),
        ("z.jsonl", "null\n", "line 1: expected an object of column: value, got null"),
        ("y.yaml", "input: a\n", "expected a YAML list of rows (each '- column: value'), got a"),
        ("i.yaml", "- a\n", "item 1: expected an object of column: value, got a string"),
        ("p.yaml", "- {input: a}\n- {input: b\n", "line 3: invalid YAML"),
        ("x.xlsx", b"PK\x03\x04", "Excel workbooks cannot be read"),
        ("x.xls", b"\xd0\xcf", "CSV UTF-8 (.csv)"),
        ("t.txt", "input\na\n", "unsupported file type '.txt'; use .csv, .jsonl"),
        ("g.parquet", b"not parquet", "cannot read as Parquet"),
    ],
)
def test_bad_files_say_where(tmp_path: Path, name: str, data: str | bytes, message: str) -> None:
    path = write(tmp_path, name, data)
    with pytest.raises(DatasetError) as info:
        load_dataset(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_empty_parquet_has_no_rows(tmp_path: Path) -> None:
    path = write_parquet(tmp_path, "e.parquet", {"id": [], "input": []})
    with pytest.raises(DatasetError, match="no rows"):
        load_dataset(path)


def test_missing_file_says_so(tmp_path: Path) -> None:
    for name in ("gone.csv", "gone.parquet"):
        with pytest.raises(DatasetError, match=f"{name}: cannot read"):
            load_dataset(tmp_path / name)


def dataset(*columns: str) -> Dataset:
    return Dataset("x", Path("datasets/x.csv"), columns, ())


@pytest.mark.parametrize(
    ("columns", "wanted", "messages"),
    [
        (("id", "input"), {"support/a": ["input"]}, []),
        (("id", "category", "input"), {"support/a": []}, []),
        (
            ("id", "category", "input"),
            {"support/concise": ["input", "customer_name"]},
            [
                "support/concise uses {{ customer_name }} but datasets/x.csv has no column "
                "'customer_name' (columns: id, category, input)"
            ],
        ),
        (
            ("input",),
            {"t/a": ["tone", "tone"], "t/b": ["input", "plan"]},
            [
                "t/a uses {{ tone }} but datasets/x.csv has no column 'tone' (columns: input)",
                "t/b uses {{ plan }} but datasets/x.csv has no column 'plan' (columns: input)",
            ],
        ),
        # a reserved column is still a column: a template may show the expected answer
        (("input", "expected"), {"t/a": ["expected"]}, []),
    ],
)
def test_check_variables(
    columns: tuple[str, ...], wanted: dict[str, list[str]], messages: list[str]
) -> None:
    assert check_variables(dataset(*columns), wanted) == messages


def test_append_case_creates_then_extends_a_csv(tmp_path: Path) -> None:
    from promptdeck.workspace.datasets import append_case

    path = tmp_path / "reviewed.csv"
    first = append_case(path, {"id": "c1", "category": "billing", "input": "Refund?"})
    second = append_case(path, {"category": "returns", "input": "Label?", "note": "judge missed"})
    ds = load_dataset(path)
    assert [c.id for c in ds.cases] == [first, second] and first == "c1"
    assert ds.cases[0].values["note"] == "" and ds.cases[1].values["note"] == "judge missed"
    with pytest.raises(DatasetError, match="already there"):
        append_case(path, {"id": "c1", "input": "again"})


def test_append_case_with_a_new_column_keeps_the_ids_of_rows_without_one(tmp_path: Path) -> None:
    from promptdeck.workspace.datasets import append_case

    path = tmp_path / "cases.csv"
    path.write_text("category,input\nbilling,Refund?\nreturns,Label?\n")
    before = [c.id for c in load_dataset(path).cases]
    added = append_case(path, {"category": "billing", "input": "Charged twice", "note": "why"})
    after = [c.id for c in load_dataset(path).cases]
    assert after == [*before, added]  # runs stored before still match these rows


def test_jsonl_strings_may_hold_unicode_line_separators(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    text = "one\u2028two\u0085three\u2029four"
    path.write_text('{"input": "' + text + '"}\r\n{"input": "b"}\n', encoding="utf-8")
    assert [c.values["input"] for c in load_dataset(path).cases] == [text, "b"]


def test_yaml_cells_are_kept_as_written_not_read_as_yaml_1_1(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "w.yaml",
        "- id: 007\n  input: Can I cancel?\n  expected: no\n  on: 1.10\n  at: 1:30\n"
        "  human_score: 4\n  rubric:\n  flag: Off\n  tags: [a, 1]\n",
    )
    dataset = load_dataset(path)
    assert dataset.columns == (
        "id", "input", "expected", "on", "at", "human_score", "rubric", "flag", "tags"
    )  # fmt: skip
    assert dict(dataset.cases[0].values) == {
        "id": "007",
        "input": "Can I cancel?",
        "expected": "no",  # YAML 1.1: false
        "on": "1.10",  # YAML 1.1: the column True, the value 1.1
        "at": "1:30",  # YAML 1.1: 90
        "human_score": "4",
        "rubric": "",
        "flag": "Off",
        "tags": '["a", 1]',
    }
    assert dataset.cases[0].id == "007"


def test_a_long_cell_loads_and_one_past_the_limit_names_it(tmp_path: Path) -> None:
    document = "word " * 200_000  # 1 MB: csv's own limit (128 KB) refused it
    path = write(tmp_path, "long.csv", f'id,input\na,"{document}"\n')
    assert load_dataset(path).cases[0].values["input"] == document
    too_long = "x" * (MAX_CELL_CHARS + 1)
    path = write(tmp_path, "huge.csv", f"id,input\na,ok\nb,{too_long}\n")
    with pytest.raises(DatasetError) as info:
        load_dataset(path)
    assert str(info.value) == (
        f"{path}: line 3: a field is too long (over 4,194,304 characters, the most one cell "
        "may hold); is a closing quote missing?"
    )


def test_csv_line_endings_and_unicode_line_separators(tmp_path: Path) -> None:
    """Records end at \\r\\n, \\r or \\n; U+2028 and U+0085 inside a cell are text."""
    path = write(tmp_path, "e.csv", 'id,input\r\na,one\u2028two\rb,"x\r\ny"\nc,end\x85ing')
    values = [dict(c.values) for c in load_dataset(path).cases]
    assert values == [
        {"id": "a", "input": "one\u2028two"},
        {"id": "b", "input": "x\r\ny"},
        {"id": "c", "input": "end\x85ing"},
    ]
