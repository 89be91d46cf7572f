"""Which version of a prompt file a run used, and which runs used a file.

A run's snapshot keeps each variant's file fingerprint (`files`: name -> the same
fingerprint the file history records), so a run links to the exact version that ran, and
the Prompts page can list the runs of a variant and say which ran the version on disk now.
Runs made before fingerprints were recorded say "unknown".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptdeck.store.rows import RunRecord
from promptdeck.workspace.fileio import MISSING, fingerprint_file


@dataclass(frozen=True)
class VariantVersion:
    variant: str
    path: str | None  # the file as the run named it
    ran: str | None  # the fingerprint of the file that ran; None: not recorded
    now: str  # the file's fingerprint now; MISSING: it is gone

    @property
    def state(self) -> str:
        """'same', 'changed', 'deleted' or 'unknown' (an older run recorded no version)."""
        if self.ran is None:
            return "unknown"
        if self.now == MISSING:
            return "deleted"
        return "same" if self.now == self.ran else "changed"


def run_versions(snapshot: Mapping[str, Any]) -> list[VariantVersion]:
    """Each variant of a stored run: the version that ran against the file on disk now."""
    files = snapshot.get("files")
    files = files if isinstance(files, dict) else {}
    variants = snapshot.get("variants")
    out = []
    for name, spec in (variants if isinstance(variants, dict) else {}).items():
        path = spec.get("path") if isinstance(spec, dict) else None
        now = fingerprint_file(Path(path)) if isinstance(path, str) else MISSING
        ran = files.get(name)
        out.append(VariantVersion(str(name), path, ran if isinstance(ran, str) else None, now))
    return out


def runs_of_variant(runs: Sequence[RunRecord], name: str) -> list[tuple[RunRecord, str | None]]:
    """The runs that used variant `name`, newest first, with the fingerprint each ran."""
    found = []
    for run in runs:
        variants = run.snapshot.get("variants")
        if isinstance(variants, dict) and name in variants:
            files = run.snapshot.get("files")
            ran = files.get(name) if isinstance(files, dict) else None
            found.append((run, ran if isinstance(ran, str) else None))
    return found
