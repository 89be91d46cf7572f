"""A dataset file read one row at a time, each row with where it starts.

CSV and JSON Lines are read as bytes, line by line, and decoded a line at a time: the whole
text is never held, and each row keeps the byte offset it starts at (its `ref`), so rows
picked after a first pass are read back by seeking to them (`rows_at`). A YAML dataset is
parsed whole (hand-written, small) and a Parquet file is read in record batches; their rows'
refs are their positions. Errors name the file and the line (or item) as the whole-text
reader did: `line 3: a quoted field starts here but its closing quote (") is missing`,
`line 2, byte 14: not UTF-8 text (0xe9)`, `item 1: expected an object of column: value`.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import itertools
import json
import re
from array import array
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from promptdeck.errors import DatasetError
from promptdeck.workspace.fileio import NotUTF8, read_text
from promptdeck.workspace.yamlfile import parse_yaml_rows

# A cell is a template variable sent to a model: 4 Mi characters is about a million tokens,
# the largest context windows. (csv's own default, 128 Ki, refuses a long document.)
MAX_CELL_CHARS = 4 * 1024 * 1024
csv.field_size_limit(MAX_CELL_CHARS)  # process-wide: every CSV the workspace reads
PARQUET_BATCH = 65_536  # rows per Parquet record batch

Row = dict[str, object]
_BOM = codecs.BOM_UTF8
_TO_LF = re.compile(rb"[^\n]*\n|[^\n]+")  # JSON Lines: a line ends at \n only
CHUNK = 256 * 1024  # bytes read at a time: split, decoded and parsed in C, not line by line


class LineFeed:
    """The lines of a binary file as text, ends kept, from where the file stands: read in
    chunks cut after a \n, each split into lines and decoded in C. A lone \r ends a line too
    when `split_cr` (CSV: old Mac files; JSON Lines ends at \n only). With `offsets`,
    `starts[k]` is the byte offset of line k + 1. `empty` stays True while every chunk so far
    was whitespace. A NUL byte (UTF-16?) is a ValueError naming its line; bytes that are not
    UTF-8 raise UnicodeDecodeError from the iteration: `not_utf8()` then says where."""

    def __init__(
        self,
        file: IO[bytes],
        *,
        split_cr: bool,
        start: int = 0,
        offsets: bool = False,
        chunk: int = CHUNK,
    ) -> None:
        self.file = file
        self.split_cr = split_cr
        self.starts: array[int] | None = array("q") if offsets else None
        self.empty = True
        self._chunk = chunk
        self._at = start  # the current chunk: its offset, bytes, and the \n before it
        self._bytes = b""

    def __iter__(self) -> Iterator[str]:
        return itertools.chain.from_iterable(self._pieces())

    def _pieces(self) -> Iterator[Iterator[str]]:
        at, starts = self._at, self.starts
        for offset, chunk in _chunks(self.file, at, self._chunk):
            self._at, self._bytes = offset, chunk
            if b"\x00" in chunk:  # no text file holds NULs: UTF-16?
                chunk.decode()  # where it is not UTF-8 first, as when the file is decoded whole
                line = self._line(offset + chunk.index(b"\x00"))
                raise ValueError(
                    f"line {line}: NUL bytes: this is not UTF-8 text (UTF-16?); "
                    "save the file as UTF-8"
                )
            if self.empty and chunk.strip() and chunk.decode(errors="replace").strip():
                self.empty = False
            if self.split_cr or b"\r" not in chunk:
                lines = chunk.splitlines(keepends=True)
            else:
                lines = _TO_LF.findall(chunk)
            if starts is not None:
                starts.extend(itertools.accumulate(map(len, lines[:-1]), initial=offset))
            yield map(bytes.decode, lines)

    def not_utf8(self) -> NotUTF8:
        """Where the chunk being read stops being UTF-8 (after a UnicodeDecodeError)."""
        try:
            self._bytes.decode()
        except UnicodeDecodeError as exc:
            at = self._at + exc.start
            return NotUTF8(self._line(at), at, self._bytes[exc.start])
        raise AssertionError("the chunk decodes")  # pragma: no cover

    def _line(self, offset: int) -> int:
        """The line of a byte, \\n counted from the file's start (for an error only: the
        file is read again up to it, a chunk at a time)."""
        here = self.file.tell()
        self.file.seek(0)
        lines = 1
        while offset > 0 and (block := self.file.read(min(offset, self._chunk))):
            lines, offset = lines + block.count(b"\n"), offset - len(block)
        self.file.seek(here)
        return lines


def _chunks(file: IO[bytes], at: int, size: int) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) of the file from `at`, each ending after a \n (or at the end); the
    byte-order mark at the file's start is left out."""
    file.seek(at)
    if at == 0 and file.read(3) != _BOM:
        file.seek(0)
    at = file.tell()
    parts: list[bytes] = []  # a line longer than a chunk, in pieces (joined once)
    while block := file.read(size):
        cut = block.rfind(b"\n") + 1
        if cut == 0:
            parts.append(block)
            continue
        whole = b"".join([*parts, block[:cut]]) if parts else block[:cut]
        yield at, whole
        at, parts = at + len(whole), [block[cut:]]
    if rest := b"".join(parts):
        yield at, rest


def open_lines(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read: {exc.strerror}") from None


def iter_rows(path: Path) -> Iterator[tuple[int, Row]]:
    """Every row of a dataset file in order, with its ref (the line it starts on, or its
    position); DatasetError names the place. A CSV row holds every header column."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".jsonl"):
        with open_lines(path) as file:
            feed = LineFeed(file, split_cr=suffix == ".csv")
            yield from csv_rows(path, feed) if suffix == ".csv" else jsonl_rows(path, feed)
    elif suffix == ".parquet":
        yield from _parquet_rows(path)
    else:
        yield from enumerate(_read_yaml(path))


def csv_rows(path: Path, feed: LineFeed) -> Iterator[tuple[int, Row]]:
    """(line, row) for every record of a CSV file after its header (csv_records)."""
    with feed_errors(path, feed):
        records = csv_lines(path, feed)
        first = next(records, None)
        if first is not None:
            header = first[1]
            for line, record in records:
                yield line, dict(zip(header, record, strict=True))


def jsonl_rows(path: Path, feed: LineFeed) -> Iterator[tuple[int, Row]]:
    """(line, row) for every line of a JSON Lines file that is not blank."""
    with feed_errors(path, feed):
        for line_no, line in enumerate(feed, start=1):
            if line.strip():  # JSON Lines ends a record at "\n" only, kept out of the JSON
                yield line_no, jsonl_row(path, line_no, line.removesuffix("\n"))


@contextlib.contextmanager
def feed_errors(path: Path, feed: LineFeed) -> Iterator[None]:
    """The feed's errors as DatasetError with the file's name; a file of whitespace is
    "empty" (raised at the end, when nothing in it was a row)."""
    try:
        yield
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: {feed.not_utf8()}") from None
    except ValueError as exc:  # NUL bytes
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(f"{path}: {exc}") from None
    if feed.empty:
        raise empty_file(path)


def empty_file(path: Path) -> DatasetError:
    return DatasetError(f"{path}: the file is empty (no rows); add a header and at least one row")


def rows_at(path: Path, offsets: Iterable[int]) -> Iterator[Row]:
    """The rows of a CSV or JSON Lines file that start at these byte offsets (ascending;
    `LineFeed.starts` of the lines `iter_rows` gave), each read on its own."""
    csv_file = path.suffix.lower() == ".csv"
    with open_lines(path) as file:
        header = next(csv_records(path, LineFeed(file, split_cr=True))) if csv_file else []
        for offset in offsets:
            feed = LineFeed(file, split_cr=csv_file, start=offset, chunk=16 * 1024)
            if csv_file:
                record = next(r for r in csv.reader(feed, strict=True) if any(map(str.strip, r)))
                yield dict(zip(header, record, strict=True))
            else:
                line = next(line for line in feed if line.strip())
                yield jsonl_row(path, 0, line.removesuffix("\n"))


def csv_records(path: Path, lines: Iterable[str]) -> Iterator[list[str]]:
    """The header, then every record with as many fields; blank records are skipped, and a
    malformed one is a DatasetError with its line."""
    return (record for _, record in csv_lines(path, lines))


def csv_lines(
    path: Path, lines: Iterable[str], *, header: list[str] | None = None, line: int = 0
) -> Iterator[tuple[int, list[str]]]:
    """csv_records, each with the line it starts on. Given the `header`, the lines start
    after it, `line` lines into the file, and every record is checked against it."""
    # strict: an unterminated quote would otherwise swallow the rest of the file silently
    reader = csv.reader(lines, strict=True)
    while True:
        start = line + reader.line_num + 1
        record = next_record(path, reader, start)
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
        yield start, record


def next_record(path: Path, reader: Iterator[list[str]], start: int) -> list[str] | None:
    """The reader's next record, None at the end; DatasetError with the line it starts on."""
    try:
        return next(reader, None)
    except csv.Error as exc:
        raise DatasetError(f"{path}: line {start}: {_csv_problem(str(exc))}") from exc


def csv_header(path: Path, reader: Any) -> list[str] | None:
    """The first record that is not blank, checked as a header (a csv.reader's)."""
    while True:
        start = reader.line_num + 1
        record = next_record(path, reader, start)
        if record is None:
            return None
        if any(map(str.strip, record)):
            return _header(path, start, record)


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


def _read_yaml(path: Path) -> list[Row]:
    try:
        text = read_text(path)
    except ValueError as exc:  # unreadable, or not UTF-8 (with the line and byte)
        raise DatasetError(f"{path}: {exc}") from exc
    if not text.strip():
        raise empty_file(path)
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


def _parquet_rows(path: Path) -> Iterator[tuple[int, Row]]:
    import pyarrow as pa  # type: ignore[import-untyped]  # lazy: heavy, and only for .parquet
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    index = 0
    try:
        batches: Iterator[Any] = pq.ParquetFile(path).iter_batches(batch_size=PARQUET_BATCH)
        for batch in batches:
            for row in batch.to_pylist():
                yield index, {str(k): v for k, v in row.items()}
                index += 1
    except (OSError, pa.ArrowException) as exc:  # a missing file, or bytes not Parquet
        raise DatasetError(f"{path}: cannot read as Parquet: {exc}") from exc


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


def cell_text(value: object) -> str:
    """A cell as the dataset holds it: text kept, JSON values as JSON, dates as written."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float | list | dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)  # dates, decimals, ... (YAML, Parquet): their text, not a JSON string
