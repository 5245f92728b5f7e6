"""SQLite migrations: applied once, in order, recorded; the schema matches the row classes; a
database written by a newer release is refused."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from durable_workflow_server.storage import ROW_TYPES, SchemaTooNew
from durable_workflow_server.storage._sqlite_migrate import known_migrations, migrate
from durable_workflow_server.storage.sqlite import SqliteStorage


def test_migrations_are_numbered_without_gaps() -> None:
    versions = [v for v, _, _ in known_migrations()]
    assert versions == list(range(1, len(versions) + 1))


def test_migrate_applies_once(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "m.sqlite", isolation_level=None)
    assert migrate(conn) == [v for v, _, _ in known_migrations()]
    assert migrate(conn) == []
    rows = conn.execute("SELECT version, name FROM schema_migrations").fetchall()
    assert rows[0] == (1, "initial")
    assert conn.execute("SELECT name FROM namespaces").fetchall() == [("default",)]
    conn.close()


def test_schema_matches_row_classes(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "m.sqlite", isolation_level=None)
    migrate(conn)
    for cls in ROW_TYPES:
        columns = [r[1] for r in conn.execute(f"PRAGMA table_info({cls.__table__})")]
        assert columns == [f.name for f in dataclasses.fields(cls)], cls.__table__
        pk = [
            r[1]
            for r in sorted(conn.execute(f"PRAGMA table_info({cls.__table__})"), key=lambda r: r[5])
            if r[5]
        ]
        assert tuple(pk) == cls.__key__, cls.__table__
    events = [r[1] for r in conn.execute("PRAGMA table_info(history_events)")]
    assert events == [
        "run_id",
        "sequence",
        "event_id",
        "event_type",
        "payload",
        "recorded_at",
        "workflow_task_id",
    ]
    conn.close()


def test_migrations_reproduce_the_same_schema(tmp_path: Path) -> None:
    def schema(path: Path) -> list[tuple[str, str]]:
        conn = sqlite3.connect(path, isolation_level=None)
        migrate(conn)
        found = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name"
        ).fetchall()
        conn.close()
        return found

    assert schema(tmp_path / "a.sqlite") == schema(tmp_path / "b.sqlite")


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "new.sqlite"
    store = SqliteStorage(db)
    await store.open()
    await store.close()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 0)")
    conn.close()
    with pytest.raises(SchemaTooNew, match="newer"):
        await SqliteStorage(db).open()


def test_pragmas(tmp_path: Path) -> None:
    from durable_workflow_server.storage.sqlite import _connect

    conn = _connect(str(tmp_path / "p.sqlite"))
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    conn.close()


def test_two_processes_migrating_at_once(tmp_path: Path) -> None:
    import threading

    db = tmp_path / "race.sqlite"
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def run() -> None:
        conn = sqlite3.connect(db, isolation_level=None, timeout=30)
        try:
            results.append(migrate(conn))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(len(r) for r in results) == [0, 0, 0, len(known_migrations())]


async def test_unusable_path_is_a_storage_error(tmp_path: Path) -> None:
    from durable_workflow_server.storage import StorageUnavailable

    with pytest.raises(StorageUnavailable):
        await SqliteStorage(tmp_path / "missing-dir" / "x.sqlite").open()
