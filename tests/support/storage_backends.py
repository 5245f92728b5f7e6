"""The storage backends the server tests run over: ``sqlite`` always, ``postgres`` with a DSN.

``make_storage(kind, tmp_path)`` builds an unopened backend private to one test: a SQLite file
in the test's tmp dir, or a PostgreSQL schema named after that dir (so calling it twice in one
test reopens the same data). ``forget(kind, tmp_path)`` drops the PostgreSQL schema afterwards.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pg_support import drop_schema, postgres_dsn, schema_name

from durable_workflow_server.storage import Storage

BACKENDS = [pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)]


def make_storage(kind: str, tmp_path: Path, name: str = "dw") -> Storage:
    """An unopened backend of ``kind`` that only this test (and this ``name``) uses."""
    if kind == "sqlite":
        from durable_workflow_server.storage.sqlite import SqliteStorage

        return SqliteStorage(tmp_path / f"{name}.sqlite")
    if kind == "postgres":
        from durable_workflow_server.storage.postgres import PostgresStorage

        return PostgresStorage(postgres_dsn(), schema=schema_name(f"{tmp_path}/{name}"))
    raise AssertionError(kind)


def forget(kind: str, tmp_path: Path, name: str = "dw") -> None:
    """Drop what :func:`make_storage` created outside ``tmp_path`` (the PostgreSQL schema)."""
    if kind == "postgres":
        drop_schema(postgres_dsn(), schema_name(f"{tmp_path}/{name}"))
