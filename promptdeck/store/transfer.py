"""Moving a history from one store to another (`promptdeck db copy`): a laptop's SQLite
file into the team's PostgreSQL, or a team database into a file.

Both stores are brought to the current schema first, so their tables have the same columns.
The copy is one transaction on the target (all or nothing), keeps every id (feedback points
at calls, calls at Playground runs), moves the target's id counters past the copied ids, and
checks the row counts at the end. The target must be empty: merging two histories would
renumber ids and is not done.
"""

from __future__ import annotations

from promptdeck.errors import ConfigError
from promptdeck.store.db import Store

# Parents before children, so every foreign key points at a row already copied.
TABLES = (
    "runs",
    "playground_runs",
    "calls",
    "feedback",
    "results",
    "scores",
    "cache",
    "file_versions",
    "settings",
)
BATCH = 2000


def copy_store(source: Store, target: Store) -> dict[str, int]:
    """Copies every row of `source` into the empty `target`; returns rows per table."""
    if source.location == target.location:
        raise ConfigError(f"--from and --to are the same store ({source.location})")
    filled = {t: n for t, n in target.row_counts(TABLES).items() if n}
    if filled:
        listed = ", ".join(f"{t} ({n})" for t, n in filled.items())
        raise ConfigError(
            f"the target {target.location} is not empty: {listed}. Copy into a new, empty "
            "database (merging two histories would renumber their ids)"
        )
    with target._engine.tx() as out:
        for table in TABLES:
            with source._engine.read() as db:
                cursor = db.execute(f"SELECT * FROM {table}")
                while rows := cursor.fetchmany(BATCH):  # a batch of Python rows at a time
                    columns = list(dict(rows[0]))
                    out.executemany(
                        f"INSERT INTO {table} ({', '.join(columns)})"
                        f" VALUES ({', '.join('?' * len(columns))})",
                        [tuple(dict(r).values()) for r in rows],
                    )
            target._engine.after_copy(out, table)
    copied = target.row_counts(TABLES)
    expected = source.row_counts(TABLES)
    if copied != expected:  # never expected; says so rather than claiming a copy
        raise ConfigError(f"the copy is incomplete: {copied} rows, expected {expected}")
    return copied
