"""PostgreSQL migrations: applied once, in order, recorded, safe with several nodes starting at
once; they mirror the SQLite ones and reproduce the row classes; a newer schema is refused, by
the storage and by ``dw server migrate``.

Skipped without ``DW_TEST_POSTGRES_DSN``; each test works in a fresh schema or database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pg_support import drop_schema, fresh_database, postgres_dsn, schema_name

from durable_workflow_server.storage import ROW_TYPES, SchemaTooNew
from durable_workflow_server.storage._pg_migrate import known_migrations, migrate
from durable_workflow_server.storage._sqlite_migrate import known_migrations as sqlite_migrations

pytestmark = pytest.mark.postgres

asyncpg = pytest.importorskip("asyncpg")


@pytest.fixture
def schema(tmp_path: Path) -> Iterator[str]:
    dsn = postgres_dsn()
    name = schema_name(str(tmp_path))
    yield name
    drop_schema(dsn, name)


async def _connect(schema: str) -> Any:
    conn = await asyncpg.connect(postgres_dsn(), server_settings={"search_path": schema})
    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    return conn


@pytest.fixture
async def conn(schema: str) -> AsyncIterator[Any]:
    c = await _connect(schema)
    yield c
    await c.close()


#: Migrations with no SQLite twin: PostgreSQL's server-side write functions.
_POSTGRES_ONLY = {"write_functions", "prepared_apply"}


def test_migrations_are_numbered_without_gaps_and_mirror_sqlite() -> None:
    versions = [v for v, _, _ in known_migrations()]
    assert versions == list(range(1, len(versions) + 1))
    # Every SQLite migration has its PostgreSQL twin, in the same order and under the same
    # name (and number, up to the first PostgreSQL-only one).
    shared = [n for _, n, _ in known_migrations() if n not in _POSTGRES_ONLY]
    assert shared == [n for _, n, _ in sqlite_migrations()]
    first_own = min(v for v, n, _ in known_migrations() if n in _POSTGRES_ONLY)
    before = [(v, n) for v, n, _ in known_migrations() if v < first_own]
    assert before == [(v, n) for v, n, _ in sqlite_migrations() if v < first_own]


def test_every_sqlite_query_has_a_postgres_twin() -> None:
    """A read added to the SQLite backend needs its PostgreSQL query too (the claim and write
    queries differ on purpose: PostgreSQL claims one row with SKIP LOCKED and writes through
    the dw_apply function of migration 0004)."""
    from durable_workflow_server.storage._pg_sql import queries as pg_queries
    from durable_workflow_server.storage._sqlite_sql import queries as sqlite_queries

    sqlite_only = {
        "workflow_claim_candidates", "activity_claim_candidates", "run_last_sequence",
        "set_run_last_sequence", "bump_run_version", "fire_timer", "advance_run_sequence",
        "insert_event",
    }  # fmt: skip
    assert set(sqlite_queries()) - sqlite_only <= set(pg_queries())
    from durable_workflow_server.storage.postgres import PostgresStorage

    assert not PostgresStorage.__abstractmethods__  # every Storage method is implemented


def test_named_parameters_become_positional() -> None:
    from durable_workflow_server.storage._pg_sql import positional

    query = positional("SELECT CAST(:a AS TEXT[]), :b::int, :a, 'x:y' WHERE c = :b")
    assert query.sql == "SELECT CAST($1 AS TEXT[]), $2::int, $1, 'x:y' WHERE c = $2"
    assert query.names == ("a", "b")
    assert query.args({"a": 1, "b": 2}) == [1, 2]


async def test_migrate_applies_once(conn: Any) -> None:
    assert await migrate(conn) == [v for v, _, _ in known_migrations()]
    assert await migrate(conn) == []
    rows = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
    assert (rows[0]["version"], rows[0]["name"]) == (1, "initial")
    assert [r["name"] for r in await conn.fetch("SELECT name FROM namespaces")] == ["default"]


async def _columns(conn: Any, schema: str, table: str) -> list[tuple[str, str]]:
    rows = await conn.fetch(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
        schema,
        table,
    )
    return [(r["column_name"], r["data_type"]) for r in rows]


async def test_schema_matches_row_classes(conn: Any, schema: str) -> None:
    from durable_workflow_server.storage._messages import MessageRow

    await migrate(conn)
    for cls in (*ROW_TYPES, MessageRow):
        columns = await _columns(conn, schema, cls.__table__)
        assert [c for c, _ in columns] == [f.name for f in dataclasses.fields(cls)], cls.__table__
        types = dict(columns)
        for name in cls.__bools__:
            assert types[name] == "boolean", (cls.__table__, name)
        for name in cls.__json__:
            assert types[name] == "text", (cls.__table__, name)
        pk = await conn.fetch(
            "SELECT a.attname FROM pg_index i "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = $1::regclass AND i.indisprimary "
            "ORDER BY array_position(i.indkey, a.attnum)",
            f"{schema}.{cls.__table__}",
        )
        assert tuple(r["attname"] for r in pk) == cls.__key__, cls.__table__
    events = [c for c, _ in await _columns(conn, schema, "history_events")]
    assert events == [
        "run_id", "sequence", "event_id", "event_type", "payload", "recorded_at", "workflow_task_id",
    ]  # fmt: skip


async def _schema_of(conn: Any, schema: str) -> list[tuple[str, ...]]:
    columns = await conn.fetch(
        "SELECT table_name, column_name, data_type, is_nullable, coalesce(column_default, '') AS d "
        "FROM information_schema.columns WHERE table_schema = $1 ORDER BY table_name, ordinal_position",
        schema,
    )
    indexes = await conn.fetch(
        "SELECT tablename, indexname, replace(indexdef, $1 || '.', '') AS def FROM pg_indexes "
        "WHERE schemaname = $1 ORDER BY indexname",
        schema,
    )
    return [tuple(map(str, r.values())) for r in columns] + [tuple(map(str, r.values())) for r in indexes]


async def test_migrations_reproduce_the_same_schema(tmp_path: Path) -> None:
    dsn = postgres_dsn()
    names = [schema_name(f"{tmp_path}/a"), schema_name(f"{tmp_path}/b")]
    try:
        found = []
        for name in names:
            conn = await _connect(name)
            try:
                await migrate(conn)
                found.append(await _schema_of(conn, name))
            finally:
                await conn.close()
        assert found[0] == found[1]
        assert len(found[0]) > 50
    finally:
        for name in names:
            drop_schema(dsn, name)


async def test_newer_schema_is_refused(conn: Any, schema: str) -> None:
    from durable_workflow_server.storage.postgres import PostgresStorage

    store = PostgresStorage(postgres_dsn(), schema=schema)
    await store.open()
    await store.close()
    await conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 0)")
    with pytest.raises(SchemaTooNew, match="newer"):
        await PostgresStorage(postgres_dsn(), schema=schema).open()


async def test_several_nodes_migrating_at_once(schema: str) -> None:
    conns = [await _connect(schema) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
    finally:
        for c in conns:
            await c.close()
    assert sorted(len(r) for r in results) == [0, 0, 0, len(known_migrations())]


def _dw(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DW_")}
    return subprocess.run(
        [sys.executable, "-m", "durable_workflow_server.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_dw_server_migrate_is_idempotent_and_refuses_a_newer_schema(tmp_path: Path) -> None:
    with fresh_database("dw_migrate") as dsn:
        first = _dw("server", "migrate", "--db", dsn, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        assert "is up to date" in first.stderr
        again = _dw("server", "migrate", "--db", dsn, cwd=tmp_path)
        assert again.returncode == 0, again.stderr

        async def from_the_future() -> None:
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 0)"
                )
            finally:
                await conn.close()

        asyncio.run(from_the_future())
        refused = _dw("server", "migrate", "--db", dsn, cwd=tmp_path)
        assert refused.returncode == 1
        assert "database schema version 9999 is newer than this server knows" in refused.stderr
        assert "Traceback" not in refused.stderr


async def test_upgrade_from_0004_keeps_dw_apply_for_older_nodes(
    conn: Any, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0005 adds dw_apply_prepared beside dw_apply: during a rolling upgrade a node of the
    previous release keeps writing through dw_apply while upgraded ones use the new function."""
    from durable_workflow_server.storage import Insert, Mutation, RunRow, RunVersion, _pg_migrate
    from durable_workflow_server.storage._pg_apply import apply_mutation

    every = known_migrations()
    assert [(v, n) for v, n, _ in every][3:5] == [(4, "write_functions"), (5, "prepared_apply")]
    monkeypatch.setattr(_pg_migrate, "known_migrations", lambda: every[:4])
    assert await migrate(conn) == [1, 2, 3, 4]
    exists = "SELECT count(*) FROM pg_proc WHERE proname = $1 AND pronamespace = $2::regnamespace"
    assert await conn.fetchval(exists, "dw_apply_prepared", schema) == 0
    monkeypatch.setattr(_pg_migrate, "known_migrations", lambda: every)
    assert await migrate(conn) == [5]
    assert await migrate(conn) == []
    assert await conn.fetchval(exists, "dw_apply_prepared", schema) == 1
    run = RunRow("r1", "default", "wf-r1", 1, "t", "q", "running", 1.0)
    await apply_mutation(conn, Mutation(ops=[Insert(run)]))
    # An old node's call: a statement in dw_apply's form (ROW_COUNT checked, no RETURNING).
    lasts = await conn.fetchval(
        "SELECT dw_apply($1, $2, $3, $4, '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', 'ch', '{}')",
        ["UPDATE runs SET version = version + 1 WHERE run_id = $1[1] AND version = $1[2]::bigint"],
        ["c"],
        [0, 2],
        ["r1", "0"],
    )
    assert lasts == []
    # And a new node's write on the same row.
    await apply_mutation(conn, Mutation(preconditions=[RunVersion("r1", 1)]))
    assert await conn.fetchval("SELECT version FROM runs WHERE run_id = 'r1'") == 2
