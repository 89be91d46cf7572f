"""Two writers at once, as two browser tabs, two app processes or the CLI would be."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pytest

from promptdeck.errors import FileConflictError
from promptdeck.store.db import Store
from promptdeck.workspace.datasets import append_case, load_dataset
from promptdeck.workspace.prompt_edit import PromptFiles

ADDS = 40


def add_many(path: str, who: str) -> None:
    for i in range(ADDS):
        append_case(Path(path), {"input": f"{who} case {i}", "note": who})


def test_two_processes_adding_cases_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "datasets" / "cases.csv"
    path.parent.mkdir()
    path.write_text("id,input\nfirst,Hello\n")
    context = multiprocessing.get_context("spawn")  # separate interpreters, like two servers
    writers = [context.Process(target=add_many, args=(str(path), w)) for w in ("ann", "bob")]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(120)
        assert writer.exitcode == 0
    inputs = [case.values["input"] for case in load_dataset(path).cases]
    assert len(inputs) == 1 + 2 * ADDS and len(set(inputs)) == len(inputs)


@pytest.mark.parametrize(
    ("original", "ending", "bom"),
    [("id,input\r\na,Hi\r\n", b"\r\n", b""), ("\ufeffid,input\na,Hi\n", b"\n", b"\xef\xbb\xbf")],
    ids=["crlf", "bom"],
)
def test_adding_a_case_keeps_line_endings_and_the_mark(
    tmp_path: Path, original: str, ending: bytes, bom: bytes
) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(original.encode())
    append_case(path, {"input": "Hello"})
    raw = path.read_bytes()
    assert raw.startswith(bom + b"id,input") and raw.count(ending) == 3
    assert ending == b"\r\n" or b"\r" not in raw


def test_adding_to_a_linked_dataset_writes_its_target(tmp_path: Path) -> None:
    target = tmp_path / "ws" / "shared" / "d.csv"
    target.parent.mkdir(parents=True)
    target.write_text("id,input\na,Hi\n")
    link = tmp_path / "ws" / "datasets" / "d.csv"
    link.parent.mkdir()
    link.symlink_to(target)
    append_case(link, {"input": "Hello"}, root=tmp_path / "ws")
    assert link.is_symlink() and target.read_text().count("\n") == 3


def race(files: PromptFiles, name: str, texts: list[str], fingerprint: str) -> list[str]:
    """Save each text in its own thread, released together; what each save came to."""
    outcomes: list[str] = []
    barrier = threading.Barrier(len(texts))

    def save(text: str) -> None:
        barrier.wait()
        try:
            files.save(name, text, fingerprint)
            outcomes.append("saved")
        except FileConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=save, args=(text,)) for text in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


def test_two_saves_of_one_variant_at_once_only_one_wins(tmp_path: Path) -> None:
    (tmp_path / "prompts" / "t").mkdir(parents=True)
    (tmp_path / "prompts" / "t" / "v.yaml").write_text("model: local/smollm2\nuser: hi\n")
    files = PromptFiles(tmp_path / "prompts", Store(tmp_path / "s.sqlite"))
    for round_ in range(20):  # the race is short: try it many times
        loaded = files.load("t/v")
        texts = [f"model: local/smollm2\nuser: hi from tab {i}, round {round_}\n" for i in (1, 2)]
        assert race(files, "t/v", texts, loaded.fingerprint) == ["conflict", "saved"]
        assert (tmp_path / "prompts" / "t" / "v.yaml").read_text() in texts
