"""Absurd input is a 422 (never an overflow deep in storage); wake-ups route by type; storage
failures surface as ``unavailable``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from durable_workflow_server.engine import Engine, EngineError, EngineSettings
from durable_workflow_server.storage.sqlite import SqliteStorage

NS = "default"
Q = "q"
HUGE = [2**63 - 1, 2**64 - 1, -(2**63) - 1]


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    eng = Engine(SqliteStorage(tmp_path / "dw.sqlite"))
    await eng.start()
    await eng.register_worker(NS, {"worker_id": "w1", "task_queue": Q, "runtime": "python"})
    yield eng
    await eng.stop()


async def kind_of(coro: Any) -> str:
    with pytest.raises(EngineError) as err:
        await coro
    return err.value.kind


@pytest.mark.parametrize("value", HUGE)
async def test_huge_numbers_are_refused(engine: Engine, value: int) -> None:
    for key in ("execution_timeout_seconds", "run_timeout_seconds"):
        assert await kind_of(engine.start_workflow(NS, {"workflow_type": "t", key: value})) == "invalid"
    assert (
        await kind_of(
            engine.register_worker(
                NS, {"task_queue": Q, "runtime": "python", "max_concurrent_workflow_tasks": value}
            )
        )
        == "invalid"
    )
    await engine.start_workflow(NS, {"workflow_id": "big", "workflow_type": "t", "task_queue": Q})
    task = (await engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=1))["task"]
    assert task is not None
    commands: list[dict[str, Any]] = [
        {"type": "start_timer", "delay_seconds": value},
        {"type": "schedule_activity", "activity_type": "a", "start_to_close_timeout": value},
        {"type": "schedule_activity", "activity_type": "a", "retry_policy": {"max_attempts": value}},
        {"type": "schedule_activity", "activity_type": "a", "retry_policy": {"backoff_seconds": [value]}},
        {
            "type": "record_version_marker",
            "change_id": "c",
            "version": value,
            "min_supported": 0,
            "max_supported": 1,
        }
        if value > 2**63
        else {"type": "start_timer", "delay_seconds": -value},
    ]
    for command in commands:
        assert (
            await kind_of(
                engine.complete_workflow_task(
                    NS, task["task_id"], lease_owner="w1", attempt=1, commands=[command]
                )
            )
            == "invalid"
        )
    token = "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5"  # base64 of a number beyond 64 bits
    with pytest.raises(EngineError) as err:
        await engine.workflow_task_history(NS, task["task_id"], lease_owner="w1", attempt=1, page_token=token)
    assert err.value.reason == "invalid_page_token"


async def test_wake_goes_to_a_poller_that_accepts_the_type(engine: Engine) -> None:
    await engine.register_worker(
        NS, {"worker_id": "only-x", "task_queue": Q, "runtime": "python", "supported_workflow_types": ["x"]}
    )
    picky = asyncio.create_task(
        engine.poll_workflow_task(NS, worker_id="only-x", task_queue=Q, timeout_seconds=3)
    )
    await asyncio.sleep(0.05)
    general = asyncio.create_task(
        engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=3)
    )
    await asyncio.sleep(0.05)
    t0 = time.monotonic()
    await engine.start_workflow(NS, {"workflow_id": "typed", "workflow_type": "t", "task_queue": Q})
    reply = await asyncio.wait_for(general, 3)
    assert reply["task"] is not None and time.monotonic() - t0 < 0.5
    picky.cancel()


async def test_poll_request_id_returns_the_same_task(engine: Engine) -> None:
    await engine.start_workflow(NS, {"workflow_id": "p", "workflow_type": "t", "task_queue": Q})
    first = await engine.poll_workflow_task(
        NS, worker_id="w1", task_queue=Q, timeout_seconds=1, poll_request_id="r1"
    )
    again = await engine.poll_workflow_task(
        NS, worker_id="w1", task_queue=Q, timeout_seconds=0, poll_request_id="r1"
    )
    assert first["task"] is not None and again["task"] is not None
    assert again["task"]["task_id"] == first["task"]["task_id"]
    assert again["task"]["workflow_task_attempt"] == first["task"]["workflow_task_attempt"]


async def test_storage_failure_is_unavailable(tmp_path: Path) -> None:
    eng = Engine(SqliteStorage(tmp_path / "gone.sqlite"))
    await eng.start()
    await eng.storage.close()  # the database disappears under the engine
    with pytest.raises(EngineError) as err:
        await eng.start_workflow(NS, {"workflow_type": "t"})
    assert (err.value.kind, err.value.reason) == ("unavailable", "storage_unavailable")
    with pytest.raises(EngineError) as err:
        await eng.health()
    assert err.value.kind == "unavailable"
    await eng.stop()


JUNK: list[Any] = [None, "", 0, -1, 1.5, True, [], {}, {"a": [1]}, "x" * 300, float("nan")]


async def test_junk_arguments_raise_engine_errors_only(tmp_path: Path) -> None:
    """Whatever the types, a facade call answers or raises EngineError; it never crashes."""
    engine = Engine(SqliteStorage(tmp_path / "junk.sqlite"), EngineSettings(poll_timeout_default=0.05))
    await engine.start()
    await engine.register_worker(NS, {"worker_id": "w1", "task_queue": Q, "runtime": "python"})
    calls: list[Any] = []
    for junk in JUNK:
        calls += [
            lambda j=junk: engine.poll_workflow_task(NS, worker_id=j, task_queue=Q, timeout_seconds=0),
            lambda j=junk: engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=j),
            lambda j=junk: engine.poll_activity_task(NS, worker_id="w1", task_queue=j, timeout_seconds=0),
            lambda j=junk: engine.workflow_task_history(NS, j, lease_owner=j, attempt=j, page_token=j),
            lambda j=junk: engine.heartbeat_workflow_task(NS, j, lease_owner="w1", attempt=1),
            lambda j=junk: engine.complete_workflow_task(NS, "t", lease_owner="w1", attempt=1, commands=j),
            lambda j=junk: engine.fail_workflow_task(NS, j, lease_owner="w1", attempt=1, failure=j),
            lambda j=junk: engine.complete_activity_task(NS, j, attempt_id=j, lease_owner="w1", result=j),
            lambda j=junk: engine.fail_activity_task(NS, "t", attempt_id="a", lease_owner="w1", failure=j),
            lambda j=junk: engine.heartbeat_activity_task(NS, j, attempt_id=j, lease_owner="w1", details=j),
            lambda j=junk: engine.register_worker(NS, {"worker_id": j, "task_queue": j, "runtime": "python"}),
            lambda j=junk: engine.heartbeat_worker(NS, {"worker_id": j}),
            lambda j=junk: engine.deregister_worker(NS, j),
            lambda j=junk: engine.start_workflow(NS, {"workflow_type": "t", "input": j, "memo": j}),
            lambda j=junk: engine.start_workflow(NS, {"workflow_type": j, "workflow_id": j, "task_queue": j}),
            lambda j=junk: engine.list_workflows(
                NS, workflow_type=j, status=j, query=j, page_size=j, page_token=j
            ),
            lambda j=junk: engine.describe_workflow(NS, j, j),
            lambda j=junk: engine.list_runs(NS, j),
            lambda j=junk: engine.run_history(NS, "wf", j, page_size=j, page_token=j),
            lambda j=junk: engine.cancel_workflow(NS, j, None, reason=j, request_id=j),
            lambda j=junk: engine.await_run_result(NS, j, None, wait_seconds=j),
        ]
    for call in calls:
        try:
            await call()
        except EngineError as exc:
            assert exc.kind != "unavailable", exc
    await engine.stop()


async def test_a_cancelled_waiter_hands_its_wake_up_on() -> None:
    from durable_workflow_server.engine._notify import Notifier

    notifier = Notifier()
    key = ("workflow_task", NS, Q)
    first = asyncio.create_task(notifier.wait(key, notifier.mark(key), 5))
    second = asyncio.create_task(notifier.wait(key, notifier.mark(key), 5))
    await asyncio.sleep(0.01)
    notifier.notify(key, "t")  # wakes only the first waiter ...
    first.cancel()  # ... which is cancelled before it can act on it
    assert await asyncio.wait_for(second, 1) is True


async def test_a_task_claimed_for_a_cancelled_poll_is_given_back(engine: Engine) -> None:
    storage: Any = engine.storage
    original = storage.claim_workflow_task

    async def slow_claim(*args: Any) -> Any:
        await asyncio.sleep(0.2)  # the client leaves while the claim is on its way
        return await original(*args)

    storage.claim_workflow_task = slow_claim
    await engine.start_workflow(NS, {"workflow_id": "gone", "workflow_type": "t", "task_queue": Q})
    poll = asyncio.create_task(engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=5))
    await asyncio.sleep(0.05)
    poll.cancel()
    storage.claim_workflow_task = original
    await asyncio.sleep(0.4)
    reply = await engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=1)
    assert reply["task"] is not None and reply["task"]["workflow_id"] == "gone"


async def test_notifier_memory_stays_bounded() -> None:
    from durable_workflow_server.engine._notify import Notifier

    notifier = Notifier()
    waiting = asyncio.create_task(notifier.wait(("run", "kept"), 0, 5))
    await asyncio.sleep(0)
    for i in range(10_000):
        notifier.notify(("run", f"r{i}"))
    assert len(notifier._counters) <= 4097
    notifier.notify(("run", "kept"))
    assert await asyncio.wait_for(waiting, 1) is True
