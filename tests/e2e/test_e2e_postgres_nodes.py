"""Two server nodes on one PostgreSQL database, one of them killed with SIGKILL mid-run.

Two ``dw server start --db postgresql://…`` processes on different ports share a fresh
database. Clients and workers reach them through small failover proxies standing in for a
load balancer: half prefer node A, half node B, and each falls back to the other node when its
own is gone. 200 workflows mixing activities, durable timers, signals and (every fourth) a
child workflow run; node A is killed with SIGKILL in the middle. Every workflow must still
complete with exactly one result, and no activity completion may be recorded twice.
Skipped without ``DW_TEST_POSTGRES_DSN``.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_pg_workflows import PG_WORKFLOWS
from e2e_proxy import FailoverProxy
from e2e_support import event_types, running_worker, unique
from e2e_workflows import ALL_WORKFLOWS
from pg_support import fresh_database
from server_process import DwServer

from durable_workflow import Client

pytestmark = pytest.mark.postgres

WORKFLOWS = 200


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    with fresh_database("dw_nodes") as dsn:
        yield dsn


def _with_child(index: int) -> bool:
    return index % 4 == 0


def _check_history(history: list[dict[str, Any]], index: int) -> None:
    types = event_types(history)
    assert types[0] == "WorkflowStarted", index
    assert types[-1] == "WorkflowCompleted", (index, types)
    assert types.count("WorkflowCompleted") == 1, (index, types)
    assert types.count("TimerFired") == 1, (index, types)
    # Three activities, each completed exactly once (a retried attempt may start twice).
    completed = [e for e in history if e["event_type"] == "ActivityCompleted"]
    assert len(completed) == 3, (index, types)
    executions = [e["payload"].get("activity_execution_id") for e in completed]
    assert None not in executions and len(set(executions)) == 3, (index, executions)
    assert [e["sequence"] for e in history] == list(range(1, len(history) + 1)), index


def _check_child_history(history: list[dict[str, Any]], index: int) -> None:
    types = event_types(history)
    assert types[-1] == "WorkflowCompleted" and types.count("WorkflowCompleted") == 1, (index, types)
    assert types.count("ActivityCompleted") == 1, (index, types)


@pytest.mark.timeout(300)
async def test_two_nodes_one_killed_every_workflow_completes_once(tmp_path: Path, pg_dsn: str) -> None:
    node_a = DwServer(tmp_path / "node-a", db=pg_dsn)
    node_b = DwServer(tmp_path / "node-b", db=pg_dsn)
    node_a.start()
    node_b.start()
    backends = {"a": ("127.0.0.1", node_a.port), "b": ("127.0.0.1", node_b.port)}
    via_a = FailoverProxy([backends["a"], backends["b"]])
    via_b = FailoverProxy([backends["b"], backends["a"]])
    await via_a.start()
    await via_b.start()
    queue = unique("q")
    workflows = [*ALL_WORKFLOWS, *PG_WORKFLOWS]
    try:
        async with (
            Client(via_a.url) as client_a,
            Client(via_b.url) as client_b,
            running_worker(client_a, queue, workflows=workflows),
            running_worker(client_b, queue, workflows=workflows),
        ):
            handles = await asyncio.gather(
                *(
                    (client_a, client_b)[i % 2].start_workflow(
                        workflow_type="pg.mixed", workflow_id=unique(f"nodes-{i}"), task_queue=queue,
                        input=[i, 1 + i % 3, _with_child(i)],
                    )
                    for i in range(WORKFLOWS)
                )
            )  # fmt: skip
            # Mid-run: first activities done or running, timers pending, nothing finished yet.
            await asyncio.sleep(1.5)
            # Signals go out through both proxies while node A dies under half of them.
            signals = asyncio.gather(
                *(
                    (client_a, client_b)[(i + 1) % 2]
                    .get_workflow_handle(handles[i].workflow_id)
                    .signal("bonus", f"bonus-{i}", request_id=f"bonus-{i}")
                    for i in range(WORKFLOWS)
                )
            )
            await asyncio.sleep(0.05)
            node_a.kill()
            await signals
            # A task claimed through node A in the instant of the kill reaches no worker and is
            # offered again when its lease ends (workflow tasks: 60 s); hence the long wait.
            results = await asyncio.gather(*(h.result(timeout=180) for h in handles))
            histories = await asyncio.gather(*(h.history() for h in handles))
            children = [
                (i, event)
                for i, history in enumerate(histories)
                for event in history
                if event["event_type"] == "ChildRunStarted"
            ]
            child_histories = [
                (i, await client_b.get_workflow_handle(e["payload"]["child_workflow_instance_id"]).history())
                for i, e in children
            ]
    finally:
        await via_a.stop()
        await via_b.stop()
        node_a.stop()
        node_b.stop()
    assert results == [
        [i, i * 10, i * 10 + 1, f"bonus-{i}", i * 100 if _with_child(i) else None] for i in range(WORKFLOWS)
    ]
    for index, history in enumerate(histories):
        _check_history(history, index)
        assert event_types(history).count("SignalReceived") == 1, index
    assert sorted(i for i, _ in children) == [i for i in range(WORKFLOWS) if _with_child(i)]
    for index, history in child_histories:
        _check_child_history(history, index)
    # Both nodes served, and after the kill node A's share failed over to node B.
    assert via_a.forwarded[backends["a"]] > 0 and via_b.forwarded[backends["b"]] > 0
    assert via_a.forwarded[backends["b"]] > 0
    counts = collections.Counter(t for h in histories for t in event_types(h))
    assert counts["WorkflowCompleted"] == WORKFLOWS
    assert counts["ActivityCompleted"] == 3 * WORKFLOWS
