"""The SQLite migration runner: numbered ``.sql`` files applied in order, once each.

Each migration runs in its own ``BEGIN IMMEDIATE`` transaction together with its record in
``schema_migrations``, and the "already applied?" check happens inside that transaction,
so two server processes starting on one new file cannot both apply it.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from importlib import resources

from durable_workflow_server.storage._interface import SchemaTooNew

_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")


def known_migrations() -> list[tuple[int, str, str]]:
    """``(version, name, sql)`` of every packaged migration, in order."""
    folder = resources.files("durable_workflow_server.storage").joinpath("sql", "sqlite", "migrations")
    found: list[tuple[int, str, str]] = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort()
    return found


def _statements(sql: str) -> Iterator[str]:
    # executescript() would COMMIT our transaction first, so statements run one by one.
    buffer = ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer
            buffer = ""
    if buffer.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in buffer.splitlines()
    ):
        raise ValueError(f"incomplete SQL statement at the end of a migration: {buffer[:80]!r}")


def applied_versions(conn: sqlite3.Connection) -> list[int]:
    """Versions recorded in ``schema_migrations`` (empty for a new database)."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    return [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Apply every missing migration; return the versions applied now.

    Args:
        conn: a connection in autocommit mode (``isolation_level=None``).

    Returns:
        The versions applied by this call.

    Raises:
        SchemaTooNew: the database records a version this release does not know, so a newer
            release wrote it and running older code against it could corrupt data.
    """
    migrations = known_migrations()
    latest = migrations[-1][0] if migrations else 0
    applied: list[int] = []
    applied_versions(conn)
    for version, name, sql in migrations:
        conn.execute("BEGIN IMMEDIATE")
        try:
            done = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
            if done and max(done) > latest:
                raise SchemaTooNew(
                    f"database schema version {max(done)} is newer than this server knows ({latest}); "
                    "upgrade the server or use another database file"
                )
            if version not in done:
                for statement in _statements(sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (version, name, time.time()),
                )
                applied.append(version)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    if not migrations:
        done = applied_versions(conn)
        if done:
            raise SchemaTooNew(f"database schema version {max(done)} is newer than this server knows (0)")
    return applied
