"""Control-plane operations on the engine: start rules, list, describe, runs, history, cancel,
terminate, results."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from durable_workflow import serializer
from durable_workflow_server.engine import Engine, EngineError, EngineSettings
from durable_workflow_server.storage import Storage

NS = "default"
Q = "q"


@pytest.fixture
async def engine(engine_storage: Storage) -> AsyncIterator[Engine]:
    eng = Engine(engine_storage, EngineSettings(history_wait_seconds=2))
    await eng.start()
    await eng.register_worker(NS, {"worker_id": "w1", "task_queue": Q, "runtime": "python"})
    yield eng
    await eng.stop()


async def error_of(coro: Any) -> EngineError:
    with pytest.raises(EngineError) as err:
        await coro
    return err.value


async def finish(engine: Engine, commands: list[dict[str, Any]]) -> None:
    task = (await engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=1))["task"]
    assert task is not None
    await engine.complete_workflow_task(
        NS, task["task_id"], lease_owner="w1", attempt=task["workflow_task_attempt"], commands=commands
    )


async def test_start_validation(engine: Engine) -> None:
    err = await error_of(
        engine.start_workflow(
            NS,
            {
                "workflow_type": "t",
                "workflow_id": "bad id!",
                "retry_policy": {},
                "input": {"codec": "json", "blob": "x"},
                "run_timeout_seconds": 0,
                "duplicate_policy": "use_existing",
            },
        )
    )
    assert err.kind == "invalid"
    assert set(err.extra["errors"]) >= {
        "workflow_id",
        "retry_policy",
        "input",
        "run_timeout_seconds",
        "duplicate_policy",
    }
    err = await error_of(engine.start_workflow(NS, {}))
    assert "workflow_type" in err.extra["errors"]
    started = await engine.start_workflow(NS, {"workflow_type": "t"})
    assert len(started["workflow_id"]) == 26  # a generated ULID
    described = await engine.describe_workflow(NS, started["workflow_id"])
    assert described["task_queue"] == "default" and described["input"] == []


async def test_duplicate_policies_and_reuse(engine: Engine) -> None:
    body = {"workflow_id": "dup", "workflow_type": "t", "task_queue": Q}
    first = await engine.start_workflow(NS, body)
    err = await error_of(engine.start_workflow(NS, body))
    assert (err.kind, err.reason, err.extra["outcome"]) == (
        "conflict",
        "instance_already_started",
        "rejected_duplicate",
    )
    same = await engine.start_workflow(NS, {**body, "duplicate_policy": "use-existing"})
    assert same["outcome"] == "returned_existing_active" and same["run_id"] == first["run_id"]
    err = await error_of(engine.start_workflow(NS, {**body, "workflow_type": "other"}))
    assert err.kind == "invalid" and "workflow_type" in err.extra["errors"]
    await finish(engine, [{"type": "complete_workflow"}])
    err = await error_of(engine.start_workflow(NS, {**body, "duplicate_policy": "use-existing"}))
    assert err.reason == "instance_already_started"
    second = await engine.start_workflow(NS, {**body, "id_reuse_policy": "allow_duplicate"})
    assert second["outcome"] == "started_new" and second["run_id"] != first["run_id"]
    runs = await engine.list_runs(NS, "dup")
    assert runs["run_count"] == 2 and [r["run_number"] for r in runs["runs"]] == [1, 2]
    old = await engine.describe_workflow(NS, "dup", first["run_id"])
    assert old["is_current_run"] is False and old["status"] == "completed"
    err = await error_of(engine.describe_workflow(NS, "dup", "nope"))
    assert err.reason == "run_not_found"
    err = await error_of(engine.describe_workflow(NS, "missing"))
    assert err.reason == "instance_not_found"
    err = await error_of(engine.describe_workflow("other-ns", "dup"))
    assert err.reason == "instance_not_found"


async def test_list_filters_and_pages(engine: Engine) -> None:
    for i in range(5):
        await engine.start_workflow(
            NS,
            {
                "workflow_id": f"list-{i}",
                "workflow_type": "a" if i % 2 else "b",
                "task_queue": Q,
                "business_key": f"key-{i}",
            },
        )
    page = await engine.list_workflows(NS, page_size=2)
    assert page["workflow_count"] == 5 and [w["workflow_id"] for w in page["workflows"]] == [
        "list-4",
        "list-3",
    ]
    seen = [w["workflow_id"] for w in page["workflows"]]
    while page["next_page_token"]:
        page = await engine.list_workflows(NS, page_size=2, page_token=page["next_page_token"])
        seen += [w["workflow_id"] for w in page["workflows"]]
    assert seen == [f"list-{i}" for i in range(4, -1, -1)]
    assert (await engine.list_workflows(NS, workflow_type="a"))["workflow_count"] == 2
    assert (await engine.list_workflows(NS, query="key-3"))["workflows"][0]["workflow_id"] == "list-3"
    assert (await engine.list_workflows(NS, status="completed"))["workflow_count"] == 0
    assert (await engine.list_workflows(NS, status="running"))["workflow_count"] == 5
    assert (await error_of(engine.list_workflows(NS, status="waiting"))).kind == "invalid"
    assert (await error_of(engine.list_workflows(NS, page_token="###"))).reason == "invalid_page_token"
    assert (await error_of(engine.list_workflows(NS, page_size=201))).kind == "invalid"


async def test_cancel_and_terminate(engine: Engine) -> None:
    await engine.start_workflow(NS, {"workflow_id": "c1", "workflow_type": "t", "task_queue": Q})
    task = (await engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=1))["task"]
    assert task is not None
    reply = await engine.cancel_workflow(NS, "c1", None, reason="user asked")
    assert reply["outcome"] == "cancel_requested" and reply["reason"] == "user asked"
    assert (await engine.cancel_workflow(NS, "c1", None))["duplicate"] is True
    assert (await engine.describe_workflow(NS, "c1"))["is_terminal"] is False  # cooperative
    # The code finishes after the request (here without seeing it): the run closes cancelled.
    await engine.complete_workflow_task(
        NS, task["task_id"], lease_owner="w1", attempt=1, commands=[{"type": "complete_workflow"}]
    )
    assert (await error_of(engine.cancel_workflow(NS, "c1", None))).reason == "run_not_active"
    result = await engine.await_run_result(NS, "c1", None, wait_seconds=0)
    assert result["status"] == "cancelled" and result["failure"]["exception_type"] == "WorkflowCancelled"
    run_id = result["run_id"]
    types = [e["event_type"] for e in (await engine.run_history(NS, "c1", run_id))["events"]]
    assert types == ["WorkflowStarted", "CancelRequested", "WorkflowCancelled"]

    await engine.start_workflow(NS, {"workflow_id": "t1", "workflow_type": "t", "task_queue": Q})
    assert (await engine.terminate_workflow(NS, "t1", None, reason="x"))["outcome"] == "terminated"
    assert (await engine.describe_workflow(NS, "t1"))["status"] == "terminated"
    assert (await engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0))[
        "task"
    ] is None


async def test_fail_workflow_result(engine: Engine) -> None:
    await engine.start_workflow(NS, {"workflow_id": "f1", "workflow_type": "t", "task_queue": Q})
    waiter = asyncio.create_task(engine.await_run_result(NS, "f1", None, wait_seconds=5))
    await finish(
        engine,
        [
            {
                "type": "fail_workflow",
                "message": "bad",
                "exception_type": "ValueError",
                "exception_class": "builtins.ValueError",
                "non_retryable": True,
            }
        ],
    )
    result = await asyncio.wait_for(waiter, 5)
    assert result["status"] == "failed"
    assert result["failure"] == {
        "message": "bad",
        "exception_type": "ValueError",
        "exception_class": "builtins.ValueError",
        "non_retryable": True,
    }


async def test_result_wait_times_out_open(engine: Engine) -> None:
    await engine.start_workflow(NS, {"workflow_id": "open", "workflow_type": "t", "task_queue": Q})
    result = await engine.await_run_result(NS, "open", None, wait_seconds=0.2)
    assert result["is_terminal"] is False and result["status"] == "pending"


async def test_history_long_poll(engine: Engine) -> None:
    started = await engine.start_workflow(
        NS,
        {
            "workflow_id": "h1",
            "workflow_type": "t",
            "task_queue": Q,
            "input": {"codec": "avro", "blob": serializer.encode([1])},
        },
    )
    first = await engine.run_history(NS, "h1", started["run_id"], page_size=10)
    assert [e["sequence"] for e in first["events"]] == [1] and first["next_page_token"] is None
    follower = await engine.run_history(NS, "h1", started["run_id"], page_size=10, wait_new_event=True)
    token = follower["next_page_token"]
    assert token is not None
    waiting = asyncio.create_task(
        engine.run_history(NS, "h1", started["run_id"], page_token=token, wait_new_event=True)
    )
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await engine.terminate_workflow(NS, "h1", None)
    page = await asyncio.wait_for(waiting, 3)
    assert [e["event_type"] for e in page["events"]] == ["TerminateRequested", "WorkflowTerminated"]
    assert (
        await error_of(engine.run_history(NS, "h1", started["run_id"], page_token="x"))
    ).reason == "invalid_page_token"


async def test_run_timeout(engine: Engine) -> None:
    await engine.start_workflow(
        NS, {"workflow_id": "rt", "workflow_type": "t", "task_queue": Q, "run_timeout_seconds": 1}
    )
    result = await engine.await_run_result(NS, "rt", None, wait_seconds=3)
    assert result["status"] == "failed" and result["failure"]["exception_type"] == "WorkflowTimedOut"
