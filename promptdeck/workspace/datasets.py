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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from promptdeck.errors import DatasetError
from promptdeck.workspace.dataset_rows import MAX_CELL_CHARS as MAX_CELL_CHARS
from promptdeck.workspace.dataset_rows import Row, cell_text, iter_rows
from promptdeck.workspace.fileio import NotUTF8, atomic_write, decode_text, folder_lock, outside

RESERVED = ("id", "category", "expected", "rubric", "human_score")
SUFFIXES = (".csv", ".jsonl", ".yaml", ".yml", ".parquet")
# Listed so that a spreadsheet dropped into datasets/ shows up and says how to convert it.
SPREADSHEET_SUFFIXES = (".xlsx", ".xls")


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

    @property
    def rows(self) -> int:
        return len(self.cases)


@dataclass(frozen=True)
class DatasetSample:
    """A dataset file read for a sample of its rows (`dataset_sample.load_sample`): its
    columns and size, and only the sampled cases, in file order."""

    name: str
    path: Path
    columns: tuple[str, ...]
    rows: int  # in the file
    sample: tuple[Case, ...]


def find_datasets(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    wanted = SUFFIXES + SPREADSHEET_SUFFIXES
    return sorted(
        p for p in root.iterdir() if p.suffix.lower() in wanted and ".suite." not in p.name
    )


def load_dataset(path: Path) -> Dataset:
    """Every row of a dataset file, read one row at a time (dataset_rows); DatasetError
    names the file and the line, item or row. For a sample of a large file, read only the
    sample: `dataset_sample.load_sample`."""
    check_suffix(path)
    columns: dict[str, None] = {}
    cases: list[Case] = []
    for _, row in iter_rows(path):
        columns.update(dict.fromkeys(row))
        cases.append(case_of(row))
    if not cases:
        raise DatasetError(f"{path}: no rows; add at least one case")
    check_unique_ids(path, enumerate(cases, start=1))
    return Dataset(path.stem, path, tuple(columns), tuple(cases))


def check_suffix(path: Path) -> None:
    """DatasetError unless the file is of a kind a dataset can be."""
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


def check_variables(
    dataset: Dataset | DatasetSample, variables_by_variant: Mapping[str, Sequence[str]]
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


def case_of(row: Row) -> Case:
    """A row as a case: its cells as text, its id given or a hash of its content."""
    values = {k: cell_text(v) for k, v in row.items()}
    given = values.get("id", "").strip()
    return Case(given or stable_id(values), values)


def check_unique_ids(path: Path, numbered: Iterable[tuple[int, Case]]) -> None:
    """DatasetError at the first row (numbered from 1) whose id an earlier row has."""
    seen: dict[str, int] = {}
    for i, case in numbered:
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
