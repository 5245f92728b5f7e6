"""Activities: the decorator and registry, and the per-attempt context (info, heartbeats, cancellation)."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from durable_workflow import activity
from durable_workflow.activity import ActivityContext, ActivityInfo, NotInActivityError
from durable_workflow.errors import ApplicationError, DurableWorkflowError, WorkflowDefinitionError


def make_info(**overrides: Any) -> ActivityInfo:
    fields: dict[str, Any] = {
        "workflow_id": "wf-1",
        "run_id": "run-1",
        "activity_id": "act-1",
        "activity_type": "test-activity.charge",
        "attempt": 1,
        "task_queue": "default",
        "task_id": "task-1",
        "attempt_id": "attempt-1",
    }
    fields.update(overrides)
    return ActivityInfo(**fields)


# --- declaration ---------------------------------------------------------------------------


@activity.defn(name="test-activity.sync-echo")
def sync_echo(value: str) -> str:
    return value


@activity.defn(name="test-activity.async-echo")
async def async_echo(value: str) -> str:
    return value


async def test_defn_returns_the_function_unchanged_and_registers_it() -> None:
    assert sync_echo("a") == "a"
    assert await async_echo("b") == "b"
    assert sync_echo.__name__ == "sync_echo"
    assert asyncio.iscoroutinefunction(async_echo)
    found = activity.registry()
    assert found["test-activity.sync-echo"] is sync_echo
    assert found["test-activity.async-echo"] is async_echo
    assert activity.activity_name(sync_echo) == "test-activity.sync-echo"
    assert activity.activity_name(async_echo) == "test-activity.async-echo"


def test_registry_is_a_copy() -> None:
    copy = activity.registry()
    copy.clear()
    assert "test-activity.sync-echo" in activity.registry()


def test_defn_is_keyword_only_and_validates_its_name() -> None:
    with pytest.raises(TypeError):
        activity.defn("positional")  # type: ignore[call-arg]
    for bad in ("", "   "):
        with pytest.raises(WorkflowDefinitionError):
            activity.defn(name=bad)
    with pytest.raises(WorkflowDefinitionError):
        activity.defn(name="test-activity.not-callable")(42)  # type: ignore[type-var]


def test_activity_name_of_an_undecorated_function() -> None:
    def plain() -> None:
        pass

    with pytest.raises(WorkflowDefinitionError, match="not an activity"):
        activity.activity_name(plain)


def test_methods_can_be_activities() -> None:
    class Payments:
        @activity.defn(name="test-activity.method")
        def charge(self, amount: int) -> int:
            return amount

    payments = Payments()
    assert activity.activity_name(payments.charge) == "test-activity.method"
    assert payments.charge(3) == 3


def test_reusing_a_name_keeps_the_last_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    def first() -> str:
        return "first"

    def second() -> str:
        return "second"

    with caplog.at_level(logging.WARNING, logger="durable_workflow.activity"):
        activity.defn(name="test-activity.reused")(first)
        activity.defn(name="test-activity.reused")(first)
        assert caplog.records == []
        activity.defn(name="test-activity.reused")(second)
    assert activity.registry()["test-activity.reused"] is second
    assert "test-activity.reused" in caplog.records[0].getMessage()


# --- context outside an activity -------------------------------------------------------------


@pytest.mark.parametrize("call", [activity.info, activity.heartbeat, activity.is_cancelled, activity.context])
def test_context_functions_outside_an_activity(call: Any) -> None:
    with pytest.raises(NotInActivityError, match="not running inside an activity") as caught:
        call()
    assert isinstance(caught.value, RuntimeError)
    assert isinstance(caught.value, DurableWorkflowError)


# --- context inside an activity ----------------------------------------------------------------


def test_info_is_frozen_with_optional_deadline_and_details() -> None:
    info = make_info()
    assert info.deadline is None and info.heartbeat_details is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.attempt = 2  # type: ignore[misc]
    deadline = datetime(2026, 11, 25, 16, 0, tzinfo=UTC)
    assert make_info(deadline=deadline, heartbeat_details={"page": 3}).deadline == deadline


def test_running_installs_and_restores_the_context() -> None:
    ctx = ActivityContext(make_info(attempt=2))
    with activity._running(ctx) as installed:
        assert installed is ctx
        assert activity.context() is ctx
        assert activity.info().attempt == 2
        assert activity.is_cancelled() is False
        inner = ActivityContext(make_info(activity_id="inner"))
        with activity._running(inner):
            assert activity.info().activity_id == "inner"
        assert activity.context() is ctx
    with pytest.raises(NotInActivityError):
        activity.context()


def test_heartbeat_without_a_callback_only_records_details() -> None:
    ctx = ActivityContext(make_info(heartbeat_details={"page": 1}))
    assert ctx.last_heartbeat_details == {"page": 1}
    with activity._running(ctx):
        activity.heartbeat({"page": 2})
    assert ctx.last_heartbeat_details == {"page": 2}


def test_heartbeat_calls_the_callback_on_the_callers_thread_without_a_loop() -> None:
    seen: list[tuple[Any, str]] = []
    ctx = ActivityContext(make_info(), heartbeat=lambda d: seen.append((d, threading.current_thread().name)))

    def body() -> None:
        with activity._running(ctx):
            activity.heartbeat("from-thread")

    worker = threading.Thread(target=body, name="activity-thread")
    worker.start()
    worker.join()
    assert seen == [("from-thread", "activity-thread")]


async def test_async_activity_heartbeats_on_the_loop() -> None:
    loop = asyncio.get_running_loop()
    seen: list[Any] = []
    ctx = ActivityContext(make_info(), heartbeat=seen.append, loop=loop)

    @activity.defn(name="test-activity.async-heartbeat")
    async def work() -> str:
        activity.heartbeat(1)
        await asyncio.sleep(0)
        activity.heartbeat(2)
        return activity.info().activity_id

    with activity._running(ctx):
        assert await work() == "act-1"
    # On the loop's own thread the callback runs at once, not via call_soon.
    assert seen == [1, 2]


async def test_sync_activity_in_a_thread_pool_heartbeats_back_to_the_loop() -> None:
    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()
    delivered: list[tuple[Any, int]] = []
    got_two = asyncio.Event()

    def record(details: Any) -> None:
        delivered.append((details, threading.get_ident()))
        if len(delivered) == 2:
            got_two.set()

    ctx = ActivityContext(make_info(), heartbeat=record, loop=loop)

    @activity.defn(name="test-activity.sync-heartbeat")
    def work(pages: int) -> int:
        assert threading.get_ident() != loop_thread
        for page in range(pages):
            activity.heartbeat({"page": page})
        return activity.info().attempt

    # The way the worker runs sync activities: install on the loop, carry the context across.
    with ThreadPoolExecutor(max_workers=1) as pool, activity._running(ctx):
        copied = contextvars.copy_context()
        result = await loop.run_in_executor(pool, copied.run, work, 2)
    assert result == 1
    await asyncio.wait_for(got_two.wait(), timeout=5)
    assert delivered == [({"page": 0}, loop_thread), ({"page": 1}, loop_thread)]
    assert ctx.last_heartbeat_details == {"page": 1}


async def test_an_async_heartbeat_callback_is_scheduled_as_a_task() -> None:
    loop = asyncio.get_running_loop()
    sent: list[Any] = []
    done = asyncio.Event()

    async def send(details: Any) -> None:
        await asyncio.sleep(0)
        sent.append(details)
        done.set()

    ctx = ActivityContext(make_info(), heartbeat=send, loop=loop)

    def from_thread() -> None:
        ctx.heartbeat("threaded")

    await loop.run_in_executor(None, from_thread)
    await asyncio.wait_for(done.wait(), timeout=5)
    assert sent == ["threaded"]


async def test_cancellation_is_visible_to_a_sync_activity_waiting_in_a_thread() -> None:
    loop = asyncio.get_running_loop()
    ctx = ActivityContext(make_info())
    started = threading.Event()

    @activity.defn(name="test-activity.cancellable")
    def wait_for_cancel() -> bool:
        assert activity.is_cancelled() is False
        started.set()
        return activity.context().cancelled_event.wait(timeout=5)

    with activity._running(ctx):
        future = loop.run_in_executor(None, contextvars.copy_context().run, wait_for_cancel)
    await asyncio.to_thread(started.wait, 5)
    ctx.cancel()
    assert await asyncio.wait_for(future, timeout=5) is True
    assert ctx.is_cancelled is True
    with activity._running(ctx):
        assert activity.is_cancelled() is True


async def test_context_follows_tasks_created_inside_an_async_activity() -> None:
    ctx = ActivityContext(make_info(activity_id="parent"))

    async def child() -> str:
        return activity.info().activity_id

    with activity._running(ctx):
        task = asyncio.create_task(child())
    assert await task == "parent"


def test_application_error_carries_the_failure_decision() -> None:
    @activity.defn(name="test-activity.declines")
    def declines() -> None:
        raise ApplicationError("card declined", type="CardDeclined", non_retryable=True, details={"code": 51})

    with pytest.raises(ApplicationError) as caught:
        declines()
    assert (caught.value.type, caught.value.non_retryable, caught.value.details) == (
        "CardDeclined",
        True,
        {"code": 51},
    )


def test_public_surface() -> None:
    assert sorted(activity.__all__) == [
        "ActivityContext",
        "ActivityInfo",
        "NotInActivityError",
        "activity_name",
        "context",
        "defn",
        "heartbeat",
        "info",
        "is_cancelled",
        "registry",
    ]
