"""WorkflowHandle through MockTransport: result() outcomes and its long-poll loop, history, cancel."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from durable_workflow import serializer
from durable_workflow.client import Client, MockTransport, NetworkError, Request, Response
from durable_workflow.client._handle import RESULT_HTTP_MARGIN_SECONDS, RESULT_WAIT_SECONDS
from durable_workflow.errors import (
    Conflict,
    NotFound,
    WorkflowCancelledError,
    WorkflowFailedError,
    WorkflowOutcomeError,
    WorkflowTerminatedError,
    WorkflowTimedOutError,
)
from durable_workflow.retry_policy import TransportRetryPolicy

FAST = TransportRetryPolicy(max_attempts=3, initial_backoff_seconds=0.001, maximum_backoff_seconds=0.005)


def make_client(handler: Callable[[Request], Any]) -> tuple[Client, MockTransport]:
    transport = MockTransport(handler)
    return Client("http://dw.test", transport=transport, retry_policy=FAST), transport


def closed(status: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "workflow_id": "w-1",
        "run_id": "r-1",
        "status": status,
        "is_terminal": True,
        "output_envelope": None,
        "failure": None,
        "continued_to_run_id": None,
    }
    body.update(extra)
    return body


def open_run() -> dict[str, Any]:
    return {**closed("waiting"), "is_terminal": False}


async def test_completed_returns_the_decoded_output() -> None:
    client, transport = make_client(
        lambda r: Response(200, json=closed("completed", output_envelope=serializer.envelope({"ok": [1, 2]})))
    )
    assert await client.get_workflow_handle("w-1", "r-1").result() == {"ok": [1, 2]}
    (request,) = transport.requests
    assert request.path == "/api/workflows/w-1/runs/r-1/result"
    assert request.params == {"wait_seconds": str(RESULT_WAIT_SECONDS)}
    assert request.timeout == RESULT_WAIT_SECONDS + RESULT_HTTP_MARGIN_SECONDS


async def test_failed_raises_with_the_failure() -> None:
    failure = {"message": "card declined", "exception_type": "ActivityFailed", "exception_class": "x.Y"}
    client, _ = make_client(lambda r: Response(200, json=closed("failed", failure=failure)))
    with pytest.raises(WorkflowFailedError) as caught:
        await client.get_workflow_handle("w-1", "r-1").result()
    assert caught.value.failure == failure
    assert caught.value.exception_type == "ActivityFailed"
    assert (caught.value.workflow_id, caught.value.run_id) == ("w-1", "r-1")
    assert "card declined" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "failure", "expected"),
    [
        ("cancelled", {"message": "stop"}, WorkflowCancelledError),
        ("terminated", None, WorkflowTerminatedError),
        ("failed", {"message": "run deadline passed", "timeout_kind": "run"}, WorkflowTimedOutError),
    ],
)
async def test_other_closures_raise_their_outcome_error(
    status: str, failure: dict[str, Any] | None, expected: type[WorkflowOutcomeError]
) -> None:
    client, _ = make_client(lambda r: Response(200, json=closed(status, failure=failure)))
    with pytest.raises(expected):
        await client.get_workflow_handle("w-1", "r-1").result()


async def test_continue_as_new_is_followed_to_the_last_run() -> None:
    answers = {
        "r-1": closed("completed", continued_to_run_id="r-2"),
        "r-2": closed("completed", run_id="r-2", continued_to_run_id="r-3"),
        "r-3": closed("completed", run_id="r-3", output_envelope=serializer.envelope("final")),
    }

    def handler(request: Request) -> Response:
        run_id = request.path.split("/")[-2]
        return Response(200, json=answers[run_id])

    client, transport = make_client(handler)
    assert await client.get_workflow_handle("w-1", "r-1").result() == "final"
    assert [r.path.split("/")[-2] for r in transport.requests] == ["r-1", "r-2", "r-3"]


async def test_without_a_run_id_the_current_run_is_described_first() -> None:
    def handler(request: Request) -> Response:
        if request.path == "/api/workflows/w-1":
            return Response(200, json={"workflow_id": "w-1", "run_id": "r-7", "status": "running"})
        return Response(200, json=closed("completed", output_envelope=serializer.envelope(7)))

    client, transport = make_client(handler)
    assert await client.get_workflow_handle("w-1").result() == 7
    assert [r.path for r in transport.requests] == [
        "/api/workflows/w-1",
        "/api/workflows/w-1/runs/r-7/result",
    ]


async def test_result_long_polls_until_terminal() -> None:
    answers = [
        open_run(),
        open_run(),
        open_run(),
        closed("completed", output_envelope=serializer.envelope("done")),
    ]

    async def handler(request: Request) -> Response:
        # The server holds each long poll; the mock holds briefly so the loop sees real waits.
        await asyncio.sleep(0.02)
        return Response(200, json=answers.pop(0))

    client, transport = make_client(handler)
    assert await client.get_workflow_handle("w-1", "r-1").result() == "done"
    assert len(transport.requests) == 4
    assert all(r.params["wait_seconds"] == str(RESULT_WAIT_SECONDS) for r in transport.requests)


async def test_a_server_that_answers_at_once_is_not_polled_in_a_tight_loop() -> None:
    client, transport = make_client(lambda r: Response(200, json=open_run()))
    with pytest.raises(TimeoutError):
        await client.get_workflow_handle("w-1", "r-1").result(timeout=0.5)
    # Immediate "not yet" answers back off (0.05, 0.1, 0.2 ... s) instead of spinning.
    assert 2 <= len(transport.requests) <= 6


async def test_result_timeout_raises_timeout_error_and_asks_only_for_what_is_left() -> None:
    async def handler(request: Request) -> Response:
        await asyncio.sleep(float(request.params["wait_seconds"]))
        return Response(200, json=open_run())

    client, transport = make_client(handler)
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        await client.get_workflow_handle("w-1", "r-1").result(timeout=0.3)
    assert time.monotonic() - started < 2
    assert transport.requests[0].params == {"wait_seconds": "1"}


async def test_history_follows_page_tokens_and_adds_recorded_at() -> None:
    pages = {
        None: {
            "events": [{"sequence": 1, "event_type": "WorkflowStarted", "timestamp": "T1", "payload": {}}],
            "next_page_token": "MQ==",
        },
        "MQ==": {
            "events": [{"sequence": 2, "event_type": "WorkflowCompleted", "timestamp": "T2", "payload": {}}],
            "next_page_token": None,
        },
    }
    client, transport = make_client(lambda r: Response(200, json=pages[r.params.get("next_page_token")]))
    events = await client.get_workflow_handle("w-1", "r-1").history()
    assert [e["event_type"] for e in events] == ["WorkflowStarted", "WorkflowCompleted"]
    assert events[0]["recorded_at"] == "T1"
    assert transport.requests[0].path == "/api/workflows/w-1/runs/r-1/history"


async def test_cancel_and_terminate_post_to_the_instance_routes() -> None:
    client, transport = make_client(lambda r: Response(200, json={"outcome": "cancelled"}))
    handle = client.get_workflow_handle("w 1", "r-1")
    await handle.cancel("user asked")
    await handle.terminate()
    cancel, terminate = transport.requests
    assert cancel.path == "/api/workflows/w%201/cancel"
    assert cancel.json["reason"] == "user asked"
    assert cancel.json["request_id"].startswith("py-cancel-")
    assert terminate.path == "/api/workflows/w%201/terminate"
    assert "reason" not in terminate.json


async def test_cancel_of_a_closed_run_raises_conflict() -> None:
    client, _ = make_client(lambda r: Response(409, json={"reason": "run_not_active"}))
    with pytest.raises(Conflict):
        await client.get_workflow_handle("w-1").cancel()


async def test_cancel_whose_first_answer_was_lost_counts_as_done() -> None:
    answers: list[Any] = [NetworkError("lost"), Response(409, json={"reason": "run_not_active"})]

    def handler(request: Request) -> Response:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, Response)
        return answer

    client, _ = make_client(handler)
    await client.get_workflow_handle("w-1").cancel()


async def test_describe_parses_the_run_and_decodes_payloads() -> None:
    body = {
        "workflow_id": "w-1",
        "run_id": "r-1",
        "workflow_type": "greeter",
        "status": "completed",
        "is_terminal": True,
        "run_number": 1,
        "input_envelope": serializer.envelope(["Ada"]),
        "output_envelope": serializer.envelope("hello, Ada"),
        "memo": {"k": "v"},
    }
    client, transport = make_client(lambda r: Response(200, json=body))
    description = await client.get_workflow_handle("w-1", "r-1").describe()
    assert transport.requests[0].path == "/api/workflows/w-1/runs/r-1"
    assert description.status == "completed" and description.is_terminal
    assert description.input == ["Ada"]
    assert description.output == "hello, Ada"
    assert description.memo == {"k": "v"}


async def test_result_rides_out_a_server_restart() -> None:
    answers: list[Any] = [
        NetworkError("refused"),
        NetworkError("refused"),
        NetworkError("refused"),
        NetworkError("refused"),
        Response(503, json={"reason": "storage_pressure"}),
        Response(503, json={"reason": "storage_pressure"}),
        Response(503, json={"reason": "storage_pressure"}),
        Response(200, json=closed("completed", output_envelope=serializer.envelope("back"))),
    ]

    def handler(request: Request) -> Response:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, Response)
        return answer

    client, _ = make_client(handler)
    assert await client.get_workflow_handle("w-1", "r-1").result(timeout=10) == "back"


async def test_result_does_not_retry_a_refusal() -> None:
    client, transport = make_client(lambda r: Response(404, json={"reason": "run_not_found"}))
    with pytest.raises(NotFound):
        await client.get_workflow_handle("w-1", "r-1").result(timeout=10)
    assert len(transport.requests) == 1


async def test_history_feeds_the_offline_replayer() -> None:
    from durable_workflow import workflow

    @workflow.defn(name="sdk-handle.nap")
    class Nap:
        def run(self, ctx: Any, name: str) -> Any:
            yield ctx.sleep(1)
            return f"rested, {name}"

    timer = {"sequence": 1, "delay_seconds": 1}
    events = [
        {
            "sequence": 1,
            "event_type": "WorkflowStarted",
            "timestamp": "2026-08-01T10:00:00.000000Z",
            "payload": {"workflow_type": "sdk-handle.nap", "arguments": serializer.encode(["Ada"])},
        },
        {
            "sequence": 2,
            "event_type": "TimerScheduled",
            "timestamp": "2026-08-01T10:00:00Z",
            "payload": timer,
        },
        {"sequence": 3, "event_type": "TimerFired", "timestamp": "2026-08-01T10:00:01Z", "payload": timer},
    ]
    client, _ = make_client(lambda r: Response(200, json={"events": events, "next_page_token": None}))
    history = await client.get_workflow_handle("w-1", "r-1").history()
    outcome = workflow.Replayer(workflows=[Nap]).replay(history)
    assert outcome.completed
    assert outcome.result == "rested, Ada"
