"""Numbered schema migrations of the store, applied in order, the same on both engines.

SQLite's `PRAGMA user_version`, or PostgreSQL's `promptdeck_schema` table, records how many
have run (`engines.Engine.migrate`). Written in the SQL both speak; the engine translates
the two column types that differ. Never edit a migration that has shipped: append a new one.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    # 2: eval runs, one result per (row, variant, repeat), scores, and the response cache
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        created TEXT NOT NULL,
        status TEXT NOT NULL,
        name TEXT NOT NULL,
        snapshot_json TEXT NOT NULL,
        total_cells INTEGER NOT NULL,
        finished TEXT
    );
    CREATE TABLE results (
        run_id TEXT NOT NULL REFERENCES runs(id),
        row_id TEXT NOT NULL,
        variant TEXT NOT NULL,
        repeat INTEGER NOT NULL DEFAULT 0,
        category TEXT NOT NULL DEFAULT '',
        model TEXT NOT NULL,
        output TEXT NOT NULL,
        error TEXT,
        error_kind TEXT,
        ttft_ms REAL,
        latency_ms REAL,
        input_tokens INTEGER,
        output_tokens INTEGER,
        tokens_estimated INTEGER NOT NULL DEFAULT 0,
        cost_usd REAL,
        cached INTEGER NOT NULL DEFAULT 0,
        fallback_used INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 1,
        created TEXT NOT NULL,
        PRIMARY KEY (run_id, row_id, variant, repeat)
    );
    CREATE TABLE scores (
        run_id TEXT NOT NULL REFERENCES runs(id),
        row_id TEXT NOT NULL,
        variant TEXT NOT NULL,
        repeat INTEGER NOT NULL DEFAULT 0,
        scorer TEXT NOT NULL,
        value REAL,
        passed INTEGER,
        reason TEXT NOT NULL DEFAULT '',
        judge_model TEXT,
        raw TEXT,
        PRIMARY KEY (run_id, row_id, variant, repeat, scorer)
    );
    CREATE TABLE cache (
        key TEXT PRIMARY KEY,
        created TEXT NOT NULL,
        model TEXT NOT NULL,
        output TEXT NOT NULL,
        ttft_ms REAL,
        latency_ms REAL,
        input_tokens INTEGER,
        output_tokens INTEGER,
        tokens_estimated INTEGER NOT NULL DEFAULT 0,
        cost_usd REAL
    );
    ALTER TABLE feedback ADD COLUMN run_id TEXT REFERENCES runs(id);
    ALTER TABLE feedback ADD COLUMN row_id TEXT;
    ALTER TABLE feedback ADD COLUMN variant TEXT;
    ALTER TABLE feedback ADD COLUMN score_override REAL
    """,
    # 3: a judge's call is auditable from its score: the prompt, latency and cost
    """
    ALTER TABLE scores ADD COLUMN prompt_json TEXT;
    ALTER TABLE scores ADD COLUMN latency_ms REAL;
    ALTER TABLE scores ADD COLUMN cost_usd REAL;
    ALTER TABLE scores ADD COLUMN cached INTEGER NOT NULL DEFAULT 0
    """,
    # 4: answer confidence (from token logprobs); human review of one eval cell
    """
    ALTER TABLE results ADD COLUMN confidence REAL;
    ALTER TABLE cache ADD COLUMN confidence REAL;
    ALTER TABLE feedback ADD COLUMN repeat INTEGER NOT NULL DEFAULT 0;
    CREATE UNIQUE INDEX feedback_cell ON feedback(run_id, row_id, variant, repeat)
        WHERE run_id IS NOT NULL
    """,
    # 5: who runs a run and when it last stored something, so that a second process never
    # resumes a run that is still going
    """
    ALTER TABLE runs ADD COLUMN heartbeat TEXT;
    ALTER TABLE runs ADD COLUMN owner TEXT
    """,
    # 6: every save of a workspace file from the UI (prompt variants, datasets), so any
    # earlier version can be restored; and the workspace's settings from the Settings page
    """
    CREATE TABLE file_versions (
        id INTEGER PRIMARY KEY,
        saved TEXT NOT NULL,
        path TEXT NOT NULL,
        name TEXT NOT NULL,
        action TEXT NOT NULL,
        content TEXT NOT NULL,
        fingerprint TEXT NOT NULL
    );
    CREATE INDEX file_versions_path ON file_versions(path, id);
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value_json TEXT NOT NULL,
        updated TEXT NOT NULL
    )
    """,
    # 7: a Playground call that the variant's fallback answered is marked, as an eval cell
    # is; failures are named by ErrorKind everywhere (exception class names become kinds)
    """
    ALTER TABLE calls ADD COLUMN fallback_used INTEGER NOT NULL DEFAULT 0;
    UPDATE results SET error_kind = 'config' WHERE error_kind IN ('ConfigError',
        'PromptFileError', 'DatasetError', 'CheckConfigError', 'FileConflictError');
    UPDATE results SET error_kind = 'template' WHERE error_kind = 'TemplateError';
    UPDATE calls SET error_kind = 'config' WHERE error_kind IN ('ConfigError',
        'PromptFileError', 'DatasetError', 'CheckConfigError', 'FileConflictError');
    UPDATE calls SET error_kind = 'template' WHERE error_kind = 'TemplateError'
    """,
    # 8: the Playground's history: each press of Run, with its inputs and the overrides of
    # the variants' params, and the calls it made
    """
    CREATE TABLE playground_runs (
        id INTEGER PRIMARY KEY,
        created TEXT NOT NULL,
        columns_json TEXT NOT NULL,
        inputs_json TEXT NOT NULL,
        overrides_json TEXT NOT NULL
    );
    ALTER TABLE calls ADD COLUMN playground_run INTEGER REFERENCES playground_runs(id)
    """,
    # 9: tools, thinking and reasoning tokens. `tool_calls_json` of a result or a Playground
    # call is its turn's tool steps [{name, arguments, result[, error]}]; of a cached answer,
    # the calls the model made [{id, name, arguments}], replayed as they came
    """
    ALTER TABLE results ADD COLUMN tool_calls_json TEXT;
    ALTER TABLE results ADD COLUMN thinking TEXT NOT NULL DEFAULT '';
    ALTER TABLE results ADD COLUMN thinking_ms REAL;
    ALTER TABLE results ADD COLUMN reasoning_tokens INTEGER;
    ALTER TABLE calls ADD COLUMN tool_calls_json TEXT;
    ALTER TABLE calls ADD COLUMN thinking TEXT NOT NULL DEFAULT '';
    ALTER TABLE calls ADD COLUMN thinking_ms REAL;
    ALTER TABLE calls ADD COLUMN reasoning_tokens INTEGER;
    ALTER TABLE cache ADD COLUMN tool_calls_json TEXT;
    ALTER TABLE cache ADD COLUMN thinking TEXT NOT NULL DEFAULT '';
    ALTER TABLE cache ADD COLUMN thinking_ms REAL;
    ALTER TABLE cache ADD COLUMN reasoning_tokens INTEGER;
    ALTER TABLE cache ADD COLUMN signature TEXT NOT NULL DEFAULT ''
    """,
    # 10: a team shares one store: who started a run or a Playground run, made a call,
    # reviewed a cell or saved a file (the signed-in user; the CLI's is PROMPTDECK_USER or
    # the login name). The Playground's history reads calls by their run.
    """
    ALTER TABLE runs ADD COLUMN author TEXT;
    ALTER TABLE playground_runs ADD COLUMN author TEXT;
    ALTER TABLE calls ADD COLUMN author TEXT;
    ALTER TABLE feedback ADD COLUMN author TEXT;
    ALTER TABLE file_versions ADD COLUMN author TEXT;
    CREATE INDEX calls_playground_run ON calls(playground_run)
    """,
)
