"""Writing the workspace's files back safely: atomically, and never over someone else's change.

A page loads a file together with its fingerprint (a hash of the bytes). Saving passes that
fingerprint back: if the file on disk no longer has it (another browser tab saved, a
`git pull` landed), the save raises FileConflictError with what is on disk now, instead of
overwriting it. The write itself goes to a temporary file in the same folder, is flushed to
disk, then renamed over the target, so a crash mid-write leaves the old file or the new one,
never half of one.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from promptdeck.errors import FileConflictError

MISSING = "missing"  # the fingerprint of a file that does not exist (yet)


@dataclass(frozen=True)
class Loaded:
    """A file's text and the fingerprint to hand back when saving it."""

    path: Path
    text: str
    fingerprint: str


def fingerprint(data: bytes | str) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()[:16]


def fingerprint_file(path: Path) -> str:
    try:
        return fingerprint(path.read_bytes())
    except FileNotFoundError:
        return MISSING


def load_for_edit(path: Path) -> Loaded:
    raw = path.read_bytes()
    return Loaded(path, raw.decode("utf-8-sig"), fingerprint(raw))


def atomic_write(path: Path, data: bytes | str) -> str:
    """Replace `path` with `data` in one step; returns the new fingerprint."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():  # keep the file's permissions, not mkstemp's 0600
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return fingerprint(raw)


def save_if_unchanged(path: Path, data: bytes | str, expected: str) -> str:
    """Write `data` only if the file still has the fingerprint it was loaded with.

    `expected` is MISSING for a new file, which then must not exist yet."""
    current = fingerprint_file(path)
    if current != expected:
        disk = path.read_text(encoding="utf-8-sig", errors="replace") if current != MISSING else ""
        raise FileConflictError(path, disk_text=disk, deleted=current == MISSING)
    return atomic_write(path, data)
