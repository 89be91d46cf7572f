"""Eval datasets: one row per case, from CSV, JSONL, YAML or Parquet files in `datasets/`.

Reserved columns: `id` (else a stable hash of the row), `category`, `expected`,
`rubric`, `human_score`. Every other column is a template variable. Cells are kept
exactly as written (a spreadsheet formula stays text); neutralising them is an export concern.
In a YAML dataset too: `expected: no`, `1.10` and `007` are the text written, not a boolean
or a number (an empty value or `null` is an empty cell). A CSV cell may hold up to
MAX_CELL_CHARS characters.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from promptdeck.errors import DatasetError
from promptdeck.workspace.fileio import (
    NotUTF8,
    atomic_write,
    decode_text,
    folder_lock,
    outside,
    read_text,
)
from promptdeck.workspace.yamlfile import parse_yaml_rows

RESERVED = ("id", "category", "expected", "rubric", "human_score")
SUFFIXES = (".csv", ".jsonl", ".yaml", ".yml", ".parquet")
# Listed so that a spreadsheet dropped into datasets/ shows up and says how to convert it.
SPREADSHEET_SUFFIXES = (".xlsx", ".xls")
# A cell is a template variable sent to a model: 4 Mi characters is about a million tokens,
# the largest context windows. (csv's own default, 128 Ki, refuses a long document.)
MAX_CELL_CHARS = 4 * 1024 * 1024
csv.field_size_limit(MAX_CELL_CHARS)  # process-wide: every CSV the workspace reads

Row = dict[str, object]


@dataclass(frozen=True)
class Case:
    id: str
    values: Mapping[str, str]

    @property
    def category(self) -> str:
        return self.values.get("category", "")

    def label(self, width: int = 60) -> str:
        text = " ".join(str(self.values.get("input", next(iter(self.values.values()), ""))).split())
        text = text if len(text) <= width else text[: width - 1] + "…"
        return f"{self.id} · {self.category} · {text}" if self.category else f"{self.id} · {text}"


@dataclass(frozen=True)
class Dataset:
    name: str
    path: Path
    columns: tuple[str, ...]
    cases: tuple[Case, ...]

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c not in RESERVED)


def find_datasets(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    wanted = SUFFIXES + SPREADSHEET_SUFFIXES
    return sorted(
        p for p in root.iterdir() if p.suffix.lower() in wanted and ".suite." not in p.name
    )


def load_dataset(path: Path) -> Dataset:
    suffix = path.suffix.lower()
    if suffix in SPREADSHEET_SUFFIXES:
        raise DatasetError(
            f"{path}: Excel workbooks cannot be read; in Excel use File > Save As > "
            "CSV UTF-8 (.csv) and put the .csv file in datasets/"
        )
    if suffix not in SUFFIXES:
        raise DatasetError(
            f"{path}: unsupported file type {suffix or '(none)'!r}; "
            "use .csv, .jsonl (one JSON object per line), .yaml or .parquet"
        )
    rows = _read_parquet(path) if suffix == ".parquet" else _read_text_rows(path, suffix)
    if not rows:
        raise DatasetError(f"{path}: no rows; add at least one case")
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    cases = tuple(_case(row) for row in rows)
    _check_unique_ids(path, cases)
    return Dataset(path.stem, path, tuple(columns), cases)


def check_variables(
    dataset: Dataset, variables_by_variant: Mapping[str, Sequence[str]]
) -> list[str]:
    """One message per template variable that no column of the dataset provides."""
    have = ", ".join(dataset.columns)
    problems: list[str] = []
    for variant, variables in variables_by_variant.items():
        for name in dict.fromkeys(variables):
            if name not in dataset.columns:
                problems.append(
                    f"{variant} uses {{{{ {name} }}}} but {dataset.path} has no column "
                    f"{name!r} (columns: {have})"
                )
    return problems


def stable_id(values: Mapping[str, str]) -> str:
    """A short hash of the row's content, stable across runs and machines."""
    blob = json.dumps({k: v for k, v in values.items() if k != "id"}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _read_text_rows(path: Path, suffix: str) -> list[Row]:
    try:
        text = read_text(path)
    except ValueError as exc:  # unreadable, or not UTF-8 (with the line and byte)
        raise DatasetError(f"{path}: {exc}") from exc
    if not text.strip():
        raise DatasetError(
            f"{path}: the file is empty (no rows); add a header and at least one row"
        )
    if "\x00" in text:  # valid UTF-8, yet no text file holds NULs: UTF-16 without a BOM?
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise DatasetError(
            f"{path}: line {line}: NUL bytes: this is not UTF-8 text (UTF-16?); "
            "save the file as UTF-8"
        )
    if suffix == ".csv":
        return read_csv_rows(path, text)
    if suffix == ".jsonl":
        return read_jsonl_rows(path, text)
    return _read_yaml(path, text)


def read_csv_rows(path: Path, text: str) -> list[Row]:
    records = csv_records(path, text_lines(text))
    header = next(records, None)
    return [] if header is None else [dict(zip(header, r, strict=True)) for r in records]


def text_lines(text: str) -> Iterator[str]:
    """The lines of `text` with their endings (\r\n, \r or \n), as csv wants them; unlike
    io.StringIO, which holds a copy of 4 bytes a character, this copies one line at a time."""
    return (match.group() for match in _LINE.finditer(text))


_LINE = re.compile(r"[^\r\n]*(?:\r\n?|\n)|[^\r\n]+")


def csv_records(path: Path, lines: Iterable[str]) -> Iterator[list[str]]:
    """The header, then every record with as many fields; blank records are skipped, and a
    malformed one is a DatasetError with its line."""
    # strict: an unterminated quote would otherwise swallow the rest of the file silently
    reader = csv.reader(lines, strict=True)
    header: list[str] | None = None
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader, None)
        except csv.Error as exc:
            raise DatasetError(f"{path}: line {start}: {_csv_problem(str(exc))}") from exc
        if record is None:
            return
        if not any(map(str.strip, record)):
            continue
        if header is None:
            header = _header(path, start, record)
        elif len(record) != len(header):
            raise DatasetError(
                f"{path}: line {start}: {len(record)} fields, the header has {len(header)}"
            )
        yield record


def _csv_problem(detail: str) -> str:
    if "unexpected end of data" in detail:
        return 'a quoted field starts here but its closing quote (") is missing'
    if "field larger than field limit" in detail:
        return (
            f"a field is too long (over {MAX_CELL_CHARS:,} characters, the most one cell "
            "may hold); is a closing quote missing?"
        )
    return f'malformed CSV ({detail}); write "" for a quote inside a quoted field'


def _header(path: Path, line: int, record: list[str]) -> list[str]:
    for i, name in enumerate(record, start=1):
        if not name.strip():
            raise DatasetError(f"{path}: line {line}: column {i} of the header has no name")
        if name in record[: i - 1]:
            raise DatasetError(f"{path}: line {line}: column {name!r} appears twice in the header")
    return record


def read_jsonl_rows(path: Path, text: str) -> list[Row]:
    # JSON Lines ends a record at "\n" only; str.splitlines would also split inside a JSON
    # string at U+2028, U+0085 and friends, which JSON allows raw
    lines = enumerate(text.split("\n"), start=1)
    return [jsonl_row(path, n, line) for n, line in lines if line.strip()]


def jsonl_row(path: Path, line_no: int, line: str) -> Row:
    """One line of a JSON Lines file as a row; DatasetError names the line."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{path}: line {line_no}: invalid JSON: {exc.msg} (column {exc.colno})"
        ) from exc
    except RecursionError:  # thousands of nested brackets
        raise DatasetError(f"{path}: line {line_no}: invalid JSON: nested too deeply") from None
    return _mapping(path, value, f"line {line_no}")


def _read_yaml(path: Path, text: str) -> list[Row]:
    try:
        data = parse_yaml_rows(text)  # cells as written: `no` and `1.10` stay text
    except ValueError as exc:
        raise DatasetError(f"{path}: {exc}") from None
    if data is None:
        return []
    if not isinstance(data, list):
        raise DatasetError(
            f"{path}: expected a YAML list of rows (each '- column: value'), got {_kind(data)}"
        )
    return [_mapping(path, row, f"item {i}") for i, row in enumerate(data, start=1)]


def _read_parquet(path: Path) -> list[Row]:
    import pyarrow as pa  # type: ignore[import-untyped]  # lazy: heavy, and only for .parquet
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    try:
        table = pq.read_table(path)
    except OSError as exc:  # a missing file, or bytes that are not Parquet
        raise DatasetError(f"{path}: cannot read as Parquet: {exc}") from exc
    except pa.ArrowException as exc:
        raise DatasetError(f"{path}: cannot read as Parquet: {exc}") from exc
    rows: list[Row] = table.to_pylist()
    return [{str(k): v for k, v in row.items()} for row in rows]


def _mapping(path: Path, row: object, where: str) -> Row:
    if not isinstance(row, dict):
        raise DatasetError(
            f"{path}: {where}: expected an object of column: value, got {_kind(row)}"
        )
    return {str(k): v for k, v in row.items()}


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    names = {dict: "a mapping", list: "a list", str: "a string", int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)


def _case(row: Mapping[str, object]) -> Case:
    values = {k: _cell(v) for k, v in row.items()}
    given = values.get("id", "").strip()
    return Case(given or stable_id(values), values)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float | list | dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)  # dates, decimals, ... (YAML, Parquet): their text, not a JSON string


def _check_unique_ids(path: Path, cases: Sequence[Case]) -> None:
    seen: dict[str, int] = {}
    for i, case in enumerate(cases, start=1):
        first = seen.setdefault(case.id, i)
        if first == i:
            continue
        if case.values.get("id", "").strip():
            raise DatasetError(f"{path}: row {i}: duplicate id {case.id!r} (first in row {first})")
        raise DatasetError(
            f"{path}: row {i}: same content as row {first} and no id to tell them apart; "
            "remove the copy or give each row an id"
        )


def append_case(path: Path, values: Mapping[str, str], *, root: Path | None = None) -> str:
    """Add one case to a CSV dataset (created if missing); returns its id.

    New columns (e.g. `note`) are added to the file; existing rows get them empty. The file
    is re-read and written under the folder's lock, so two people adding at once both land;
    its line endings and byte-order mark are kept, and a linked dataset is written into its
    target (which must be inside `root`, the workspace, when given)."""
    if path.suffix != ".csv":
        raise DatasetError(f"{path}: cases can only be added to a CSV dataset")
    if root is not None and (far := outside(path, root)) is not None:
        raise DatasetError(f"{path}: a link to {far}, outside this workspace; not written")
    target = path.resolve()
    with folder_lock(target.parent):
        raw = target.read_bytes() if target.exists() else b""
        try:
            text = decode_text(raw)
        except NotUTF8 as exc:
            raise DatasetError(f"{path}: {exc}") from None
        reader = csv.DictReader(io.StringIO(text, newline=""))
        columns = list(reader.fieldnames or [])
        rows = [dict(r) for r in reader]
        new = dict(values)
        new["id"] = new.get("id") or stable_id(new)
        if any(r.get("id") == new["id"] for r in rows):
            raise DatasetError(f"{path}: a case with id {new['id']!r} is already there")
        if any(c not in columns and c != "id" for c in new):
            # a new column (e.g. `note`) would change the content hash of every row without
            # an id, and with it the row's identity across runs: write down their ids now
            for row in rows:
                row["id"] = row.get("id") or stable_id({k: v or "" for k, v in row.items()})
        columns = list(dict.fromkeys([*columns, "id", *new]))
        rows.append(new)
        out = io.StringIO(newline="")
        ending = "\r\n" if b"\r\n" in raw else "\n"
        writer = csv.DictWriter(out, columns, restval="", lineterminator=ending)
        writer.writeheader()
        writer.writerows(rows)
        bom = "\ufeff" if raw.startswith(b"\xef\xbb\xbf") else ""
        atomic_write(target, bom + out.getvalue())
    return new["id"]
