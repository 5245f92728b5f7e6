"""PostgreSQL for the tests: the server from ``DW_TEST_POSTGRES_DSN``, fresh schemas and databases.

Tests that need PostgreSQL call :func:`postgres_dsn`, which skips them with a clear reason when
the variable is absent (``.ci/run`` sets it). Each test then works in a schema or a database of
its own, dropped afterwards, so no test sees another's rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import threading
import uuid
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import pytest

DSN_ENV = "DW_TEST_POSTGRES_DSN"
SKIP_REASON = "PostgreSQL tests need DW_TEST_POSTGRES_DSN; .ci/run sets it"

T = TypeVar("T")


def postgres_dsn() -> str:
    """The test server's DSN, or skip the calling test."""
    dsn = os.environ.get(DSN_ENV, "").strip()
    if not dsn:
        pytest.skip(SKIP_REASON)
    return dsn


def schema_name(seed: str) -> str:
    """A schema name derived from ``seed`` (the same seed gives the same schema)."""
    return "t_" + hashlib.sha1(seed.encode()).hexdigest()[:20]


def _run_sync(work: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync or async code (on a thread of its own)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(work)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value


async def _execute(dsn: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def drop_schema(dsn: str, schema: str) -> None:
    """Drop a test's schema and everything in it."""
    _run_sync(_execute(dsn, f"DROP SCHEMA IF EXISTS {schema} CASCADE"))


def with_database(dsn: str, database: str) -> str:
    """``dsn`` with its database replaced."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


@contextlib.contextmanager
def fresh_database(prefix: str = "dw_test") -> Iterator[str]:
    """Create an empty database on the test server; yield its DSN; drop it afterwards."""
    dsn = postgres_dsn()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _run_sync(_execute(dsn, f"CREATE DATABASE {name}"))
    try:
        yield with_database(dsn, name)
    finally:
        _run_sync(_execute(dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
