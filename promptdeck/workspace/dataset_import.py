"""Importing production queries into a dataset.

The PM uploads a CSV or JSONL export of real queries and maps its columns to `input`,
`category` and `expected`. Rows whose normalised input (case and runs of whitespace do not
count) is already in the file or in the target dataset are dropped, an optional seeded
sample (stratified by category) keeps N of the rest, and `write_import` appends them to the
dataset, new or existing, with explicit ids, through the same checked, atomic, conflict-safe
write as an edit (`dataset_edit.write_rows`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from promptdeck.errors import DatasetError
from promptdeck.store.sqlite import Store
from promptdeck.workspace.dataset_edit import (
    WRITABLE,
    Row,
    Saved,
    Table,
    cell_text,
    check_table,
    not_saved_message,
    read_only_message,
    write_rows,
)
from promptdeck.workspace.datasets import Case, read_csv_rows, read_jsonl_rows, stable_id
from promptdeck.workspace.fileio import MISSING, decode_text
from promptdeck.workspace.sampling import sample_cases

IMPORTABLE = (".csv", ".jsonl")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class ColumnMap:
    """Which source column becomes `input` (required), `category` and `expected`."""

    input: str
    category: str | None = None
    expected: str | None = None
    keep_other: bool = True  # other columns become template variables; else dropped

    def targets(self) -> dict[str, str]:
        pairs = {"category": self.category, "input": self.input, "expected": self.expected}
        return {target: source for target, source in pairs.items() if source}


@dataclass(frozen=True)
class ImportReport:
    rows_read: int
    empty_skipped: int = 0
    duplicates_in_file: int = 0
    duplicates_in_target: int = 0
    not_sampled: int = 0
    rows_added: int = 0
    dropped_columns: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    def summary(self) -> str:
        return (
            f"{self.rows_read} rows read · {self.empty_skipped} without input skipped · "
            f"{self.duplicates_in_file} duplicates in the file · {self.duplicates_in_target} "
            f"already in the dataset · {self.not_sampled} left out by the sample · "
            f"{self.rows_added} to add"
        )


@dataclass(frozen=True)
class ImportPlan:
    target: Table
    columns: tuple[str, ...]  # the dataset's columns after the import
    rows: tuple[Row, ...]  # the rows to add, with ids
    report: ImportReport


def read_source(name: str, data: bytes) -> tuple[list[str], list[Row]]:
    """Columns and rows (as text) of an uploaded CSV or JSONL file; DatasetError names the
    file and the line that cannot be read."""
    suffix = Path(name).suffix.lower()
    if suffix not in IMPORTABLE:
        raise DatasetError(f"{name}: import reads .csv or .jsonl files (one JSON object per line)")
    try:
        text = decode_text(data)
    except ValueError as exc:
        raise DatasetError(f"{name}: {exc} (in Excel: File > Save As > CSV UTF-8)") from None
    source = Path(name)
    raw = read_csv_rows(source, text) if suffix == ".csv" else read_jsonl_rows(source, text)
    if not raw:
        raise DatasetError(f"{name}: no rows; the file needs a header and at least one row")
    columns = list(dict.fromkeys(k for row in raw for k in row))
    return columns, [{c: cell_text(row.get(c)) for c in columns} for row in raw]


_GUESSES = {
    "input": ("input", "query", "question", "message", "text", "prompt", "user_message"),
    "category": ("category", "intent", "topic", "label", "queue"),
    "expected": ("expected", "answer", "reference", "ideal", "expected_output"),
}


def guess_map(columns: Sequence[str]) -> ColumnMap:
    """A first mapping to offer: columns whose (lower-case) name suggests the role."""
    lower = {c.strip().lower(): c for c in columns}
    found = {
        role: next((lower[n] for n in names if n in lower), None)
        for role, names in _GUESSES.items()
    }
    return ColumnMap(found["input"] or columns[0], found["category"], found["expected"])


def normalise(text: str) -> str:
    """Input text as compared for duplicates: case and runs of whitespace do not count."""
    return " ".join(text.casefold().split())


def plan_import(
    name: str,
    data: bytes,
    mapping: ColumnMap,
    target: Table,
    *,
    dedupe: bool = True,
    sample: int | None = None,
    seed: int = 0,
) -> ImportPlan:
    """What importing this file into `target` would add, and a report; writes nothing."""
    columns, rows = read_source(name, data)
    targets = mapping.targets()
    missing = [s for s in targets.values() if s not in columns]
    if missing:
        raise DatasetError(f"{name}: no column {missing[0]!r} (columns: {', '.join(columns)})")
    others = [c for c in columns if c not in targets.values()] if mapping.keep_other else []
    # a source id is not a case id here, and a column named like a mapped one would clash
    dropped = tuple(c for c in others if c == "id" or c in targets)
    others = [c for c in others if c not in dropped]
    mapped = [{**{t: r[s] for t, s in targets.items()}, **{c: r[c] for c in others}} for r in rows]
    kept, report = _dedupe(mapped, target, dedupe)
    cases = [Case(str(i), row) for i, row in enumerate(kept)]
    stratify = "category" if mapping.category else None
    chosen = sample_cases(cases, n=sample, seed=seed, stratify=stratify)
    added = tuple({"id": stable_id(c.values), **c.values} for c in chosen)
    new_columns = [c for c in ("id", *targets, *others) if c not in target.columns]
    if "id" in target.columns:
        columns_after = (*target.columns, *new_columns)
    else:  # ids first, as in every dataset of the examples
        columns_after = ("id", *target.columns, *new_columns[1:])
    report = replace(
        report,
        not_sampled=len(kept) - len(chosen),
        rows_added=len(added),
        dropped_columns=dropped,
    )
    return ImportPlan(target, columns_after, added, report)


def _dedupe(rows: Sequence[Row], target: Table, dedupe: bool) -> tuple[list[Row], ImportReport]:
    """Rows with an input, first of each normalised input, not already in the target."""
    in_target = {normalise(r.get("input", "")) for r in target.rows} if dedupe else set()
    seen: set[str] = set()
    kept: list[Row] = []
    problems: list[str] = []
    in_file = already = 0
    for i, row in enumerate(rows, start=1):
        key = normalise(row["input"])
        if not key:
            problems.append(f"row {i}: the input is empty; skipped")
        elif dedupe and key in seen:
            in_file += 1
        elif key in in_target:
            already += 1
        else:
            kept.append(row)
        seen.add(key)
    return kept, ImportReport(len(rows), len(problems), in_file, already, problems=tuple(problems))


def write_import(plan: ImportPlan, store: Store, root: Path) -> Saved:
    """Append the planned rows to the target (created if new); existing rows keep their ids."""
    target = plan.target
    if not target.writable:
        raise DatasetError(read_only_message(target.path))
    if not plan.rows:
        raise DatasetError(f"{target.path}: nothing to import; every row was skipped")
    grows = set(plan.columns) - set(target.columns)
    # a new column would change the content hash of rows without an id: pin the ids they had
    old = [
        {**row, "id": row.get("id", "").strip() or (case_id if grows else "")}
        for row, case_id in zip(target.rows, target.ids, strict=True)
    ]
    rows = [*old, *plan.rows]
    problems = check_table(plan.columns, rows, target.sparse)
    if problems:
        raise DatasetError(not_saved_message(target.path, problems))
    action = "create" if target.fingerprint == MISSING else "import"
    new = write_rows(target, plan.columns, rows, store, root, action, range(len(old)))
    return Saved(target.path, new, len(rows))


def new_dataset_path(datasets_dir: Path, name: str) -> Path:
    """`datasets/<name>` for a new dataset (.csv unless named .jsonl or .yaml); DatasetError
    if the name is not a plain file name or the file exists."""
    name = name.strip()
    if Path(name).suffix.lower() not in WRITABLE:
        name += ".csv"
    if not _NAME.match(name) or ".suite." in name:
        raise DatasetError(
            f"{name!r}: use letters, digits, '-', '_' and '.' for a dataset name, "
            "e.g. production_queries"
        )
    path = datasets_dir / name
    if path.exists():
        raise DatasetError(f"datasets/{name} already exists; choose it as an existing dataset")
    return path
