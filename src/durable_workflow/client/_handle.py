"""``WorkflowHandle``: one workflow, seen from a caller.

A handle is cheap and holds no state beyond ids; every method is one or a few requests.
``result()`` waits with the server's long-poll result route, so a caller waiting an hour
sends about one request per 30 s instead of polling.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from typing import Any
from urllib.parse import quote

from durable_workflow import serializer
from durable_workflow.client import _messages
from durable_workflow.client._http import HttpApi
from durable_workflow.client._types import WorkflowDescription
from durable_workflow.errors import (
    ClientError,
    Conflict,
    ServerError,
    TransportError,
    WorkflowCancelledError,
    WorkflowFailedError,
    WorkflowOutcomeError,
    WorkflowTerminatedError,
    WorkflowTimedOutError,
)

__all__ = ["WorkflowHandle"]

logger = logging.getLogger("durable_workflow.client")

#: Longest single wait asked of the server; it holds the request open at most this long.
RESULT_WAIT_SECONDS = 30
#: Added to the wait for the HTTP timeout, so the server's own answer always wins the race.
RESULT_HTTP_MARGIN_SECONDS = 5.0
#: With no timeout, result() gives up after the server was unreachable for this long in a row.
RESULT_OUTAGE_TOLERANCE_SECONDS = 300.0
#: Events per history page (the server's maximum).
HISTORY_PAGE_SIZE = 1000
# A server that answers "not yet" well before the wait it was asked for (an older server, or a
# proxy that cuts long requests) must not turn result() into a tight loop.
_EARLY_ANSWER_FLOOR = 0.05
_EARLY_ANSWER_CEILING = 2.0


def _seg(value: str) -> str:
    return quote(value, safe="")


class WorkflowHandle:
    """Operations on one workflow (and, when ``run_id`` is set, on that run).

    Get one from :meth:`Client.start_workflow` or :meth:`Client.get_workflow_handle`.

    Args:
        api: the client's JSON layer.
        workflow_id: the workflow id.
        run_id: the run this handle points at; None means "the current run", resolved with a
            describe when a method needs it.
    """

    def __init__(self, api: HttpApi, workflow_id: str, run_id: str | None = None) -> None:
        self._api = api
        self._workflow_id = workflow_id
        self._run_id = run_id

    @property
    def workflow_id(self) -> str:
        """The workflow id."""
        return self._workflow_id

    @property
    def run_id(self) -> str | None:
        """The run id this handle was created for, or None for "the current run"."""
        return self._run_id

    def __repr__(self) -> str:
        return f"WorkflowHandle(workflow_id={self._workflow_id!r}, run_id={self._run_id!r})"

    @property
    def _base(self) -> str:
        return f"/workflows/{_seg(self._workflow_id)}"

    async def describe(self) -> WorkflowDescription:
        """Describe the handle's run (the current run when ``run_id`` is None).

        Returns:
            The run's description.

        Raises:
            errors.WorkflowNotFound: the workflow or run does not exist.
        """
        path = self._base if self._run_id is None else f"{self._base}/runs/{_seg(self._run_id)}"
        return WorkflowDescription.from_json(await self._api.call("GET", path))

    async def _resolve_run_id(self) -> str:
        if self._run_id is not None:
            return self._run_id
        described = await self.describe()
        if not described.run_id:
            raise ClientError(f"the server described workflow {self._workflow_id!r} without a run id")
        return described.run_id

    async def result(self, timeout: float | None = None) -> Any:
        """Wait for the run to close and return its decoded result.

        Follows continue-as-new to the last run of the chain.

        Args:
            timeout: seconds to wait in total; None waits for as long as it takes. Server
                outages are ridden out within that time (without a timeout: for up to five
                minutes in a row).

        Returns:
            The workflow's return value.

        Raises:
            TimeoutError: ``timeout`` passed first (``asyncio.TimeoutError`` is the same class).
            errors.WorkflowFailedError: the run failed; ``failure`` holds the details.
            errors.WorkflowCancelledError: the run was cancelled.
            errors.WorkflowTerminatedError: the run was terminated.
            errors.WorkflowTimedOutError: the run passed its run or execution timeout.
        """
        if timeout is None:
            return await self._wait_for_result(None)
        deadline = time.monotonic() + timeout
        async with asyncio.timeout(timeout):
            return await self._wait_for_result(deadline)

    async def result_after(self, answer: Any, timeout: float | None = None) -> Any:
        """Like :meth:`result`, starting from a result-route ``answer`` already in hand.

        :meth:`Client.execute_workflow` uses the ``result`` its start reply carried: a
        terminal answer is returned (or raised) at once, anything else waits as usual.

        Args:
            answer: a body as the result route answers it, or None.
            timeout: as for :meth:`result`.
        """
        if (
            isinstance(answer, dict)
            and answer.get("is_terminal")
            and not answer.get("continued_to_run_id")
            and self._run_id is not None
        ):
            return self._outcome(self._run_id, answer)
        return await self.result(timeout)

    async def _wait_for_result(self, deadline: float | None) -> Any:
        run_id = await self._resolve_run_id()
        early_pause = _EARLY_ANSWER_FLOOR
        outage_started: float | None = None
        failures = 0
        while True:
            wait = RESULT_WAIT_SECONDS
            if deadline is not None:
                # No point asking the server to hold longer than the caller will listen.
                wait = max(1, min(wait, math.ceil(deadline - time.monotonic())))
            asked_at = time.monotonic()
            try:
                body = await self._api.call(
                    "GET",
                    f"{self._base}/runs/{_seg(run_id)}/result",
                    params={"wait_seconds": wait},
                    timeout=wait + RESULT_HTTP_MARGIN_SECONDS,
                )
            except (TransportError, ServerError) as exc:
                # A caller waiting for a long workflow should ride out a server restart, but
                # not wait forever on a server that is gone.
                if isinstance(exc, ServerError) and exc.status < 500 and exc.status != 429:
                    raise
                outage_started = outage_started if outage_started is not None else asked_at
                if deadline is None and time.monotonic() - outage_started > RESULT_OUTAGE_TOLERANCE_SECONDS:
                    raise
                failures += 1
                logger.warning("waiting for %s: %s; retrying", self._workflow_id, exc)
                await asyncio.sleep(min(self._api.backoff(failures), _EARLY_ANSWER_CEILING))
                continue
            outage_started, failures = None, 0
            next_run = body.get("continued_to_run_id")
            if isinstance(next_run, str) and next_run:
                run_id = next_run
                early_pause = _EARLY_ANSWER_FLOOR
                continue
            if body.get("is_terminal"):
                return self._outcome(run_id, body)
            if time.monotonic() - asked_at < min(1.0, wait / 2):
                await asyncio.sleep(early_pause)
                early_pause = min(early_pause * 2, _EARLY_ANSWER_CEILING)
            else:
                early_pause = _EARLY_ANSWER_FLOOR

    def _outcome(self, run_id: str, body: dict[str, Any]) -> Any:
        status = body.get("status")
        if status == "completed":
            envelope = body.get("output_envelope")
            return None if envelope is None else serializer.decode_envelope(envelope)
        failure = body.get("failure") if isinstance(body.get("failure"), dict) else {}
        assert isinstance(failure, dict)
        error_cls: type[WorkflowOutcomeError]
        if status == "cancelled":
            error_cls = WorkflowCancelledError
        elif status == "terminated":
            error_cls = WorkflowTerminatedError
        elif status in ("timed_out", "timedout") or _is_timeout(failure):
            error_cls = WorkflowTimedOutError
        else:
            error_cls = WorkflowFailedError
        message = failure.get("message") or f"workflow {self._workflow_id!r} run {run_id!r} ended {status}"
        raise error_cls(str(message), workflow_id=self._workflow_id, run_id=run_id, failure=failure)

    async def cancel(self, reason: str | None = None) -> None:
        """Ask the workflow's current run to cancel.

        The request is delivered to the workflow code as
        :class:`~durable_workflow.workflow.WorkflowCancellationRequested` at the ``yield`` it
        waits on; the code may clean up, and the run then closes as ``cancelled``
        (``result()`` raises :class:`~durable_workflow.errors.WorkflowCancelledError`). Open
        activities see it through their heartbeat. Use :meth:`terminate` to stop at once.

        Args:
            reason: recorded with the cancellation (at most 1000 characters).

        Raises:
            errors.Conflict: the run is already closed (reason ``run_not_active``).
        """
        await self._close_run("cancel", reason)

    async def terminate(self, reason: str | None = None) -> None:
        """Terminate the workflow's current run.

        Args:
            reason: recorded with the termination (at most 1000 characters).

        Raises:
            errors.Conflict: the run is already closed (reason ``run_not_active``).
        """
        await self._close_run("terminate", reason)

    async def _close_run(self, action: str, reason: str | None) -> None:
        # A request id makes a resend after a lost answer recognisable as the same command.
        body: dict[str, Any] = {"request_id": f"py-{action}-{uuid.uuid4().hex}"}
        if reason is not None:
            body["reason"] = reason
        answer = await self._api.exchange("POST", f"{self._base}/{action}", json=body)
        if answer.ok:
            return
        error = self._api.error_for(answer)
        if answer.attempts > 1 and isinstance(error, Conflict) and error.reason == "run_not_active":
            # An earlier attempt was applied and its answer lost: the run is closed as asked.
            return
        raise error

    @property
    def _target(self) -> str:
        return self._base if self._run_id is None else f"{self._base}/runs/{_seg(self._run_id)}"

    async def signal(self, name: str, *args: Any, request_id: str | None = None) -> None:
        """Send a signal; the ``@workflow.signal(name)`` handler runs with ``args``.

        Args:
            name: the signal name.
            *args: the handler's positional arguments.
            request_id: an idempotency key (generated when None): the same key with the same
                signal records it once.

        Raises:
            errors.WorkflowNotFound: unknown workflow or run.
            errors.Conflict: the run is closed or not the current run, or the key was used
                for another signal (reason ``request_id_conflict``).
        """
        await _messages.signal(self._api, self._target, name, args, request_id)

    async def query(self, name: str, *args: Any) -> Any:
        """Ask a worker to answer the ``@workflow.query(name)`` handler from the run's history.

        Works on closed runs too. Queries never change the workflow.

        Raises:
            errors.QueryFailed: unknown query, the handler raised, no worker is polling the
                run's queue (reason ``query_worker_unavailable``) or none answered in time.
            errors.WorkflowNotFound: unknown workflow or run.
        """
        return await _messages.query(self._api, self._target, name, args)

    async def update(
        self,
        name: str,
        *args: Any,
        wait_for: str = "completed",
        update_id: str | None = None,
        wait_timeout_seconds: float | None = None,
    ) -> Any:
        """Run the ``@workflow.update(name)`` handler (after its validator) and return its result.

        Args:
            name: the update name.
            *args: the handler's positional arguments.
            wait_for: ``"completed"`` (return the result) or ``"accepted"`` (return once the
                validator accepted it: None, or the result if it already completed).
            update_id: an idempotency key (generated when None): the same id returns the first
                outcome and never runs the handler twice.
            wait_timeout_seconds: give up after this long (``TimeoutError``); None waits on.

        Raises:
            errors.UpdateFailed: the validator rejected it (reason ``update_rejected``) or the
                handler raised (reason ``update_failed``).
            errors.Conflict: the run is closed or not the current run.
        """
        return await _messages.update(
            self._api,
            self._target,
            name,
            args,
            wait_for=wait_for,
            update_id=update_id,
            wait_timeout_seconds=wait_timeout_seconds,
        )

    async def history(self) -> list[dict[str, Any]]:
        """Fetch the run's whole history, following page tokens.

        Returns:
            Event dicts (``sequence``, ``event_type``, ``payload``, timestamps) in order, the
            shape the replayer accepts.
        """
        run_id = await self._resolve_run_id()
        events: list[dict[str, Any]] = []
        token: str | None = None
        seen: set[str] = set()
        while True:
            body = await self._api.call(
                "GET",
                f"{self._base}/runs/{_seg(run_id)}/history",
                params={"page_size": HISTORY_PAGE_SIZE, "next_page_token": token},
            )
            page = body.get("events")
            if page is None:
                page = body.get("history_events")
            for event in page if isinstance(page, list) else []:
                if isinstance(event, dict):
                    # Worker-plane events carry ``recorded_at``; the replayer reads it as the
                    # clock, so give control-plane events (``timestamp``) the same key.
                    if "recorded_at" not in event and "timestamp" in event:
                        event = {**event, "recorded_at": event["timestamp"]}
                    events.append(event)
            next_token = body.get("next_page_token")
            if not isinstance(next_token, str) or not next_token:
                return events
            if next_token in seen:
                raise ClientError(f"history paging of {self._workflow_id!r} repeated token {next_token!r}")
            seen.add(next_token)
            token = next_token


def _is_timeout(failure: dict[str, Any]) -> bool:
    if failure.get("timeout_kind"):
        return True
    return failure.get("failure_category") == "timeout" or failure.get("exception_type") == "WorkflowTimedOut"
