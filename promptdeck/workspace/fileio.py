"""Reading and writing the workspace's files: one decoder, safe writes, and saves with history.

Reading: every text file is UTF-8 (a byte-order mark is allowed). `decode_text` is the one
decoder; bytes that are not UTF-8 raise NotUTF8 with the line and the byte, and each loader
wraps it in its own error with the file's name.

Writing: a page loads a file together with its fingerprint (a hash of the bytes). Saving
passes that fingerprint back: if the file on disk no longer has it (another browser tab saved,
a `git pull` landed), the save raises FileConflictError with what is on disk now, instead of
overwriting it. The write itself goes to a temporary file in the same folder, is flushed to
disk, then renamed over the target, so a crash mid-write leaves the old file or the new one,
never half of one.

History: `save_versioned` and `delete_versioned` also record each change in the store's file
history, the file as it was before the app first changed it included, so any version can be
looked up (and a prompt restored).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from promptdeck.errors import FileConflictError

MISSING = "missing"  # the fingerprint of a file that does not exist (yet)
ORIGINAL = "original"  # the history's action for the file as it was before the app saved it


class NotUTF8(ValueError):
    """Bytes that are not UTF-8 text: `line` (from 1) and `byte` (offset from 0) say where,
    `value` is the byte itself."""

    def __init__(self, line: int, byte: int, value: int) -> None:
        self.line = line
        self.byte = byte
        self.value = value
        super().__init__(f"line {line}, {self.detail}")

    @property
    def detail(self) -> str:
        """The message without its line, for errors that show the line themselves."""
        return f"byte {self.byte}: not UTF-8 text (0x{self.value:02x}); save the file as UTF-8"

    def __reduce__(self) -> tuple[object, ...]:  # pickles with its fields (st.cache_data)
        return (NotUTF8, (self.line, self.byte, self.value))


def decode_text(raw: bytes, *, keep_bom: bool = False, lossy: bool = False) -> str:
    """Bytes as UTF-8 text, without the byte-order mark that editors on Windows add; NotUTF8
    says where they are not UTF-8. `keep_bom` keeps the mark (as "\\ufeff") for writing the
    file back as it was; `lossy` shows bad bytes as "\\ufffd" instead of raising, which is for
    showing a file only, never for saving it."""
    encoding = "utf-8" if keep_bom else "utf-8-sig"
    try:
        return raw.decode(encoding, errors="replace" if lossy else "strict")
    except UnicodeDecodeError as exc:
        # utf-8-sig reports offsets in the bytes after the mark: count from the file's start
        start = exc.start + len(raw) - len(exc.object)
        raise NotUTF8(raw.count(b"\n", 0, start) + 1, start, raw[start]) from None


def read_text(path: Path) -> str:
    """A workspace file as text; NotUTF8 says where it is not UTF-8, and a file that cannot
    be read is a ValueError too ("cannot read: ..."), so a loader catches one error type."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read: {exc.strerror}") from None
    return decode_text(raw)


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
    """The file's text and fingerprint; NotUTF8 if it is not UTF-8 text."""
    raw = path.read_bytes()
    return Loaded(path, decode_text(raw), fingerprint(raw))


def outside(path: Path, root: Path) -> Path | None:
    """Where `path` really is (links followed) when that is outside `root`, else None. The
    app writes only inside the workspace: a linked folder or file may be read, not written."""
    target = path.resolve()
    return None if target.is_relative_to(root.resolve()) else target


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


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold the folder's lock while a file in it is checked and replaced, so two saves of
    one file (two tabs, two app processes, the CLI) cannot both pass the check: the second
    then sees the first's write and is refused. An advisory flock on the folder itself: no
    lock file appears among the user's files."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def check_unchanged(path: Path, expected: str) -> bytes | None:
    """The file's bytes (None if it does not exist) if it still has the fingerprint `expected`;
    else FileConflictError with the text on disk now. MISSING expects no file."""
    try:
        raw: bytes | None = path.read_bytes()
    except FileNotFoundError:
        raw = None
    if (MISSING if raw is None else fingerprint(raw)) != expected:
        disk = "" if raw is None else decode_text(raw, lossy=True)  # shown in a diff only
        raise FileConflictError(path, disk_text=disk, deleted=raw is None)
    return raw


def save_if_unchanged(path: Path, data: bytes | str, expected: str) -> str:
    """Write `data` only if the file still has the fingerprint it was loaded with.

    `expected` is MISSING for a new file, which then must not exist yet."""
    with folder_lock(path.parent):
        check_unchanged(path, expected)
        return atomic_write(path, data)


class History(Protocol):
    """What a versioned write needs of the store (promptdeck.store.db.Store has it)."""

    def versions(self, path: str, limit: int = ..., *, content: bool = ...) -> Sequence[object]: ...

    def add_version(
        self, path: str, name: str, action: str, content: str, fingerprint: str
    ) -> object: ...


def save_versioned(
    store: History, path: Path, key: str, name: str, text: str, expected: str, *, action: str
) -> str:
    """Write `text` like save_if_unchanged and record it in the history under `key` (the file's
    name there) as `action`; returns the new fingerprint. Before the app first changes a file
    that has no history yet, the file as it is is recorded as "original", so it can be looked
    up again; a refused save records nothing."""
    with folder_lock(path.parent):
        raw = check_unchanged(path, expected)
        if raw is not None and not store.versions(key, limit=1, content=False):
            # with the mark, if any: the recorded text is the file byte for byte
            store.add_version(key, name, ORIGINAL, decode_text(raw, keep_bom=True), expected)
        new = atomic_write(path, text)
        store.add_version(key, name, action, text, new)
    return new


def delete_versioned(
    store: History, path: Path, key: str, name: str, expected: str, *, action: str
) -> None:
    """Remove the file if it is still as loaded (`expected`); its last text is recorded first
    as `action`, so it can be restored. NotUTF8 if that text cannot be kept."""
    with folder_lock(path.parent):
        raw = check_unchanged(path, expected)
        if raw is None:  # expected to be gone, and it is
            return
        store.add_version(key, name, action, decode_text(raw, keep_bom=True), expected)
        path.unlink()
