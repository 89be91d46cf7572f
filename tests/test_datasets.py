from pathlib import Path

import pytest

from promptdeck.datasets import find_datasets, load_dataset, stable_id
from promptdeck.errors import DatasetError


def write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


def test_csv_jsonl_yaml_load_the_same_cases(tmp_path: Path) -> None:
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
    ]
    for path in paths:
        ds = load_dataset(path)
        assert [c.id for c in ds.cases] == ["1", "2"]
        assert ds.cases[0].values["input"] == "Refund?"
        assert ds.variables == ("input",)
    assert find_datasets(tmp_path) == paths


def test_stable_ids_without_an_id_column(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", "input\nhello\nworld\n")
    first = [c.id for c in load_dataset(path).cases]
    assert first == [stable_id({"input": "hello"}), stable_id({"input": "world"})]
    assert first == [c.id for c in load_dataset(path).cases]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("e.csv", "", "the file is empty"),
        ("r.csv", "id,input\n1,a\n2,b,c\n", "line 3: 3 fields, the header has 2"),
        ("d.csv", "id,input\n1,a\n1,b\n", "row 2: duplicate id '1' (first in row 1)"),
        ("b.csv", b"id,input\n1,caf\xe9\n", "line 2, byte 14: not UTF-8 text"),
        ("j.jsonl", '{"input": "a"}\n{"input": \n', "line 2: invalid JSON"),
        ("y.yaml", "input: a\n", "expected a YAML list of rows"),
    ],
)
def test_bad_files_say_where(tmp_path: Path, name: str, data: str | bytes, message: str) -> None:
    path = write(tmp_path, name, data)
    with pytest.raises(DatasetError) as info:
        load_dataset(path)
    assert str(info.value).startswith(str(path))
    assert message in str(info.value)
