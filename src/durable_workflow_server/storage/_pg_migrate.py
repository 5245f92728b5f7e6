"""The PostgreSQL migration runner: numbered ``.sql`` files applied in order, once each.

Each migration runs in its own transaction together with its row in ``schema_migrations``
(PostgreSQL DDL is transactional, so a failed migration leaves nothing half-applied). Every
transaction first takes a transaction-scoped advisory lock, so that several server nodes
starting at once on a new database apply each migration exactly once: the others wait, then
see it recorded.
"""

from __future__ import annotations

import re
import time
from importlib import resources
from typing import Any

from durable_workflow_server.storage._interface import SchemaTooNew

_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")
#: First key of the advisory lock (the second is the schema's hash): an arbitrary constant
#: that names "durable-workflow migrations" among other users of advisory locks.
_LOCK_CLASS = 0x4457


def known_migrations() -> list[tuple[int, str, str]]:
    """``(version, name, sql)`` of every packaged migration, in order."""
    folder = resources.files("durable_workflow_server.storage").joinpath("sql", "postgres", "migrations")
    found: list[tuple[int, str, str]] = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort()
    return found


async def _lock(conn: Any) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))", _LOCK_CLASS)
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
    )


async def applied_versions(conn: Any) -> list[int]:
    """Versions recorded in ``schema_migrations`` (empty for a new database)."""
    async with conn.transaction():
        await _lock(conn)
        rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
    return [int(r[0]) for r in rows]


def _too_new(found: int, latest: int) -> SchemaTooNew:
    return SchemaTooNew(
        f"database schema version {found} is newer than this server knows ({latest}); "
        "upgrade the server, or point --db at another database"
    )


async def migrate(conn: Any) -> list[int]:
    """Apply every missing migration; return the versions applied now.

    Args:
        conn: an asyncpg connection (not in a transaction).

    Returns:
        The versions applied by this call.

    Raises:
        SchemaTooNew: the database records a version this release does not know, so a newer
            release wrote it and running older code against it could corrupt data.
    """
    migrations = known_migrations()
    latest = migrations[-1][0] if migrations else 0
    done = await applied_versions(conn)
    if done and max(done) > latest:
        raise _too_new(max(done), latest)
    applied: list[int] = []
    for version, name, sql in migrations:
        if version in done:
            continue
        async with conn.transaction():
            await _lock(conn)
            # Re-read under the lock: another node may have applied it while we waited.
            now_done = {int(r[0]) for r in await conn.fetch("SELECT version FROM schema_migrations")}
            if now_done and max(now_done) > latest:
                raise _too_new(max(now_done), latest)
            if version in now_done:
                continue
            # Without arguments asyncpg sends the simple protocol, which runs a whole script.
            await conn.execute(sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                version,
                name,
                time.time(),
            )
            applied.append(version)
    return applied
