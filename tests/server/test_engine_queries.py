"""Query routing in the engine: worker selection, query tasks, answers, failures, timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from messages_support import CAPABLE, NS, Q, blob, engine_fixture, events, refusal, start

from durable_workflow import serializer
from durable_workflow_server.engine import Engine, ManualClock
from durable_workflow_server.engine._queries import broker
from durable_workflow_server.storage import Storage


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_800_000_000.0)


@pytest.fixture
async def engine(engine_storage: Storage, clock: ManualClock) -> AsyncIterator[Engine]:
    async for eng in engine_fixture(engine_storage, clock, **CAPABLE):
        yield eng


async def _poll(engine: Engine) -> dict[str, Any]:
    for _ in range(50):
        reply = await engine.poll_query_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0)
        if reply["task"] is not None:
            return dict(reply["task"])
        await asyncio.sleep(0.01)
    raise AssertionError("no query task")


async def test_a_query_is_answered_by_a_polling_worker_and_writes_no_history(engine: Engine) -> None:
    await start(engine)
    before = await events(engine)
    asking = asyncio.create_task(engine.query_workflow(NS, "wf-1", None, "status", input=[7]))
    task = await _poll(engine)
    assert task["query_name"] == "status" and task["lease_owner"] == "w1" and task["task_queue"] == Q
    assert task["payload_codec"] == "avro" and task["lease_expires_at"].endswith("Z")
    assert serializer.decode_envelope(task["query_arguments"]) == [7]
    assert [e["event_type"] for e in task["history_events"]] == [e["event_type"] for e in before]
    done = await engine.complete_query_task(
        NS, task["query_task_id"], lease_owner="w1", attempt=1, result_envelope=blob({"ok": True})
    )
    assert done["outcome"] == "completed"
    answer = await asking
    assert answer["result"] == {"ok": True}
    assert serializer.decode_envelope(answer["result_envelope"]) == {"ok": True}
    assert await events(engine) == before


async def test_worker_failures_reach_the_caller(engine: Engine) -> None:
    await start(engine)
    for reason, kind in (("rejected_unknown_query", "not_found"), ("query_rejected", "conflict")):
        asking = asyncio.create_task(engine.query_workflow(NS, "wf-1", None, "q"))
        task = await _poll(engine)
        await engine.fail_query_task(
            NS,
            task["query_task_id"],
            lease_owner="w1",
            attempt=1,
            failure={"message": "no", "reason": reason},
        )
        assert (await refusal(asking))[:2] == (kind, reason)


async def test_no_capable_worker_fails_at_once(engine_storage: Storage, clock: ManualClock) -> None:
    async for engine in engine_fixture(engine_storage, clock):  # registered without query_tasks
        await start(engine)
        kind, reason, _ = await refusal(engine.query_workflow(NS, "wf-1", None, "status"))
        assert (kind, reason) == ("conflict", "query_worker_unavailable")


async def test_stale_worker_is_not_asked(engine: Engine, clock: ManualClock) -> None:
    await start(engine)
    clock.advance(120)
    assert (await refusal(engine.query_workflow(NS, "wf-1", None, "status")))[1] == "query_worker_unavailable"


async def test_no_answer_in_time_is_504(engine: Engine) -> None:
    await start(engine)
    broker(engine._core).wait_seconds = 0.05
    kind, reason, _ = await refusal(engine.query_workflow(NS, "wf-1", None, "status"))
    assert (kind, reason) == ("timeout", "query_worker_timeout")
    assert (await engine.poll_query_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0))["task"] is None


async def test_query_task_guards(engine: Engine) -> None:
    await start(engine)
    asking = asyncio.create_task(engine.query_workflow(NS, "wf-1", None, "status"))
    task = await _poll(engine)
    tid = task["query_task_id"]
    assert (
        await refusal(
            engine.complete_query_task(NS, "nope", lease_owner="w1", attempt=1, result_envelope=blob(1))
        )
    )[1] == "query_task_not_found"
    assert (
        await refusal(
            engine.complete_query_task(NS, tid, lease_owner="w9", attempt=1, result_envelope=blob(1))
        )
    )[1] == "lease_owner_mismatch"
    _, reason, extra = await refusal(
        engine.complete_query_task(NS, tid, lease_owner="w1", attempt=3, result_envelope=blob(1))
    )
    assert (reason, extra["current_attempt"]) == ("query_task_attempt_mismatch", 1)
    await engine.complete_query_task(NS, tid, lease_owner="w1", attempt=1, result_envelope=blob(1))
    assert (await asking)["result"] == 1
