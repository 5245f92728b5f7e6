"""Updates in the engine: in-task validation, acceptance, completion, idempotency, steps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from messages_support import (
    CAPABLE,
    NS,
    blob,
    complete,
    engine_fixture,
    events,
    lease,
    refusal,
    release,
    start,
    types,
)

from durable_workflow import serializer
from durable_workflow_server.engine import Engine, ManualClock
from durable_workflow_server.storage import Storage

WAIT = {"type": "open_condition_wait", "condition_key": "k"}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_800_000_000.0)


@pytest.fixture
async def engine(engine_storage: Storage, clock: ManualClock) -> AsyncIterator[Engine]:
    async for eng in engine_fixture(engine_storage, clock, **CAPABLE):
        yield eng


async def _waiting_run(engine: Engine) -> None:
    await start(engine)
    await complete(engine, await lease(engine), [WAIT])


def _update(engine: Engine, *args: Any, **kwargs: Any) -> asyncio.Task[tuple[int, dict[str, Any]]]:
    kwargs.setdefault("wait_timeout_seconds", 5)
    return asyncio.create_task(engine.update_workflow(NS, "wf-1", None, *args, **kwargs))


async def test_validator_rejection_writes_no_history(engine: Engine) -> None:
    await _waiting_run(engine)
    before = types(await events(engine))
    asking = _update(engine, "add", input=[-1], update_id="u-1", wait_for="completed")
    task = await lease(engine)
    assert task["workflow_update_id"] == "u-1" and task["update_name"] == "add"
    assert serializer.decode_envelope(task["update_arguments"]) == [-1]
    await complete(
        engine,
        task,
        [
            {
                "type": "fail_update",
                "update_id": "u-1",
                "message": "negative",
                "exception_type": "InvalidUpdate",
            }
        ],
    )
    status, body = await asking
    assert (status, body["reason"], body["update_status"]) == (409, "update_rejected", "rejected")
    assert body["failure_message"] == "negative"
    assert types(await events(engine)) == before


async def test_accepted_update_completes_and_wakes_the_workflow(engine: Engine) -> None:
    await _waiting_run(engine)
    asking = _update(engine, "add", input=[5], update_id="u-2", wait_for="completed")
    task = await lease(engine)
    reply = await complete(engine, task, [{"type": "complete_update", "update_id": "u-2", "result": blob(5)}])
    assert len(reply["created_task_ids"]) == 1  # a regular task so the code sees the update
    status, body = await asking
    assert (status, body["update_status"], body["outcome"], body["result"]) == (
        200,
        "completed",
        "update_completed",
        5,
    )
    history = await events(engine)
    assert types(history)[-3:] == ["UpdateAccepted", "UpdateApplied", "UpdateCompleted"]
    assert history[-2]["payload"]["update_name"] == "add"
    follow = await lease(engine)
    assert follow["workflow_update_id"] is None and follow["resume_source_kind"] == "workflow_update"
    # The same id again: the first outcome, nothing new written.
    again_status, again = await engine.update_workflow(
        NS, "wf-1", None, "add", input=[5], update_id="u-2", wait_for="completed"
    )
    assert (again_status, again["result"]) == (200, 5)
    assert len(await events(engine)) == len(history)
    kind, reason, _ = await refusal(
        engine.update_workflow(NS, "wf-1", None, "add", input=[6], update_id="u-2", wait_for="completed")
    )
    assert (kind, reason) == ("conflict", "request_id_conflict")


async def test_handler_failure_is_422(engine: Engine) -> None:
    await _waiting_run(engine)
    asking = _update(engine, "boom", update_id="u-3", wait_for="completed")
    task = await lease(engine)
    await complete(
        engine,
        task,
        [{"type": "fail_update", "update_id": "u-3", "message": "kaput", "exception_type": "RuntimeError"}],
    )
    status, body = await asking
    assert (status, body["reason"], body["failure_message"]) == (422, "update_failed", "kaput")
    assert types(await events(engine))[-2:] == ["UpdateAccepted", "UpdateCompleted"]


async def test_a_handler_step_is_followed_by_a_new_update_task(engine: Engine) -> None:
    await _waiting_run(engine)
    asking = _update(engine, "slow", update_id="u-4", wait_for="accepted")
    task = await lease(engine)
    await complete(engine, task, [{"type": "schedule_activity", "activity_type": "echo", "queue": "q"}])
    status, body = await asking
    assert (status, body["update_status"]) == (202, "accepted")
    assert types(await events(engine))[-2:] == ["UpdateAccepted", "ActivityScheduled"]
    act = (await engine.poll_activity_task(NS, worker_id="w1", task_queue="q", timeout_seconds=0))["task"]
    await engine.complete_activity_task(
        NS, act["task_id"], attempt_id=act["activity_attempt_id"], lease_owner="w1", result=blob(1)
    )
    regular = await lease(engine)  # woken by the activity: the code has nothing new
    assert regular["workflow_update_id"] is None
    await release(engine, regular)
    again = await lease(engine)  # so the update's handler runs again, with the result
    assert again["workflow_update_id"] == "u-4" and "update_name" not in again
    await complete(engine, again, [{"type": "complete_update", "update_id": "u-4", "result": blob(1)}])
    # The handler's step precedes UpdateApplied, so the open wait is marked satisfied after it.
    assert types(await events(engine))[-3:] == ["UpdateApplied", "UpdateCompleted", "ConditionWaitSatisfied"]


async def test_without_a_validating_worker_the_update_is_accepted_at_once(
    engine_storage: Storage, clock: ManualClock
) -> None:
    async for engine in engine_fixture(engine_storage, clock):  # a worker without the capability
        await _waiting_run(engine)
        status, body = await engine.update_workflow(
            NS, "wf-1", None, "add", input=[1], wait_timeout_seconds=0
        )
        assert (status, body["update_status"], body["wait_timed_out"]) == (202, "accepted", False)
        assert types(await events(engine))[-1] == "UpdateAccepted"
        task = await lease(engine)
        assert task["workflow_update_id"] == body["update_id"] and "update_name" not in task


async def test_update_commands_must_name_the_task_update(engine: Engine) -> None:
    await start(engine)
    task = await lease(engine)
    kind, reason, _ = await refusal(
        complete(engine, task, [{"type": "complete_update", "update_id": "ghost", "result": blob(1)}])
    )
    assert (kind, reason) == ("conflict", "invalid_commands")


async def test_update_refusals(engine: Engine) -> None:
    assert (await refusal(engine.update_workflow(NS, "nope", None, "x")))[1] == "instance_not_found"
    await start(engine)
    assert (await refusal(engine.update_workflow(NS, "wf-1", None, "x", wait_for="later")))[
        1
    ] == "validation_failed"


async def test_an_update_waiting_on_a_run_that_closes_is_refused(engine: Engine) -> None:
    await start(engine)
    first = await lease(engine)
    asking = _update(engine, "late", update_id="u-5", wait_for="completed")
    await asyncio.sleep(0.05)
    await complete(engine, first, [{"type": "complete_workflow", "result": blob(1)}])
    kind, reason, extra = await refusal(asking)
    assert (kind, reason, extra["update_status"]) == ("conflict", "run_not_active", "requested")
