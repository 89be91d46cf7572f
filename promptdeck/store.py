"""The SQLite store (WAL): every call made, and the feedback on it.

Schema changes are numbered migrations, applied in order and recorded in
`PRAGMA user_version`. Each write commits at once, so nothing finished is lost.
API keys are never stored: only rendered messages, parameters and results.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from promptdeck.call import CallResult
from promptdeck.providers.base import ChatRequest

MIGRATIONS: Sequence[str] = (
    # 1: the Playground's calls and thumbs
    """
    CREATE TABLE calls (
        id INTEGER PRIMARY KEY,
        created TEXT NOT NULL,
        source TEXT NOT NULL,
        variant TEXT,
        model TEXT NOT NULL,
        request_json TEXT NOT NULL,
        output TEXT NOT NULL,
        error TEXT,
        error_kind TEXT,
        ttft_ms REAL,
        latency_ms REAL NOT NULL,
        input_tokens INTEGER,
        output_tokens INTEGER,
        tokens_estimated INTEGER NOT NULL DEFAULT 0,
        cost_usd REAL,
        attempts INTEGER NOT NULL DEFAULT 1
    );
    CREATE TABLE feedback (
        id INTEGER PRIMARY KEY,
        created TEXT NOT NULL,
        call_id INTEGER REFERENCES calls(id),
        thumbs INTEGER CHECK (thumbs IN (-1, 1)),
        note TEXT
    );
    CREATE UNIQUE INDEX feedback_call ON feedback(call_id);
    """,
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Store:
    """A thread-safe handle on the SQLite file; opens one connection per thread."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path).resolve()  # threads open their own connections later
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connect().execute("PRAGMA journal_mode=WAL")  # not allowed inside a transaction
        with self._tx() as db:
            migrate(db)

    def _connect(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = self._connect()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    def record_call(
        self, result: CallResult, request: ChatRequest, *, source: str, variant: str | None
    ) -> int:
        usage = result.usage
        with self._tx() as db:
            cur = db.execute(
                """INSERT INTO calls (created, source, variant, model, request_json, output,
                   error, error_kind, ttft_ms, latency_ms, input_tokens, output_tokens,
                   tokens_estimated, cost_usd, attempts)
                   VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
                (
                    _now(),
                    source,
                    variant,
                    result.model_ref,
                    request_json(request),
                    result.text,
                    result.error,
                    result.error_kind,
                    result.ttft_ms,
                    result.latency_ms,
                    usage.input_tokens if usage else None,
                    usage.output_tokens if usage else None,
                    int(bool(usage and usage.estimated)),
                    result.cost_usd,
                    result.attempts,
                ),
            )
            return int(cur.lastrowid or 0)

    def set_thumbs(self, call_id: int, thumbs: int | None) -> None:
        """Thumbs up (1), down (-1) or cleared (None) on one stored call."""
        with self._tx() as db:
            if thumbs is None:
                db.execute("DELETE FROM feedback WHERE call_id = ?", (call_id,))
                return
            db.execute(
                """INSERT INTO feedback (created, call_id, thumbs) VALUES (?,?,?)
                   ON CONFLICT(call_id) DO UPDATE SET thumbs = excluded.thumbs,
                   created = excluded.created""",
                (_now(), call_id, thumbs),
            )

    def thumbs(self, call_id: int) -> int | None:
        row = (
            self._connect()
            .execute("SELECT thumbs FROM feedback WHERE call_id = ?", (call_id,))
            .fetchone()
        )
        return None if row is None else int(row["thumbs"])

    def recent_calls(self, limit: int = 20) -> list[Mapping[str, Any]]:
        rows = self._connect().execute(
            """SELECT c.*, f.thumbs FROM calls c LEFT JOIN feedback f ON f.call_id = c.id
               ORDER BY c.id DESC LIMIT ?""",
            (limit,),
        )
        return [dict(r) for r in rows]


def request_json(request: ChatRequest) -> str:
    return json.dumps(
        {
            "model": request.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "params": dict(request.params),
        },
        sort_keys=True,
        ensure_ascii=False,
    )


def migrate(db: sqlite3.Connection) -> int:
    """Apply the migrations this database has not seen; returns the new version."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    for number, sql in enumerate(MIGRATIONS[version:], start=version + 1):
        for statement in filter(str.strip, sql.split(";")):
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {number}")
    return len(MIGRATIONS)
