"""Fixtures that run the real ``dw server start`` in a subprocess and talk HTTP to it.

- ``server_url``: a server with auth off, shared by the whole session (tests use unique ids).
- ``token_server_url``: the same with ``--auth token`` and the tokens of ``server_tokens``.
- ``server_tokens``: role -> bearer token of ``token_server_url``.
- ``http``: an ``aiohttp.ClientSession`` for one test.
- ``dw_server``: a factory for a private server (``dw_server(*extra_args)``), stopped after
  the test; use it when a test needs an empty database or its own flags.
- ``engine_storage``: an unopened storage backend private to one test, once per backend
  (SQLite; PostgreSQL when ``DW_TEST_POSTGRES_DSN`` is set, else that run is skipped).

Each server binds 127.0.0.1 on a free port, uses a database in a tmp dir, is waited for on
``/api/health`` (10 s at most; its log is shown if it does not come up) and is stopped by
its PID (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from api_support import DwServer
from storage_backends import BACKENDS, forget, make_storage

from durable_workflow_server.storage import Storage

TOKENS = {"worker": "worker-secret-1", "operator": "operator-secret-2", "admin": "admin-secret-3"}


def _session_server(tmp_path_factory: pytest.TempPathFactory, name: str, *args: str) -> Iterator[DwServer]:
    server = DwServer(tmp_path_factory.mktemp(name), *args)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def server_tokens() -> dict[str, str]:
    """Role -> bearer token accepted by ``token_server_url``."""
    return dict(TOKENS)


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a shared auth-off server."""
    for server in _session_server(tmp_path_factory, "dw-open"):
        yield server.url


@pytest.fixture(scope="session")
def token_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a shared server with ``--auth token`` and one token per role."""
    for server in _session_server(
        tmp_path_factory,
        "dw-token",
        "--auth", "token",
        "--worker-token", TOKENS["worker"],
        "--operator-token", TOKENS["operator"],
        "--admin-token", TOKENS["admin"],
    ):  # fmt: skip
        yield server.url


@pytest.fixture
def dw_server(tmp_path: Path) -> Iterator[Callable[..., DwServer]]:
    """Factory of private servers for one test: ``dw_server("--max-payload-bytes", "4096")``."""
    started: list[DwServer] = []

    def start(*extra_args: str) -> DwServer:
        server = DwServer(tmp_path / f"dw-{len(started)}", *extra_args)
        started.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client session for one test."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture(params=BACKENDS)
def engine_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """A fresh, unopened backend for one engine test; the test runs once per backend."""
    kind: str = request.param
    yield make_storage(kind, tmp_path)
    forget(kind, tmp_path)
