import sqlite3
import threading
from pathlib import Path

from promptdeck.model.types import CallResult, ChatRequest, Message, Usage
from promptdeck.store.sqlite import MIGRATIONS, Store


def request() -> ChatRequest:
    return ChatRequest("smollm2", (Message("user", "Where is my order?"),), {"max_tokens": 5})


def result(text: str = "On its way.") -> CallResult:
    return CallResult("local/smollm2", text, Usage(12, 4), 80.0, 300.0, 0.0)


def test_migrates_to_latest_in_wal_mode(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    db = sqlite3.connect(tmp_path / "s.sqlite")
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    store.close()
    Store(tmp_path / "s.sqlite").close()  # re-opening applies nothing twice


def test_record_call_and_thumbs(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    call_id = store.record_call(result(), request(), source="playground", variant="support/x")
    assert store.thumbs(call_id) is None
    store.set_thumbs(call_id, 1)
    store.set_thumbs(call_id, -1)
    assert store.thumbs(call_id) == -1
    [row] = store.recent_calls()
    assert (row["variant"], row["output"], row["input_tokens"], row["thumbs"]) == (
        "support/x",
        "On its way.",
        12,
        -1,
    )
    assert '"Where is my order?"' in row["request_json"]
    store.set_thumbs(call_id, None)
    assert store.thumbs(call_id) is None
    store.close()


def test_writes_from_many_threads(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")

    def write(i: int) -> None:
        store.record_call(result(str(i)), request(), source="t", variant=None)
        store.close()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r["output"] for r in store.recent_calls(20)) == [str(i) for i in range(8)]
    store.close()


def test_human_review_of_a_cell(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    run_id = store.create_run({"x": 1}, name="t", total_cells=1)
    store.review_cell(run_id, "r1", "v", 0, score=2.0, note="misses the refund window")
    store.review_cell(run_id, "r1", "v", 0, score=3.0, thumbs=1)
    store.review_cell(run_id, "r2", "v", 1, thumbs=-1)
    assert store.score_overrides(run_id) == {("r1", "v", 0): 3.0}
    reviews = store.reviews(run_id)
    assert (reviews[("r1", "v", 0)]["thumbs"], reviews[("r2", "v", 1)]["thumbs"]) == (1, -1)
    store.close()


def test_a_live_run_is_never_resumed_by_another_process(tmp_path: Path) -> None:
    import subprocess
    import sys

    store = Store(tmp_path / "s.sqlite")
    live = store.create_run({"fingerprint": "f"}, name="t", total_cells=1)
    store.set_run_status(live, "running")  # owned by this (live) process
    assert store.find_unfinished_run("f") is None
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    db = sqlite3.connect(tmp_path / "s.sqlite")
    owner = f"{__import__('socket').gethostname()}:{dead.stdout.strip()}"
    db.execute("UPDATE runs SET owner = ? WHERE id = ?", (owner, live))
    db.commit()
    db.close()
    assert store.find_unfinished_run("f") == live  # its process is gone: resume it
    store.set_run_status(live, "done")
    assert store.find_unfinished_run("f") is None
    store.close()
