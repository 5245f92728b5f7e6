"""``Client``: the caller's entry point to one server and namespace.

The client starts, finds and lists workflows; operations on one workflow live on
:class:`WorkflowHandle`. It owns its transport (an aiohttp session unless a transport is
injected) and closes it on :meth:`Client.close` or when its ``async with`` block ends.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit

from durable_workflow import serializer
from durable_workflow.client import _search
from durable_workflow.client._eager import EagerStarts
from durable_workflow.client._export import export_document, write_export
from durable_workflow.client._handle import RESULT_HTTP_MARGIN_SECONDS, RESULT_WAIT_SECONDS, WorkflowHandle
from durable_workflow.client._http import HttpApi
from durable_workflow.client._transport import AiohttpTransport, Transport
from durable_workflow.client._types import WorkflowDescription, WorkflowListPage, WorkflowSummary
from durable_workflow.errors import WorkflowAlreadyStarted, WorkflowNotFound
from durable_workflow.retry_policy import TransportRetryPolicy

__all__ = ["Client", "workflow_type_name"]

DuplicatePolicy = Literal["fail", "use-existing"]


def _validate_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"server URL must be http(s)://host[:port][/prefix], got {url!r}")
    if parts.query or parts.fragment or url.rstrip().endswith(("?", "#")):
        raise ValueError(f"server URL must not carry a query or fragment: {url!r}")
    root = url.rstrip("/")
    if root.endswith("/api"):
        # The SDK appends /api itself; accepting it here would silently call /api/api/...
        raise ValueError(f"server URL must be the server root, without the trailing /api: {url!r}")
    return root


def workflow_type_name(workflow_type: str | type) -> str:
    """The wire name of a workflow type given as a string or a decorated class.

    Args:
        workflow_type: a type name, or a class decorated with ``@workflow.defn``.

    Returns:
        The type name the server knows.
    """
    if isinstance(workflow_type, str):
        return workflow_type
    # Duck-typed on purpose: the client must not import the workflow authoring package.
    for attr in ("__workflow_type__", "__workflow_name__"):
        name = getattr(workflow_type, attr, None)
        if isinstance(name, str) and name:
            return name
    definition = getattr(workflow_type, "__workflow_definition__", None)
    name = getattr(definition, "name", None)
    if isinstance(name, str) and name:
        return name
    raise TypeError(f"{workflow_type!r} is neither a workflow type name nor a @workflow.defn class")


class Client:
    """A connection to one Durable Workflow server, in one namespace.

    Use it as ``async with Client(url) as client: ...`` or call :meth:`close` yourself.

    Args:
        url: the server root, such as ``http://127.0.0.1:8080`` (no ``/api``, no query).
        token: a bearer token, sent as ``Authorization: Bearer <token>``.
        namespace: the namespace every call addresses.
        retry_policy: attempts and backoff for lost connections, timeouts, 5xx and 429.
        transport: where requests go; defaults to an :class:`AiohttpTransport` for ``url``.

    Raises:
        ValueError: ``url`` ends in ``/api`` or has a query or fragment.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        namespace: str = "default",
        retry_policy: TransportRetryPolicy | None = None,
        transport: Transport | None = None,
    ) -> None:
        self._url = _validate_url(url)
        self._eager_starts = EagerStarts()
        self._api = HttpApi(
            transport if transport is not None else AiohttpTransport(self._url),
            token=token,
            namespace=namespace,
            retry_policy=retry_policy if retry_policy is not None else TransportRetryPolicy(),
            rng=random.Random(),
        )

    @property
    def url(self) -> str:
        """The server root URL."""
        return self._url

    @property
    def namespace(self) -> str:
        """The namespace this client addresses."""
        return self._api.namespace

    @property
    def api(self) -> HttpApi:
        """The JSON layer (headers, retries, error mapping); the worker shares it."""
        return self._api

    @property
    def eager_starts(self) -> EagerStarts:
        """Workers running on this client that take a new run's first task from its start."""
        return self._eager_starts

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections. The client is unusable afterwards."""
        await self._api.close()

    async def health(self) -> dict[str, Any]:
        """Ask the server whether it is serving.

        Returns:
            The health body, e.g. ``{"status": "serving", "checks": {"database": "ok"}}``;
            a degraded server's 503 body is returned too, not raised.
        """
        answer = await self._api.exchange("GET", "/health", idempotent=False)
        if answer.ok or answer.status == 503:
            return answer.body
        raise self._api.error_for(answer)

    async def start_workflow(
        self,
        *,
        workflow_type: str | type,
        workflow_id: str,
        task_queue: str,
        input: Sequence[Any] = (),
        execution_timeout_seconds: int | None = None,
        run_timeout_seconds: int | None = None,
        search_attributes: dict[str, Any] | None = None,
        memo: dict[str, Any] | None = None,
        business_key: str | None = None,
        duplicate_policy: DuplicatePolicy | None = None,
    ) -> WorkflowHandle:
        """Start a workflow run.

        Args:
            workflow_type: the type name, or a ``@workflow.defn`` class.
            workflow_id: the id (1-128 of ``[A-Za-z0-9._:-]``); a used id never starts again.
            task_queue: the queue whose workers run it.
            input: the positional arguments of the workflow's ``run``.
            execution_timeout_seconds: deadline for the whole chain, continue-as-new included.
            run_timeout_seconds: deadline for this run.
            search_attributes: indexed attributes.
            memo: unindexed metadata.
            business_key: a secondary key that list queries match.
            duplicate_policy: ``"fail"`` (default) or ``"use-existing"``, which returns the
                open run instead of failing.

        Returns:
            A handle on the new (or, with ``use-existing``, the open) run.

        Raises:
            errors.WorkflowAlreadyStarted: the id is taken.
            errors.ValidationFailed: a field was refused.
            TypeError: ``input`` is a string rather than a list of arguments.
        """
        body = _start_body(
            workflow_type,
            workflow_id,
            task_queue,
            input,
            execution_timeout_seconds=execution_timeout_seconds,
            run_timeout_seconds=run_timeout_seconds,
            search_attributes=search_attributes,
            memo=memo,
            business_key=business_key,
            duplicate_policy=duplicate_policy,
        )
        handle, _ = await self._start(body, wait_for_result=None)
        return handle

    async def execute_workflow(
        self,
        *,
        workflow_type: str | type,
        workflow_id: str,
        task_queue: str,
        input: Sequence[Any] = (),
        timeout: float | None = None,
        execution_timeout_seconds: int | None = None,
        run_timeout_seconds: int | None = None,
        search_attributes: dict[str, Any] | None = None,
        memo: dict[str, Any] | None = None,
        business_key: str | None = None,
        duplicate_policy: DuplicatePolicy | None = None,
    ) -> Any:
        """Start a workflow run and wait for its result.

        The same as :meth:`start_workflow` followed by ``result(timeout)``, in one request when
        the run closes within the server's wait (up to 30 s; our extension
        ``wait_for_result_seconds``, see docs/protocol-decisions.md); a longer run is then
        waited for with the result long poll. When a worker on this client takes the first
        task from the start (eager start), the result is waited for with the long poll.

        Args:
            timeout: seconds to wait for the result in total; None waits as long as it takes.
            (the rest): as for :meth:`start_workflow`.

        Returns:
            The workflow's return value.

        Raises:
            TimeoutError: ``timeout`` passed first; the run goes on.
            errors.WorkflowAlreadyStarted, errors.ValidationFailed, TypeError: as for
                :meth:`start_workflow`.
            errors.WorkflowFailedError, errors.WorkflowCancelledError,
                errors.WorkflowTerminatedError, errors.WorkflowTimedOutError: as for ``result()``.
        """
        body = _start_body(
            workflow_type,
            workflow_id,
            task_queue,
            input,
            execution_timeout_seconds=execution_timeout_seconds,
            run_timeout_seconds=run_timeout_seconds,
            search_attributes=search_attributes,
            memo=memo,
            business_key=business_key,
            duplicate_policy=duplicate_policy,
        )
        deadline = None if timeout is None else time.monotonic() + timeout
        wait = RESULT_WAIT_SECONDS if timeout is None else max(0, min(RESULT_WAIT_SECONDS, int(timeout)))
        handle, reply = await self._start(body, wait_for_result=wait)
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        return await handle.result_after(reply.get("result"), remaining)

    async def _start(
        self, body: dict[str, Any], *, wait_for_result: int | None
    ) -> tuple[WorkflowHandle, dict[str, Any]]:
        """Send a start; return the handle and the reply body (empty when claimed after a retry)."""
        workflow_id, type_name, task_queue = body["workflow_id"], body["workflow_type"], body["task_queue"]
        timeout: float | None = None
        eager = await self._eager_starts.reserve(task_queue, type_name)
        if eager is not None:
            # Our extension: the first task comes back in the reply. A reply held for the
            # result would then wait on itself, so the result is waited for separately.
            body = {**body, "eager_worker_id": eager.worker_id}
        elif wait_for_result is not None:
            body = {**body, "wait_for_result_seconds": wait_for_result}  # our extension
            timeout = wait_for_result + RESULT_HTTP_MARGIN_SECONDS
        try:
            answer = await self._api.exchange("POST", "/workflows", json=body, timeout=timeout)
        except BaseException:
            if eager is not None:
                eager.take_eager(None, 1)
            raise
        if eager is not None:
            eager.take_eager([answer.body.get("eager_workflow_task")] if answer.ok else None, 1)
        if answer.ok:
            run_id = answer.body.get("run_id")
            handle = WorkflowHandle(self._api, workflow_id, run_id if isinstance(run_id, str) else None)
            return handle, answer.body
        error = self._api.error_for(answer)
        if isinstance(error, WorkflowAlreadyStarted) and answer.attempts > 1:
            # The request was sent more than once: the 409 may answer our own first attempt,
            # whose reply was lost. Describe the run and claim it if it is the one we asked for.
            mine = await self._started_by_earlier_attempt(workflow_id, type_name, task_queue, body["input"])
            if mine is not None:
                return mine, {}
        raise error

    async def _started_by_earlier_attempt(
        self, workflow_id: str, type_name: str, task_queue: str, input_envelope: Any
    ) -> WorkflowHandle | None:
        try:
            described = await self.describe_workflow(workflow_id)
        except WorkflowNotFound:
            return None
        same = (
            described.workflow_type == type_name
            and described.task_queue == task_queue
            and described.run_number in (None, 1)
            and described.raw.get("input_envelope", input_envelope) == input_envelope
        )
        return WorkflowHandle(self._api, workflow_id, described.run_id) if same else None

    def get_workflow_handle(self, workflow_id: str, run_id: str | None = None) -> WorkflowHandle:
        """A handle on an existing workflow; no request is sent.

        Args:
            workflow_id: the workflow id.
            run_id: a specific run, or None for whichever run is current when a method runs.

        Returns:
            The handle.
        """
        return WorkflowHandle(self._api, workflow_id, run_id)

    async def describe_workflow(self, workflow_id: str, run_id: str | None = None) -> WorkflowDescription:
        """Describe a workflow's current run, or the given run.

        Args:
            workflow_id: the workflow id.
            run_id: a specific run, or None for the current one.

        Returns:
            The description.

        Raises:
            errors.WorkflowNotFound: no such workflow or run.
        """
        return await self.get_workflow_handle(workflow_id, run_id).describe()

    async def list_workflows(
        self,
        *,
        workflow_type: str | None = None,
        status: Literal["running", "completed", "failed"] | None = None,
        query: str | None = None,
        page_size: int | None = None,
        next_page_token: str | None = None,
    ) -> WorkflowListPage:
        """List runs, newest first, one page at a time.

        Args:
            workflow_type: only this type.
            status: only this status bucket (``failed`` also covers cancelled and terminated).
            query: a visibility query such as ``"WorkflowType = 'orders' AND Status = 'running'"``
                (see :mod:`durable_workflow.client._search`), or a plain word: a substring of
                the workflow id or business key.
            page_size: rows per page (1..200, server default 50).
            next_page_token: the token from the previous page.

        Returns:
            The page; its ``next_page_token`` is None on the last page.
        """
        body = await self._api.call(
            "GET",
            "/workflows",
            params={
                "workflow_type": workflow_type,
                "status": status,
                "query": query,
                "page_size": page_size,
                "next_page_token": next_page_token,
            },
        )
        return WorkflowListPage.from_json(body)

    async def list_search_attributes(self) -> dict[str, dict[str, str]]:
        """The namespace's search attributes.

        Returns:
            ``{"system_attributes": {name: type}, "custom_attributes": {name: type}}``.
        """
        return await _search.list_search_attributes(self._api)

    async def register_search_attribute(self, name: str, type: _search.SearchAttributeType) -> None:
        """Register a custom search attribute so that list queries may name it.

        Args:
            name: ``^[A-Za-z][A-Za-z0-9_]*$``, at most 128 characters.
            type: keyword, text, int, double, bool, datetime or keyword_list.

        Raises:
            errors.Conflict: reason ``attribute_already_exists`` or ``name_reserved``.
            errors.ValidationFailed: a bad name or type, or the namespace limit (100).
        """
        await _search.register_search_attribute(self._api, name, type)

    async def delete_search_attribute(self, name: str) -> None:
        """Delete a custom search attribute's registration.

        Raises:
            errors.NotFound: reason ``attribute_not_found``.
            errors.Conflict: reason ``system_attribute``.
        """
        await _search.delete_search_attribute(self._api, name)

    async def export_history(self, workflow_id: str, path: str, *, run_id: str | None = None) -> int:
        """Write a run's history to ``path`` for :class:`~durable_workflow.workflow.Replayer`.

        Args:
            workflow_id: the workflow id.
            path: the file to write (JSON).
            run_id: a specific run; the current run when None.

        Returns:
            How many events were written.
        """
        handle = self.get_workflow_handle(workflow_id, run_id)
        resolved = run_id or (await handle.describe()).run_id or ""
        events = await self.get_workflow_handle(workflow_id, resolved).history()
        write_export(path, export_document(workflow_id, resolved, events))
        return len(events)

    async def iter_workflows(
        self,
        *,
        workflow_type: str | None = None,
        status: Literal["running", "completed", "failed"] | None = None,
        query: str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[WorkflowSummary]:
        """Iterate over every matching run, fetching pages as needed.

        Args:
            workflow_type: only this type.
            status: only this status bucket.
            query: a substring of the workflow id or business key.
            page_size: rows per request.

        Returns:
            An async iterator of summaries, newest first.
        """
        token: str | None = None
        while True:
            page = await self.list_workflows(
                workflow_type=workflow_type,
                status=status,
                query=query,
                page_size=page_size,
                next_page_token=token,
            )
            for row in page.workflows:
                yield row
            if not page.next_page_token or page.next_page_token == token:
                return
            token = page.next_page_token


def _start_body(
    workflow_type: str | type,
    workflow_id: str,
    task_queue: str,
    input: Sequence[Any],
    **optional: Any,
) -> dict[str, Any]:
    """The start request body; ``optional`` fields that are None are left out."""
    if isinstance(input, str | bytes):
        # A bare string would otherwise be sent as a list of its characters.
        raise TypeError("input is the list of positional arguments, e.g. input=['Ada']")
    body: dict[str, Any] = {
        "workflow_type": workflow_type_name(workflow_type),
        "workflow_id": workflow_id,
        "task_queue": task_queue,
        "input": serializer.envelope(list(input)),
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return body
