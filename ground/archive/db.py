"""One connection type over SQLite (stdlib ``sqlite3``) and PostgreSQL (psycopg 3), so the archive keeps
ONE schema and ONE set of queries for both.

Every statement is written once, with ``?`` placeholders and SQL both engines take (``ON CONFLICT ...
DO NOTHING`` / ``DO UPDATE``, ``BIGINT``, ``DOUBLE PRECISION``, ``TEXT``); :class:`Db` turns the
placeholders into psycopg's ``%s`` for PostgreSQL. Errors of either driver become
:class:`~framework.errors.StoreError` naming the database (never the password).

URLs: ``sqlite:///relative/path.sqlite`` (relative to ``base_dir``, the run's output directory),
``sqlite:////absolute/path.sqlite``, ``sqlite://:memory:``; ``postgresql://user@host:port/dbname``
(any libpq URL, ``postgres://`` too).
"""

from __future__ import annotations

import re
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence
from urllib.parse import urlsplit, urlunsplit

from framework.errors import StoreError

__all__ = ["Db", "open_db", "url_path", "redact"]

_PLACEHOLDER = re.compile(r"\?")


def redact(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def url_path(url: str, base_dir: Path) -> Path | None:
    """The file of a ``sqlite://`` URL (relative ones under ``base_dir``); None for memory or PostgreSQL."""
    if not url.startswith("sqlite://"):
        return None
    rest = url[len("sqlite://"):]
    if rest in ("", ":memory:", "/:memory:"):
        return None
    if not rest.startswith("/"):
        raise StoreError(f"archive url {url!r}: write sqlite:///relative/path or sqlite:////absolute/path")
    rest = rest[1:]
    return Path(rest) if rest.startswith("/") else base_dir / rest


class Db:
    """A connection in autocommit mode; :meth:`transaction` groups statements. ``dialect``: sqlite|postgresql."""

    def __init__(self, conn: Any, dialect: str, name: str) -> None:
        self._conn = conn
        self.dialect = dialect
        self.name = name
        self._depth = 0

    def _sql(self, sql: str) -> str:
        return _PLACEHOLDER.sub("%s", sql) if self.dialect == "postgresql" else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""
        try:
            cur = self._conn.execute(self._sql(sql), tuple(params))
            return int(cur.rowcount)
        except (sqlite3.Error, _pg_errors()) as exc:
            raise StoreError(f"archive {self.name}: {exc}".strip()) from None

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = [tuple(r) for r in rows]
        if not rows:
            return
        try:
            if self.dialect == "postgresql":
                with self._conn.cursor() as cur:
                    cur.executemany(self._sql(sql), rows)
            else:
                self._conn.executemany(sql, rows)
        except (sqlite3.Error, _pg_errors()) as exc:
            raise StoreError(f"archive {self.name}: {exc}".strip()) from None

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return [tuple(r) for r in self._conn.execute(self._sql(sql), tuple(params)).fetchall()]
        except (sqlite3.Error, _pg_errors()) as exc:
            raise StoreError(f"archive {self.name}: {exc}".strip()) from None

    def script(self, statements: Iterable[str]) -> None:
        with self.transaction():
            for s in statements:
                self.execute(s)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing (nested calls join the outer transaction)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._depth = 1
        try:
            if self.dialect == "postgresql":
                with self._conn.transaction():
                    yield
            else:
                self.execute("BEGIN IMMEDIATE")
                try:
                    yield
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self.execute("COMMIT")
        except _pg_errors() as exc:
            raise StoreError(f"archive {self.name}: {exc}".strip()) from None
        finally:
            self._depth = 0

    def close(self) -> None:
        try:
            self._conn.close()
        except (sqlite3.Error, _pg_errors()):
            pass


def _pg_errors() -> type[Exception]:
    try:
        import psycopg
    except ImportError:  # without psycopg no PostgreSQL connection exists to raise its errors
        return sqlite3.Error
    return psycopg.Error


def open_db(url: str, base_dir: Path, *, readonly: bool = False) -> Db:
    """Connect to the archive at ``url``; StoreError (naming it, password hidden) if that fails."""
    if url.startswith("sqlite://"):
        path = url_path(url, base_dir)
        try:
            if path is None:
                conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            elif readonly:
                if not path.exists():
                    raise StoreError(f"no archive at {path}")
                conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=10,
                                       check_same_thread=False)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(path, isolation_level=None, timeout=10, check_same_thread=False)
                # operators read while the station writes; the archive is rebuilt from the ledger after a
                # crash (ground.archive.feed), so NORMAL durability is enough here
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the archive {url}: {exc}") from None
        return Db(conn, "sqlite", str(path or ":memory:"))
    if url.startswith(("postgresql://", "postgres://")):
        try:
            import psycopg
        except ImportError:
            raise StoreError("a postgresql:// archive needs psycopg: pip install 'lunar-pdh[postgres]'") from None
        try:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to the archive {redact(url)}: {exc}".strip()) from None
        if readonly:
            conn.read_only = True
        return Db(conn, "postgresql", redact(url))
    raise StoreError(f"archive url {url!r}: expected sqlite:///... or postgresql://...")
