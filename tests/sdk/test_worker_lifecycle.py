"""Worker lifecycle through a scripted server: registration, heartbeats, resilience, shutdown."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from sdk_worker_fakes import FakeServer, activity_task

from durable_workflow import activity, workflow
from durable_workflow.client import NetworkError, Request, Response
from durable_workflow.errors import Unauthorized, WorkflowDefinitionError
from durable_workflow.worker import Worker


@activity.defn(name="sdk-life.echo")
def echo(value: Any) -> Any:
    return value


@activity.defn(name="sdk-life.slow")
async def slow(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "done"


@workflow.defn(name="sdk-life.flow")
class Flow:
    def run(self, ctx: Any) -> Any:
        return (yield ctx.schedule_activity("sdk-life.echo", [1]))


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


async def test_registers_polls_both_kinds_and_deregisters_on_shutdown() -> None:
    server = FakeServer()
    worker = Worker(
        server.client(),
        task_queue="orders",
        workflows=[Flow],
        activities=[echo, slow],
        max_concurrent_activities=7,
        max_concurrent_workflow_tasks=3,
        build_id="b-1",
    )
    assert re.fullmatch(r"py-worker-[0-9a-f]{8}", worker.worker_id)
    run = asyncio.create_task(worker.run())
    await wait_for(
        lambda: {"/api/worker/workflow-tasks/poll", "/api/worker/activity-tasks/poll"} <= set(server.paths())
    )
    assert worker.is_running
    await worker.shutdown(grace_seconds=1)
    await asyncio.wait_for(run, timeout=5)
    assert not worker.is_running

    register = server.requests[0]
    assert register.path == "/api/worker/register"
    assert register.json["worker_id"] == worker.worker_id
    assert register.json["task_queue"] == "orders"
    assert register.json["runtime"] == "python"
    assert register.json["supported_workflow_types"] == ["sdk-life.flow"]
    assert register.json["supported_activity_types"] == ["sdk-life.echo", "sdk-life.slow"]
    assert register.json["max_concurrent_workflow_tasks"] == 3
    assert register.json["max_concurrent_activity_tasks"] == 7
    assert register.json["build_id"] == "b-1"
    poll = next(r for r in server.requests if r.path.endswith("/activity-tasks/poll"))
    assert poll.json["worker_id"] == worker.worker_id
    assert poll.json["task_queue"] == "orders"
    assert poll.json["build_id"] == "b-1"
    assert poll.json["poll_request_id"].startswith("activity-poll-")
    assert poll.timeout == poll.json["timeout_seconds"] + 5
    last = server.requests[-1]
    assert (last.method, last.path) == ("DELETE", f"/api/worker/registrations/{worker.worker_id}")


async def test_shutdown_cancels_long_polls_in_flight() -> None:
    server = FakeServer()
    server.poll_hold_seconds = 60  # the server would hold every poll for a minute
    worker = Worker(server.client(), task_queue="q", activities=[echo])
    run = asyncio.create_task(worker.run())
    await wait_for(lambda: "/api/worker/activity-tasks/poll" in server.paths())
    started = asyncio.get_running_loop().time()
    await worker.shutdown(grace_seconds=5)
    await asyncio.wait_for(run, timeout=5)
    assert asyncio.get_running_loop().time() - started < 2


async def test_shutdown_lets_tasks_in_hand_finish_before_deregistering() -> None:
    server = FakeServer()
    await server.activity_tasks.put(activity_task("a-1", "sdk-life.slow", [0.3]))
    worker = Worker(server.client(), task_queue="q", activities=[slow])
    run = asyncio.create_task(worker.run())
    await wait_for(lambda: any(r.path.endswith("/activity-tasks/poll") for r in server.requests[2:]))
    await worker.shutdown(grace_seconds=5)
    await run
    paths = server.paths()
    complete = paths.index("/api/worker/activity-tasks/a-1/complete")
    deregister = paths.index(f"/api/worker/registrations/{worker.worker_id}")
    assert complete < deregister


async def test_tasks_past_the_grace_period_are_cancelled_without_a_report() -> None:
    server = FakeServer()
    await server.activity_tasks.put(activity_task("a-2", "sdk-life.slow", [30]))
    worker = Worker(server.client(), task_queue="q", activities=[slow])
    run = asyncio.create_task(worker.run())
    await wait_for(lambda: any(r.path.endswith("/activity-tasks/poll") for r in server.requests[2:]))
    await worker.shutdown(grace_seconds=0.1)
    await asyncio.wait_for(run, timeout=5)
    assert not any("/activity-tasks/a-2/" in p for p in server.paths())
    assert server.paths()[-1] == f"/api/worker/registrations/{worker.worker_id}"


async def test_deregistering_an_unknown_worker_counts_as_done() -> None:
    server = FakeServer()
    server.overrides["/registrations/"] = lambda r: Response(404, json={"reason": "worker_not_found"})
    worker = Worker(server.client(), task_queue="q", activities=[echo])
    run = asyncio.create_task(worker.run())
    await wait_for(lambda: "/api/worker/activity-tasks/poll" in server.paths())
    await worker.shutdown()
    await run  # no exception


async def test_poll_errors_back_off_and_polling_continues() -> None:
    server = FakeServer()
    failures = {"left": 4}

    def flaky_poll(request: Request) -> Response | None:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise NetworkError("connection refused")
        return None

    server.overrides["/activity-tasks/poll"] = flaky_poll
    await server.activity_tasks.put(activity_task("a-3", "sdk-life.echo", ["still here"]))
    worker = Worker(server.client(), task_queue="q", activities=[echo])
    run = asyncio.create_task(worker.run())
    report = await server.next_report()
    await worker.shutdown()
    await run
    assert report.path == "/api/worker/activity-tasks/a-3/complete"


async def test_a_poll_answered_worker_not_registered_registers_again() -> None:
    server = FakeServer()
    answers = [Response(412, json={"reason": "worker_not_registered", "error": "who are you"})]
    server.overrides["/activity-tasks/poll"] = lambda r: answers.pop() if answers else None
    worker = Worker(server.client(), task_queue="q", activities=[echo])
    run = asyncio.create_task(worker.run())
    await wait_for(lambda: server.paths().count("/api/worker/register") == 2)
    await worker.shutdown()
    await run


async def test_registration_retries_while_the_server_is_down() -> None:
    server = FakeServer()
    down = {"left": 5}

    def register(request: Request) -> Response | None:
        if down["left"] > 0:
            down["left"] -= 1
            raise ConnectionRefusedError("down")
        return None

    server.overrides["/worker/register"] = register
    worker = Worker(server.client(), task_queue="q", activities=[echo])
    async with worker:
        assert worker.is_running
        assert down["left"] == 0
    assert not worker.is_running


async def test_a_refused_registration_is_raised() -> None:
    server = FakeServer()
    server.overrides["/worker/register"] = lambda r: Response(401, json={"reason": "unauthorized"})
    worker = Worker(server.client(), task_queue="q", activities=[echo])
    with pytest.raises(Unauthorized):
        await worker.run()


async def test_heartbeats_follow_the_interval_the_server_asks_for() -> None:
    server = FakeServer()
    server.overrides["/worker/register"] = lambda r: Response(
        201, json={"worker_id": r.json["worker_id"], "registered": True, "heartbeat_interval_seconds": 0.05}
    )
    async with Worker(server.client(), task_queue="q", activities=[echo]):
        await wait_for(lambda: server.paths().count("/api/worker/heartbeat") >= 2)
    beat = next(r for r in server.requests if r.path == "/api/worker/heartbeat")
    assert set(beat.json) == {"worker_id", "task_slots"}
    assert beat.json["task_slots"]["activity_available"] == 100


async def test_a_heartbeat_answered_not_registered_registers_again() -> None:
    server = FakeServer()
    server.overrides["/worker/register"] = lambda r: Response(
        201, json={"worker_id": r.json["worker_id"], "registered": True, "heartbeat_interval_seconds": 0.05}
    )
    server.overrides["/worker/heartbeat"] = lambda r: Response(404, json={"reason": "worker_not_registered"})
    async with Worker(server.client(), task_queue="q", activities=[echo]):
        await wait_for(lambda: server.paths().count("/api/worker/register") >= 2)


def test_configuration_errors_are_raised_at_construction() -> None:
    server = FakeServer()
    with pytest.raises(ValueError):
        Worker(server.client(), task_queue="q")
    with pytest.raises(ValueError):
        Worker(server.client(), task_queue="q", activities=[echo], max_concurrent_activities=0)
    with pytest.raises(WorkflowDefinitionError):
        Worker(server.client(), task_queue="q", activities=[lambda: None])


async def test_shutdown_before_run_means_run_returns_at_once() -> None:
    server = FakeServer()
    worker = Worker(server.client(), task_queue="q", activities=[echo])
    await worker.shutdown()
    await asyncio.wait_for(worker.run(), timeout=1)
    assert server.requests == []


async def test_run_until_signal_shuts_down_gracefully_on_sigterm() -> None:
    import os
    import signal

    server = FakeServer()
    worker = Worker(server.client(), task_queue="q", activities=[echo])
    run = asyncio.create_task(worker.run_until_signal(grace_seconds=1))
    await wait_for(lambda: "/api/worker/activity-tasks/poll" in server.paths())
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(run, timeout=5)
    assert server.paths()[-1] == f"/api/worker/registrations/{worker.worker_id}"
    # The handlers are removed again: the default disposition is back.
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


async def test_empty_polls_answered_at_once_do_not_spin() -> None:
    server = FakeServer()
    server.poll_hold_seconds = 0  # a server that never holds a poll
    async with Worker(server.client(), task_queue="q", activities=[echo], poll_timeout_seconds=0):
        await asyncio.sleep(0.5)
    polls = server.paths().count("/api/worker/activity-tasks/poll")
    # Four pollers pausing 0.05, 0.1, 0.2 ... s: a handful each, not thousands.
    assert polls <= 4 * 5
