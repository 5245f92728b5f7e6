"""Client plumbing through MockTransport: headers, URL rules, retries, error mapping, start, list."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from durable_workflow import serializer
from durable_workflow.client import Client, MockTransport, NetworkError, Request, Response
from durable_workflow.errors import (
    Conflict,
    Forbidden,
    NotFound,
    ServerError,
    TransportError,
    Unauthorized,
    ValidationFailed,
    WorkflowAlreadyStarted,
    WorkflowNotFound,
)
from durable_workflow.protocol import WORKER_PROTOCOL_VERSION
from durable_workflow.retry_policy import TransportRetryPolicy

FAST = TransportRetryPolicy(max_attempts=3, initial_backoff_seconds=0.001, maximum_backoff_seconds=0.005)


def make_client(handler: Callable[[Request], Response], **options: Any) -> tuple[Client, MockTransport]:
    transport = MockTransport(handler)
    options.setdefault("retry_policy", FAST)
    return Client("http://dw.test", transport=transport, **options), transport


def started(request: Request) -> Response:
    body = request.json or {}
    return Response(
        201, json={"workflow_id": body.get("workflow_id"), "run_id": "run-1", "outcome": "started_new"}
    )


# --- URL rules --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["http://h:8080/api", "http://h:8080/api/", "http://h?x=1", "http://h#frag", "ftp://h", "h:8080"],
)
def test_bad_urls_are_rejected(url: str) -> None:
    with pytest.raises(ValueError):
        Client(url, transport=MockTransport(started))


def test_trailing_slash_and_prefix_are_fine() -> None:
    assert Client("http://h:8080/", transport=MockTransport(started)).url == "http://h:8080"
    assert Client("https://h/dw", transport=MockTransport(started)).url == "https://h/dw"


# --- headers ------------------------------------------------------------------------------------


async def test_control_routes_carry_auth_namespace_and_control_plane_version() -> None:
    client, transport = make_client(started, token="s3cret", namespace="billing")
    await client.start_workflow(workflow_type="t", workflow_id="w-1", task_queue="q")
    (request,) = transport.requests
    assert request.method == "POST"
    assert request.path == "/api/workflows"
    assert request.headers["authorization"] == "Bearer s3cret"
    assert request.headers["x-namespace"] == "billing"
    assert request.headers["x-durable-workflow-control-plane-version"] == "2"
    assert "x-durable-workflow-protocol-version" not in request.headers


async def test_worker_routes_carry_the_worker_protocol_version() -> None:
    client, transport = make_client(lambda r: Response(200, json={"task": None}), token="t")
    await client.api.call("POST", "/worker/workflow-tasks/poll", json={"worker_id": "w"})
    (request,) = transport.requests
    assert request.path == "/api/worker/workflow-tasks/poll"
    assert request.headers["x-durable-workflow-protocol-version"] == WORKER_PROTOCOL_VERSION
    assert "x-durable-workflow-control-plane-version" not in request.headers
    assert request.headers["authorization"] == "Bearer t"
    assert request.headers["x-namespace"] == "default"


async def test_health_carries_no_version_header_and_no_token_when_none_given() -> None:
    client, transport = make_client(lambda r: Response(200, json={"status": "serving"}))
    assert (await client.health())["status"] == "serving"
    (request,) = transport.requests
    assert request.path == "/api/health"
    assert "authorization" not in request.headers
    assert not any(name.startswith("x-durable-workflow") for name in request.headers)


async def test_degraded_health_is_returned_not_raised() -> None:
    client, _ = make_client(lambda r: Response(503, json={"status": "degraded"}))
    assert (await client.health())["status"] == "degraded"


async def test_async_context_manager_closes_the_transport() -> None:
    transport = MockTransport(started)
    async with Client("http://dw.test", transport=transport) as client:
        assert client.namespace == "default"
    assert transport.closed


# --- retries ------------------------------------------------------------------------------------


async def test_5xx_and_connection_errors_are_retried_then_succeed() -> None:
    answers: list[Any] = [Response(503, json={"reason": "storage_pressure"}), NetworkError("reset")]

    def handler(request: Request) -> Response:
        if answers:
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            assert isinstance(answer, Response)
            return answer
        return started(request)

    client, transport = make_client(handler)
    handle = await client.start_workflow(workflow_type="t", workflow_id="w-1", task_queue="q", input=[1])
    assert handle.run_id == "run-1"
    assert len(transport.requests) == 3
    # The very same body is resent.
    assert transport.requests[0].json == transport.requests[2].json


async def test_429_is_retried() -> None:
    answers = [Response(429, json={"reason": "long_poll_capacity_exhausted", "retry_after_seconds": 1})]
    client, transport = make_client(
        lambda r: answers.pop(0) if answers else Response(200, json={"task": None})
    )
    assert await client.api.call("POST", "/worker/activity-tasks/poll", json={}) == {"task": None}
    assert len(transport.requests) == 2


async def test_gives_up_after_max_attempts_on_connection_errors() -> None:
    def handler(request: Request) -> Response:
        raise ConnectionRefusedError("refused")

    client, transport = make_client(handler)
    with pytest.raises(TransportError):
        await client.list_workflows()
    assert len(transport.requests) == FAST.max_attempts


async def test_persistent_5xx_raises_server_error_after_retries() -> None:
    client, transport = make_client(
        lambda r: Response(500, json={"reason": "server_error", "message": "boom"})
    )
    with pytest.raises(ServerError) as caught:
        await client.list_workflows()
    assert caught.value.status == 500
    assert len(transport.requests) == FAST.max_attempts


async def test_non_idempotent_requests_are_not_retried() -> None:
    client, transport = make_client(lambda r: Response(503, json={}))
    answer = await client.api.exchange("POST", "/workflows/w/signal/go", json={}, idempotent=False)
    assert answer.status == 503
    assert len(transport.requests) == 1


async def test_4xx_is_not_retried() -> None:
    client, transport = make_client(lambda r: Response(422, json={"reason": "validation_failed"}))
    with pytest.raises(ValidationFailed):
        await client.list_workflows(status="running")
    assert len(transport.requests) == 1


# --- error mapping --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, {"reason": "unauthorized", "message": "no token"}, Unauthorized),
        (403, {"reason": "forbidden", "role": "worker"}, Forbidden),
        (404, {"reason": "instance_not_found"}, WorkflowNotFound),
        (404, {"reason": "namespace_not_found"}, NotFound),
        (409, {"reason": "run_not_active"}, Conflict),
        (422, {"reason": "validation_failed", "errors": {"workflow_id": ["too long"]}}, ValidationFailed),
    ],
)
async def test_error_answers_map_to_the_exception_tree(
    status: int, body: dict[str, Any], expected: type[ServerError]
) -> None:
    client, _ = make_client(lambda r: Response(status, json=body))
    with pytest.raises(expected) as caught:
        await client.describe_workflow("w-1")
    assert caught.value.status == status
    assert caught.value.reason == body["reason"]
    if expected is ValidationFailed:
        assert isinstance(caught.value, ValidationFailed)
        assert caught.value.errors == {"workflow_id": ["too long"]}


async def test_duplicate_start_raises_workflow_already_started() -> None:
    client, _ = make_client(
        lambda r: Response(409, json={"reason": "instance_already_started", "outcome": "rejected_duplicate"})
    )
    with pytest.raises(WorkflowAlreadyStarted):
        await client.start_workflow(workflow_type="t", workflow_id="w-1", task_queue="q")


async def test_a_retried_start_whose_first_attempt_landed_resolves_by_describing() -> None:
    sent: list[str] = []

    def handler(request: Request) -> Response:
        sent.append(f"{request.method} {request.path}")
        if request.method == "POST" and len(sent) == 1:
            raise NetworkError("answer lost after the server committed the start")
        if request.method == "POST":
            return Response(409, json={"reason": "instance_already_started"})
        return Response(
            200,
            json={
                "workflow_id": "w-1",
                "run_id": "run-9",
                "workflow_type": "t",
                "task_queue": "q",
                "run_number": 1,
                "status": "pending",
                "input_envelope": serializer.envelope(["Ada"]),
            },
        )

    client, _ = make_client(handler)
    handle = await client.start_workflow(workflow_type="t", workflow_id="w-1", task_queue="q", input=["Ada"])
    assert handle.run_id == "run-9"
    assert sent == ["POST /api/workflows", "POST /api/workflows", "GET /api/workflows/w-1"]


async def test_a_retried_start_that_hits_someone_elses_run_still_raises() -> None:
    calls = {"n": 0}

    def handler(request: Request) -> Response:
        calls["n"] += 1
        if request.method == "POST" and calls["n"] == 1:
            raise NetworkError("lost")
        if request.method == "POST":
            return Response(409, json={"reason": "instance_already_started"})
        return Response(
            200, json={"workflow_id": "w-1", "run_id": "r", "workflow_type": "other", "task_queue": "q"}
        )

    client, _ = make_client(handler)
    with pytest.raises(WorkflowAlreadyStarted):
        await client.start_workflow(workflow_type="t", workflow_id="w-1", task_queue="q")


# --- start and list bodies ---------------------------------------------------------------------------


async def test_start_sends_the_input_as_an_avro_envelope_and_only_given_options() -> None:
    class Greeter:
        __workflow_definition__ = type("Def", (), {"name": "greeter"})()

    client, transport = make_client(started)
    handle = await client.start_workflow(
        workflow_type=Greeter,
        workflow_id="g-1",
        task_queue="q",
        input=["Ada", 3],
        run_timeout_seconds=60,
        business_key="order-1",
        duplicate_policy="use-existing",
    )
    assert (handle.workflow_id, handle.run_id) == ("g-1", "run-1")
    body = transport.requests[0].json
    assert body["workflow_type"] == "greeter"
    assert body["input"]["codec"] == "avro"
    assert serializer.decode_envelope(body["input"]) == ["Ada", 3]
    assert body["run_timeout_seconds"] == 60
    assert body["business_key"] == "order-1"
    assert body["duplicate_policy"] == "use-existing"
    assert "memo" not in body and "execution_timeout_seconds" not in body


def test_a_workflow_type_that_is_neither_str_nor_decorated_is_refused() -> None:
    from durable_workflow.client._client import workflow_type_name

    with pytest.raises(TypeError):
        workflow_type_name(int)


async def test_list_workflows_parses_a_page() -> None:
    row = {
        "workflow_id": "w-1",
        "run_id": "r-1",
        "workflow_type": "t",
        "status": "completed",
        "status_bucket": "completed",
        "is_terminal": True,
        "task_queue": "q",
        "started_at": "2026-08-01T10:00:00.000000Z",
        "closed_at": "2026-08-01T10:00:01+00:00",
        "search_attributes": {"Tier": "gold"},
    }
    client, transport = make_client(
        lambda r: Response(200, json={"workflows": [row], "workflow_count": 1, "next_page_token": "Mg=="})
    )
    page = await client.list_workflows(workflow_type="t", status="completed", page_size=1)
    assert transport.requests[0].params == {"workflow_type": "t", "status": "completed", "page_size": "1"}
    assert page.next_page_token == "Mg=="
    (summary,) = page.workflows
    assert summary.workflow_id == "w-1" and summary.is_terminal
    assert summary.started_at is not None and summary.started_at.tzinfo is not None
    assert summary.closed_at is not None and summary.closed_at.second == 1
    assert summary.search_attributes == {"Tier": "gold"}


async def test_iter_workflows_follows_page_tokens() -> None:
    pages = {
        None: {"workflows": [{"workflow_id": "a", "status": "running"}], "next_page_token": "t1"},
        "t1": {"workflows": [{"workflow_id": "b", "status": "running"}], "next_page_token": "t2"},
        "t2": {"workflows": [{"workflow_id": "c", "status": "failed"}], "next_page_token": None},
    }
    client, _ = make_client(lambda r: Response(200, json=pages[r.params.get("next_page_token")]))
    ids = [row.workflow_id async for row in client.iter_workflows()]
    assert ids == ["a", "b", "c"]


async def test_poll_envelope_answers_are_unwrapped() -> None:
    envelope = {
        "schema": "durable-workflow.poll-transport.v1",
        "status": 409,
        "headers": {},
        "body": {"reason": "task_queue_mismatch", "error": "wrong queue"},
    }
    client, _ = make_client(lambda r: Response(200, json=envelope))
    with pytest.raises(Conflict) as caught:
        await client.api.call("POST", "/worker/workflow-tasks/poll", json={})
    assert caught.value.reason == "task_queue_mismatch"


async def test_a_bare_string_input_is_refused() -> None:
    client, transport = make_client(started)
    with pytest.raises(TypeError):
        await client.start_workflow(workflow_type="t", workflow_id="w-1", task_queue="q", input="Ada")
    assert transport.requests == []
