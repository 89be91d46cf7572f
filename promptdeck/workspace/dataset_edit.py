"""Editing dataset files from the app: save an edited table (imports: dataset_import.py).

A dataset is edited as a table of text: every cell is the text the loader gives it
(`datasets.py`), so "007" stays "007" and an empty cell stays empty, never "nan".

Saving writes CSV, JSONL or YAML atomically and only if the file is still the one that was
loaded, and records it in the store's file history (`fileio.save_versioned`); the first save
is preceded by the file as it was ("original"), so it can always be looked up again.
Parquet datasets are read-only here: they are produced by other tools, and rewriting them
would lose their column types. So are files over EDITABLE_BYTES: a table of a million rows
takes gigabytes; they are browsed a page at a time (`dataset_sample.index_dataset`).

How each format is written back:
- CSV: columns in table order, with the file's line endings and byte-order mark, if any.
- JSONL / YAML: one object per row. A cell whose text is unchanged is written back as the value
  it was read from (a number, true/false, null, a date, a list, or "" where others are null);
  a key a row did not have stays out of it while its cell is empty, so the ids of rows without
  an `id` do not change. YAML comments are not kept.
- A dataset that is a symlink is written through the link, into the file it points to.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from promptdeck.errors import DatasetError
from promptdeck.model.types import Message
from promptdeck.store.db import Store
from promptdeck.workspace.dataset_sample import index_dataset
from promptdeck.workspace.datasets import Case, load_dataset, stable_id
from promptdeck.workspace.fileio import (
    MISSING,
    NotUTF8,
    decode_text,
    fingerprint_file,
    outside,
    save_versioned,
)
from promptdeck.workspace.sampling import NO_STRATUM
from promptdeck.workspace.yamlfile import parse_yaml_rows

WRITABLE = (".csv", ".jsonl", ".yaml", ".yml")
# Larger files are not loaded as a table (a 10 MB CSV is ~100,000 rows: ~1 s and ~150 MB)
EDITABLE_BYTES = 20 * 1024 * 1024


def editable_size(path: Path) -> bool:
    """Whether the file is small enough to load as a table, to edit or import into."""
    try:
        return path.stat().st_size <= EDITABLE_BYTES
    except OSError:
        return True  # missing: a new dataset


BOM = "\ufeff"
FROM_APP = "added from the app"
FROM_FILE = "in the file"

Row = dict[str, str]


@dataclass(frozen=True)
class Table:
    """A dataset file as rows of cell text, with what is needed to write it back."""

    path: Path
    columns: tuple[str, ...]
    rows: tuple[Mapping[str, str], ...]  # every column present in every row
    ids: tuple[str, ...]  # each row's case id, as the loader gives it
    fingerprint: str  # of the file as loaded; MISSING for a dataset not created yet
    text: str  # the file as loaded (a byte-order mark kept as "\ufeff")
    typed: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    sparse: frozenset[str] = frozenset()
    raw: tuple[Mapping[str, Any], ...] = ()  # JSONL / YAML: each row's object as read

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def writable(self) -> bool:
        return self.path.suffix.lower() in WRITABLE

    def frame(self) -> pd.DataFrame:
        """The rows as a frame of text (pandas' string dtype: "007" is never a number)."""
        data = {c: [row[c] for row in self.rows] for c in self.columns}
        return pd.DataFrame(data, columns=list(self.columns), dtype="string")


@dataclass(frozen=True)
class Saved:
    path: Path
    fingerprint: str
    rows: int
    empty_dropped: int = 0
    changed: bool = True


def load_table(path: Path) -> Table:
    """Load a dataset for editing; DatasetError (file, row) if it cannot be used."""
    # Fingerprint first: if the file changes while it is read, saving later reports a
    # conflict instead of overwriting the newer file with an edit of the older one.
    taken = fingerprint_file(path)
    dataset = load_dataset(path)
    rows = tuple({c: case.values.get(c, "") for c in dataset.columns} for case in dataset.cases)
    ids = tuple(case.id for case in dataset.cases)
    if path.suffix.lower() == ".parquet":
        return Table(path, dataset.columns, rows, ids, taken, "")
    try:  # the mark kept: table_text writes it back
        text = decode_text(path.read_bytes(), keep_bom=True)
    except NotUTF8 as exc:  # changed since load_dataset read it
        raise DatasetError(f"{path}: {exc}") from None
    if path.suffix.lower() == ".csv":
        return Table(path, dataset.columns, rows, ids, taken, text)
    raw = _raw_rows(path, text.removeprefix(BOM))
    typed = _typed_values(raw, dataset.cases)
    sparse = frozenset(c for c in dataset.columns if any(c not in r for r in raw))
    return Table(path, dataset.columns, rows, ids, taken, text, typed, sparse, tuple(raw))


def new_table(path: Path) -> Table:
    """An empty table for a dataset file that does not exist yet."""
    return Table(path, (), (), (), MISSING, "")


def _raw_rows(path: Path, text: str) -> list[dict[str, Any]]:
    if path.suffix.lower() == ".jsonl":
        data: Any = [json.loads(line) for line in text.splitlines() if line.strip()]
    else:
        data = parse_yaml_rows(text) or []  # as the loader reads it: cells as written
    return [{str(k): v for k, v in row.items()} for row in data]


def _typed_values(raw: Sequence[Mapping[str, Any]], cases: Sequence[Case]) -> dict[str, Any]:
    """column -> cell text -> the typed value it was read from, where that is unambiguous."""
    typed: dict[str, dict[str, Any]] = {}
    plain: set[tuple[str, str]] = set()
    for row, case in zip(raw, cases, strict=True):
        for column, value in row.items():
            text = case.values[column]
            if isinstance(value, str):
                plain.add((column, text))
            else:
                typed.setdefault(column, {}).setdefault(text, value)
    return {c: {t: v for t, v in m.items() if (c, t) not in plain} for c, m in typed.items()}


def cell_text(value: object) -> str:
    """A cell as text, like the loader reads it; missing values (None, NaN, NA) are ""."""
    if isinstance(value, str):
        return value
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return ""
    if isinstance(value, bool | int | float | list | dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def frame_rows(frame: pd.DataFrame) -> tuple[list[str], list[Row]]:
    """The columns and rows of an edited frame, every cell as text."""
    columns = [cell_text(c) for c in frame.columns]
    rows = [
        dict(zip(columns, (cell_text(v) for v in values), strict=True))
        for values in frame.itertuples(index=False, name=None)
    ]
    return columns, rows


def origins(table: Table, frame: pd.DataFrame) -> list[int | None]:
    """The table row each frame row was edited from, by index label (st.data_editor keeps the
    labels of the rows it was given); None for a row added in the editor."""
    n = len(table.rows)
    return [int(i) if pd.api.types.is_integer(i) and 0 <= i < n else None for i in frame.index]


def edited_text(table: Table, frame: pd.DataFrame) -> str:
    """The file text an edited frame would be saved as (empty rows dropped)."""
    columns, rows = frame_rows(frame)
    kept = [(row, o) for row, o in zip(rows, origins(table, frame), strict=True) if _filled(row)]
    return table_text(table, columns, [r for r, _ in kept], [o for _, o in kept])


def _case_id(row: Mapping[str, str], sparse: frozenset[str]) -> str:
    """The id the loader will give this row once written."""
    values = {k: v for k, v in row.items() if v or k not in sparse}
    return row.get("id", "").strip() or stable_id(values)


def check_table(
    columns: Sequence[str], rows: Sequence[Row], sparse: frozenset[str] = frozenset()
) -> list[str]:
    """What stops these rows from being a loadable dataset; row numbers count from 1."""
    problems: list[str] = []
    for i, name in enumerate(columns, start=1):
        if not name.strip():
            problems.append(f"column {i} has no name")
        elif name in columns[: i - 1]:
            problems.append(f"column {name!r} appears twice")
    if not any(_filled(row) for row in rows):
        problems.append("no rows: a dataset needs at least one case")
    seen: dict[str, int] = {}
    for i, row in enumerate(rows, start=1):
        if not _filled(row):
            continue
        case_id = _case_id(row, sparse)
        first = seen.setdefault(case_id, i)
        if first == i:
            continue
        if row.get("id", "").strip():
            problems.append(f"row {i}: duplicate id {case_id!r} (first in row {first})")
        else:
            problems.append(
                f"row {i}: same content as row {first} and no id to tell them apart; "
                "remove the copy or give each row an id"
            )
    return problems


def _filled(row: Mapping[str, str]) -> bool:
    return any(v.strip() for v in row.values())


def table_text(
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Mapping[str, str]],
    origins: Sequence[int | None] = (),
) -> str:
    """The file text for these rows, in the table's format; `origins[i]` is the table row that
    rows[i] was edited from (None or missing: a new row)."""
    suffix = table.path.suffix.lower()
    bom = BOM if table.text.startswith(BOM) else ""
    if suffix == ".csv":
        out = io.StringIO()
        newline = "\r\n" if "\r\n" in table.text else "\n"
        writer = csv.writer(out, lineterminator=newline)
        writer.writerow(columns)
        writer.writerows([row.get(c, "") for c in columns] for row in rows)
        return bom + out.getvalue()
    froms = [*origins, *[None] * (len(rows) - len(origins))]
    records = [_record(table, columns, row, o) for row, o in zip(rows, froms, strict=True)]
    if suffix == ".jsonl":
        lines = (_json_line(r) for r in records)
        return bom + "".join(lines)
    if suffix in (".yaml", ".yml"):
        return bom + yaml.dump(
            records, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=1_000_000
        )
    raise DatasetError(read_only_message(table.path))


def _json_line(record: Mapping[str, Any]) -> str:
    # Raw U+0085, U+2028 and U+2029 are valid in JSON strings, but splitlines() (the loader's)
    # breaks lines at them: escaped, the file stays one object per line.
    text = json.dumps(record, ensure_ascii=False, default=str)
    for char in ("\x85", "\u2028", "\u2029"):
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text + "\n"


def _record(
    table: Table, columns: Sequence[str], row: Mapping[str, str], origin: int | None
) -> dict[str, Any]:
    known = origin is not None and origin < len(table.raw)
    raw: Mapping[str, Any] = table.raw[origin] if origin is not None and known else {}
    was: Mapping[str, str] = table.rows[origin] if origin is not None and known else {}
    record: dict[str, Any] = {}
    for column in columns:
        text = row.get(column, "")
        if column in raw and was.get(column) == text:
            record[column] = raw[column]  # unchanged: exactly as it was read
        elif text or (column in raw if known else column not in table.sparse):
            record[column] = table.typed.get(column, {}).get(text, text)
    return record


class _Dumper(yaml.SafeDumper):
    """Multi-line text as a `|` block, as people write it by hand."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    if any(char in value for char in "\x85\u2028\u2029"):
        style = '"'  # YAML reads these as line breaks (folded to spaces) unless escaped
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def read_only_message(path: Path) -> str:
    return (
        f"{path}: {path.suffix} datasets are read-only in PromptDeck; edit the file where it "
        "is produced, or convert it to .csv, .jsonl or .yaml to edit it here"
    )


def history_key(path: Path, root: Path) -> str:
    """The file's name in the history: relative to the workspace, like git shows it."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def save_table(table: Table, frame: pd.DataFrame, store: Store, root: Path) -> Saved:
    """Write an edited table back: empty rows are dropped; invalid rows raise DatasetError
    and FileConflictError means the file changed on disk since it was loaded."""
    if not table.writable:
        raise DatasetError(read_only_message(table.path))
    columns, rows = frame_rows(frame)
    filled = [row for row in rows if _filled(row)]
    problems = check_table(columns, rows, table.sparse)
    if problems:
        raise DatasetError(not_saved_message(table.path, problems))
    dropped = len(rows) - len(filled)
    unchanged = tuple(columns) == table.columns and filled == [dict(r) for r in table.rows]
    if unchanged and fingerprint_file(table.path) == table.fingerprint:
        return Saved(table.path, table.fingerprint, len(filled), dropped, changed=False)
    froms = [o for row, o in zip(rows, origins(table, frame), strict=True) if _filled(row)]
    new = write_rows(table, columns, filled, store, root, "save", froms)
    return Saved(table.path, new, len(filled), dropped)


def not_saved_message(path: Path, problems: Sequence[str]) -> str:
    return f"{path}: not saved; fix these first:\n" + "\n".join(f"- {p}" for p in problems)


def write_rows(
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Row],
    store: Store,
    root: Path,
    action: str,
    origins: Sequence[int | None] = (),
) -> str:
    """Write the rows if the file is unchanged since loading; record the save; new fingerprint.
    `origins` as for `table_text`."""
    text = table_text(table, columns, rows, origins)
    key = history_key(table.path, root)
    # resolved: a symlinked dataset is written into its target, not replaced by a copy,
    # as long as that target is inside the workspace
    if (far := outside(table.path, root)) is not None:
        raise DatasetError(
            f"{table.path}: a link to {far}, outside this workspace; PromptDeck writes only "
            "inside it: edit that file where it lives"
        )
    target = table.path.resolve()
    return save_versioned(store, target, key, table.name, text, table.fingerprint, action=action)


def conflict_diff(disk: str, yours: str, name: str) -> str:
    """A unified diff from the file on disk to the version that was not saved."""
    lines = difflib.unified_diff(
        disk.removeprefix(BOM).splitlines(keepends=True),
        yours.removeprefix(BOM).splitlines(keepends=True),
        f"{name} (on disk now)",
        f"{name} (your edits)",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


# --- browsing -----------------------------------------------------------------------------


def from_app(frame: pd.DataFrame) -> pd.Series:
    """Rows added from the Playground or Results: they carry a `note`, or a `source` naming
    the app ("playground", "run <id>, <variant>")."""
    marked = pd.Series(False, index=frame.index)
    if "note" in frame:
        marked |= frame["note"].fillna("").str.strip() != ""
    if "source" in frame:
        source = frame["source"].fillna("").str.strip()
        marked |= source.str.match(r"^(run \S|playground)")
    return marked


def filter_rows(
    frame: pd.DataFrame,
    *,
    categories: Sequence[str] = (),
    search: str = "",
    app_only: bool = False,
) -> pd.DataFrame:
    """Rows in any of `categories` ("(none)" = no category), containing `search` in any
    cell (case-insensitive), and only those added from the app if asked."""
    keep = pd.Series(True, index=frame.index)
    if categories and "category" in frame:
        category = frame["category"].fillna("").str.strip().replace("", NO_STRATUM)
        keep &= category.isin(list(categories))
    if search.strip():
        needle = search.strip().casefold()
        text = frame.fillna("").astype(str).apply(lambda c: c.str.casefold())
        keep &= text.apply(lambda c: c.str.contains(needle, regex=False)).any(axis=1)
    if app_only:
        keep &= from_app(frame)
    return frame[keep]


def count_categories(frame: pd.DataFrame) -> pd.DataFrame:
    """Cases per category and origin (in the file / added from the app), for the chart."""
    if frame.empty:
        return pd.DataFrame({"category": [], "origin": [], "cases": []})
    category = frame["category"] if "category" in frame else pd.Series("", index=frame.index)
    data = pd.DataFrame(
        {
            "category": category.fillna("").str.strip().replace("", NO_STRATUM),
            "origin": from_app(frame).map({True: FROM_APP, False: FROM_FILE}),
        }
    )
    counts = data.groupby(["category", "origin"]).size().rename("cases").reset_index()
    return counts.sort_values(["category", "origin"], ignore_index=True)


def probe(paths: Iterable[Path]) -> dict[Path, str | None]:
    """Each dataset file and the error that keeps it from loading, or None: every check of
    load_dataset, without keeping the rows (`index_dataset`)."""
    found: dict[Path, str | None] = {}
    for path in paths:
        try:
            index_dataset(path)
            found[path] = None
        except DatasetError as exc:
            found[path] = str(exc)
    return found


def conversation_case(
    conversation: Sequence[Message], inputs: Mapping[str, object]
) -> dict[str, str]:
    """A conversation (a Playground column's) as the values of a dataset row: `messages`
    holds the user and assistant messages before the last user message (JSON, as
    `prompts.conversation_history` reads it), `input` that last message, beside the run's
    other inputs. The system prompt and tool rounds are left out: an eval asks the variant
    again, with its own system prompt and tools, and the answers it gave are kept as text."""
    said = [m for m in conversation if m.role in ("user", "assistant") and not m.tool_calls]
    last = max((i for i, m in enumerate(said) if m.role == "user"), default=None)
    if last is None:
        raise DatasetError("this conversation has no user message to save as a case")
    history = [{"role": m.role, "content": m.content} for m in said[:last]]
    values = {name: cell_text(value) for name, value in inputs.items()}
    return values | {
        "input": said[last].content,
        "messages": json.dumps(history, ensure_ascii=False),
    }
