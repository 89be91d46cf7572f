"""Eval datasets: one row per case, from CSV, JSONL or YAML files in `datasets/`.

Reserved columns: `id` (else a stable hash of the row), `category`, `expected`,
`rubric`. Every other column is a template variable.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from promptdeck.errors import DatasetError

RESERVED = ("id", "category", "expected", "rubric")
SUFFIXES = (".csv", ".jsonl", ".yaml", ".yml")


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
    return sorted(p for p in root.iterdir() if p.suffix in SUFFIXES and ".suite." not in p.name)


def load_dataset(path: Path) -> Dataset:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DatasetError(
            f"{path}: line {line}, byte {exc.start}: not UTF-8 text; save the file as UTF-8"
        ) from exc
    if not text.strip():
        raise DatasetError(f"{path}: the file is empty")
    rows = _read_rows(path, text)
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    cases = tuple(_case(path, i, row) for i, row in enumerate(rows, start=1))
    seen: dict[str, int] = {}
    for i, case in enumerate(cases, start=1):
        if case.id in seen:
            raise DatasetError(
                f"{path}: row {i}: duplicate id {case.id!r} (first in row {seen[case.id]})"
            )
        seen[case.id] = i
    return Dataset(path.stem, path, tuple(columns), cases)


def _read_rows(path: Path, text: str) -> list[dict[str, object]]:
    if path.suffix == ".csv":
        return _read_csv(path, text)
    if path.suffix == ".jsonl":
        rows = []
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(_mapping(path, json.loads(line), f"line {line_no}"))
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}: line {line_no}: invalid JSON: {exc.msg}") from exc
        return rows
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DatasetError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(data, list):
        raise DatasetError(f"{path}: expected a YAML list of rows")
    return [_mapping(path, row, f"item {i}") for i, row in enumerate(data, start=1)]


def _read_csv(path: Path, text: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader)
    if len(set(header)) != len(header) or any(not h.strip() for h in header):
        raise DatasetError(f"{path}: line 1: column names must be unique and non-empty")
    for record in reader:
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(header):
            raise DatasetError(
                f"{path}: line {reader.line_num}: {len(record)} fields, "
                f"the header has {len(header)}"
            )
        rows.append(dict(zip(header, record, strict=True)))
    return rows


def _mapping(path: Path, row: object, where: str) -> dict[str, object]:
    if not isinstance(row, dict):
        raise DatasetError(f"{path}: {where}: expected an object of column: value")
    return {str(k): v for k, v in row.items()}


def _case(path: Path, index: int, row: Mapping[str, object]) -> Case:
    values = {
        k: "" if v is None else v if isinstance(v, str) else json.dumps(v) for k, v in row.items()
    }
    given = values.get("id", "").strip()
    return Case(given or stable_id(values), values)


def stable_id(values: Mapping[str, str]) -> str:
    """A short hash of the row's content, stable across runs and machines."""
    blob = json.dumps({k: v for k, v in values.items() if k != "id"}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
