import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from promptdeck.errors import ConfigError, DatasetError, FileConflictError, PromptFileError
from promptdeck.store.db import Store
from promptdeck.workspace.dataset_edit import load_table
from promptdeck.workspace.datasets import append_case, load_dataset
from promptdeck.workspace.fileio import (
    MISSING,
    NotUTF8,
    atomic_write,
    decode_text,
    delete_versioned,
    fingerprint,
    fingerprint_file,
    load_for_edit,
    read_text,
    save_if_unchanged,
    save_versioned,
)
from promptdeck.workspace.prompt_edit import PromptFiles
from promptdeck.workspace.prompts import load_variant
from promptdeck.workspace.providers_file import load_providers_file, set_local_model_path


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


# --- the one decoder ------------------------------------------------------------------------

LATIN1 = "a: 1\nb: café\n".encode("latin-1")  # é is the byte 0xe9 at offset 11, on line 2
WHERE = "byte 11: not UTF-8 text (0xe9); save the file as UTF-8"


@pytest.mark.parametrize(
    ("raw", "line", "byte"),
    [
        (LATIN1, 2, 11),
        (b"\xef\xbb\xbf" + LATIN1, 2, 14),  # offsets count the byte-order mark
        (b"\xff\xfeu\x00", 1, 0),  # UTF-16
    ],
)
def test_decode_text_says_where_the_bytes_are_not_utf8(raw: bytes, line: int, byte: int) -> None:
    with pytest.raises(NotUTF8) as info:
        decode_text(raw)
    assert (info.value.line, info.value.byte, info.value.value) == (line, byte, raw[byte])
    assert str(info.value) == (
        f"line {line}, byte {byte}: not UTF-8 text (0x{raw[byte]:02x}); save the file as UTF-8"
    )
    assert str(pickle.loads(pickle.dumps(info.value))) == str(info.value)


def test_decode_text_drops_or_keeps_the_byte_order_mark() -> None:
    raw = "\ufeffa: é\n".encode()
    assert decode_text(raw) == "a: é\n"
    assert decode_text(raw, keep_bom=True) == "\ufeffa: é\n"
    assert decode_text(LATIN1, lossy=True) == "a: 1\nb: caf\ufffd\n"


def test_read_text_is_one_error_type_for_a_loader(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as gone:
        read_text(tmp_path / "gone.yaml")
    assert str(gone.value) == "cannot read: No such file or directory"
    (tmp_path / "a.yaml").write_bytes(LATIN1)
    with pytest.raises(NotUTF8) as bad:
        read_text(tmp_path / "a.yaml")
    assert str(bad.value) == f"line 2, {WHERE}"


def _prompt_loaded(root: Path) -> Exception:
    path = root / "prompts" / "t" / "v.yaml"
    with pytest.raises(PromptFileError) as info:
        load_variant(path, root / "prompts")
    assert info.value.line == 2
    return info.value


def _prompt_edited(root: Path) -> Exception:
    with pytest.raises(PromptFileError) as info:
        PromptFiles(root / "prompts", Store(root / "s.sqlite")).load("t/v")
    assert info.value.line == 2
    return info.value


def _dataset_loaded(root: Path) -> Exception:
    with pytest.raises(DatasetError) as info:
        load_dataset(root / "datasets" / "d.csv")
    return info.value


def _dataset_edited(root: Path) -> Exception:
    with pytest.raises(DatasetError) as info:
        load_table(root / "datasets" / "d.csv")
    return info.value


def _case_appended(root: Path) -> Exception:
    with pytest.raises(DatasetError) as info:
        append_case(root / "datasets" / "d.csv", {"input": "hi"})
    assert (root / "datasets" / "d.csv").read_bytes() == LATIN1
    return info.value


def _providers_loaded(root: Path) -> Exception:
    with pytest.raises(ConfigError) as info:
        load_providers_file(root / "providers.yaml")
    return info.value


def _providers_edited(root: Path) -> Exception:
    with pytest.raises(ConfigError, match=r"\(it was not changed\)$") as info:
        set_local_model_path(root / "providers.yaml", "")
    assert (root / "providers.yaml").read_bytes() == LATIN1
    return info.value


@pytest.mark.parametrize(
    ("file", "reader", "where"),
    [
        ("prompts/t/v.yaml", _prompt_loaded, "v.yaml, line 2: "),
        ("prompts/t/v.yaml", _prompt_edited, "v.yaml, line 2: "),
        ("datasets/d.csv", _dataset_loaded, "d.csv: line 2, "),
        ("datasets/d.csv", _dataset_edited, "d.csv: line 2, "),
        ("datasets/d.csv", _case_appended, "d.csv: line 2, "),
        (
            "providers.yaml",
            _providers_loaded,
            "providers.yaml: cannot read providers file: line 2, ",
        ),
        ("providers.yaml", _providers_edited, "providers.yaml: line 2, "),
    ],
)
def test_a_bad_byte_is_reported_alike_in_every_file(
    tmp_path: Path, file: str, reader: Callable[[Path], Exception], where: str
) -> None:
    path = tmp_path / file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(LATIN1)
    message = str(reader(tmp_path))
    assert f"{where}{WHERE}" in message and message.startswith(str(path))


def test_a_conflict_with_a_file_now_not_utf8_still_shows_it(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("one\n")
    loaded = load_for_edit(path)
    path.write_bytes(LATIN1)
    with pytest.raises(FileConflictError) as info:
        save_if_unchanged(path, "mine\n", loaded.fingerprint)
    assert info.value.disk_text == "a: 1\nb: caf\ufffd\n"
    assert path.read_bytes() == LATIN1


# --- the one versioned writer ---------------------------------------------------------------


def _actions(store: Store, key: str = "prompts/t/a.yaml") -> list[tuple[str, str]]:
    return [(v["action"], v["content"]) for v in reversed(store.versions(key))]


def test_the_original_is_recorded_once_before_the_first_save(tmp_path: Path) -> None:
    store, path = Store(tmp_path / "s.sqlite"), tmp_path / "a.yaml"
    path.write_bytes(b"\xef\xbb\xbfv1\n")  # with a byte-order mark: kept byte for byte
    fp = save_versioned(
        store, path, "prompts/t/a.yaml", "t/a", "v2\n", fingerprint_file(path), action="save"
    )
    fp = save_versioned(store, path, "prompts/t/a.yaml", "t/a", "v3\n", fp, action="edit")
    assert _actions(store) == [("original", "\ufeffv1\n"), ("save", "v2\n"), ("edit", "v3\n")]
    versions = store.versions("prompts/t/a.yaml")
    assert all(v["fingerprint"] == fingerprint(v["content"]) for v in versions)
    assert fp == fingerprint_file(path) and path.read_text() == "v3\n"


def test_a_refused_save_records_nothing(tmp_path: Path) -> None:
    store, path = Store(tmp_path / "s.sqlite"), tmp_path / "a.yaml"
    path.write_text("v1\n")
    loaded = load_for_edit(path)
    path.write_text("from git pull\n")
    with pytest.raises(FileConflictError):
        save_versioned(
            store, path, "prompts/t/a.yaml", "t/a", "mine\n", loaded.fingerprint, action="save"
        )
    assert _actions(store) == [] and path.read_text() == "from git pull\n"
    # saved again over what is really there: that is the original, recorded once
    again = load_for_edit(path)
    save_versioned(
        store, path, "prompts/t/a.yaml", "t/a", "mine\n", again.fingerprint, action="save"
    )
    assert _actions(store) == [("original", "from git pull\n"), ("save", "mine\n")]


def test_a_new_file_has_no_original(tmp_path: Path) -> None:
    store, path = Store(tmp_path / "s.sqlite"), tmp_path / "new.yaml"
    save_versioned(store, path, "prompts/t/a.yaml", "t/a", "v1\n", MISSING, action="create")
    with pytest.raises(FileConflictError):  # creating never overwrites
        save_versioned(store, path, "prompts/t/a.yaml", "t/a", "v2\n", MISSING, action="create")
    assert _actions(store) == [("create", "v1\n")] and path.read_text() == "v1\n"


def test_a_delete_keeps_the_last_text_and_is_refused_after_a_change(tmp_path: Path) -> None:
    store, path = Store(tmp_path / "s.sqlite"), tmp_path / "a.yaml"
    path.write_text("v1\n")
    loaded = load_for_edit(path)
    path.write_text("v2\n")
    with pytest.raises(FileConflictError):
        delete_versioned(
            store, path, "prompts/t/a.yaml", "t/a", loaded.fingerprint, action="delete"
        )
    assert path.exists() and _actions(store) == []
    delete_versioned(store, path, "prompts/t/a.yaml", "t/a", fingerprint("v2\n"), action="delete")
    assert not path.exists() and _actions(store) == [("delete", "v2\n")]
