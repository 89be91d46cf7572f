"""The run store: Playground calls, eval runs and their results, scores, feedback, file
history, settings and the response cache, on SQLite (default) or PostgreSQL (team use).

Schema changes are numbered migrations, the same for both engines (`migrations.py`).
Each write commits at once (a cell with its scores in one transaction), so nothing finished
is lost. Every write is stamped with the acting user (`acting_as`). API keys are never
stored: only rendered messages, parameters and results.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import socket
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from promptdeck.errors import ConfigError
from promptdeck.model.types import (
    CallResult,
    ChatRequest,
    ToolCall,
    ToolStep,
    Usage,
    request_json,
)
from promptdeck.scoring.scorers import Score
from promptdeck.store.engines import Db, Engine, open_engine
from promptdeck.store.migrations import MIGRATIONS
from promptdeck.store.rows import (
    CallRow,
    CellKey,
    CellRecord,
    PlaygroundRunRow,
    ResultRow,
    ReviewRow,
    RunRecord,
    ScoreRow,
    VersionRow,
    steps_json,
)

LIVE_RUN_S = 60.0  # a run of another machine that stored nothing for this long is dead
BEAT_S = LIVE_RUN_S / 4  # how often a running run says it is alive
OWNER = f"{socket.gethostname()}:{os.getpid()}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def upsert(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    """INSERT of every column; a row with the same key is replaced (both engines)."""
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    )


def _columns(names: str) -> tuple[str, ...]:
    return tuple(names.split())


RESULT_COLUMNS = _columns(
    "run_id row_id variant repeat category model output error error_kind ttft_ms latency_ms"
    " input_tokens output_tokens tokens_estimated cost_usd cached fallback_used attempts created"
    " confidence tool_calls_json thinking thinking_ms reasoning_tokens"
)
SCORE_COLUMNS = _columns(
    "run_id row_id variant repeat scorer value passed reason judge_model raw prompt_json"
    " latency_ms cost_usd cached"
)
CACHE_COLUMNS = _columns(
    "key created model output ttft_ms latency_ms input_tokens output_tokens tokens_estimated"
    " cost_usd confidence tool_calls_json thinking thinking_ms reasoning_tokens signature"
)
CELL = ("run_id", "row_id", "variant", "repeat")


class Store:
    """A thread-safe handle on the store. `Store(path)` opens SQLite, `Store(url)` with a
    `postgresql://` URL opens PostgreSQL (`engines.open_engine`)."""

    def __init__(self, target: Path | str, *, existing: bool = False) -> None:
        self._engine: Engine = open_engine(target, existing=existing)
        self.engine = self._engine.name
        self.location = self._engine.location  # a file path, or the URL without its password
        self.author: str | None = None  # who the writes of this handle are stamped with
        self.migrated = self._engine.migrate(MIGRATIONS)

    def acting_as(self, author: str | None) -> Store:
        """This store (same connections), stamping `author` on every write it makes."""
        handle = copy.copy(self)
        handle.author = author
        return handle

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[dict[str, Any]]:
        with self._engine.read() as db:
            return [dict(row) for row in db.execute(sql, params).fetchall()]

    def _read_one(self, sql: str, params: Sequence[object] = ()) -> dict[str, Any] | None:
        rows = self._read(sql, params)
        return rows[0] if rows else None

    def _tx(self) -> Any:
        return self._engine.tx()

    def close(self) -> None:
        self._engine.close()

    def row_counts(self, tables: Sequence[str]) -> dict[str, int]:
        """Rows per table (`tables`: the store's own table names, never user input)."""
        with self._engine.read() as db:
            return {
                t: int(db.execute(f"SELECT COUNT(*) AS n FROM {t}").fetchone()["n"]) for t in tables
            }

    def record_call(
        self,
        result: CallResult,
        request: ChatRequest,
        *,
        source: str,
        variant: str | None,
        fallback_used: bool = False,
        playground_run: int | None = None,
        steps: tuple[ToolStep, ...] = (),
    ) -> int:
        with self._tx() as db:
            row = db.execute(
                """INSERT INTO calls (created, source, variant, model, request_json, output,
                   error, error_kind, ttft_ms, latency_ms, input_tokens, output_tokens,
                   tokens_estimated, cost_usd, attempts, fallback_used, playground_run,
                   tool_calls_json, thinking, thinking_ms, reasoning_tokens, author)
                   VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id""",
                (
                    _now(),
                    source,
                    variant,
                    result.model_ref,
                    request_json(request),
                    result.text,
                    result.error,
                    result.error_kind,
                    *_measured(result),
                    result.attempts,
                    int(fallback_used),
                    playground_run,
                    steps_json(steps),
                    *_thought(result),
                    self.author,
                ),
            ).fetchone()
            return int(row["id"])

    def new_playground_run(
        self,
        columns: Sequence[str],
        inputs: Mapping[str, object],
        overrides: Mapping[str, object],
    ) -> int:
        """A press of Run in the Playground; its calls point to it (`record_call`)."""
        with self._tx() as db:
            row = db.execute(
                """INSERT INTO playground_runs (created, columns_json, inputs_json,
                   overrides_json, author) VALUES (?,?,?,?,?) RETURNING id""",
                (
                    _now(),
                    json.dumps(list(columns)),
                    json.dumps(dict(inputs), default=str),
                    json.dumps(dict(overrides)),
                    self.author,
                ),
            ).fetchone()
            return int(row["id"])

    def playground_runs(self, limit: int = 30) -> list[PlaygroundRunRow]:
        """The latest Playground runs that made at least one call, newest first."""
        rows = self._read(
            """SELECT p.* FROM playground_runs p
               WHERE EXISTS (SELECT 1 FROM calls WHERE playground_run = p.id)
               ORDER BY p.id DESC LIMIT ?""",
            (limit,),
        )
        return [cast(PlaygroundRunRow, r) for r in rows]

    def playground_calls(self, run_id: int) -> list[CallRow]:
        """The calls of one Playground run, in the order they finished."""
        rows = self._read(
            """SELECT c.*, f.thumbs FROM calls c LEFT JOIN feedback f ON f.call_id = c.id
               WHERE c.playground_run = ? ORDER BY c.id""",
            (run_id,),
        )
        return [cast(CallRow, r) for r in rows]

    def set_thumbs(self, call_id: int, thumbs: int | None) -> None:
        """Thumbs up (1), down (-1) or cleared (None) on one stored call."""
        with self._tx() as db:
            if thumbs is None:
                db.execute("DELETE FROM feedback WHERE call_id = ?", (call_id,))
                return
            db.execute(
                """INSERT INTO feedback (created, call_id, thumbs, author) VALUES (?,?,?,?)
                   ON CONFLICT(call_id) DO UPDATE SET thumbs = excluded.thumbs,
                   created = excluded.created, author = excluded.author""",
                (_now(), call_id, thumbs, self.author),
            )

    def thumbs(self, call_id: int) -> int | None:
        row = self._read_one("SELECT thumbs FROM feedback WHERE call_id = ?", (call_id,))
        return None if row is None else int(row["thumbs"])

    def recent_calls(self, limit: int = 20) -> list[CallRow]:
        rows = self._read(
            """SELECT c.*, f.thumbs FROM calls c LEFT JOIN feedback f ON f.call_id = c.id
               ORDER BY c.id DESC LIMIT ?""",
            (limit,),
        )
        return [cast(CallRow, r) for r in rows]

    # --- eval runs ---------------------------------------------------------------------

    def create_run(self, snapshot: Mapping[str, Any], *, name: str, total_cells: int) -> str:
        run_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
        with self._tx() as db:
            now = _now()  # owned and alive from the start: never taken for a dead run
            db.execute(
                "INSERT INTO runs (id, created, status, name, snapshot_json, total_cells,"
                " author, owner, heartbeat) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    run_id,
                    now,
                    "running",
                    name,
                    json.dumps(snapshot),
                    total_cells,
                    self.author,
                    OWNER,
                    now,
                ),
            )
        return run_id

    def update_run_plan(
        self, run_id: str, snapshot: Mapping[str, Any], *, total_cells: int
    ) -> None:
        """A run that grows (run until decided): its snapshot and cell count as they are now."""
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET snapshot_json = ?, total_cells = ?, heartbeat = ? WHERE id = ?",
                (json.dumps(snapshot), total_cells, _now(), run_id),
            )

    def beat(self, run_id: str) -> None:
        """The run's process is alive (the runner calls it every BEAT_S while it runs), so
        that a slow cell never makes it look dead to another machine."""
        with self._tx() as db:
            db.execute("UPDATE runs SET heartbeat = ? WHERE id = ?", (_now(), run_id))

    def set_run_status(self, run_id: str, status: str) -> None:
        finished = _now() if status in ("done", "cancelled", "failed") else None
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET status = ?, finished = ?, heartbeat = ?, owner = ? WHERE id = ?",
                (status, finished, _now(), OWNER, run_id),
            )

    def get_run(self, run_id: str) -> RunRecord:
        """A run by id; 'latest' is the newest."""
        if run_id == "latest":
            row = self._read_one("SELECT * FROM runs ORDER BY created DESC, id DESC LIMIT 1")
        else:
            row = self._read_one("SELECT * FROM runs WHERE id = ?", (run_id,))
        if row is None:
            raise ConfigError(f"no run {run_id!r} in {self.location}")
        return RunRecord.from_row(row)

    def claim_unfinished_run(self, fingerprint: str) -> str | None:
        """The newest run of the same plan that did not finish (killed or cancelled) and
        that no live process is running, now claimed by this process. The claim is a
        compare-and-set on the owner and heartbeat it read, so of two processes that find
        the same dead run at once (two machines, one database), one resumes it."""
        rows = self._read(
            """SELECT id, snapshot_json, status, owner, heartbeat FROM runs
               WHERE status != 'done' ORDER BY created DESC"""
        )
        for row in rows:
            if json.loads(row["snapshot_json"]).get("fingerprint") != fingerprint:
                continue
            if row["status"] == "running" and _alive(row["owner"], row["heartbeat"]):
                continue
            with self._tx() as db:
                claimed = db.execute(
                    """UPDATE runs SET status = 'running', owner = ?, heartbeat = ?
                       WHERE id = ? AND COALESCE(owner, '') = ? AND COALESCE(heartbeat, '') = ?""",
                    (OWNER, _now(), row["id"], row["owner"] or "", row["heartbeat"] or ""),
                ).rowcount
            if claimed:
                return str(row["id"])
        return None

    def list_runs(self, limit: int = 50) -> list[RunRecord]:
        rows = self._read("SELECT * FROM runs ORDER BY created DESC, id DESC LIMIT ?", (limit,))
        return [RunRecord.from_row(r) for r in rows]

    def add_result(self, run_id: str, cell: CellRecord, scores: Sequence[Score]) -> None:
        """One finished cell and its scores, committed together at once."""
        r = cell.result
        with self._tx() as db:
            db.execute(
                upsert("results", RESULT_COLUMNS, CELL),
                (
                    run_id,
                    cell.row_id,
                    cell.variant,
                    cell.repeat,
                    cell.category,
                    r.model_ref,
                    r.text,
                    r.error,
                    r.error_kind,
                    *_measured(r),
                    int(cell.cached),
                    int(cell.fallback_used),
                    r.attempts,
                    _now(),
                    r.confidence,
                    steps_json(cell.steps),
                    *_thought(r),
                ),
            )
            self._insert_scores(db, run_id, cell.row_id, cell.variant, cell.repeat, scores)
            db.execute("UPDATE runs SET heartbeat = ? WHERE id = ?", (_now(), run_id))

    def add_scores(
        self, run_id: str, row_id: str, variant: str, repeat: int, scores: Sequence[Score]
    ) -> None:
        with self._tx() as db:
            self._insert_scores(db, run_id, row_id, variant, repeat, scores)

    @staticmethod
    def _insert_scores(
        db: Db,
        run_id: str,
        row_id: str,
        variant: str,
        repeat: int,
        scores: Sequence[Score],
    ) -> None:
        db.executemany(
            upsert("scores", SCORE_COLUMNS, (*CELL, "scorer")),
            [
                (
                    run_id,
                    row_id,
                    variant,
                    repeat,
                    s.scorer,
                    s.value,
                    None if s.passed is None else int(s.passed),
                    s.reason,
                    s.judge_model,
                    s.raw,
                    s.prompt_json,
                    s.latency_ms,
                    s.cost_usd,
                    int(s.cached),
                )
                for s in scores
            ],
        )

    def done_cells(self, run_id: str) -> set[CellKey]:
        rows = self._read("SELECT row_id, variant, repeat FROM results WHERE run_id = ?", (run_id,))
        return {(r["row_id"], r["variant"], int(r["repeat"])) for r in rows}

    def results(self, run_id: str) -> list[ResultRow]:
        rows = self._read(
            "SELECT * FROM results WHERE run_id = ? ORDER BY created, row_id, variant, repeat",
            (run_id,),
        )
        return [cast(ResultRow, r) for r in rows]

    def scores(self, run_id: str) -> list[ScoreRow]:
        rows = self._read("SELECT * FROM scores WHERE run_id = ?", (run_id,))
        return [cast(ScoreRow, r) for r in rows]

    def review_cell(
        self,
        run_id: str,
        row_id: str,
        variant: str,
        repeat: int,
        *,
        score: float | None = None,
        thumbs: int | None = None,
        note: str | None = None,
    ) -> None:
        """Replaces the human review of one cell: a score overriding the judge, thumbs, a note."""
        with self._tx() as db:
            db.execute(
                """INSERT INTO feedback (created, run_id, row_id, variant, repeat,
                   score_override, thumbs, note, author) VALUES (?,?,?,?,?,?,?,?,?)
                   ON CONFLICT(run_id, row_id, variant, repeat) WHERE run_id IS NOT NULL
                   DO UPDATE SET score_override = excluded.score_override,
                   thumbs = excluded.thumbs, note = excluded.note, created = excluded.created,
                   author = excluded.author""",
                (_now(), run_id, row_id, variant, repeat, score, thumbs, note, self.author),
            )

    def reviews(self, run_id: str) -> dict[CellKey, ReviewRow]:
        rows = self._read(
            """SELECT row_id, variant, repeat, score_override, thumbs, note, created, author
               FROM feedback WHERE run_id = ?""",
            (run_id,),
        )
        return {(r["row_id"], r["variant"], int(r["repeat"])): cast(ReviewRow, r) for r in rows}

    def run_version(self, run_id: str) -> tuple[object, ...]:
        """A cheap stamp that changes whenever what a run shows can: a new cell or score,
        a human review (upserts renew `created`), the run's status. Equal stamps, equal
        analysis: the Results page caches a run's analysis under it."""
        rows = self._read(
            """SELECT (SELECT COUNT(*) FROM results WHERE run_id = ?) AS cells,
                      (SELECT MAX(created) FROM results WHERE run_id = ?) AS last_cell,
                      (SELECT COUNT(*) FROM scores WHERE run_id = ?) AS scores,
                      (SELECT COUNT(*) FROM feedback WHERE run_id = ?) AS reviews,
                      (SELECT MAX(created) FROM feedback WHERE run_id = ?) AS last_review,
                      (SELECT status FROM runs WHERE id = ?) AS status""",
            (run_id,) * 6,
        )
        row = rows[0]
        return tuple(
            row[k] for k in ("cells", "last_cell", "scores", "reviews", "last_review", "status")
        )

    def score_overrides(self, run_id: str) -> dict[CellKey, float]:
        return {
            key: float(r["score_override"])
            for key, r in self.reviews(run_id).items()
            if r["score_override"] is not None
        }

    def typical_latency_ms(self, model_ref: str) -> float | None:
        """Median latency of this model's recent real (uncached, successful) answers."""
        rows = self._read(
            """SELECT latency_ms FROM (
                 SELECT latency_ms, created FROM results
                  WHERE model = ? AND error IS NULL AND cached = 0
                 UNION ALL
                 SELECT latency_ms, created FROM calls WHERE model = ? AND error IS NULL
               ) AS answers ORDER BY created DESC LIMIT 200""",
            (model_ref, model_ref),
        )
        values = sorted(float(r["latency_ms"]) for r in rows if r["latency_ms"] is not None)
        return values[len(values) // 2] if values else None

    # --- response cache -------------------------------------------------------------------

    def cache_get(self, key: str) -> CallResult | None:
        row = self._read_one("SELECT * FROM cache WHERE key = ?", (key,))
        if row is None:
            return None
        usage = None
        if row["input_tokens"] is not None:
            estimated = bool(row["tokens_estimated"])
            usage = Usage(
                row["input_tokens"], row["output_tokens"], estimated, row["reasoning_tokens"]
            )
        calls = json.loads(row["tool_calls_json"]) if row["tool_calls_json"] else []
        return CallResult(
            row["model"],
            row["output"],
            usage,
            row["ttft_ms"],
            row["latency_ms"],
            row["cost_usd"],
            confidence=row["confidence"],
            tool_calls=tuple(ToolCall(c["id"], c["name"], c["arguments"]) for c in calls),
            thinking=row["thinking"],
            thinking_ms=row["thinking_ms"],
            signature=row["signature"],
        )

    def cache_put(self, key: str, result: CallResult) -> None:
        with self._tx() as db:
            db.execute(
                upsert("cache", CACHE_COLUMNS, ("key",)),
                (
                    key,
                    _now(),
                    result.model_ref,
                    result.text,
                    *_measured(result),
                    result.confidence,
                    _calls_json(result.tool_calls),
                    *_thought(result),
                    result.signature,
                ),
            )

    def cache_clear(self) -> int:
        with self._tx() as db:
            return int(db.execute("DELETE FROM cache").rowcount)

    def cache_size(self) -> int:
        row = self._read_one("SELECT COUNT(*) AS n FROM cache")
        return int(row["n"]) if row else 0

    # --- file history and settings ------------------------------------------------------

    def add_version(self, path: str, name: str, action: str, content: str, fingerprint: str) -> int:
        """Record one saved version of a workspace file (`path` relative to the workspace)."""
        with self._tx() as db:
            row = db.execute(
                "INSERT INTO file_versions (saved, path, name, action, content, fingerprint,"
                " author) VALUES (?,?,?,?,?,?,?) RETURNING id",
                (_now(), path, name, action, content, fingerprint, self.author),
            ).fetchone()
            return int(row["id"])

    def versions(self, path: str, limit: int = 100, *, content: bool = True) -> list[VersionRow]:
        """Saved versions of one file, newest first. Without `content` their text is "": a
        dataset's version may be a hundred megabytes (`version` reads one with its text)."""
        text = "content" if content else "'' AS content"
        rows = self._read(
            f"SELECT id, saved, path, name, action, {text}, fingerprint, author"
            " FROM file_versions WHERE path = ? ORDER BY id DESC LIMIT ?",
            (path, limit),
        )
        return [cast(VersionRow, r) for r in rows]

    def last_versions(self, prefix: str) -> list[VersionRow]:
        """The newest version of every file whose path starts with `prefix`, newest first."""
        rows = self._read(
            "SELECT * FROM file_versions WHERE id IN (SELECT MAX(id) FROM file_versions"
            " WHERE substr(path, 1, ?) = ? GROUP BY path) ORDER BY id DESC",
            (len(prefix), prefix),
        )
        return [cast(VersionRow, r) for r in rows]

    def version(self, version_id: int) -> VersionRow | None:
        row = self._read_one("SELECT * FROM file_versions WHERE id = ?", (version_id,))
        return cast(VersionRow, row) if row else None

    def get_setting(self, key: str, default: Any = None) -> Any:
        row = self._read_one("SELECT value_json FROM settings WHERE key = ?", (key,))
        return json.loads(row["value_json"]) if row else default

    def set_setting(self, key: str, value: Any) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO settings (key, value_json, updated) VALUES (?, ?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value_json = excluded.value_json,"
                " updated = excluded.updated",
                (key, json.dumps(value), _now()),
            )

    def settings(self) -> dict[str, Any]:
        rows = self._read("SELECT key, value_json FROM settings")
        return {r["key"]: json.loads(r["value_json"]) for r in rows}


def _alive(owner: str | None, heartbeat: str | None) -> bool:
    """Is the process that runs this run still there? Exact on this machine (its pid),
    by the heartbeat's age for another machine sharing the store."""
    host, _, pid = (owner or "").rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # it exists, it is just not ours
        return True
    if heartbeat is None:
        return False
    age = datetime.now(UTC) - datetime.fromisoformat(heartbeat)
    return age < timedelta(seconds=LIVE_RUN_S)


def _measured(result: CallResult) -> tuple[object, ...]:
    """ttft_ms, latency_ms, input_tokens, output_tokens, tokens_estimated, cost_usd: the
    measured columns of a call, in the order every table lists them."""
    usage = result.usage
    return (
        result.ttft_ms,
        result.latency_ms,
        usage.input_tokens if usage else None,
        usage.output_tokens if usage else None,
        int(bool(usage and usage.estimated)),
        result.cost_usd,
    )


def _thought(result: CallResult) -> tuple[object, ...]:
    """thinking, thinking_ms, reasoning_tokens: what a reasoning model adds to a call."""
    reasoning = result.usage.reasoning_tokens if result.usage else None
    return (result.thinking, result.thinking_ms, reasoning)


def _calls_json(calls: tuple[ToolCall, ...]) -> str | None:
    if not calls:
        return None
    return json.dumps(
        [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls], ensure_ascii=False
    )
