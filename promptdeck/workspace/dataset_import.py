"""Importing production queries into a dataset.

The PM uploads a CSV or JSONL export of real queries and maps its columns to `input`,
`category` and `expected`. Rows whose normalised input (case and runs of whitespace do not
count) is already in the file or in the target dataset are dropped, an optional seeded
sample (stratified by category) keeps N of the rest, and `write_import` appends them to the
dataset, new or existing, with explicit ids, through the same checked, atomic, conflict-safe
write as an edit (`dataset_edit.write_rows`).

An upload is parsed once (`parse_upload`, line by line from its bytes) into an immutable
`Upload` named by the SHA-256 of its bytes; a page keeps that across reruns and plans from
it (`plan_upload`) as the mapping and the options change.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from promptdeck.errors import DatasetError
from promptdeck.store.db import Store
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
from promptdeck.workspace.dataset_rows import LineFeed, csv_records, jsonl_row
from promptdeck.workspace.fileio import MISSING
from promptdeck.workspace.import_rows import Cells, ImportRows, Joined
from promptdeck.workspace.sampling import NO_STRATUM, draw

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
    rows: Sequence[Row]  # the rows to add, with ids (ImportRows: made when read)
    report: ImportReport


@dataclass(frozen=True)
class Upload:
    """An uploaded CSV or JSONL file, parsed once. Immutable and named by `digest` (SHA-256
    of its bytes), so a page keeps it across reruns (`st.cache_resource` keyed by the digest)
    instead of parsing the whole file again on every click."""

    name: str
    digest: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]  # each row's cell text in column order ("" if absent)

    def records(self) -> list[Row]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def __hash__(self) -> int:  # by its digest: never a walk through a million rows
        return hash((self.name, self.digest))


# Streamlit refuses uploads over 200 MB (server.maxUploadSize); a parsed file takes about
# three times its size in memory, so the core has its own bound.
MAX_UPLOAD_BYTES = 128 * 1024 * 1024


def upload_digest(data: bytes) -> str:
    """The cache key of an upload: the SHA-256 of its bytes."""
    return hashlib.sha256(data).hexdigest()


def parse_upload(name: str, data: bytes, digest: str | None = None) -> Upload:
    """The columns and rows (as text) of an uploaded CSV or JSONL file, read line by line
    from the bytes (never a second copy of the whole text); DatasetError names the file and
    the line that cannot be read. Pass `digest` if the caller has computed it already."""
    suffix = Path(name).suffix.lower()
    if suffix not in IMPORTABLE:
        raise DatasetError(f"{name}: import reads .csv or .jsonl files (one JSON object per line)")
    if len(data) > MAX_UPLOAD_BYTES:
        raise DatasetError(
            f"{name}: the file has {len(data) / 2**20:.0f} MB; import reads files up to "
            f"{MAX_UPLOAD_BYTES // 2**20} MB. Split it, or export a sample of the queries"
        )
    # read as the loader reads a dataset: chunks split and decoded in C, a line at a time
    feed = LineFeed(io.BytesIO(data), split_cr=suffix == ".csv")
    try:
        columns, rows = _csv_upload(name, feed) if suffix == ".csv" else _jsonl_upload(name, feed)
    except UnicodeDecodeError:  # where: the line and the byte
        raise DatasetError(
            f"{name}: {feed.not_utf8()} (in Excel: File > Save As > CSV UTF-8)"
        ) from None
    except ValueError as exc:  # NUL bytes: UTF-16?
        raise DatasetError(f"{name}: {exc}") from None
    if not rows:
        raise DatasetError(f"{name}: no rows; the file needs a header and at least one row")
    return Upload(name, digest or upload_digest(data), columns, rows)


def _csv_upload(name: str, lines: Iterable[str]) -> tuple[tuple[str, ...], tuple[Cells, ...]]:
    records = csv_records(Path(name), lines)
    header = tuple(next(records, ()))
    shared = _Shared()
    return header, tuple(tuple(map(shared, record)) for record in records)


class _Shared(dict[str, str]):
    """Short cell texts kept once, not once per row: a million rows of `billing` are one
    string. Calls return the kept copy; past 10,000 texts, new ones are no longer kept."""

    def __call__(self, text: str) -> str:
        if len(text) > 24:
            return text
        kept = self.get(text)
        if kept is None and len(self) < 10_000:
            self[text] = text
        return kept or text


def _jsonl_upload(name: str, lines: Iterable[str]) -> tuple[tuple[str, ...], tuple[Cells, ...]]:
    columns: dict[str, None] = {}  # in order of first appearance
    rows: list[Cells] = []
    shared, path = _Shared(), Path(name)
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        row = jsonl_row(path, line_no, line)
        if row.keys() - columns.keys():
            columns.update(dict.fromkeys(row))
        rows.append(tuple(shared(_text(row.get(c))) for c in columns))
    width = len(columns)  # a column first seen late: the rows before it lack that cell
    return tuple(columns), tuple(
        r + ("",) * (width - len(r)) if len(r) < width else r for r in rows
    )


def _text(value: object) -> str:
    return value if isinstance(value, str) else cell_text(value)


def read_source(name: str, data: bytes) -> tuple[list[str], list[Row]]:
    """Columns and rows (as text) of an uploaded CSV or JSONL file; see parse_upload."""
    upload = parse_upload(name, data)
    return list(upload.columns), upload.records()


_GUESSES = {
    "input": ("input", "query", "question", "message", "text", "prompt", "user_message"),
    "category": ("category", "intent", "topic", "label", "queue"),
    "expected": ("expected", "answer", "reference", "ideal", "expected_output"),
}


def guess_map(columns: Sequence[str], rows: Sequence[Sequence[str]] = ()) -> ColumnMap:
    """A first mapping to offer: columns whose (lower-case) name suggests the role. With no
    name for the input, the column with the longest text in the first rows (an export's
    first column is usually its id, which would make every row unique and junk)."""
    lower = {c.strip().lower(): c for c in columns}
    found = {
        role: next((lower[n] for n in names if n in lower), None)
        for role, names in _GUESSES.items()
    }
    taken = {found["category"], found["expected"]}
    candidates = [c for c in columns if c not in taken and not _ID_NAME.search(c)] or list(columns)
    head = rows[:200]

    def length(column: str) -> float:
        index = list(columns).index(column)
        return sum(len(row[index]) for row in head if index < len(row)) / max(1, len(head))

    fallback = max(candidates, key=length) if head else candidates[0]
    return ColumnMap(found["input"] or fallback, found["category"], found["expected"])


_ID_NAME = re.compile(r"(^|[_\s-])(id|uuid|key)$|^#$", re.I)


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
    """What importing this file into `target` would add, and a report; writes nothing.
    (Parses the file: a page that reruns keeps a parse_upload and calls plan_upload.)"""
    upload = parse_upload(name, data)
    return plan_upload(upload, mapping, target, dedupe=dedupe, sample=sample, seed=seed)


def plan_upload(
    upload: Upload,
    mapping: ColumnMap,
    target: Table,
    *,
    dedupe: bool = True,
    sample: int | None = None,
    seed: int = 0,
) -> ImportPlan:
    """What importing a parsed upload into `target` would add, and a report; writes nothing."""
    columns = upload.columns
    targets = mapping.targets()
    missing = [s for s in targets.values() if s not in columns]
    if missing:
        raise DatasetError(
            f"{upload.name}: no column {missing[0]!r} (columns: {', '.join(columns)})"
        )
    others = [c for c in columns if c not in targets.values()] if mapping.keep_other else []
    # a source id is not a case id here, and a column named like a mapped one would clash
    dropped = tuple(c for c in others if c == "id" or c in targets)
    others = [c for c in others if c not in dropped]
    index = {c: i for i, c in enumerate(columns)}
    kept, report = _dedupe(upload.rows, index[mapping.input], target, dedupe)
    category = index[mapping.category] if mapping.category else None
    chosen = _sample(upload.rows, kept, category, sample, seed)
    source = tuple((t, index[s]) for t, s in (*targets.items(), *((c, c) for c in others)))
    added = ImportRows(upload.rows, tuple(chosen), source)
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


MAX_LISTED_PROBLEMS = 100  # a report of a million skipped rows lists the first ones, and counts


def _dedupe(
    rows: Sequence[Cells], column: int, target: Table, dedupe: bool
) -> tuple[list[int], ImportReport]:
    """Indexes of the rows with an input, first of each normalised input, not already in
    the target. Only a hash of each input is kept (a million inputs as text would take
    hundreds of MB); a hash seen before is checked against the row it came from."""
    in_target = {normalise(r.get("input", "")) for r in target.rows} if dedupe else set()
    first: dict[int, int] = {}  # hash of a normalised input -> the first row with it
    clashes: set[str] = set()  # inputs whose hash another input had first (rare)
    kept: list[int] = []
    problems: list[str] = []
    empty = in_file = already = 0
    for i, row in enumerate(rows):
        key = normalise(row[column])
        if not key:
            empty += 1
            if empty <= MAX_LISTED_PROBLEMS:
                problems.append(f"row {i + 1}: the input is empty; skipped")
            continue
        if dedupe:
            j = first.setdefault(hash(key), i)
            if j != i and _repeated(key, normalise(rows[j][column]), clashes):
                in_file += 1
                continue
        if key in in_target:
            already += 1
        else:
            kept.append(i)
    if empty > MAX_LISTED_PROBLEMS:
        problems.append(f"… and {empty - MAX_LISTED_PROBLEMS:,} more rows without input")
    return kept, ImportReport(len(rows), empty, in_file, already, problems=tuple(problems))


def _repeated(key: str, first_key: str, clashes: set[str]) -> bool:
    """An input whose hash an earlier row had: the same input, or (rarely) a clash."""
    if key == first_key or key in clashes:
        return True
    clashes.add(key)
    return False


def _sample(
    rows: Sequence[Cells], kept: list[int], category: int | None, n: int | None, seed: int
) -> list[int]:
    """The kept rows `sample_cases` picks (stratified by category when one is mapped),
    drawn on row numbers: no case is made for each of a million rows."""
    if n is None or n >= len(kept):
        return kept
    strata: dict[str, list[int]] = {}
    for k, i in enumerate(kept):
        value = rows[i][category].strip() if category is not None else ""
        strata.setdefault(value or NO_STRATUM, []).append(k)
    return [kept[k] for k in draw(strata, n, seed=seed)]


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
    added = plan.rows.with_ids() if isinstance(plan.rows, ImportRows) else plan.rows
    rows = Joined(old, added)  # a million imported rows are never all dicts at once
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
