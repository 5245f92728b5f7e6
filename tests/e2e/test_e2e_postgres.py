"""The end-to-end crash tests of SQLite, on PostgreSQL: ``dw server start --db postgresql://…``.

A workflow with a timer and an activity completes; a worker killed with SIGKILL in the middle
of six activities loses nothing (each attempt is re-run after its timeout); the server killed with
SIGKILL mid-workflows and restarted finishes every workflow exactly once. Each test gets a
fresh database; skipped without ``DW_TEST_POSTGRES_DSN``.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import event_types, running_worker, unique
from pg_support import fresh_database
from server_process import DwServer
from test_e2e_crashes import _wait_for_event

from durable_workflow import Client

pytestmark = pytest.mark.postgres

HERE = Path(__file__).parent


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    with fresh_database("dw_e2e") as dsn:
        yield dsn


@pytest.fixture
def pg_server(tmp_path: Path, pg_dsn: str) -> Iterator[DwServer]:
    server = DwServer(tmp_path / "server", db=pg_dsn)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_greeter_completes_on_postgres(pg_server: DwServer) -> None:
    assert "postgresql://" in pg_server.log().splitlines()[0]
    queue = unique("q")
    async with Client(pg_server.url) as client, running_worker(client, queue):
        handle = await client.start_workflow(
            workflow_type="greeter", workflow_id=unique("greeter"), task_queue=queue, input=["Ada"]
        )
        assert await handle.result(timeout=30) == "hello, Ada"
        history = event_types(await handle.history())
    assert history[0] == "WorkflowStarted" and history[-1] == "WorkflowCompleted"
    assert history.count("TimerFired") == 1 and history.count("ActivityCompleted") == 1


async def test_worker_killed_mid_activities_loses_nothing_on_postgres(pg_server: DwServer) -> None:
    queue = unique("q")
    ids = [unique(f"orphan-{i}") for i in range(6)]
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "e2e_worker_main.py"), pg_server.url, queue],
        cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with Client(pg_server.url) as client:
            handles = [
                await client.start_workflow(
                    workflow_type="long-activity", workflow_id=workflow_id, task_queue=queue, input=[1.5]
                )
                for workflow_id in ids
            ]
            # Every activity is running on the subprocess worker; kill it in the middle of them.
            for workflow_id in ids:
                await _wait_for_event(client, workflow_id, "ActivityStarted")
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            async with running_worker(client, queue):
                results = await asyncio.gather(*(h.result(timeout=40) for h in handles))
            histories = [await h.history() for h in handles]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert results == ["slept"] * len(ids)
    for history in histories:
        types = event_types(history)
        # Re-run after its start-to-close timeout, completed once.
        assert types.count("ActivityStarted") == 2, types
        retries = [e for e in history if e["event_type"] == "ActivityRetryScheduled"]
        assert len(retries) == 1 and retries[0]["payload"].get("timeout_kind") == "start_to_close"
        assert types.count("ActivityCompleted") == 1


@pytest.mark.timeout(180)
async def test_server_killed_and_restarted_mid_workflows_on_postgres(tmp_path: Path, pg_dsn: str) -> None:
    server = DwServer(tmp_path / "server", db=pg_dsn)
    server.start()
    queue = unique("q")
    try:
        async with Client(server.url) as client, running_worker(client, queue):
            handles = [
                await client.start_workflow(
                    workflow_type="timer-then-activity", workflow_id=unique(f"crash-{i}"),
                    task_queue=queue, input=[i, 1 + i % 3],
                )
                for i in range(12)
            ]  # fmt: skip
            await asyncio.sleep(1.6)
            server.kill()
            await asyncio.sleep(0.5)
            server.start()
            # A task claimed in the instant of the crash reaches no worker; it is offered again
            # when its 60 s lease ends, hence the long wait.
            results = await asyncio.gather(*(h.result(timeout=90) for h in handles))
            histories = [await h.history() for h in handles]
    finally:
        server.stop()
    assert results == [["slept", i] for i in range(12)]
    for history in histories:
        types = event_types(history)
        assert types[0] == "WorkflowStarted"
        assert types[-1] == "WorkflowCompleted"
        assert types.count("TimerFired") == 1
        assert types.count("ActivityCompleted") == 2
        assert [e["sequence"] for e in history] == list(range(1, len(history) + 1))
