"""Activity retries, non-retryable failures, the four timeouts, heartbeats and cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from durable_workflow import serializer
from durable_workflow_server.engine import Engine, EngineError, EngineSettings, ManualClock
from durable_workflow_server.storage import Storage
from durable_workflow_server.storage.sqlite import SqliteStorage

NS = "default"
Q = "q"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_800_000_000.0)


@pytest.fixture
async def engine(engine_storage: Storage, clock: ManualClock) -> AsyncIterator[Engine]:
    eng = Engine(engine_storage, clock=clock)
    await eng.start(background=False)
    await eng.register_worker(NS, {"worker_id": "w1", "task_queue": Q, "runtime": "python"})
    yield eng
    await eng.stop()


async def schedule(engine: Engine, wid: str = "wf-1", **activity: Any) -> None:
    await engine.start_workflow(NS, {"workflow_id": wid, "workflow_type": "t", "task_queue": Q})
    task = (await engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0))["task"]
    assert task is not None
    await engine.complete_workflow_task(
        NS,
        task["task_id"],
        lease_owner="w1",
        attempt=1,
        commands=[{"type": "schedule_activity", "activity_type": "charge", "queue": Q, **activity}],
    )


async def poll_act(engine: Engine) -> dict[str, Any] | None:
    task: dict[str, Any] | None = (
        await engine.poll_activity_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0)
    )["task"]
    return task


async def history_types(engine: Engine, wid: str = "wf-1") -> list[str]:
    run_id = (await engine.describe_workflow(NS, wid))["run_id"]
    return [e["event_type"] for e in (await engine.run_history(NS, wid, run_id, page_size=1000))["events"]]


async def last_event(engine: Engine, wid: str = "wf-1") -> dict[str, Any]:
    run_id = (await engine.describe_workflow(NS, wid))["run_id"]
    event: dict[str, Any] = (await engine.run_history(NS, wid, run_id, page_size=1000))["events"][-1]
    return event


async def fail(engine: Engine, act: dict[str, Any], **failure: Any) -> dict[str, Any]:
    return await engine.fail_activity_task(
        NS,
        act["task_id"],
        attempt_id=act["activity_attempt_id"],
        lease_owner="w1",
        failure={"message": "boom", **failure},
    )


async def test_retries_with_backoff_then_success(engine: Engine, clock: ManualClock) -> None:
    await schedule(engine, retry_policy={"max_attempts": 3, "backoff_seconds": [2, 5]})
    a1 = await poll_act(engine)
    assert a1 is not None and a1["attempt_number"] == 1
    r1 = await fail(engine, a1, type="Flaky")
    assert r1["outcome"] == "failed" and r1["next_task_id"] is not None
    assert await fail(engine, a1, type="Flaky") == r1  # idempotent retry of the same report
    retry = await last_event(engine)
    assert retry["event_type"] == "ActivityRetryScheduled" and retry["payload"]["retry_backoff_seconds"] == 2
    assert await poll_act(engine) is None
    clock.advance(2)
    a2 = await poll_act(engine)
    assert (
        a2 is not None
        and a2["attempt_number"] == 2
        and a2["activity_attempt_id"] != a1["activity_attempt_id"]
    )
    await fail(engine, a2, type="Flaky")
    clock.advance(4)
    assert await poll_act(engine) is None
    clock.advance(1)
    a3 = await poll_act(engine)
    assert a3 is not None and a3["attempt_number"] == 3
    done = await engine.complete_activity_task(
        NS,
        a3["task_id"],
        attempt_id=a3["activity_attempt_id"],
        lease_owner="w1",
        result={"codec": "avro", "blob": serializer.encode(3)},
    )
    assert done["next_task_id"] is not None
    assert (await last_event(engine))["payload"]["attempt_number"] == 3
    # A late report from attempt 1 is refused.
    with pytest.raises(EngineError) as err:
        await engine.complete_activity_task(
            NS, a1["task_id"], attempt_id=a1["activity_attempt_id"], lease_owner="w1", result=None
        )
    assert err.value.reason == "attempt_closed"


async def test_retry_budget_exhausted(engine: Engine, clock: ManualClock) -> None:
    await schedule(engine, retry_policy={"max_attempts": 2, "backoff_seconds": []})
    a1 = await poll_act(engine)
    assert a1 is not None
    await fail(engine, a1)
    a2 = await poll_act(engine)
    assert a2 is not None
    reply = await fail(engine, a2, type="ValueError", **{"class": "builtins.ValueError"})
    event = await last_event(engine)
    assert event["event_type"] == "ActivityFailed"
    assert event["payload"]["exception_type"] == "ValueError" and event["payload"]["attempt_number"] == 2
    assert reply["next_task_id"] is not None  # the workflow task


@pytest.mark.parametrize(
    "failure",
    [
        {"non_retryable": True},
        {"type": "CardDeclined"},
        {"class": "billing.CardDeclined"},
    ],
)
async def test_non_retryable(engine: Engine, failure: dict[str, Any]) -> None:
    await schedule(
        engine,
        retry_policy={
            "max_attempts": 5,
            "backoff_seconds": [1],
            "non_retryable_error_types": ["CardDeclined", "billing.CardDeclined"],
        },
    )
    a1 = await poll_act(engine)
    assert a1 is not None
    await fail(engine, a1, **failure)
    event = await last_event(engine)
    assert event["event_type"] == "ActivityFailed"
    assert event["payload"]["non_retryable"] is bool(failure.get("non_retryable", False))


async def test_no_policy_means_one_attempt(engine: Engine) -> None:
    await schedule(engine)
    a1 = await poll_act(engine)
    assert a1 is not None
    await fail(engine, a1)
    assert (await last_event(engine))["event_type"] == "ActivityFailed"


async def test_start_to_close_timeout_retries_then_times_out(engine: Engine, clock: ManualClock) -> None:
    await schedule(engine, start_to_close_timeout=5, retry_policy={"max_attempts": 2, "backoff_seconds": [1]})
    a1 = await poll_act(engine)
    assert a1 is not None
    clock.advance(5)
    assert await engine.fire_due_timers() == 1
    retry = await last_event(engine)
    assert (
        retry["event_type"] == "ActivityRetryScheduled"
        and retry["payload"]["timeout_kind"] == "start_to_close"
    )
    with pytest.raises(EngineError) as err:  # the timed-out attempt may not complete any more
        await engine.complete_activity_task(
            NS, a1["task_id"], attempt_id=a1["activity_attempt_id"], lease_owner="w1", result=None
        )
    assert err.value.reason == "stale_attempt"
    clock.advance(1)
    a2 = await poll_act(engine)
    assert a2 is not None
    clock.advance(5)
    await engine.fire_due_timers()
    final = await last_event(engine)
    assert final["event_type"] == "ActivityTimedOut"
    assert final["payload"]["timeout_kind"] == "start_to_close" and final["payload"]["sequence"] == 1
    # The workflow was woken with the timeout.
    task = (await engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0))["task"]
    assert task is not None and task["workflow_event_type"] == "ActivityTimedOut"


async def test_schedule_to_start_timeout(engine: Engine, clock: ManualClock) -> None:
    await schedule(engine, schedule_to_start_timeout=3, retry_policy={"max_attempts": 5})
    clock.advance(3)
    await engine.fire_due_timers()
    event = await last_event(engine)
    assert (
        event["event_type"] == "ActivityTimedOut" and event["payload"]["timeout_kind"] == "schedule_to_start"
    )
    assert await poll_act(engine) is None


async def test_schedule_to_start_cancelled_by_claim(engine: Engine, clock: ManualClock) -> None:
    await schedule(engine, schedule_to_start_timeout=3)
    assert await poll_act(engine) is not None
    clock.advance(10)
    assert await engine.fire_due_timers() == 0
    assert (await last_event(engine))["event_type"] == "ActivityStarted"


async def test_schedule_to_close_timeout_spans_retries(engine: Engine, clock: ManualClock) -> None:
    await schedule(
        engine, schedule_to_close_timeout=10, retry_policy={"max_attempts": 10, "backoff_seconds": [3]}
    )
    a1 = await poll_act(engine)
    assert a1 is not None
    clock.advance(4)
    await fail(engine, a1)
    clock.advance(3)
    a2 = await poll_act(engine)
    assert a2 is not None
    clock.advance(3)
    await engine.fire_due_timers()
    event = await last_event(engine)
    assert (
        event["event_type"] == "ActivityTimedOut" and event["payload"]["timeout_kind"] == "schedule_to_close"
    )
    beat = await engine.heartbeat_activity_task(
        NS, a2["task_id"], attempt_id=a2["activity_attempt_id"], lease_owner="w1"
    )
    assert beat["can_continue"] is False and beat["heartbeat_recorded"] is False


async def test_heartbeat_timeout_and_details(engine: Engine, clock: ManualClock) -> None:
    await schedule(
        engine,
        heartbeat_timeout=2,
        start_to_close_timeout=60,
        retry_policy={"max_attempts": 2, "backoff_seconds": [0]},
    )
    a1 = await poll_act(engine)
    assert a1 is not None
    for _ in range(3):  # heartbeats keep it alive past the heartbeat timeout
        clock.advance(1.5)
        beat = await engine.heartbeat_activity_task(
            NS, a1["task_id"], attempt_id=a1["activity_attempt_id"], lease_owner="w1", details={"progress": 7}
        )
        assert beat["heartbeat_recorded"] is True and beat["can_continue"] is True
        assert beat["cancel_requested"] is False
        assert await engine.fire_due_timers() == 0
    clock.advance(2)
    assert await engine.fire_due_timers() == 1
    retry = await last_event(engine)
    assert retry["event_type"] == "ActivityRetryScheduled" and retry["payload"]["timeout_kind"] == "heartbeat"
    a2 = await poll_act(engine)
    assert a2 is not None and a2["heartbeat_details"] == {"progress": 7}


async def test_cancel_reaches_activity_through_heartbeat(engine: Engine) -> None:
    await schedule(engine)
    a1 = await poll_act(engine)
    assert a1 is not None
    await engine.cancel_workflow(NS, "wf-1", None, reason="stop")
    beat = await engine.heartbeat_activity_task(
        NS, a1["task_id"], attempt_id=a1["activity_attempt_id"], lease_owner="w1"
    )
    # Cooperative: the run is still open, the activity is told and may clean up.
    assert beat["cancel_requested"] is True and beat["reason"] == "run_cancel_requested"
    await engine.terminate_workflow(NS, "wf-1", None, reason="stop now")
    beat = await engine.heartbeat_activity_task(
        NS, a1["task_id"], attempt_id=a1["activity_attempt_id"], lease_owner="w1"
    )
    assert beat["cancel_requested"] is True and beat["can_continue"] is False
    assert beat["reason"] == "run_terminated"
    with pytest.raises(EngineError) as err:
        await engine.complete_activity_task(
            NS, a1["task_id"], attempt_id=a1["activity_attempt_id"], lease_owner="w1", result=None
        )
    assert err.value.reason == "run_terminated" and err.value.extra["outcome"] == "ignored"


async def test_activity_guards(engine: Engine) -> None:
    await schedule(engine)
    a1 = await poll_act(engine)
    assert a1 is not None
    cases = [
        ("nope", a1["activity_attempt_id"], "w1", "task_not_found"),
        (a1["task_id"], "nope", "w1", "attempt_not_found"),
        (a1["task_id"], a1["activity_attempt_id"], "w9", "lease_owner_mismatch"),
    ]
    for task_id, attempt_id, owner, reason in cases:
        with pytest.raises(EngineError) as err:
            await engine.complete_activity_task(
                NS, task_id, attempt_id=attempt_id, lease_owner=owner, result=None
            )
        assert err.value.reason == reason


async def test_real_time_start_to_close(tmp_path: Path) -> None:
    """The background loop fires a 1 s start-to-close timeout on its own."""
    eng = Engine(SqliteStorage(tmp_path / "rt.sqlite"), EngineSettings(timer_poll_seconds=0.2))
    await eng.start()
    try:
        await eng.register_worker(NS, {"worker_id": "w1", "task_queue": Q, "runtime": "python"})
        await schedule(eng, start_to_close_timeout=1)
        assert await poll_act(eng) is not None
        task = (await eng.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=3))["task"]
        assert task is not None and task["workflow_event_type"] == "ActivityTimedOut"
    finally:
        await eng.stop()
    await asyncio.sleep(0)


async def test_lease_stands_in_for_a_missing_start_to_close(engine: Engine, clock: ManualClock) -> None:
    await schedule(engine, retry_policy={"max_attempts": 2, "backoff_seconds": [0]})
    a1 = await poll_act(engine)
    assert a1 is not None
    clock.advance(200)
    beat = await engine.heartbeat_activity_task(
        NS, a1["task_id"], attempt_id=a1["activity_attempt_id"], lease_owner="w1"
    )
    assert beat["heartbeat_recorded"] is True
    clock.advance(200)  # 400 s after the start, 200 s after the heartbeat: still leased
    assert await engine.fire_due_timers() == 0
    clock.advance(100)
    assert await engine.fire_due_timers() == 1
    retry = await last_event(engine)
    assert (
        retry["event_type"] == "ActivityRetryScheduled"
        and retry["payload"]["timeout_kind"] == "start_to_close"
    )
    a2 = await poll_act(engine)
    assert a2 is not None and a2["attempt_number"] == 2
    done = await engine.complete_activity_task(
        NS, a2["task_id"], attempt_id=a2["activity_attempt_id"], lease_owner="w1", result=None
    )
    assert done["outcome"] == "completed"
    clock.advance(1000)
    assert await engine.fire_due_timers() == 0  # the finished attempt's lease row was cancelled
