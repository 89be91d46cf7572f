"""Parsing an upload once (`parse_upload`), and planning imports from the parsed file."""

from __future__ import annotations

import hashlib
import tracemalloc
from pathlib import Path

import pytest

from promptdeck.errors import DatasetError
from promptdeck.workspace import dataset_import
from promptdeck.workspace.dataset_edit import load_table, new_table
from promptdeck.workspace.dataset_import import (
    ColumnMap,
    Upload,
    parse_upload,
    plan_import,
    plan_upload,
    read_source,
    upload_digest,
)
from tests.workspace.test_dataset_edit import MAPPING, SOURCE, target_dataset


def test_an_upload_is_parsed_once_into_an_immutable_value_keyed_by_its_digest() -> None:
    data = SOURCE.encode()
    upload = parse_upload("prod.csv", data)
    assert upload.digest == hashlib.sha256(data).hexdigest() == upload_digest(data)
    assert upload.columns == ("id", "query", "intent", "answer", "channel")
    assert upload.rows[1] == ("9002", "  where is MY order?  ", "shipping", "", "chat")
    assert hash(upload) == hash(parse_upload("prod.csv", data))  # a cache can hold it
    assert read_source("prod.csv", data) == (list(upload.columns), upload.records())
    assert parse_upload("prod.csv", data, digest="given").digest == "given"


def test_a_plan_from_the_parsed_upload_is_the_plan_from_the_bytes(tmp_path: Path) -> None:
    target = load_table(target_dataset(tmp_path))
    upload = parse_upload("prod.csv", SOURCE.encode())
    for options in ({}, {"dedupe": False}, {"sample": 2, "seed": 3}, {"sample": 1}):
        from_bytes = plan_import("prod.csv", SOURCE.encode(), MAPPING, target, **options)  # type: ignore[arg-type]
        assert plan_upload(upload, MAPPING, target, **options) == from_bytes  # type: ignore[arg-type]


def test_jsonl_columns_seen_late_are_empty_in_the_rows_before() -> None:
    data = b'{"q": "a", "n": 1}\n\n{"q": "b", "extra": true}\n{"extra": null, "q": "c"}\n'
    upload = parse_upload("p.jsonl", data)
    assert upload.columns == ("q", "n", "extra")
    assert upload.rows == (("a", "1", ""), ("b", "", "true"), ("c", "", ""))


def test_long_cells_import_and_the_size_limit_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    document = "word " * 100_000  # 500 KB: refused before (csv's 128 KB field limit)
    upload = parse_upload("p.csv", f'query\n"{document}"\n'.encode())
    assert upload.rows == ((document,),)
    monkeypatch.setattr(dataset_import, "MAX_UPLOAD_BYTES", 1024)
    with pytest.raises(
        DatasetError, match=r"^p\.csv: the file has 0 MB; import reads files up to 0 MB"
    ):
        parse_upload("p.csv", b"query\n" + b"x" * 2000 + b"\n")


def test_a_byte_that_is_not_utf8_is_named_with_its_line_and_byte() -> None:
    data = b"query\n" + b"fine\n" * 5000 + b"caf\xe9\n"
    with pytest.raises(DatasetError) as info:
        parse_upload("p.csv", data)
    assert str(info.value).startswith("p.csv: line 5002, byte 25009: not UTF-8 text (0xe9)")


def test_a_report_lists_the_first_rows_without_input_and_counts_the_rest(tmp_path: Path) -> None:
    data = ("query,intent\n" + "a,x\n" + ",y\n" * 250).encode()
    plan = plan_import("p.csv", data, ColumnMap("query"), new_table(tmp_path / "n.csv"))
    assert plan.report.empty_skipped == 250 and plan.report.rows_added == 1
    assert len(plan.report.problems) == 101
    assert plan.report.problems[0] == "row 2: the input is empty; skipped"
    assert plan.report.problems[-1] == "… and 150 more rows without input"


def test_parsing_reads_line_by_line_without_copies_of_the_whole_text() -> None:
    """About 3 bytes a byte for short rows (each cell a str object); a StringIO copy of the
    text alone took 4, and the rows as dicts as many again."""
    row = "How do I get a refund for my order? It was charged twice,billing,web\n"
    data = ("query,intent,channel\n" + row * 100_000).encode()  # 7 MB
    tracemalloc.start()
    try:
        upload = parse_upload("p.csv", data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(upload.rows) == 100_000
    assert peak < 3.5 * len(data), f"{peak / len(data):.1f} bytes a byte"


def test_upload_is_a_frozen_value() -> None:
    upload = Upload("p.csv", "d", ("q",), (("a",),))
    with pytest.raises(AttributeError):
        upload.rows = ()  # type: ignore[misc]


def test_two_inputs_with_one_hash_are_still_told_apart() -> None:
    clashes: set[str] = set()
    assert not dataset_import._repeated("other", "first", clashes)  # same hash, not the same
    assert dataset_import._repeated("other", "first", clashes)  # now a repeat of "other"
    assert dataset_import._repeated("first", "first", clashes)
