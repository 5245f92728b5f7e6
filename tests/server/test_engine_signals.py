"""Signals and condition waits in the engine: history, wake-ups, idempotency, timers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from messages_support import (
    NS,
    blob,
    complete,
    engine_fixture,
    events,
    lease,
    no_task,
    refusal,
    start,
    types,
)

from durable_workflow_server.engine import Engine, ManualClock
from durable_workflow_server.storage import Storage

WAIT = {"type": "open_condition_wait", "condition_key": "k", "condition_definition_fingerprint": "sha256:x"}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_800_000_000.0)


@pytest.fixture
async def engine(engine_storage: Storage, clock: ManualClock) -> AsyncIterator[Engine]:
    async for eng in engine_fixture(engine_storage, clock):
        yield eng


async def test_signal_records_an_event_and_wakes_an_idle_run(engine: Engine) -> None:
    await start(engine)
    first = await lease(engine)
    await complete(engine, first, [WAIT])
    receipt = await engine.signal_workflow(NS, "wf-1", None, "approve", input=["ada"])
    assert receipt["outcome"] == "signal_received" and receipt["command_status"] == "accepted"
    assert receipt["target_scope"] == "instance" and receipt["workflow_type"] == "t"
    history = await events(engine)
    signal = history[-1]
    assert signal["event_type"] == "SignalReceived"
    assert signal["payload"]["signal_name"] == "approve"
    assert signal["payload"]["workflow_sequence"] == 1
    assert receipt["command_sequence"] == signal["sequence"]
    task = await lease(engine)
    assert task["resume_source_kind"] == "workflow_signal"
    assert task["signal_name"] == "approve"


async def test_a_signal_during_a_lease_gets_another_task_after_completion(engine: Engine) -> None:
    await start(engine)
    first = await lease(engine)
    await engine.signal_workflow(NS, "wf-1", None, "add", input=[1])
    await engine.signal_workflow(NS, "wf-1", None, "add", input=[2])
    assert await no_task(engine)  # one open task per run: the leased one
    reply = await complete(engine, first, [WAIT])
    assert len(reply["created_task_ids"]) == 1
    follow = await lease(engine)
    assert types(follow["history_events"]).count("SignalReceived") == 2


async def test_a_signal_while_a_task_is_ready_adds_no_task(engine: Engine) -> None:
    await start(engine)
    await engine.signal_workflow(NS, "wf-1", None, "add", input=[1])
    task = await lease(engine)
    assert types(task["history_events"])[-1] == "SignalReceived"
    assert await no_task(engine)


async def test_request_id_makes_a_signal_idempotent(engine: Engine) -> None:
    await start(engine)
    one = await engine.signal_workflow(NS, "wf-1", None, "add", input=[1], request_id="r-1")
    two = await engine.signal_workflow(NS, "wf-1", None, "add", input=[1], request_id="r-1")
    assert two["command_id"] == one["command_id"] and two["retained"] is True
    assert types(await events(engine)).count("SignalReceived") == 1
    kind, reason, extra = await refusal(
        engine.signal_workflow(NS, "wf-1", None, "add", input=[2], request_id="r-1")
    )
    assert (kind, reason) == ("conflict", "request_id_conflict")
    assert extra["retained_command_id"] == one["command_id"]


async def test_signal_refusals(engine: Engine) -> None:
    assert (await refusal(engine.signal_workflow(NS, "nope", None, "x")))[:2] == (
        "not_found",
        "instance_not_found",
    )
    await start(engine)
    kind, reason, extra = await refusal(engine.signal_workflow(NS, "wf-1", None, "bad\nname"))
    assert (kind, reason) == ("invalid", "validation_failed") and "signal_name" in extra["errors"]
    _, reason, _ = await refusal(engine.signal_workflow(NS, "wf-1", None, "x", input="not a list"))
    assert reason == "validation_failed"
    first_run = (await engine.describe_workflow(NS, "wf-1"))["run_id"]
    await engine.terminate_workflow(NS, "wf-1", None, reason=None, request_id=None)
    assert (await refusal(engine.signal_workflow(NS, "wf-1", first_run, "x")))[1] == "run_not_active"
    await engine.start_workflow(
        NS,
        {
            "workflow_id": "wf-1",
            "workflow_type": "t",
            "task_queue": "q",
            "id_reuse_policy": "allow_duplicate",
        },
    )
    kind, reason, extra = await refusal(engine.signal_workflow(NS, "wf-1", first_run, "x"))
    assert (kind, reason, extra["target_scope"]) == ("conflict", "historical_run_command_rejected", "run")


async def test_a_wait_timeout_fires_a_condition_timer(engine: Engine, clock: ManualClock) -> None:
    await start(engine)
    first = await lease(engine)
    await complete(engine, first, [{**WAIT, "timeout_seconds": 5}])
    history = await events(engine)
    opened, timer = history[-2], history[-1]
    assert opened["event_type"] == "ConditionWaitOpened" and opened["payload"]["sequence"] == 1
    assert timer["event_type"] == "TimerScheduled"
    assert timer["payload"]["timer_kind"] == "condition_timeout"
    assert timer["payload"]["condition_wait_id"] == opened["payload"]["condition_wait_id"]
    clock.advance(6)
    assert await engine.fire_due_timers() == 1
    history = await events(engine)
    assert types(history)[-2:] == ["TimerFired", "ConditionWaitTimedOut"]
    assert history[-2]["payload"]["condition_wait_id"] == opened["payload"]["condition_wait_id"]
    task = await lease(engine)
    assert task["condition_wait_id"] == opened["payload"]["condition_wait_id"]


async def test_commands_after_a_signal_mark_the_wait_satisfied_first(
    engine: Engine, clock: ManualClock
) -> None:
    await start(engine)
    first = await lease(engine)
    await complete(engine, first, [{**WAIT, "timeout_seconds": 30}])
    await engine.signal_workflow(NS, "wf-1", None, "go")
    task = await lease(engine)
    await complete(engine, task, [{"type": "complete_workflow", "result": blob("done")}])
    assert types(await events(engine))[-4:] == [
        "SignalReceived",
        "ConditionWaitSatisfied",
        "TimerCancelled",
        "WorkflowCompleted",
    ]
    clock.advance(60)
    assert await engine.fire_due_timers() == 0  # the wait's timer was cancelled


async def test_an_open_followed_by_more_commands_is_satisfied_at_once(engine: Engine) -> None:
    await start(engine)
    first = await lease(engine)
    await complete(
        engine, first, [{**WAIT, "timeout_seconds": 30}, {"type": "start_timer", "delay_seconds": 1}]
    )
    history = await events(engine)
    assert types(history)[-3:] == ["ConditionWaitOpened", "ConditionWaitSatisfied", "TimerScheduled"]
    assert history[-1]["payload"]["sequence"] == 2  # the wait took sequence 1
    assert "timer_kind" not in history[-1]["payload"]
