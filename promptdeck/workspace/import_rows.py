"""The rows an import adds, made when they are read: a million rows as dicts would take
gigabytes, and their ids (a hash of each row) seconds, before the preview shows 500 of them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import overload

from promptdeck.workspace.datasets import stable_id

Row = dict[str, str]  # as dataset_edit.Row
Cells = tuple[str, ...]  # one row's cell text, in column order


@dataclass(frozen=True, eq=False)
class ImportRows(Sequence[Row]):
    """The rows an import adds, each made when asked for (a million rows as dicts would take
    gigabytes, their ids seconds): row k is the upload's row `indexes[k]`, the cells of
    `source` (target column, upload column) under their target names, after its new id."""

    cells: Sequence[Cells]
    indexes: Sequence[int]
    source: tuple[tuple[str, int], ...]
    ids: Sequence[str] | None = None  # every row's id, once computed (`with_ids`)

    def __len__(self) -> int:
        return len(self.indexes)

    def with_ids(self) -> ImportRows:
        """These rows with every id computed once: writing reads each row twice."""
        return replace(self, ids=[row["id"] for row in self])

    @overload
    def __getitem__(self, k: int) -> Row: ...
    @overload
    def __getitem__(self, k: slice) -> list[Row]: ...
    def __getitem__(self, k: int | slice) -> Row | list[Row]:
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        cells = self.cells[self.indexes[k]]
        values = {target: cells[j] for target, j in self.source}
        return {"id": stable_id(values) if self.ids is None else self.ids[k], **values}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Joined(Sequence[Row]):
    """Two sequences of rows as one, neither copied."""

    first: Sequence[Row]
    then: Sequence[Row]

    def __len__(self) -> int:
        return len(self.first) + len(self.then)

    @overload
    def __getitem__(self, k: int) -> Row: ...
    @overload
    def __getitem__(self, k: slice) -> list[Row]: ...
    def __getitem__(self, k: int | slice) -> Row | list[Row]:
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        if k < 0:
            k += len(self)
        return self.first[k] if k < len(self.first) else self.then[k - len(self.first)]
