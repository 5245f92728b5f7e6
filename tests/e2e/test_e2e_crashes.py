"""Crashes: a worker killed mid-activity, and the server killed with SIGKILL mid-workflows."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

from e2e_support import event_types, running_worker, unique
from server_process import DwServer

from durable_workflow import Client

HERE = Path(__file__).parent


async def _wait_for_event(client: Client, workflow_id: str, event_type: str, timeout: float = 20) -> None:
    handle = client.get_workflow_handle(workflow_id)
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if event_type in event_types(await handle.history()):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{workflow_id} never recorded {event_type}")


async def test_worker_killed_mid_activity_is_retried_on_another_worker(server: DwServer) -> None:
    queue = unique("q")
    workflow_id = unique("orphan")
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "e2e_worker_main.py"), server.url, queue],
        cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        async with Client(server.url) as client:
            handle = await client.start_workflow(
                workflow_type="long-activity", workflow_id=workflow_id, task_queue=queue, input=[1.5]
            )
            # The subprocess worker picks the activity up; kill it while the activity runs.
            await _wait_for_event(client, workflow_id, "ActivityStarted")
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            async with running_worker(client, queue):
                assert await handle.result(timeout=40) == "slept"
            history = await handle.history()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    types = event_types(history)
    assert types.count("ActivityStarted") == 2
    retries = [e for e in history if e["event_type"] == "ActivityRetryScheduled"]
    assert len(retries) == 1
    assert retries[0]["payload"].get("timeout_kind") == "start_to_close"
    assert types.count("ActivityCompleted") == 1


async def test_server_killed_and_restarted_mid_workflows(tmp_path: Path) -> None:
    server = DwServer(tmp_path / "server")
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
            ]
            # Let some timers fire and some activities start, then crash the server.
            await asyncio.sleep(1.6)
            server.kill()
            await asyncio.sleep(0.5)
            server.start()
            results = await asyncio.gather(*(h.result(timeout=60) for h in handles))
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
        sequences = [e["sequence"] for e in history]
        assert sequences == list(range(1, len(history) + 1))
