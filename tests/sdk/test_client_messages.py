"""WorkflowHandle.signal / query / update through MockTransport: bodies and error mapping."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from durable_workflow import serializer
from durable_workflow.client import Client, MockTransport, Request, Response
from durable_workflow.errors import Conflict, QueryFailed, UpdateFailed, WorkflowNotFound
from durable_workflow.retry_policy import TransportRetryPolicy

FAST = TransportRetryPolicy(max_attempts=3, initial_backoff_seconds=0.001, maximum_backoff_seconds=0.005)


def make_client(handler: Callable[[Request], Any]) -> tuple[Client, MockTransport]:
    transport = MockTransport(handler)
    return Client("http://dw.test", transport=transport, retry_policy=FAST), transport


async def test_signal_sends_the_arguments_and_a_request_id() -> None:
    client, transport = make_client(lambda r: Response(202, json={"outcome": "signal_received"}))
    handle = client.get_workflow_handle("w 1", run_id="r-1")
    await handle.signal("approve", "ada", 2)
    await handle.signal("approve", request_id="mine")
    first, second = transport.requests
    assert first.method == "POST" and first.path == "/api/workflows/w%201/runs/r-1/signal/approve"
    assert serializer.decode_envelope(first.json["input"]) == ["ada", 2]
    assert first.json["request_id"].startswith("py-signal-")
    assert second.json["request_id"] == "mine"


async def test_signal_errors_are_typed() -> None:
    answers = iter(
        [
            Response(404, json={"reason": "instance_not_found", "message": "no"}),
            Response(409, json={"reason": "historical_run_command_rejected", "message": "old run"}),
        ]
    )
    client, _ = make_client(lambda r: next(answers))
    handle = client.get_workflow_handle("w-1")
    with pytest.raises(WorkflowNotFound):
        await handle.signal("x")
    with pytest.raises(Conflict) as caught:
        await handle.signal("x")
    assert caught.value.reason == "historical_run_command_rejected"


async def test_query_decodes_the_envelope_and_maps_failures() -> None:
    answers = iter(
        [
            Response(200, json={"result": None, "result_envelope": serializer.envelope({"n": 1})}),
            Response(404, json={"reason": "rejected_unknown_query", "message": "no such query"}),
            Response(409, json={"reason": "query_worker_unavailable", "message": "nobody polls"}),
            Response(404, json={"reason": "instance_not_found", "message": "no"}),
        ]
    )
    client, transport = make_client(lambda r: next(answers))
    handle = client.get_workflow_handle("w-1")
    assert await handle.query("status", 3) == {"n": 1}
    assert serializer.decode_envelope(transport.requests[0].json["input"]) == [3]
    for reason in ("rejected_unknown_query", "query_worker_unavailable"):
        with pytest.raises(QueryFailed) as caught:
            await handle.query("status")
        assert caught.value.reason == reason and caught.value.query_name == "status"
    with pytest.raises(WorkflowNotFound):
        await handle.query("status")


async def test_update_repeats_the_same_id_until_completed() -> None:
    answers = iter(
        [
            Response(202, json={"update_status": "accepted", "wait_timed_out": True}),
            Response(200, json={"update_status": "completed", "result_envelope": serializer.envelope(7)}),
        ]
    )
    client, transport = make_client(lambda r: next(answers))
    assert await client.get_workflow_handle("w-1").update("add", 7) == 7
    first, second = transport.requests
    assert first.json["update_id"] == second.json["update_id"]
    assert first.json["wait_for"] == "completed"


async def test_update_accepted_and_failures() -> None:
    answers = iter(
        [
            Response(202, json={"update_status": "accepted", "wait_timed_out": False}),
            Response(409, json={"reason": "update_rejected", "failure_message": "negative"}),
            Response(
                422,
                json={"reason": "update_failed", "failure_message": "boom", "failure_type": "RuntimeError"},
            ),
        ]
    )
    client, transport = make_client(lambda r: next(answers))
    handle = client.get_workflow_handle("w-1")
    assert await handle.update("add", 1, wait_for="accepted", update_id="u-1") is None
    assert transport.requests[0].json["update_id"] == "u-1"
    with pytest.raises(UpdateFailed) as rejected:
        await handle.update("add", -1)
    assert rejected.value.reason == "update_rejected" and "negative" in str(rejected.value)
    with pytest.raises(UpdateFailed) as failed:
        await handle.update("boom")
    assert failed.value.reason == "update_failed" and failed.value.exception_type == "RuntimeError"
    with pytest.raises(ValueError):
        await handle.update("add", wait_for="eventually")
