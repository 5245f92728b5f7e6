"""Activity tasks: run the registered function, heartbeat for it, report its outcome.

Async activities run as tasks on the worker's loop; sync ones run in a thread pool with the
context variables copied, so ``activity.info()`` works in both. Heartbeats from either go
through :class:`_Heartbeats`, which sends at most one request per second with the latest
details, and is the only way cancellation reaches an activity (worker-plane §8):

- ``cancel_requested`` in a reply: the context is marked cancelled, an async activity's task
  is cancelled too, and the attempt is reported as ``ActivityCancelled`` (non-retryable);
- ``can_continue: false`` without a cancel request: the attempt is abandoned, nothing reported.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import logging
import traceback
from collections.abc import Callable
from datetime import datetime
from typing import Any

from durable_workflow import activity as activity_api
from durable_workflow import serializer
from durable_workflow.activity import ActivityContext, ActivityInfo
from durable_workflow.client import HttpApi
from durable_workflow.client._types import parse_timestamp
from durable_workflow.errors import (
    ApplicationError,
    NotFound,
    ServerError,
    TransportError,
    UnsupportedPayloadCodec,
)
from durable_workflow.protocol import PAYLOAD_CODEC
from durable_workflow.worker._polling import TaskPoller, is_drop

__all__ = ["ActivityTaskPoller", "failure_from_exception"]

logger = logging.getLogger("durable_workflow.worker")

#: At most one heartbeat request per attempt per this many seconds.
HEARTBEAT_THROTTLE_SECONDS = 1.0
# Size caps of the published SDK, so a huge message or stack cannot push a report past the
# server's body limit and lose the failure altogether.
_MAX_MESSAGE_CHARS = 62 * 1024
_MAX_STACK_CHARS = 128 * 1024


def failure_from_exception(exc: BaseException, *, non_retryable: bool | None = None) -> dict[str, Any]:
    """The ``failure`` body for an activity that raised ``exc``.

    ``ApplicationError.type`` overrides the class name; ``ApplicationError.non_retryable`` and
    its ``details`` are passed on.

    Args:
        exc: what the activity raised.
        non_retryable: force the flag (None takes it from the exception).

    Returns:
        ``{message, type, class, stack_trace, non_retryable[, details]}``.
    """
    cls = type(exc)
    type_name = cls.__name__
    flag = False
    details: Any = None
    if isinstance(exc, ApplicationError):
        type_name = exc.type or type_name
        flag = exc.non_retryable
        details = exc.details
    failure: dict[str, Any] = {
        "message": (str(exc) or type_name)[:_MAX_MESSAGE_CHARS],
        "type": type_name,
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "stack_trace": "".join(traceback.format_exception(exc))[-_MAX_STACK_CHARS:],
        "non_retryable": flag if non_retryable is None else non_retryable,
    }
    if details is not None:
        try:
            failure["details"] = serializer.envelope(details)
        except Exception:
            logger.warning(
                "activity failure details of type %s could not be encoded; dropped", type(details).__name__
            )
    return failure


class _Heartbeats:
    """Throttled heartbeats of one attempt, always sending the latest details.

    ``record`` runs on the loop thread (the activity context hops there for sync activities).
    """

    def __init__(
        self,
        api: HttpApi,
        *,
        path: str,
        attempt_id: str,
        lease_owner: str,
        on_cancel: Callable[[], None],
        on_abandon: Callable[[], None],
    ) -> None:
        self._api = api
        self._path = path
        self._attempt_id = attempt_id
        self._lease_owner = lease_owner
        self._on_cancel = on_cancel
        self._on_abandon = on_abandon
        self._latest: Any = None
        self._pending = False
        self._last_sent = float("-inf")
        self._sender: asyncio.Task[None] | None = None
        self._closed = False

    def record(self, details: Any) -> None:
        if self._closed:
            return  # a sync activity's last heartbeat can hop to the loop after it returned
        self._latest = details
        self._pending = True
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send_pending())

    async def _send_pending(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                wait = self._last_sent + HEARTBEAT_THROTTLE_SECONDS - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)  # heartbeats recorded meanwhile just replace _latest
                details, self._pending = self._latest, False
                self._last_sent = loop.time()
                await self._send(details)
        finally:
            self._sender = None

    async def _send(self, details: Any) -> None:
        body: dict[str, Any] = {"activity_attempt_id": self._attempt_id, "lease_owner": self._lease_owner}
        if details is not None:
            try:
                body["details"] = serializer.envelope(details)
            except Exception as exc:
                logger.warning("heartbeat details could not be encoded (%s); sent without them", exc)
        try:
            reply = await self._api.call("POST", self._path, json=body)
        except NotFound:
            self._on_abandon()  # the attempt is gone (timed out, retried elsewhere)
            return
        except (ServerError, TransportError) as exc:
            logger.warning("activity heartbeat %s failed: %s", self._path, exc)
            return
        if reply.get("cancel_requested"):
            self._on_cancel()
        elif reply.get("can_continue") is False:
            self._on_abandon()

    def close(self) -> None:
        self._closed = True
        if self._sender is not None:
            self._sender.cancel()


class _Attempt:
    """Cancellation state of one running attempt."""

    def __init__(self) -> None:
        self.context: ActivityContext | None = None
        self.runner: asyncio.Future[Any] | None = None
        self.is_async = False
        self.cancel_requested = False
        self.abandoned = False

    def cancel(self) -> None:
        if self.cancel_requested or self.abandoned:
            return
        self.cancel_requested = True
        self._stop()

    def abandon(self) -> None:
        if self.abandoned:
            return
        self.abandoned = True
        self._stop()

    def _stop(self) -> None:
        if self.context is not None:
            self.context.cancel()
        # Only an async activity can be interrupted; a thread is left to notice is_cancelled.
        if self.is_async and self.runner is not None:
            self.runner.cancel()


class ActivityTaskPoller(TaskPoller):
    """Polls activity tasks and runs the registered activity functions.

    Args:
        activities: activity type name -> function.
        executor: the pool sync activities run in.
        **kwargs: see :class:`TaskPoller`.
    """

    kind = "activity"

    def __init__(
        self,
        *,
        activities: dict[str, Callable[..., Any]],
        executor: Callable[[], concurrent.futures.Executor],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.activities = activities
        self._executor = executor

    async def handle(self, task: dict[str, Any]) -> None:
        task_id = str(task["task_id"])
        attempt_id = str(task.get("activity_attempt_id") or task.get("attempt_id") or "")
        lease_owner = str(task.get("lease_owner") or self.worker_id)
        base = f"/worker/activity-tasks/{task_id}"
        ids = {"activity_attempt_id": attempt_id, "lease_owner": lease_owner}
        lease_expires_at = task.get("lease_expires_at")
        activity_type = str(task.get("activity_type") or "")

        fn = self.activities.get(activity_type)
        if fn is None:
            failure = {
                "message": f"no activity registered for type {activity_type!r} on this worker",
                "type": "ActivityNotRegistered",
                "non_retryable": True,
            }
            await self._report(f"{base}/fail", {**ids, "failure": failure}, lease_expires_at)
            return
        try:
            args = _decode_arguments(task)
            heartbeat_details = _decode_details(task.get("heartbeat_details"))
        except Exception as exc:
            # The same bytes will not decode on a retry either.
            failure = failure_from_exception(exc, non_retryable=True)
            await self._report(f"{base}/fail", {**ids, "failure": failure}, lease_expires_at)
            return

        attempt = _Attempt()
        heartbeats = _Heartbeats(
            self.api,
            path=f"{base}/heartbeat",
            attempt_id=attempt_id,
            lease_owner=lease_owner,
            on_cancel=attempt.cancel,
            on_abandon=attempt.abandon,
        )
        info = ActivityInfo(
            workflow_id=str(task.get("workflow_id") or ""),
            run_id=str(task.get("run_id") or ""),
            activity_id=str(task.get("activity_execution_id") or ""),
            activity_type=activity_type,
            attempt=int(task.get("attempt_number") or 1),
            task_queue=str(task.get("task_queue") or self.task_queue),
            task_id=task_id,
            attempt_id=attempt_id,
            deadline=_deadline(task.get("deadlines")),
            heartbeat_details=heartbeat_details,
        )
        loop = asyncio.get_running_loop()
        ctx = ActivityContext(info, heartbeat=heartbeats.record, loop=loop)
        attempt.context = ctx
        try:
            body = await self._run(fn, args, ctx, attempt, ids)
        finally:
            heartbeats.close()
        if body is None:
            return
        path = f"{base}/complete" if "result" in body else f"{base}/fail"
        await self._report(path, body, lease_expires_at)

    async def _run(
        self,
        fn: Callable[..., Any],
        args: list[Any],
        ctx: ActivityContext,
        attempt: _Attempt,
        ids: dict[str, str],
    ) -> dict[str, Any] | None:
        """Run the activity; return the report body, or None when nothing must be reported."""
        loop = asyncio.get_running_loop()
        try:
            if inspect.iscoroutinefunction(fn):
                attempt.is_async = True
                with activity_api._running(ctx):
                    # The task copies the current context, so it carries the activity context.
                    attempt.runner = loop.create_task(fn(*args))
                result = await attempt.runner
            else:
                context = contextvars.copy_context()
                attempt.runner = loop.run_in_executor(
                    self._executor(), functools.partial(context.run, _call_in_context, fn, args, ctx)
                )
                result = await attempt.runner
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the worker itself is being stopped: no report, the lease will lapse
            if attempt.abandoned:
                return None
            if attempt.cancel_requested:
                return {**ids, "failure": _cancelled_failure()}
            raise
        except Exception as exc:
            if attempt.abandoned:
                return None
            if attempt.cancel_requested:
                # The activity noticed is_cancelled and raised: report it as cancelled.
                return {**ids, "failure": _cancelled_failure(exc)}
            return {**ids, "failure": failure_from_exception(exc)}
        if attempt.abandoned:
            return None
        try:
            return {**ids, "result": serializer.envelope(result)}
        except Exception as exc:
            return {**ids, "failure": failure_from_exception(exc)}

    async def _report(self, path: str, body: dict[str, Any], lease_expires_at: Any) -> None:
        peer = self.eager_peer
        reserved = await peer.reserve_slots(1) if peer is not None else 0
        if reserved:
            body = {**body, "eager_workflow_task": True}  # our extension: the next workflow task
        reply: dict[str, Any] | None = None
        try:
            reply = await self.deliver(path, body, lease_expires_at=lease_expires_at)
        except ServerError as exc:
            if not is_drop(exc):
                logger.error("activity report %s refused: %s", path, exc)
        except TransportError as exc:
            logger.error("activity report %s lost, the server stayed unreachable: %s", path, exc)
        finally:
            if peer is not None and reserved:
                peer.take_eager([(reply or {}).get("eager_workflow_task")], reserved)


def _call_in_context(fn: Callable[..., Any], args: list[Any], ctx: ActivityContext) -> Any:
    with activity_api._running(ctx):
        return fn(*args)


def _cancelled_failure(exc: BaseException | None = None) -> dict[str, Any]:
    message = str(exc) if exc is not None and str(exc) else "activity cancelled"
    failure: dict[str, Any] = {"message": message, "type": "ActivityCancelled", "non_retryable": True}
    if exc is not None:
        failure["class"] = f"{type(exc).__module__}.{type(exc).__qualname__}"
        failure["stack_trace"] = "".join(traceback.format_exception(exc))[-_MAX_STACK_CHARS:]
    return failure


def _decode_arguments(task: dict[str, Any]) -> list[Any]:
    codec = task.get("payload_codec", PAYLOAD_CODEC)
    if codec is not None and codec != PAYLOAD_CODEC:
        raise UnsupportedPayloadCodec(f"activity task payload_codec must be {PAYLOAD_CODEC!r}, got {codec!r}")
    value = serializer.decode_envelope(task.get("arguments"), allowed_codecs=(PAYLOAD_CODEC,))
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _decode_details(value: Any) -> Any:
    # Heartbeat details go out as an envelope; a server may hand them back as sent or as a
    # bare blob. Anything else is passed through as plain JSON.
    if isinstance(value, dict) and "codec" in value:
        return serializer.decode_envelope(value, allowed_codecs=(PAYLOAD_CODEC,))
    return value


def _deadline(deadlines: Any) -> datetime | None:
    if not isinstance(deadlines, dict):
        return None
    moments = [m for m in (parse_timestamp(v) for v in deadlines.values()) if m is not None]
    return min(moments) if moments else None
