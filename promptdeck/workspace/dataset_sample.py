"""A seeded, stratified sample of a dataset file, read in two streaming passes.

The first pass reads every row once and keeps only what the sample needs: where each row
starts (8 bytes a row), the row numbers of each stratum (8 bytes a row) and a hash of each
row's id for the duplicate check (about 60 bytes a row), never the rows themselves. The
sample is drawn as `sample_cases` draws it from the loaded dataset (`sampling.draw`): the
same file, sample and seed give the same rows in the same order. The second pass reads
only the rows drawn, by seeking to them.

Errors are the loader's: a malformed row names its line, an unknown stratify column names
the columns, and two rows with one id fail as `load_dataset` fails. Ids are compared as
64-bit hashes of the given id or, for a row without one, of its content (what its id is a
hash of); when two rows share a hash, or some rows have an id and others do not (a given
id could be another row's content hash), the ids are read again and compared exactly, as
`load_dataset` does.
"""

from __future__ import annotations

import csv
import itertools
import os
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path

from promptdeck.errors import DatasetError
from promptdeck.workspace.dataset_rows import (
    LineFeed,
    Row,
    cell_text,
    csv_header,
    csv_lines,
    feed_errors,
    iter_rows,
    jsonl_rows,
    open_lines,
    rows_at,
)
from promptdeck.workspace.datasets import (
    Case,
    DatasetSample,
    case_of,
    check_suffix,
    check_unique_ids,
)
from promptdeck.workspace.sampling import (
    NO_STRATUM,
    OPTIONAL_STRATUM_COLUMN,
    check_stratify,
    draw,
    sample_size,
)

BATCH = 4096  # CSV records a step of the first pass


class _Codes(dict[str, int]):
    """A stratum's number, given at its first row."""

    def __missing__(self, key: str) -> int:
        code = self[key] = len(self)
        return code


class _Tally:
    """What the first pass keeps of each row: where it starts (its line, or its position),
    its stratum's number, and a hash of its id."""

    def __init__(self) -> None:
        self.refs = array("q")
        self.codes = array("i")
        self.numbers = _Codes()  # stripped stratify value -> its code
        self.keys = array("q")
        self.columns: dict[str, None] = {}
        self.starts: array[int] | None = None  # a text file's line offsets (LineFeed.starts)
        self.given = self.hashed = False  # rows with an id, rows without

    def strata(self) -> dict[str, array[int]]:
        """Each stratum's row numbers in file order; an empty value is NO_STRATUM."""
        import numpy as np  # here: `promptdeck run` does not wait for it before it starts

        codes = np.frombuffer(self.codes, dtype=np.int32)
        order = np.argsort(codes, kind="stable")  # stable: file order within a stratum
        sizes = np.bincount(codes, minlength=len(self.numbers))
        ends = np.cumsum(sizes)
        strata: dict[str, array[int]] = {}
        for value, code in self.numbers.items():
            rows = order[ends[code] - sizes[code] : ends[code]]
            if (name := value or NO_STRATUM) in strata:  # "" and "(none)": one stratum
                rows = np.sort(np.concatenate([rows, np.frombuffer(strata[name], np.int64)]))
            strata[name] = array("q")
            strata[name].frombytes(np.ascontiguousarray(rows, np.int64).data.cast("B"))
        return strata

    def repeated(self) -> bool:
        """Two rows share a hash: the ids are compared exactly then."""
        import numpy as np

        keys = np.sort(np.frombuffer(self.keys, dtype=np.int64))
        return bool(np.any(keys[1:] == keys[:-1]))


def load_sample(
    path: Path,
    *,
    n: int | None = None,
    fraction: float | None = None,
    seed: int = 0,
    stratify: str | None = "category",
    floor: int = 1,
) -> DatasetSample:
    """The rows `sample_cases(load_dataset(path).cases, ...)` picks, read without loading
    the file (module docstring); DatasetError as load_dataset raises it."""
    tally, before = _first_pass(path, stratify)
    rows = len(tally.refs)
    columns = tuple(tally.columns)
    check_stratify(columns, stratify)
    size = sample_size(rows, n=n, fraction=fraction)
    if size >= rows:
        cases = [case_of(row) for _, row in iter_rows(path)]
        check_unique_ids(path, enumerate(cases, start=1))
    else:
        chosen = draw(tally.strata(), size, seed=seed, floor=floor)
        cases = [case_of(row) for row in _read_rows(path, tally, chosen)]
        # a content hash is 48 bits: two rows of different content may share one
        check_unique_ids(path, zip(chosen, cases, strict=True))
    if _version(path) != before:
        raise DatasetError(f"{path}: the file changed while it was read; run again")
    return DatasetSample(path.stem, path, columns, rows, tuple(cases))


@dataclass(frozen=True)
class DatasetIndex:
    """A dataset file read once without keeping its rows (load_sample's first pass, so
    checked as load_dataset checks it): its columns, its size, its rows per category, and
    where each row starts, so that any page of it is read on its own (`read_page`)."""

    path: Path
    columns: tuple[str, ...]
    rows: int
    categories: dict[str, int]  # rows per category ("(none)": none), by name
    offsets: array[int] | None  # each row's byte offset (CSV, JSON Lines); else by position
    version: tuple[int, int]  # the file's size and mtime when it was read


def index_dataset(path: Path) -> DatasetIndex:
    """The file's DatasetIndex: seconds and ~10 bytes a row for a million rows, where
    load_dataset takes a kilobyte a row."""
    tally, version = _first_pass(path, OPTIONAL_STRATUM_COLUMN)
    starts, offsets = tally.starts, None
    if starts is not None:  # the line each row starts on -> that line's offset
        offsets = array("q", map(starts.__getitem__, map((-1).__add__, tally.refs)))
    categories = {name: len(rows) for name, rows in sorted(tally.strata().items())}
    return DatasetIndex(path, tuple(tally.columns), len(tally.refs), categories, offsets, version)


def read_page(index: DatasetIndex, start: int, stop: int) -> list[Case]:
    """Rows start to stop (from 0) as cases; DatasetError if the file changed since."""
    path = index.path
    if _version(path) != index.version:
        raise DatasetError(f"{path}: the file changed since it was read; open it again")
    if index.offsets is None:
        rows: Iterator[Row] = (row for _, row in itertools.islice(iter_rows(path), start, stop))
    else:
        rows = rows_at(path, index.offsets[start:stop])
    return [case_of(row) for row in rows]


def _first_pass(path: Path, stratify: str | None) -> tuple[_Tally, tuple[int, int]]:
    """The tally of every row, its ids checked unique; the file's version before it."""
    check_suffix(path)
    before = _version(path)
    tally = _tally(path, stratify)
    if not tally.refs:
        raise DatasetError(f"{path}: no rows; add at least one case")
    if (tally.given and tally.hashed) or tally.repeated():
        check_unique_ids(path, ((i, case_of(r)) for i, (_, r) in enumerate(iter_rows(path), 1)))
    tally.keys = array("q")  # checked: not kept while the sample is drawn and read
    return tally, before


def _version(path: Path) -> tuple[int, int]:
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read: {exc.strerror}") from None
    return stat.st_size, stat.st_mtime_ns


def _read_rows(path: Path, tally: _Tally, chosen: list[int]) -> Iterator[Row]:
    refs, starts = tally.refs, tally.starts
    if starts is None:  # YAML, Parquet: by position
        wanted = {refs[i] for i in chosen}
        return (row for ref, row in iter_rows(path) if ref in wanted)
    return rows_at(path, [starts[refs[i] - 1] for i in chosen])


def _tally(path: Path, stratify: str | None) -> _Tally:
    tally = _Tally()
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl"):
        _tally_rows(tally, iter_rows(path), stratify)
        return tally
    with open_lines(path) as file:
        feed = LineFeed(file, split_cr=suffix == ".csv", offsets=True)
        if suffix == ".csv":
            _tally_csv(path, tally, feed, stratify)
        else:
            _tally_rows(tally, jsonl_rows(path, feed), stratify)
    tally.starts = feed.starts
    return tally


def _tally_rows(tally: _Tally, rows: Iterator[tuple[int, Row]], stratify: str | None) -> None:
    columns = tally.columns
    for ref, row in rows:
        columns.update(dict.fromkeys(row))
        values = {k: cell_text(v) for k, v in row.items()}
        stratum = values.get(stratify, "").strip() if stratify else ""
        given = values.pop("id", "").strip()
        if given:
            tally.given = True
            key = hash(given)
        else:
            tally.hashed = True
            key = hash(frozenset(values.items()))
        tally.refs.append(ref)
        tally.codes.append(tally.numbers[stratum])
        tally.keys.append(key)


def _tally_csv(path: Path, tally: _Tally, feed: LineFeed, stratify: str | None) -> None:
    """The CSV pass: the hot loop of a large file, so batches of records go through C
    (itertools, map) rather than a Python step per row. A batch with a blank or malformed
    record, or a record over several lines, is read again record by record from its first
    line (csv_lines), which also names the line of an error."""
    with feed_errors(path, feed):
        reader = csv.reader(feed, strict=True)
        header = csv_header(path, reader)
        if header is None:
            return
        tally.columns = dict.fromkeys(header)
        key = itemgetter(header.index(stratify) if stratify in header else 0)
        line = reader.line_num  # lines read so far
        batch: list[list[str]] = []
        while True:
            try:
                batch = list(itertools.islice(reader, BATCH))
            except csv.Error:  # the record-by-record reading says where
                batch = []
            used = reader.line_num - line
            if used == 0:
                return
            regular = used == len(batch) and set(map(len, batch)) == {len(header)}
            # the stratify column's values (or the first column's): a blank record has none
            values = list(map(str.strip, map(key, batch))) if regular else []
            if regular and (all(values) or not any(map(_blank, batch))):
                _add_batch(tally, header, stratify, line + 1, batch, values)
            else:
                _add_slowly(path, tally, header, stratify, line, used, feed)
            line += used


def _blank(record: list[str]) -> bool:
    return not any(map(str.strip, record))


def _add_batch(
    tally: _Tally,
    header: list[str],
    stratify: str | None,
    line: int,
    batch: list[list[str]],
    values: list[str] | None = None,
) -> None:
    """Records of one line each, the first on `line`; `values`: their stratify cells,
    stripped, if the caller has them."""
    size = len(batch)
    tally.refs.extend(range(line, line + size))
    if stratify in header:
        if values is None:
            values = list(map(str.strip, map(itemgetter(header.index(stratify)), batch)))
        tally.codes.extend(map(tally.numbers.__getitem__, values))
    else:
        tally.codes.extend(itertools.repeat(tally.numbers[""], size))
    if "id" not in header:
        tally.hashed = True
        tally.keys.extend(map(hash, map(tuple, batch)))
        return
    given = list(map(str.strip, map(itemgetter(header.index("id")), batch)))
    content = _content(header.index("id"))
    for record, name in zip(batch, given, strict=True):
        tally.keys.append(hash(name) if name else hash(content(record)))
    tally.given = tally.given or any(given)
    tally.hashed = tally.hashed or not all(given)


def _add_slowly(
    path: Path,
    tally: _Tally,
    header: list[str],
    stratify: str | None,
    line: int,
    lines: int,
    feed: LineFeed,
) -> None:
    """The records on `lines` lines after line `line`, read again one by one."""
    assert feed.starts is not None
    with open_lines(path) as file:
        again = LineFeed(file, split_cr=feed.split_cr, start=feed.starts[line])
        for start, record in csv_lines(path, again, header=header, line=line):
            if start > line + lines:
                break
            _add_batch(tally, header, stratify, start, [record])


def _content(ids: int | None) -> Callable[[list[str]], tuple[str, ...]]:
    """A record's cells but its id: what its content hash (stable_id) is made of."""
    if ids is None:
        return tuple
    return lambda record: (*record[:ids], *record[ids + 1 :])
