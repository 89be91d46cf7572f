"""The store, on both engines: every test that takes `store_target` runs once on a SQLite
file and once on a fresh database of a real PostgreSQL server (tests/postgres.py)."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from promptdeck.errors import ConfigError, StoreError
from promptdeck.model.types import CallResult, ChatRequest, Message, ToolCall, ToolStep, Usage
from promptdeck.scoring.scorers import Score
from promptdeck.store.db import MIGRATIONS, Store
from promptdeck.store.engines import mask_url
from promptdeck.store.rows import CellRecord
from promptdeck.store.transfer import TABLES, copy_store
from tests.postgres import PostgresServer


def request() -> ChatRequest:
    return ChatRequest("smollm2", (Message("user", "Where is my order?"),), {"max_tokens": 5})


def result(text: str = "On its way.") -> CallResult:
    return CallResult("local/smollm2", text, Usage(12, 4, False, 2), 80.0, 300.0, 0.0015)


def cell(row_id: str, variant: str = "v", text: str = "On its way.") -> CellRecord:
    return CellRecord(row_id, variant, 0, "billing", result(text))


def judged(value: float) -> Score:
    return Score("judge", value, None, "polite", judge_model="local/smollm2", latency_ms=12.5)


def fill(store: Store) -> str:
    """One of everything: a Playground run and call with thumbs, an eval run with cells,
    scores and a review, a cached answer, a file version and a setting."""
    playground = store.new_playground_run(["a/b"], {"input": "hi"}, {})
    call = store.record_call(
        result(), request(), source="playground", variant="a/b", playground_run=playground
    )
    store.set_thumbs(call, 1)
    run_id = store.create_run({"fingerprint": "f"}, name="run", total_cells=2)
    store.add_result(run_id, cell("r1"), [judged(4.0)])
    store.add_result(run_id, cell("r2"), [judged(2.0), Score("max_chars", 1.0, True, "")])
    store.review_cell(run_id, "r2", "v", 0, score=3.0, note="fine")
    store.cache_put("key-1", result("cached"))
    store.add_version("prompts/a/b.yaml", "a/b", "save", "system: hi\n", "fp1")
    store.set_setting("concurrency", 4)
    store.set_run_status(run_id, "done")
    return run_id


def test_every_kind_of_record_round_trips(store_target: str) -> None:
    store = Store(store_target).acting_as("ann@acme.com")
    run_id = fill(store)
    [playground] = store.playground_runs()
    assert playground["author"] == "ann@acme.com"
    [call] = store.playground_calls(playground["id"])
    assert (call["output"], call["input_tokens"], call["thumbs"], call["author"]) == (
        "On its way.",
        12,
        1,
        "ann@acme.com",
    )
    assert call["cost_usd"] == 0.0015 and call["reasoning_tokens"] == 2  # a float stays exact
    record = store.get_run("latest")
    assert (record.id, record.status, record.author, record.total_cells) == (
        run_id,
        "done",
        "ann@acme.com",
        2,
    )
    assert [r["row_id"] for r in store.results(run_id)] == ["r1", "r2"]
    assert store.done_cells(run_id) == {("r1", "v", 0), ("r2", "v", 0)}
    assert sorted((s["row_id"], s["scorer"], s["value"]) for s in store.scores(run_id)) == [
        ("r1", "judge", 4.0),
        ("r2", "judge", 2.0),
        ("r2", "max_chars", 1.0),
    ]
    review = store.reviews(run_id)[("r2", "v", 0)]
    assert (review["score_override"], review["note"], review["author"]) == (
        3.0,
        "fine",
        "ann@acme.com",
    )
    assert store.score_overrides(run_id) == {("r2", "v", 0): 3.0}
    cached = store.cache_get("key-1")
    assert cached is not None and (cached.text, cached.usage) == ("cached", Usage(12, 4, False, 2))
    assert store.cache_size() == 1
    [version] = store.versions("prompts/a/b.yaml")
    assert (version["content"], version["author"]) == ("system: hi\n", "ann@acme.com")
    assert store.last_versions("prompts/") == [version] and store.last_versions("datasets/") == []
    assert store.settings() == {"concurrency": 4}
    assert store.typical_latency_ms("local/smollm2") == 300.0
    assert store.cache_clear() == 1 and store.cache_get("key-1") is None


def test_rewriting_a_cell_replaces_it_and_its_scores(store_target: str) -> None:
    store = Store(store_target)
    run_id = store.create_run({}, name="run", total_cells=1)
    store.add_result(run_id, cell("r1", text="first"), [judged(1.0)])
    store.add_result(run_id, cell("r1", text="second"), [judged(5.0)])
    assert [r["output"] for r in store.results(run_id)] == ["second"]
    assert [s["value"] for s in store.scores(run_id)] == [5.0]


def test_thumbs_set_changed_and_cleared(store_target: str) -> None:
    store = Store(store_target)
    call_id = store.record_call(result(), request(), source="playground", variant="support/x")
    assert store.thumbs(call_id) is None
    store.set_thumbs(call_id, 1)
    store.set_thumbs(call_id, -1)
    assert store.thumbs(call_id) == -1
    assert '"Where is my order?"' in store.recent_calls()[0]["request_json"]
    store.set_thumbs(call_id, None)
    assert store.thumbs(call_id) is None


def test_untrusted_text_is_stored_as_written(store_target: str) -> None:
    """Quotes, emoji and SQL-looking text round-trip; PostgreSQL text cannot hold NUL, so a
    NUL in an answer becomes U+FFFD there (SQLite keeps it)."""
    store = Store(store_target)
    text = "Robert'); DROP TABLE runs;-- \U0001f600 %s ? \x00end"
    steps = (ToolStep(0, "c1", "get_order", {"id": "A'1"}, "ok"),)
    run_id = store.create_run({"name": text}, name=text, total_cells=1)
    store.add_result(run_id, CellRecord("r'1", "v", 0, "", result(text), steps=steps), [])
    [row] = store.results(run_id)
    kept = text if store.engine == "sqlite" else text.replace("\x00", "\ufffd")
    assert (row["output"], row["row_id"], store.get_run(run_id).name) == (kept, "r'1", kept)
    assert json.loads(row["tool_calls_json"] or "")[0]["arguments"] == {"id": "A'1"}
    cached = CallResult("m/x", text, None, None, 1.0, None, tool_calls=(ToolCall("i", "f", "{}"),))
    store.cache_put("k", cached)
    assert (store.cache_get("k") or cached).tool_calls == cached.tool_calls


def test_writes_from_many_threads(store_target: str) -> None:
    store = Store(store_target)
    run_id = store.create_run({}, name="run", total_cells=40)

    def write(i: int) -> None:
        store.record_call(result(str(i)), request(), source="t", variant=None)
        for j in range(5):
            store.add_result(run_id, cell(f"{i}-{j}"), [judged(float(j))])

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r["output"] for r in store.recent_calls(20)) == [str(i) for i in range(8)]
    assert len(store.done_cells(run_id)) == 40 and len(store.scores(run_id)) == 40


def test_opening_again_migrates_nothing_and_processes_migrate_once(store_target: str) -> None:
    """Four processes open a new store at once: one applies the migrations, the others
    wait for it and find the schema current."""
    code = "import sys; from promptdeck.store.db import Store; print(Store(sys.argv[1]).migrated)"
    opened = [
        subprocess.Popen(
            [sys.executable, "-c", code, store_target], stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outcomes = sorted(p.communicate(timeout=120)[0].strip() for p in opened)
    assert all(p.returncode == 0 for p in opened)
    latest = len(MIGRATIONS)
    assert outcomes == [f"(0, {latest})"] + [f"({latest}, {latest})"] * 3
    assert Store(store_target).migrated == (latest, latest)


def test_a_live_run_is_never_resumed_and_a_dead_one_by_one_claimant(store_target: str) -> None:
    store = Store(store_target)
    live = store.create_run({"fingerprint": "f"}, name="t", total_cells=1)
    assert store.claim_unfinished_run("f") is None  # its process (this one) is alive
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with store._engine.tx() as db:
        dead = f"{socket.gethostname()}:{gone}"
        db.execute("UPDATE runs SET owner = ? WHERE id = ?", (dead, live))
    claims: list[str | None] = []
    threads = [
        threading.Thread(target=lambda: claims.append(store.claim_unfinished_run("f")))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claims, key=str) == [live] + [None] * 7  # its process is gone: one resumes it
    assert store.claim_unfinished_run("f") is None  # now this live process owns it
    store.set_run_status(live, "done")
    assert store.claim_unfinished_run("f") is None


def test_sqlite_is_a_wal_file_with_its_version(tmp_path: Path) -> None:
    Store(tmp_path / "s.sqlite").close()
    db = sqlite3.connect(tmp_path / "s.sqlite")
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_postgres_keeps_floats_and_numbers_ids(pg_url: str) -> None:
    """REAL is a 4-byte float in PostgreSQL: the migrations ask for double precision."""
    Store(pg_url)
    with psycopg.connect(pg_url) as db:
        types = dict(
            db.execute(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_name = 'results'"
            ).fetchall()
        )
        version = db.execute("SELECT version FROM promptdeck_schema").fetchone()
    assert types["cost_usd"] == types["latency_ms"] == "double precision"
    assert version == (len(MIGRATIONS),)


# --- copying a history (`promptdeck db copy`) ----------------------------------------------


def test_copy_moves_a_whole_history_and_new_ids_follow(tmp_path: Path, pg_url: str) -> None:
    laptop = Store(tmp_path / "laptop.sqlite").acting_as("ann")
    run_id = fill(laptop)
    team = Store(pg_url)
    counts = copy_store(laptop, team)
    assert counts == laptop.row_counts(TABLES)
    assert counts["results"] == 2 and counts["scores"] == 3 and counts["calls"] == 1
    assert team.results(run_id) == laptop.results(run_id)
    assert team.scores(run_id) == laptop.scores(run_id)
    assert team.reviews(run_id) == laptop.reviews(run_id)
    assert team.playground_calls(1) == laptop.playground_calls(1)
    # the copied ids are taken: new rows number after them
    assert team.record_call(result(), request(), source="t", variant=None) == 2
    assert team.add_version("prompts/x.yaml", "x", "save", "", "fp") == 2
    # back into a new file: the same history
    backup = Store(f"sqlite:///{tmp_path}/backup.sqlite")
    copy_store(team, backup)
    assert backup.results(run_id) == laptop.results(run_id)


def test_copy_refuses_a_target_that_has_a_history(tmp_path: Path, pg_url: str) -> None:
    laptop = Store(tmp_path / "laptop.sqlite")
    fill(laptop)
    team = Store(pg_url)
    team.create_run({}, name="theirs", total_cells=0)
    with pytest.raises(ConfigError, match=r"is not empty: runs \(1\)"):
        copy_store(laptop, team)
    assert team.row_counts(["results"]) == {"results": 0}  # nothing was written


# --- connection errors never show the password ---------------------------------------------


def test_a_wrong_password_or_a_closed_port_is_named_without_the_password(
    postgres_server: PostgresServer,
) -> None:
    wrong = postgres_server.url().replace(postgres_server.password, "pw-" + "x" * 20)
    with pytest.raises(ConfigError) as refused:
        Store(wrong)
    message = str(refused.value)
    assert "password authentication failed" in message and "x" * 20 not in message
    assert mask_url(wrong) in message

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    down = f"postgresql://pd:{postgres_server.password}@127.0.0.1:{closed}/db"
    with pytest.raises(ConfigError) as unreachable:
        Store(down)
    assert postgres_server.password not in str(unreachable.value)
    assert f"postgresql://pd:***@127.0.0.1:{closed}/db" in str(unreachable.value)


@pytest.mark.parametrize(
    ("target", "fault"),
    [
        ("mysql://u:p@h/db", r"unknown database URL scheme .mysql. in mysql://u:\*\*\*@h/db"),
        ("sqlite://", "names no file"),
    ],
)
def test_a_bad_database_url_says_what_to_write(target: str, fault: str) -> None:
    with pytest.raises(ConfigError, match=fault):
        Store(target)


def test_a_server_that_drops_the_connections_is_reconnected_and_one_that_is_gone_named(
    postgres_server: PostgresServer,
) -> None:
    """A restart (every connection dropped) costs nothing: the pool replaces dropped
    connections before use. A database that is gone is a StoreError naming the store."""
    url = postgres_server.new_database()
    store = Store(url)
    run_id = store.create_run({}, name="kept", total_cells=1)
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(postgres_server.url(), autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        assert store.get_run(run_id).name == "kept"  # on a fresh connection
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    with pytest.raises(StoreError) as gone:
        store.get_run(run_id)
    assert f"the run store at {mask_url(url)} cannot be reached" in str(gone.value)
    assert postgres_server.password not in str(gone.value)
    store.close()


def test_closing_one_store_leaves_the_others_on_the_same_url_open(pg_url: str) -> None:
    first, second = Store(pg_url), Store(pg_url)
    first.close()
    first.close()  # twice: still counted once
    assert second.list_runs() == []
    second.close()
