"""Workflow-task leases, fencing reasons, failures and command validation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from durable_workflow import serializer
from durable_workflow_server.engine import Engine, EngineError, EngineSettings, ManualClock
from durable_workflow_server.storage import Storage

NS = "default"
Q = "q"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_800_000_000.0)


@pytest.fixture
async def engine(engine_storage: Storage, clock: ManualClock) -> AsyncIterator[Engine]:
    eng = Engine(engine_storage, EngineSettings(workflow_task_lease_seconds=60), clock=clock)
    await eng.start(background=False)
    await eng.register_worker(NS, {"worker_id": "w1", "task_queue": Q, "runtime": "python"})
    await eng.register_worker(NS, {"worker_id": "w2", "task_queue": Q, "runtime": "python"})
    yield eng
    await eng.stop()


async def started_task(engine: Engine, wid: str = "wf-1", worker: str = "w1") -> dict[str, Any]:
    await engine.start_workflow(NS, {"workflow_id": wid, "workflow_type": "t", "task_queue": Q})
    reply = await engine.poll_workflow_task(NS, worker_id=worker, task_queue=Q, timeout_seconds=0)
    assert reply["task"] is not None
    task: dict[str, Any] = reply["task"]
    return task


async def reason_of(coro: Any) -> tuple[str, str, dict[str, Any]]:
    with pytest.raises(EngineError) as err:
        await coro
    return err.value.kind, err.value.reason, err.value.extra


DONE = [{"type": "complete_workflow", "result": {"codec": "avro", "blob": serializer.encode(1)}}]


async def test_fencing_reasons(engine: Engine, clock: ManualClock) -> None:
    task = await started_task(engine)
    tid = task["task_id"]
    assert await reason_of(
        engine.complete_workflow_task(NS, "nope", lease_owner="w1", attempt=1, commands=DONE)
    ) == ("not_found", "task_not_found", {"task_id": "nope"})
    kind, reason, extra = await reason_of(
        engine.complete_workflow_task(NS, tid, lease_owner="w2", attempt=1, commands=DONE)
    )
    assert (kind, reason, extra["lease_owner"]) == ("conflict", "lease_owner_mismatch", "w1")
    kind, reason, extra = await reason_of(
        engine.heartbeat_workflow_task(NS, tid, lease_owner="w1", attempt=7)
    )
    assert (reason, extra["current_attempt"]) == ("workflow_task_attempt_mismatch", 1)
    clock.advance(61)
    kind, reason, extra = await reason_of(
        engine.complete_workflow_task(NS, tid, lease_owner="w1", attempt=1, commands=DONE)
    )
    assert reason == "lease_expired" and extra["lease_owner"] == "w1"
    # The expired task is offered again, attempt + 1, to another worker.
    again = (await engine.poll_workflow_task(NS, worker_id="w2", task_queue=Q, timeout_seconds=0))["task"]
    assert again is not None and again["task_id"] == tid and again["workflow_task_attempt"] == 2
    _, reason, extra = await reason_of(
        engine.complete_workflow_task(NS, tid, lease_owner="w1", attempt=1, commands=DONE)
    )
    assert reason == "lease_owner_mismatch"
    ok = await engine.complete_workflow_task(NS, tid, lease_owner="w2", attempt=2, commands=DONE)
    assert ok["run_status"] == "completed"
    # An identical retry answers the same success; anything else sees the closed run.
    assert await engine.complete_workflow_task(NS, tid, lease_owner="w2", attempt=2, commands=DONE) == ok
    _, reason, extra = await reason_of(engine.heartbeat_workflow_task(NS, tid, lease_owner="w2", attempt=2))
    assert (
        reason == "run_closed" and extra["stop_reason"] == "run_completed" and extra["can_continue"] is False
    )


async def test_heartbeat_renews_lease(engine: Engine, clock: ManualClock) -> None:
    task = await started_task(engine)
    clock.advance(50)
    beat = await engine.heartbeat_workflow_task(NS, task["task_id"], lease_owner="w1", attempt=1)
    assert beat["renewed"] is True and beat["reason"] is None
    clock.advance(50)
    ok = await engine.complete_workflow_task(NS, task["task_id"], lease_owner="w1", attempt=1, commands=DONE)
    assert ok["outcome"] == "completed"


async def test_task_not_leased_after_completion_of_waiting_task(engine: Engine) -> None:
    task = await started_task(engine)
    await engine.complete_workflow_task(
        NS,
        task["task_id"],
        lease_owner="w1",
        attempt=1,
        commands=[{"type": "start_timer", "delay_seconds": 60}],
    )
    _, reason, _ = await reason_of(
        engine.heartbeat_workflow_task(NS, task["task_id"], lease_owner="w1", attempt=1)
    )
    assert reason == "task_not_leased"


async def test_waiting_for_history_is_a_quiet_release(engine: Engine, clock: ManualClock) -> None:
    task = await started_task(engine)
    reply = await engine.fail_workflow_task(
        NS,
        task["task_id"],
        lease_owner="w1",
        attempt=1,
        failure={"message": "nothing new", "type": "WorkflowTaskWaitingForHistory"},
    )
    assert reply["outcome"] == "failed" and reply["next_task_id"] is None
    assert (await engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0))[
        "task"
    ] is None
    described = await engine.describe_workflow(NS, "wf-1")
    assert described["status"] == "waiting" and described["workflow_task_failure"] is None


async def test_failed_task_retries_with_backoff(engine: Engine, clock: ManualClock) -> None:
    task = await started_task(engine)
    failure = {"message": "boom", "type": "NonDeterministicReplayError"}
    reply = await engine.fail_workflow_task(NS, task["task_id"], lease_owner="w1", attempt=1, failure=failure)
    assert reply["next_task_id"] == task["task_id"]
    assert (
        await engine.fail_workflow_task(NS, task["task_id"], lease_owner="w1", attempt=1, failure=failure)
        == reply
    )  # idempotent
    described = await engine.describe_workflow(NS, "wf-1")
    assert described["workflow_task_failure"]["message"] == "boom"
    assert described["workflow_task_failure"]["attempt"] == 1
    assert (await engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0))[
        "task"
    ] is None
    clock.advance(1.01)
    retry = (await engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0))["task"]
    assert retry is not None and retry["workflow_task_attempt"] == 2
    await engine.fail_workflow_task(NS, retry["task_id"], lease_owner="w1", attempt=2, failure=failure)
    clock.advance(1.5)  # second failure waits 2 s
    assert (await engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0))[
        "task"
    ] is None
    clock.advance(0.6)
    assert (await engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0))[
        "task"
    ] is not None


async def test_event_during_lease_creates_next_task(engine: Engine, clock: ManualClock) -> None:
    task = await started_task(engine)
    await engine.complete_workflow_task(
        NS,
        task["task_id"],
        lease_owner="w1",
        attempt=1,
        commands=[{"type": "start_timer", "delay_seconds": 5}, {"type": "start_timer", "delay_seconds": 10}],
    )
    clock.advance(5)
    assert await engine.fire_due_timers() == 1
    t2 = (await engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0))["task"]
    assert t2 is not None
    assert [e["event_type"] for e in t2["history_events"]][-1] == "TimerFired"
    clock.advance(5)
    assert await engine.fire_due_timers() == 1  # the second timer fires while t2 is leased
    assert (await engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0))[
        "task"
    ] is None
    reply = await engine.complete_workflow_task(
        NS,
        t2["task_id"],
        lease_owner="w1",
        attempt=1,
        commands=[{"type": "record_side_effect", "result": serializer.encode(1), "payload_codec": "avro"}],
    )
    assert len(reply["created_task_ids"]) == 1  # t2 never saw the second TimerFired
    t3 = (await engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0))["task"]
    assert t3 is not None and t3["task_id"] == reply["created_task_ids"][0]
    assert [e["event_type"] for e in t3["history_events"]].count("TimerFired") == 2
    assert t3["resume_source_kind"] == "timer"


async def test_completion_racing_a_leased_task_is_not_lost(engine: Engine) -> None:
    task = await started_task(engine)
    await engine.complete_workflow_task(
        NS,
        task["task_id"],
        lease_owner="w1",
        attempt=1,
        commands=[
            {"type": "schedule_activity", "activity_type": "a", "queue": Q},
            {"type": "schedule_activity", "activity_type": "a", "queue": Q},
        ],
    )
    a1 = (await engine.poll_activity_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0))["task"]
    a2 = (await engine.poll_activity_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0))["task"]
    assert a1 is not None and a2 is not None
    await engine.complete_activity_task(
        NS, a1["task_id"], attempt_id=a1["activity_attempt_id"], lease_owner="w1", result=None
    )
    t2 = (await engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0))["task"]
    assert t2 is not None
    # a2 completes while t2 is leased: t2's history lacks it, so completing t2 must open t3.
    await engine.complete_activity_task(
        NS, a2["task_id"], attempt_id=a2["activity_attempt_id"], lease_owner="w1", result=None
    )
    reply = await engine.fail_workflow_task(
        NS,
        t2["task_id"],
        lease_owner="w1",
        attempt=1,
        failure={"message": "wait", "type": "WorkflowTaskWaitingForHistory"},
    )
    assert reply["next_task_id"] is not None
    t3 = (await engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0))["task"]
    assert t3 is not None
    assert [e["event_type"] for e in t3["history_events"]].count("ActivityCompleted") == 2


async def test_deregister_releases_leases(engine: Engine) -> None:
    await started_task(engine, "wf-a")
    await started_task(engine, "wf-b")
    reply = await engine.deregister_worker(NS, "w1")
    assert reply == {"worker_id": "w1", "outcome": "deregistered", "recovered_workflow_task_count": 2}
    t = (await engine.poll_workflow_task(NS, worker_id="w2", task_queue=Q, timeout_seconds=0))["task"]
    assert t is not None and t["workflow_task_attempt"] == 2
    _, reason, _ = await reason_of(
        engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0)
    )
    assert reason == "worker_not_registered"
    _, reason, _ = await reason_of(engine.deregister_worker(NS, "w1"))
    assert reason == "worker_not_found"


async def test_worker_preconditions(engine: Engine) -> None:
    kind, reason, _ = await reason_of(engine.poll_workflow_task(NS, worker_id="ghost", task_queue=Q))
    assert (kind, reason) == ("precondition", "worker_not_registered")
    kind, reason, _ = await reason_of(engine.poll_activity_task(NS, worker_id="w1", task_queue="other"))
    assert (kind, reason) == ("conflict", "task_queue_mismatch")
    kind, reason, _ = await reason_of(engine.heartbeat_worker(NS, {"worker_id": "ghost"}))
    assert (kind, reason) == ("not_found", "worker_not_registered")
    beat = await engine.heartbeat_worker(NS, {"worker_id": "w1"})
    assert beat["acknowledged"] is True and beat["heartbeat_interval_seconds"] == 20
    assert beat["stale_after_seconds"] == 60
    kind, reason, extra = await reason_of(engine.register_worker(NS, {"task_queue": Q, "runtime": "cobol"}))
    assert (kind, reason) == ("invalid", "validation_failed") and "runtime" in extra["errors"]


async def test_type_filter_routes_tasks(engine: Engine) -> None:
    await engine.register_worker(
        NS,
        {"worker_id": "typed", "task_queue": Q, "runtime": "python", "supported_workflow_types": ["other"]},
    )
    await engine.start_workflow(NS, {"workflow_id": "wf-t", "workflow_type": "t", "task_queue": Q})
    assert (await engine.poll_workflow_task(NS, worker_id="typed", task_queue=Q, timeout_seconds=0))[
        "task"
    ] is None
    assert (await engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0))[
        "task"
    ] is not None


@pytest.mark.parametrize(
    ("commands", "field"),
    [
        ([{"type": "schedule_activity"}], "commands.0.activity_type"),
        ([{"type": "start_timer", "delay_seconds": -1}], "commands.0.delay_seconds"),
        ([{"type": "start_timer", "delay_seconds": "5"}], "commands.0.delay_seconds"),
        ([{"type": "start_timer", "delay_seconds": 1, "retry_policy": {}}], "commands.0.retry_policy"),
        (
            [
                {
                    "type": "schedule_activity",
                    "activity_type": "a",
                    "start_to_close_timeout": 10,
                    "heartbeat_timeout": 20,
                }
            ],
            "commands.0.heartbeat_timeout",
        ),
        (
            [
                {
                    "type": "schedule_activity",
                    "activity_type": "a",
                    "arguments": {"codec": "json", "blob": "x"},
                }
            ],
            "commands.0.arguments",
        ),
        ([{"type": "start_service_operation"}], "commands.0.type"),
        ([{"type": "teleport"}], "commands.0.type"),
        ([{"type": "fail_workflow"}], "commands.0.message"),
        ([], "commands"),
    ],
)
async def test_invalid_commands_are_422(engine: Engine, commands: list[dict[str, Any]], field: str) -> None:
    task = await started_task(engine)
    kind, reason, extra = await reason_of(
        engine.complete_workflow_task(NS, task["task_id"], lease_owner="w1", attempt=1, commands=commands)
    )
    assert (kind, reason) == ("invalid", "validation_failed")
    assert field in extra["errors"]
    # Nothing was written: the task is still leased and can complete.
    ok = await engine.complete_workflow_task(NS, task["task_id"], lease_owner="w1", attempt=1, commands=DONE)
    assert ok["outcome"] == "completed"


async def test_structural_problems_are_409(engine: Engine) -> None:
    task = await started_task(engine)
    kind, reason, _ = await reason_of(
        engine.complete_workflow_task(
            NS, task["task_id"], lease_owner="w1", attempt=1, commands=[*DONE, *DONE]
        )
    )
    assert (kind, reason) == ("conflict", "invalid_commands")
    parallel = {
        "parallel_group_id": "parallel-activities:5:2",
        "parallel_group_kind": "activity",
        "parallel_group_base_sequence": 5,
        "parallel_group_size": 2,
    }
    kind, reason, _ = await reason_of(
        engine.complete_workflow_task(
            NS,
            task["task_id"],
            lease_owner="w1",
            attempt=1,
            commands=[
                {"type": "schedule_activity", "activity_type": "a", **parallel, "parallel_group_index": 0}
            ],
        )
    )
    assert (kind, reason) == ("conflict", "invalid_commands")


async def test_parallel_barrier(engine: Engine) -> None:
    task = await started_task(engine)
    group = {
        "parallel_group_id": "parallel-activities:1:2",
        "parallel_group_kind": "activity",
        "parallel_group_base_sequence": 1,
        "parallel_group_size": 2,
    }
    await engine.complete_workflow_task(
        NS,
        task["task_id"],
        lease_owner="w1",
        attempt=1,
        commands=[
            {"type": "schedule_activity", "activity_type": "a", **group, "parallel_group_index": 0},
            {"type": "schedule_activity", "activity_type": "a", **group, "parallel_group_index": 1},
        ],
    )
    a1 = (await engine.poll_activity_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0))["task"]
    a2 = (await engine.poll_activity_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0))["task"]
    assert a1 and a2
    first = await engine.complete_activity_task(
        NS, a2["task_id"], attempt_id=a2["activity_attempt_id"], lease_owner="w1", result=None
    )
    assert first["next_task_id"] is None
    assert (await engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0))[
        "task"
    ] is None
    second = await engine.fail_activity_task(
        NS, a1["task_id"], attempt_id=a1["activity_attempt_id"], lease_owner="w1", failure={"message": "no"}
    )
    assert second["next_task_id"] is not None


async def test_changed_definition_of_an_active_worker_is_refused(engine: Engine) -> None:
    body = {
        "worker_id": "fp",
        "task_queue": Q,
        "runtime": "python",
        "workflow_definition_fingerprints": {"t": "sha256:aaa"},
    }
    assert (await engine.register_worker(NS, body))["registered"] is True
    assert (await engine.register_worker(NS, body))["registered"] is True  # same definition: an upsert
    _, reason, extra = await reason_of(
        engine.register_worker(NS, {**body, "workflow_definition_fingerprints": {"t": "sha256:bbb"}})
    )
    assert reason == "workflow_definition_changed" and extra["workflow_type"] == "t"
    await engine.deregister_worker(NS, "fp")
    changed = await engine.register_worker(
        NS, {**body, "workflow_definition_fingerprints": {"t": "sha256:bbb"}}
    )
    assert changed["registered"] is True
