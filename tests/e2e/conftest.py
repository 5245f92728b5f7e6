"""End-to-end fixtures: the real ``dw server start`` in a subprocess, real workers, real SQLite.

Nothing of our own is mocked here: the server is a separate process on a free 127.0.0.1 port
with its database in the test's tmp dir, stopped by PID when the test ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from server_process import DwServer

from durable_workflow import Client


@pytest.fixture
def server(tmp_path: Path) -> Iterator[DwServer]:
    proc = DwServer(tmp_path / "server")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
async def client(server: DwServer) -> AsyncIterator[Client]:
    async with Client(server.url) as c:
        yield c


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)
