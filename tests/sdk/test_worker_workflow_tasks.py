"""Worker workflow tasks through a scripted server: complete, waiting, non-determinism, drops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sdk_worker_fakes import FakeServer, started_event, workflow_task

from durable_workflow import serializer, workflow
from durable_workflow.client import Response
from durable_workflow.worker import Worker


@workflow.defn(name="sdk-test.greeter")
class Greeter:
    def run(self, ctx: Any, name: str) -> Any:
        yield ctx.sleep(1)
        return (yield ctx.schedule_activity("greet", [name]))


@asynccontextmanager
async def running(server: FakeServer, **options: Any) -> AsyncIterator[Worker]:
    options.setdefault("workflows", [Greeter])
    worker = Worker(server.client(), task_queue="q", worker_id="w-test", **options)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        await worker.shutdown(grace_seconds=2)
        await asyncio.wait_for(task, timeout=5)


def timer_scheduled(sequence: int) -> dict[str, Any]:
    return {
        "sequence": sequence,
        "event_type": "TimerScheduled",
        "payload": {"sequence": 1, "delay_seconds": 1},
    }


def timer_fired(sequence: int) -> dict[str, Any]:
    return {"sequence": sequence, "event_type": "TimerFired", "payload": {"sequence": 1, "delay_seconds": 1}}


async def test_new_commands_complete_the_task() -> None:
    server = FakeServer()
    await server.workflow_tasks.put(workflow_task("t-1", "sdk-test.greeter", [started_event()]))
    async with running(server):
        report = await server.next_report()
    assert report.path == "/api/worker/workflow-tasks/t-1/complete"
    assert report.json == {
        "lease_owner": "w-test",
        "workflow_task_attempt": 2,
        "commands": [{"type": "start_timer", "delay_seconds": 1}],
    }


async def test_history_pages_are_fetched_before_replay() -> None:
    server = FakeServer()
    history_calls: list[Any] = []

    def history(request: Any) -> Response:
        history_calls.append(request.json)
        return Response(
            200,
            json={"history_events": [timer_scheduled(2), timer_fired(3)], "next_history_page_token": None},
        )

    server.overrides["/history"] = history
    await server.workflow_tasks.put(
        workflow_task("t-2", "sdk-test.greeter", [started_event()], next_history_page_token="MQ==")
    )
    async with running(server):
        report = await server.next_report()
    assert history_calls == [
        {
            "lease_owner": "w-test",
            "workflow_task_attempt": 2,
            "next_history_page_token": "MQ==",
            "history_page_size": 1000,
        }
    ]
    (command,) = report.json["commands"]
    assert command["type"] == "schedule_activity"
    assert command["activity_type"] == "greet"
    assert command["queue"] == "q"
    assert serializer.decode_envelope(command["arguments"]) == ["Ada"]


async def test_nothing_new_fails_with_waiting_for_history() -> None:
    server = FakeServer()
    await server.workflow_tasks.put(
        workflow_task("t-3", "sdk-test.greeter", [started_event(), timer_scheduled(2)])
    )
    async with running(server):
        report = await server.next_report()
    assert report.path == "/api/worker/workflow-tasks/t-3/fail"
    assert report.json["lease_owner"] == "w-test"
    assert report.json["workflow_task_attempt"] == 2
    assert report.json["failure"]["type"] == "WorkflowTaskWaitingForHistory"


async def test_non_determinism_fails_the_task_with_its_message() -> None:
    server = FakeServer()
    changed = {
        "sequence": 2,
        "event_type": "ActivityScheduled",
        "payload": {"sequence": 1, "activity_type": "greet"},
    }
    await server.workflow_tasks.put(workflow_task("t-4", "sdk-test.greeter", [started_event(), changed]))
    async with running(server):
        report = await server.next_report()
    failure = report.json["failure"]
    assert report.path == "/api/worker/workflow-tasks/t-4/fail"
    assert failure["type"] == "NonDeterministicReplayError"
    assert "not deterministic" in failure["message"]


async def test_unknown_workflow_type_fails_the_task() -> None:
    server = FakeServer()
    await server.workflow_tasks.put(workflow_task("t-5", "nobody.knows", [started_event()]))
    async with running(server):
        report = await server.next_report()
    assert report.path == "/api/worker/workflow-tasks/t-5/fail"
    assert report.json["failure"]["message"] == "no workflow registered for type 'nobody.knows'"


async def test_a_task_without_the_avro_codec_is_failed_closed() -> None:
    server = FakeServer()
    await server.workflow_tasks.put(
        workflow_task("t-6", "sdk-test.greeter", [started_event()], payload_codec=None)
    )
    async with running(server):
        report = await server.next_report()
    assert report.path == "/api/worker/workflow-tasks/t-6/fail"
    assert report.json["failure"]["type"] == "UnsupportedPayloadCodec"


async def test_a_task_taken_away_is_dropped_without_a_failure_report() -> None:
    server = FakeServer()
    server.overrides["/complete"] = lambda r: Response(
        409, json={"reason": "lease_expired", "error": "expired"}
    )
    await server.workflow_tasks.put(workflow_task("t-7", "sdk-test.greeter", [started_event()]))
    await server.workflow_tasks.put(
        workflow_task("t-8", "sdk-test.greeter", [started_event(), timer_scheduled(2)])
    )
    async with running(server):
        report = await server.next_report()  # t-8's fail; t-7 produced no report
    assert report.path == "/api/worker/workflow-tasks/t-8/fail"
    assert not any(p == "/api/worker/workflow-tasks/t-7/fail" for p in server.paths())
    assert server.reports.empty()


async def test_refused_commands_are_reported_as_a_task_failure() -> None:
    server = FakeServer()
    server.overrides["/complete"] = lambda r: Response(
        409, json={"reason": "invalid_commands", "error": "bad command"}
    )
    await server.workflow_tasks.put(workflow_task("t-9", "sdk-test.greeter", [started_event()]))
    async with running(server):
        report = await server.next_report()
    assert report.path == "/api/worker/workflow-tasks/t-9/fail"
    assert "bad command" in report.json["failure"]["message"]


async def test_only_workflow_tasks_are_polled_by_a_workflow_only_worker() -> None:
    server = FakeServer()
    async with running(server):
        await asyncio.sleep(0.1)
    assert any(p == "/api/worker/workflow-tasks/poll" for p in server.paths())
    assert not any(p == "/api/worker/activity-tasks/poll" for p in server.paths())
