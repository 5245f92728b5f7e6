"""Worker activity tasks through a scripted server: results, failures, heartbeats, cancellation."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sdk_worker_fakes import FakeServer, activity_task

from durable_workflow import activity, serializer
from durable_workflow.client import Request, Response
from durable_workflow.errors import ApplicationError
from durable_workflow.worker import Worker

seen_info: dict[str, Any] = {}


@activity.defn(name="sdk-test.greet")
def greet(name: str) -> str:
    info = activity.info()
    seen_info.update(
        attempt=info.attempt,
        task_id=info.task_id,
        details=info.heartbeat_details,
        thread=threading.current_thread().name,
        deadline=info.deadline,
    )
    return f"hello, {name}"


@activity.defn(name="sdk-test.async-greet")
async def async_greet(name: str) -> str:
    seen_info["async_activity_id"] = activity.info().activity_id
    return f"hi, {name}"


@activity.defn(name="sdk-test.declined")
def declined() -> None:
    raise ApplicationError("card declined", type="CardDeclined", non_retryable=True)


class Boom(RuntimeError):
    pass


@activity.defn(name="sdk-test.boom")
async def boom() -> None:
    raise Boom("exploded")


@activity.defn(name="sdk-test.patient")
async def patient() -> str:
    activity.heartbeat({"step": 1})
    await asyncio.sleep(30)
    return "never"


@activity.defn(name="sdk-test.chatty")
def chatty(count: int) -> int:
    for index in range(count):
        activity.heartbeat({"index": index})
        time.sleep(0.05)
    return count


@asynccontextmanager
async def running(server: FakeServer, **options: Any) -> AsyncIterator[Worker]:
    options.setdefault("activities", [greet, async_greet, declined, boom, patient, chatty])
    worker = Worker(server.client(), task_queue="q", worker_id="w-test", **options)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        await worker.shutdown(grace_seconds=2)
        await asyncio.wait_for(task, timeout=5)


async def test_a_sync_activity_result_is_completed_with_an_envelope() -> None:
    server = FakeServer()
    await server.activity_tasks.put(
        activity_task(
            "a-1",
            "sdk-test.greet",
            ["Ada"],
            attempt_number=3,
            heartbeat_details=serializer.envelope({"resume": 5}),
        )
    )
    async with running(server):
        report = await server.next_report()
    assert report.path == "/api/worker/activity-tasks/a-1/complete"
    assert report.json["activity_attempt_id"] == "att-a-1"
    assert report.json["lease_owner"] == "w-test"
    assert report.json["result"]["codec"] == "avro"
    assert serializer.decode_envelope(report.json["result"]) == "hello, Ada"
    assert seen_info["attempt"] == 3
    assert seen_info["task_id"] == "a-1"
    assert seen_info["details"] == {"resume": 5}
    assert seen_info["thread"].startswith("dw-activity")
    assert seen_info["deadline"] is not None


async def test_an_async_activity_runs_on_the_loop_with_its_context() -> None:
    server = FakeServer()
    await server.activity_tasks.put(activity_task("a-2", "sdk-test.async-greet", ["Bo"]))
    async with running(server):
        report = await server.next_report()
    assert serializer.decode_envelope(report.json["result"]) == "hi, Bo"
    assert seen_info["async_activity_id"] == "act-1"


async def test_application_error_sets_type_and_non_retryable() -> None:
    server = FakeServer()
    await server.activity_tasks.put(activity_task("a-3", "sdk-test.declined", []))
    async with running(server):
        report = await server.next_report()
    assert report.path == "/api/worker/activity-tasks/a-3/fail"
    failure = report.json["failure"]
    assert failure["message"] == "card declined"
    assert failure["type"] == "CardDeclined"
    assert failure["class"] == "durable_workflow.errors.ApplicationError"
    assert failure["non_retryable"] is True
    assert "Traceback" in failure["stack_trace"]


async def test_any_exception_is_reported_with_its_class() -> None:
    server = FakeServer()
    await server.activity_tasks.put(activity_task("a-4", "sdk-test.boom", []))
    async with running(server):
        report = await server.next_report()
    failure = report.json["failure"]
    assert report.json["activity_attempt_id"] == "att-a-4"
    assert failure["type"] == "Boom"
    assert failure["class"] == f"{Boom.__module__}.Boom"
    assert failure["non_retryable"] is False
    assert failure["message"] == "exploded"


async def test_an_unknown_activity_type_fails_non_retryably() -> None:
    server = FakeServer()
    await server.activity_tasks.put(activity_task("a-5", "nobody.knows", []))
    async with running(server):
        report = await server.next_report()
    assert report.json["failure"]["type"] == "ActivityNotRegistered"
    assert report.json["failure"]["non_retryable"] is True


async def test_cancel_requested_in_a_heartbeat_reply_cancels_an_async_activity() -> None:
    server = FakeServer()
    heartbeats: list[Request] = []

    def heartbeat(request: Request) -> Response:
        heartbeats.append(request)
        return Response(
            200, json={"cancel_requested": True, "can_continue": False, "reason": "run_cancelled"}
        )

    server.overrides["/heartbeat"] = heartbeat
    await server.activity_tasks.put(activity_task("a-6", "sdk-test.patient", []))
    async with running(server):
        report = await server.next_report()
    assert heartbeats[0].path == "/api/worker/activity-tasks/a-6/heartbeat"
    assert heartbeats[0].json["activity_attempt_id"] == "att-a-6"
    assert heartbeats[0].json["lease_owner"] == "w-test"
    assert serializer.decode_envelope(heartbeats[0].json["details"]) == {"step": 1}
    assert report.path == "/api/worker/activity-tasks/a-6/fail"
    assert report.json["failure"]["type"] == "ActivityCancelled"
    assert report.json["failure"]["non_retryable"] is True


async def test_can_continue_false_abandons_the_attempt_silently() -> None:
    server = FakeServer()
    server.overrides["/heartbeat"] = lambda r: Response(
        200, json={"cancel_requested": False, "can_continue": False, "reason": "stale_attempt"}
    )
    await server.activity_tasks.put(activity_task("a-7", "sdk-test.patient", []))
    await server.activity_tasks.put(activity_task("a-8", "sdk-test.greet", ["Cy"]))
    async with running(server):
        report = await server.next_report()
        await asyncio.sleep(0.1)
    assert report.path == "/api/worker/activity-tasks/a-8/complete"
    assert not any(
        p.startswith("/api/worker/activity-tasks/a-7/") and not p.endswith("/heartbeat")
        for p in server.paths()
    )


async def test_heartbeats_are_throttled_and_send_the_latest_details() -> None:
    server = FakeServer()
    await server.activity_tasks.put(activity_task("a-9", "sdk-test.chatty", [30]))
    async with running(server):
        report = await server.next_report()
    beats = [r for r in server.requests if r.path.endswith("/heartbeat")]
    assert serializer.decode_envelope(report.json["result"]) == 30
    # 30 heartbeats over ~1.5 s: the first goes at once, the next a second later carrying the
    # details recorded last by then; the ones in between are folded away.
    assert len(beats) == 2
    assert serializer.decode_envelope(beats[0].json["details"]) == {"index": 0}
    assert serializer.decode_envelope(beats[1].json["details"])["index"] >= 15


async def test_a_poll_goes_out_only_when_a_slot_is_free() -> None:
    server = FakeServer()
    release = asyncio.Event()

    @activity.defn(name="sdk-test.gate")
    async def gate() -> str:
        await release.wait()
        return "open"

    await server.activity_tasks.put(activity_task("a-10", "sdk-test.gate", []))
    async with running(server, activities=[gate], max_concurrent_activities=1):
        while not any(r.path == "/api/worker/activity-tasks/poll" for r in server.requests):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # the one slot is held: no further poll may go out
        polls_while_busy = sum(r.path.endswith("/activity-tasks/poll") for r in server.requests)
        release.set()
        report = await server.next_report()
        await asyncio.sleep(0.1)
        polls_after = sum(r.path.endswith("/activity-tasks/poll") for r in server.requests)
    assert polls_while_busy == 1
    assert polls_after > 1
    assert serializer.decode_envelope(report.json["result"]) == "open"
