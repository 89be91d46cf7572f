import os
import subprocess
import sys
from pathlib import Path

import pytest

from promptdeck.errors import FileConflictError
from promptdeck.store.sqlite import Store
from promptdeck.workspace.fileio import (
    MISSING,
    atomic_write,
    fingerprint,
    fingerprint_file,
    load_for_edit,
    save_if_unchanged,
)


def test_save_writes_when_the_file_is_as_loaded(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("model: local/smollm2\n")
    loaded = load_for_edit(path)
    new = save_if_unchanged(path, "model: local/other\n", loaded.fingerprint)
    assert path.read_text() == "model: local/other\n"
    assert new == fingerprint("model: local/other\n") == fingerprint_file(path)


def test_save_refuses_a_file_changed_since_it_was_loaded(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("one\n")
    loaded = load_for_edit(path)
    path.write_text("changed by git pull\n")
    with pytest.raises(FileConflictError) as info:
        save_if_unchanged(path, "mine\n", loaded.fingerprint)
    assert info.value.disk_text == "changed by git pull\n"
    assert not info.value.deleted
    assert "changed on disk" in str(info.value)
    assert path.read_text() == "changed by git pull\n"


def test_save_refuses_a_deleted_file_and_an_existing_new_one(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("one\n")
    loaded = load_for_edit(path)
    path.unlink()
    with pytest.raises(FileConflictError) as info:
        save_if_unchanged(path, "mine\n", loaded.fingerprint)
    assert info.value.deleted
    assert not path.exists()
    path.write_text("someone else's\n")
    with pytest.raises(FileConflictError):
        save_if_unchanged(path, "mine\n", MISSING)  # creating must not clobber


def test_atomic_write_keeps_permissions(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("x\n")
    path.chmod(0o640)
    atomic_write(path, "y\n")
    assert path.stat().st_mode & 0o777 == 0o640
    assert (
        atomic_write(tmp_path / "new.csv", "z")
        and (tmp_path / "new.csv").stat().st_mode & 0o777 == 0o644
    )


# A process killed in the middle of writing: the writer has written half of the new bytes to
# the temporary file when it dies. The target must still hold the old content, whole.
_CRASHER = """
import os, sys
from pathlib import Path
from promptdeck.workspace import fileio

real_fsync = os.fsync
def die(fd):
    os._exit(9)   # killed after the bytes were written, before the rename
os.fsync = die
fileio.atomic_write(Path(sys.argv[1]), "new content that never lands\\n" * 1000)
"""


def test_a_crash_mid_write_leaves_the_old_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "variant.yaml"
    path.write_text("old: content\n")
    proc = subprocess.run(
        [sys.executable, "-c", _CRASHER, str(path)], cwd=Path(__file__).parents[2], check=False
    )
    assert proc.returncode == 9
    assert path.read_text() == "old: content\n"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "variant.yaml"]
    assert all(
        name.startswith(".variant.yaml.") for name in leftovers
    )  # hidden temp, not a variant
    assert os.listdir(tmp_path).count("variant.yaml") == 1


def test_store_keeps_versions_and_settings(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    first = store.add_version("prompts/t/a.yaml", "t/a", "save", "v1", fingerprint("v1"))
    store.add_version("prompts/t/a.yaml", "t/a", "save", "v2", fingerprint("v2"))
    store.add_version("prompts/t/b.yaml", "t/b", "create", "b", fingerprint("b"))
    assert [v["content"] for v in store.versions("prompts/t/a.yaml")] == ["v2", "v1"]
    assert store.version(first)["content"] == "v1"  # type: ignore[index]
    assert store.get_setting("judge_model", "local/smollm2") == "local/smollm2"
    store.set_setting("judge_model", "openai/gpt-4o-mini")
    store.set_setting("concurrency", 4)
    store.set_setting("concurrency", 6)
    assert store.settings() == {"judge_model": "openai/gpt-4o-mini", "concurrency": 6}
