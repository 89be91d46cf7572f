"""The two databases the store runs on, behind one small interface.

SQLite       the default: one file under PROMPTDECK_HOME (WAL), one connection per thread
PostgreSQL   `PROMPTDECK_DATABASE_URL=postgresql://…`: a shared server, psycopg 3 and its pool

The store's SQL is written once, with `?` placeholders, in the subset both databases speak
(upserts with ON CONFLICT, RETURNING). An engine translates the rest: placeholders and, in
the numbered migrations, the two column types that differ (an auto-numbered id; REAL, a
4-byte float in PostgreSQL). A URL's password is never shown: `location` masks it, and every
connection error is re-worded without it.
"""

from __future__ import annotations

import atexit
import re
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlsplit

from promptdeck.errors import ConfigError, StoreError

if TYPE_CHECKING:  # psycopg is imported only when a PostgreSQL URL is used
    import psycopg
    from psycopg_pool import ConnectionPool

Row = Mapping[str, Any]
POSTGRES_SCHEMES = ("postgresql", "postgres")
MIGRATION_LOCK = 0x70D0  # pg_advisory_xact_lock key: one process migrates at a time


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...
    def fetchmany(self, size: int) -> list[Any]: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Db(ABC):
    """One connection, as the store uses it: rows read by column name."""

    @abstractmethod
    def execute(self, sql: str, params: Sequence[object] = ()) -> Cursor: ...

    @abstractmethod
    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None: ...


class Engine(ABC):
    name: str
    location: str  # for people: a file path, or the URL with its password masked

    @abstractmethod
    def read(self) -> AbstractContextManager[Db]:
        """A connection for reading; sees every transaction committed before it."""

    @abstractmethod
    def tx(self) -> AbstractContextManager[Db]:
        """A transaction: committed at the end of the block, rolled back on an error."""

    @abstractmethod
    def schema_version(self, db: Db) -> int: ...

    @abstractmethod
    def set_schema_version(self, db: Db, version: int) -> None: ...

    @abstractmethod
    def ddl(self, statement: str) -> str:
        """A migration statement in this engine's dialect."""

    @abstractmethod
    def lock_schema(self, db: Db) -> None:
        """Keeps other processes out of the migrations until this transaction ends."""

    @abstractmethod
    def after_copy(self, db: Db, table: str) -> None:
        """Rows with their ids were copied into `table`: new rows must number after them."""

    @abstractmethod
    def close(self) -> None: ...

    def migrate(self, migrations: Sequence[str]) -> tuple[int, int]:
        """Applies the migrations this database has not seen, in one transaction.
        Returns (version before, version after)."""
        with self.tx() as db:
            self.lock_schema(db)
            before = self.schema_version(db)
            if before > len(migrations):
                raise ConfigError(
                    f"the database at {self.location} has schema version {before}, newer than "
                    f"this PromptDeck ({len(migrations)}): update PromptDeck"
                )
            for number, sql in enumerate(migrations[before:], start=before + 1):
                for statement in filter(str.strip, sql.split(";")):
                    db.execute(self.ddl(statement))
                self.set_schema_version(db, number)
        return before, len(migrations)


def open_engine(target: Path | str, *, existing: bool = False) -> Engine:
    """`postgresql://…` (or `postgres://…`) opens PostgreSQL; `sqlite:///path` or a plain
    path opens SQLite, creating the file unless `existing` is asked for."""
    text = str(target)
    scheme = text.partition("://")[0].lower() if "://" in text else ""
    if scheme in POSTGRES_SCHEMES:
        return Postgres(text)
    if scheme and scheme != "sqlite":
        raise ConfigError(
            f"unknown database URL scheme {scheme!r} in {mask_url(text)}: use "
            "postgresql://user:password@host:port/db or sqlite:///path/to/file.sqlite"
        )
    path = Path(sqlite_path(text) if scheme else text)
    if existing and not path.is_file():
        raise ConfigError(f"no SQLite store at {path}")
    return SQLite(path)


def sqlite_path(url: str) -> str:
    """`sqlite:///relative/file` and `sqlite:////absolute/file` (SQLAlchemy's form)."""
    path = url.partition("://")[2]
    if not path.startswith("/") or path == "/":
        raise ConfigError(f"{url!r} names no file: write sqlite:///path/to/file.sqlite")
    return unquote(path[1:])


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***, for messages and pages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


# --- SQLite -------------------------------------------------------------------------------


class _SQLiteDb(Db):
    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        return self.connection.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        self.connection.executemany(sql, rows)


class SQLite(Engine):
    """One file, WAL; each thread opens its own connection. Writers take the file's lock at
    the start of their transaction (BEGIN IMMEDIATE), so they queue instead of failing."""

    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path.resolve()
        self.location = str(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._db().connection.execute("PRAGMA journal_mode=WAL")  # not inside a transaction

    def _db(self) -> _SQLiteDb:
        db: _SQLiteDb | None = getattr(self._local, "db", None)
        if db is None:
            connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA foreign_keys=ON")
            connection.execute("PRAGMA synchronous=NORMAL")
            db = self._local.db = _SQLiteDb(connection)
        return db

    @contextmanager
    def read(self) -> Iterator[Db]:
        yield self._db()

    @contextmanager
    def tx(self) -> Iterator[Db]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def lock_schema(self, db: Db) -> None:
        """BEGIN IMMEDIATE has taken the file's write lock already."""

    def schema_version(self, db: Db) -> int:
        return int(db.execute("PRAGMA user_version").fetchone()[0])

    def after_copy(self, db: Db, table: str) -> None:
        """An INTEGER PRIMARY KEY numbers new rows after the largest id by itself."""

    def set_schema_version(self, db: Db, version: int) -> None:
        db.execute(f"PRAGMA user_version = {int(version)}")

    def ddl(self, statement: str) -> str:
        return statement

    def close(self) -> None:
        db: _SQLiteDb | None = getattr(self._local, "db", None)
        if db is not None:
            db.connection.close()
            self._local.db = None


# --- PostgreSQL ---------------------------------------------------------------------------

_DDL = (
    (
        re.compile(r"\bINTEGER PRIMARY KEY\b"),
        "INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    ),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
)


@lru_cache(maxsize=512)
def _placeholders(sql: str) -> str:
    """`?` -> `%s`. The store's SQL has no `%` and no `?` inside a string literal."""
    if "%" in sql:
        raise ValueError(f"a % in store SQL would be read as a placeholder: {sql}")
    return sql.replace("?", "%s")


def _pg_value(value: object) -> object:
    """PostgreSQL text cannot hold NUL: an untrusted answer's NUL becomes U+FFFD."""
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


class _PostgresDb(Db):
    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.connection = connection

    def execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        values = [_pg_value(v) for v in params]
        return self.connection.execute(_placeholders(sql), values)

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        values = [[_pg_value(v) for v in row] for row in rows]
        if values:
            with self.connection.cursor() as cursor:
                cursor.executemany(_placeholders(sql), values)


class Postgres(Engine):
    """A PostgreSQL server shared by the team's app processes and CLI runs. Each
    transaction borrows a connection from the pool; row locks and ON CONFLICT keep
    concurrent writers (other machines included) correct."""

    name = "postgresql"
    POOL_SIZE = 16  # the runner's writer threads and the app's sessions share it
    WAIT_S = 10.0  # for a free connection (or a server to come back) before a StoreError

    def __init__(self, url: str) -> None:
        import psycopg
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool, PoolTimeout

        self.url = url
        self.location = mask_url(url)
        with _POOLS_LOCK:
            pool = _POOLS.get(url)
            if pool is None or pool.closed:
                try:  # a direct connection first: its error says what is wrong, a pool's not
                    psycopg.connect(url, connect_timeout=10).close()
                except psycopg.Error as exc:
                    raise ConfigError(
                        f"cannot open the database at {self.location}: {self.without_password(exc)}"
                    ) from None
                pool = _POOLS[url] = ConnectionPool(
                    url,
                    min_size=1,
                    max_size=self.POOL_SIZE,
                    kwargs={"row_factory": dict_row},
                    timeout=self.WAIT_S,
                    # a connection the server dropped (restart, idle timeout) is replaced
                    # before use, not failed: one cheap round trip per checkout
                    check=ConnectionPool.check_connection,
                    num_workers=2,
                    name="promptdeck",
                    open=True,
                )
                _OPEN[url] = 0
            _OPEN[url] += 1
        self.pool: ConnectionPool[psycopg.Connection[Any]] = pool
        self._errors = (psycopg.OperationalError, PoolTimeout)
        self._closed = False

    def without_password(self, exc: BaseException) -> str:
        text = str(exc).strip()
        password = urlsplit(self.url).password
        for secret in filter(None, (password, password and unquote(password))):
            text = text.replace(str(secret), "***")
        return text

    @contextmanager
    def read(self) -> Iterator[Db]:
        with self.tx() as db:
            yield db

    @contextmanager
    def tx(self) -> Iterator[Db]:
        """A pooled connection; committed at the end, rolled back on an error. A server
        that went away is a StoreError (a broken connection is dropped from the pool, so
        the next call connects again)."""
        try:
            with self.pool.connection() as connection:
                yield _PostgresDb(connection)
        except self._errors as exc:
            raise StoreError(
                f"the run store at {self.location} cannot be reached: "
                f"{self.without_password(exc)}. What was stored before is kept."
            ) from None

    def lock_schema(self, db: Db) -> None:
        db.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
        db.execute("CREATE TABLE IF NOT EXISTS promptdeck_schema (version INTEGER NOT NULL)")

    def schema_version(self, db: Db) -> int:
        row = db.execute("SELECT version FROM promptdeck_schema").fetchone()
        return int(row["version"]) if row else 0

    def set_schema_version(self, db: Db, version: int) -> None:
        db.execute("DELETE FROM promptdeck_schema")
        db.execute("INSERT INTO promptdeck_schema (version) VALUES (?)", (version,))

    def after_copy(self, db: Db, table: str) -> None:
        identity = db.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name = ? AND is_identity = 'YES'",
            (table,),
        ).fetchall()
        for row in identity:
            column = row["column_name"]
            db.execute(
                f"SELECT setval(pg_get_serial_sequence(?, ?), MAX({column})) FROM {table}"
                f" HAVING MAX({column}) IS NOT NULL",
                (table, column),
            )

    def ddl(self, statement: str) -> str:
        for pattern, replacement in _DDL:
            statement = pattern.sub(replacement, statement)
        return statement

    def close(self) -> None:
        """Closes the pool when the last store open on this URL (in this process) closes."""
        with _POOLS_LOCK:
            if self._closed:
                return
            self._closed = True
            _OPEN[self.url] -= 1
            if _OPEN[self.url] > 0:
                return
            del _POOLS[self.url], _OPEN[self.url]
        self.pool.close()


# One pool per database URL and process, however many Store handles are opened on it; closed
# with the last of them, or at exit. (A pool left to the garbage collector may be collected
# by its own worker thread, which then cannot stop itself.)
_POOLS: dict[str, ConnectionPool[Any]] = {}
_OPEN: dict[str, int] = {}  # open engines per URL
_POOLS_LOCK = threading.Lock()


@atexit.register
def _close_pools() -> None:
    for pool in list(_POOLS.values()):
        pool.close(timeout=2)
