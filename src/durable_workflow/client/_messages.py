"""Signal, query and update requests of a :class:`~durable_workflow.client.WorkflowHandle`.

Each call sends the positional arguments as one Avro envelope and maps the server's refusals
onto typed errors: a query's own failure (unknown name, handler error, no worker, no answer)
is :class:`~durable_workflow.errors.QueryFailed`; an update rejected by its validator or
failed by its handler is :class:`~durable_workflow.errors.UpdateFailed`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

from durable_workflow import serializer
from durable_workflow.client._http import HttpApi
from durable_workflow.errors import QueryFailed, UpdateFailed

#: Longest single hold asked of the server while waiting for an update to complete.
UPDATE_WAIT_SECONDS = 60
_HTTP_MARGIN_SECONDS = 5.0
#: The server's wait for a query answer is 30 s; the client waits a little longer.
QUERY_HTTP_TIMEOUT_SECONDS = 40.0


def _body(args: Sequence[Any]) -> dict[str, Any]:
    return {"input": serializer.envelope(list(args))}


async def signal(api: HttpApi, base: str, name: str, args: Sequence[Any], request_id: str | None) -> None:
    """POST a signal; a generated request id makes a resend after a lost answer harmless."""
    body = _body(args)
    body["request_id"] = request_id or f"py-signal-{uuid.uuid4().hex}"
    await api.call("POST", f"{base}/signal/{_seg(name)}", json=body)


async def query(api: HttpApi, base: str, name: str, args: Sequence[Any]) -> Any:
    """POST a query and decode the answer."""
    answer = await api.exchange(
        "POST",
        f"{base}/query/{_seg(name)}",
        json=_body(args),
        timeout=QUERY_HTTP_TIMEOUT_SECONDS,
        idempotent=False,
    )
    if not answer.ok:
        reason = answer.body.get("reason")
        if isinstance(reason, str) and (reason.startswith("query_") or reason == "rejected_unknown_query"):
            message = answer.body.get("message") or f"query {name!r} failed"
            raise QueryFailed(
                f"{message} (HTTP {answer.status}, reason {reason})", query_name=name, reason=reason
            )
        raise api.error_for(answer)
    envelope = answer.body.get("result_envelope")
    return None if envelope is None else serializer.decode_envelope(envelope)


async def update(
    api: HttpApi,
    base: str,
    name: str,
    args: Sequence[Any],
    *,
    wait_for: str,
    update_id: str | None,
    wait_timeout_seconds: float | None,
) -> Any:
    """POST an update (again, with the same id, while a ``completed`` wait times out)."""
    if wait_for not in ("accepted", "completed"):
        raise ValueError("wait_for must be 'accepted' or 'completed'")
    body = _body(args)
    body["update_id"] = update_id or f"py-update-{uuid.uuid4().hex}"
    body["wait_for"] = wait_for
    loop = asyncio.get_running_loop()
    deadline = None if wait_timeout_seconds is None else loop.time() + wait_timeout_seconds
    while True:
        hold = (
            UPDATE_WAIT_SECONDS
            if deadline is None
            else max(1, min(UPDATE_WAIT_SECONDS, int(deadline - loop.time())))
        )
        body["wait_timeout_seconds"] = hold
        answer = await api.exchange(
            "POST", f"{base}/update/{_seg(name)}", json=body, timeout=hold + _HTTP_MARGIN_SECONDS
        )
        reply = answer.body
        if answer.status in (409, 422) and reply.get("reason") in ("update_failed", "update_rejected"):
            raise UpdateFailed(
                str(reply.get("failure_message") or reply.get("message") or f"update {name!r} failed"),
                update_name=name,
                update_id=body["update_id"],
                reason=str(reply.get("reason")),
                exception_type=reply.get("failure_type"),
            )
        if not answer.ok:
            raise api.error_for(answer)
        if reply.get("update_status") == "completed":
            envelope = reply.get("result_envelope")
            return None if envelope is None else serializer.decode_envelope(envelope)
        if not reply.get("wait_timed_out"):
            return None  # accepted, as asked
        if deadline is not None and loop.time() >= deadline:
            raise TimeoutError(f"update {name!r} ({body['update_id']}) did not reach {wait_for!r} in time")


def _seg(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")
