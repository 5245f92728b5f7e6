"""What both task kinds share: slot-bounded long polls, in-flight tracking, resilient delivery.

A :class:`TaskPoller` runs a few poller coroutines. Each first takes a *slot* (one unit of the
kind's ``max_concurrent_*``), then long-polls; a task keeps the slot until it is handled, an
empty answer gives it back. So a poll only goes out when the worker can take the task at once,
and a busy worker leaves tasks to idle workers instead of sitting on leases.

Errors never end a poller: it logs, backs off with the transport policy's delays and polls
again, because a server restart must not take the fleet down with it.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from durable_workflow.client import HttpApi, RequestTimeout
from durable_workflow.client._types import parse_timestamp
from durable_workflow.errors import ServerError, TransportError

__all__ = ["DROP_REASONS", "Registrar", "TaskPoller", "is_drop"]

logger = logging.getLogger("durable_workflow.worker")

#: Answers to a task call that mean "this task is no longer yours": drop it without a report
#: (worker-plane §4.2 for workflow tasks, §8 for activity tasks).
DROP_REASONS = frozenset(
    {
        "lease_expired",
        "lease_owner_mismatch",
        "run_closed",
        "run_already_closed",
        "task_not_found",
        "task_not_leased",
        "workflow_task_attempt_mismatch",
        "attempt_not_found",
        "task_mismatch",
        "run_cancelled",
        "run_terminated",
    }
)
#: Seconds between poll or delivery retries never exceed this, even if the policy allows more.
MAX_BACKOFF_SECONDS = 5.0
# Pauses after empty polls that came back early (see _poll_loop).
_EARLY_EMPTY_FLOOR = 0.05
_EARLY_EMPTY_CEILING = 1.0
#: How long a completion is retried when the task names no lease expiry.
DEFAULT_DELIVERY_WINDOW_SECONDS = 300.0


def is_drop(error: BaseException) -> bool:
    """Whether a task-call error means the task was taken away from this worker."""
    return isinstance(error, ServerError) and error.status in (404, 409) and error.reason in DROP_REASONS


def _is_not_registered(error: BaseException) -> bool:
    return isinstance(error, ServerError) and error.reason == "worker_not_registered"


Registrar = Callable[[], Awaitable[None]]


class TaskPoller(abc.ABC):
    """Long-polls one task kind with bounded concurrency and hands tasks to :meth:`handle`.

    Args:
        api: the JSON layer.
        worker_id: this worker's id.
        task_queue: the queue polled.
        build_id: the worker's build id, or None.
        max_concurrent: slots, i.e. tasks of this kind handled at once.
        pollers: poll loops to run (at most ``max_concurrent``).
        poll_timeout_seconds: how long the server may hold a poll.
        reregister: called when the server says this worker is not registered.
    """

    #: ``workflow`` or ``activity``; names the route and the poll request ids.
    kind: str = ""

    def __init__(
        self,
        api: HttpApi,
        *,
        worker_id: str,
        task_queue: str,
        build_id: str | None,
        max_concurrent: int,
        pollers: int,
        poll_timeout_seconds: float,
        reregister: Registrar,
    ) -> None:
        self.api = api
        self.worker_id = worker_id
        self.task_queue = task_queue
        self.build_id = build_id
        self.max_concurrent = max_concurrent
        self.poll_timeout_seconds = poll_timeout_seconds
        self._pollers = max(1, min(pollers, max_concurrent))
        self._reregister = reregister
        self._slots = asyncio.Semaphore(max_concurrent)
        self._in_flight = 0
        self._poll_tasks: set[asyncio.Task[None]] = set()
        self._task_handlers: set[asyncio.Task[None]] = set()
        self._stopping = False
        #: The other task kind's poller, for eager tasks handed over in a report's reply.
        self.eager_peer: TaskPoller | None = None
        #: Type names this poller's tasks may have (for eager workflow starts; empty: none).
        self.accepted_types: frozenset[str] = frozenset()
        # With a zero timeout every empty answer is "early": probing must still not spin.
        self._early_threshold = (
            min(1.0, poll_timeout_seconds / 2) if poll_timeout_seconds > 0 else float("inf")
        )

    @property
    def free_slots(self) -> int:
        """Slots not held by a task being handled."""
        return self.max_concurrent - self._in_flight

    @property
    def stopping(self) -> bool:
        """Whether polling was stopped."""
        return self._stopping

    # --- subclass surface -----------------------------------------------------------------

    def poll_body(self, poll_request_id: str) -> dict[str, Any]:
        """The poll request body; subclasses add their own fields."""
        body: dict[str, Any] = {
            "worker_id": self.worker_id,
            "task_queue": self.task_queue,
            "poll_request_id": poll_request_id,
            "timeout_seconds": int(self.poll_timeout_seconds),
        }
        if self.build_id is not None:
            body["build_id"] = self.build_id
        return body

    @abc.abstractmethod
    async def handle(self, task: dict[str, Any]) -> None:
        """Run one leased task to its report (complete or fail)."""

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the poll loops on the running loop."""
        for index in range(self._pollers):
            task = asyncio.create_task(self._poll_loop(), name=f"dw-{self.kind}-poller-{index}")
            self._poll_tasks.add(task)
            task.add_done_callback(self._poll_tasks.discard)

    async def stop_polling(self) -> None:
        """Cancel the poll loops, including long polls in flight, and wait for them to end."""
        self._stopping = True
        tasks = list(self._poll_tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def drain(self, grace_seconds: float) -> None:
        """Wait up to ``grace_seconds`` for tasks being handled, then cancel what is left.

        Args:
            grace_seconds: how long in-flight tasks may take to finish and report.
        """
        pending = set(self._task_handlers)
        if pending and grace_seconds > 0:
            _, pending = await asyncio.wait(pending, timeout=grace_seconds)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    # --- eager tasks (our extension, see docs/protocol-decisions.md) ---------------------------

    def runs(self, task_queue: str, type_name: str) -> bool:
        """Whether this poller takes ``type_name`` tasks from ``task_queue`` now."""
        return not self._stopping and task_queue == self.task_queue and type_name in self.accepted_types

    async def reserve_slots(self, wanted: int) -> int:
        """Take up to ``wanted`` free slots without waiting; they carry eager tasks."""
        taken = 0
        while taken < wanted and not self._stopping and not self._slots.locked():
            await self._slots.acquire()  # does not suspend: the semaphore is not locked
            taken += 1
        return taken

    def take_eager(self, tasks: Any, reserved: int) -> None:
        """Handle tasks a reply leased to us eagerly, each on one reserved slot; free the rest."""
        for task in tasks if isinstance(tasks, list) else []:
            if reserved > 0 and isinstance(task, dict):
                reserved -= 1
                self._spawn(task)
        for _ in range(reserved):
            self._slots.release()

    # --- polling -------------------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        failures = 0
        early_pause = _EARLY_EMPTY_FLOOR
        while not self._stopping:
            await self._slots.acquire()
            handed_off = False
            error: BaseException | None = None
            asked_at = asyncio.get_running_loop().time()
            try:
                task = await self._poll()
                failures = 0
                if task is not None:
                    self._spawn(task)
                    handed_off = True
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = exc
            finally:
                if not handed_off:
                    self._slots.release()
            if error is not None:
                failures += 1
                await self._recover(error, failures)
            elif not handed_off and asyncio.get_running_loop().time() - asked_at < self._early_threshold:
                # An empty answer long before the poll timeout: a server that does not hold
                # polls (or a zero timeout). Pause instead of spinning on it.
                await asyncio.sleep(early_pause)
                early_pause = min(early_pause * 2, _EARLY_EMPTY_CEILING)
            else:
                early_pause = _EARLY_EMPTY_FLOOR

    async def _recover(self, error: BaseException, failures: int) -> None:
        if _is_not_registered(error):
            logger.warning(
                "%s poll: server does not know worker %s; registering again", self.kind, self.worker_id
            )
            try:
                await self._reregister()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = exc
        delay = min(self.api.backoff(failures), MAX_BACKOFF_SECONDS)
        log = logger.warning if failures <= 3 or failures % 20 == 0 else logger.debug
        log("%s poll failed (%s: %s); retrying in %.2f s", self.kind, type(error).__name__, error, delay)
        await asyncio.sleep(delay)

    async def _poll(self) -> dict[str, Any] | None:
        poll_request_id = f"{'wf' if self.kind == 'workflow' else self.kind}-poll-{uuid.uuid4().hex}"
        try:
            # Resent after a lost answer with the same id, so the server hands back the same
            # task instead of leasing a second one (poll idempotency, worker-plane §4.1).
            reply = await self.api.call(
                "POST",
                f"/worker/{self.kind}-tasks/poll",
                json=self.poll_body(poll_request_id),
                timeout=self.poll_timeout_seconds + 5.0,
            )
        except RequestTimeout:
            return None  # the server held past our timeout: treat it as an empty poll
        task = reply.get("task")
        return task if isinstance(task, dict) else None

    def _spawn(self, task: dict[str, Any]) -> None:
        self._in_flight += 1
        handler = asyncio.create_task(
            self._handle_guarded(task), name=f"dw-{self.kind}-task-{task.get('task_id')}"
        )
        self._task_handlers.add(handler)
        handler.add_done_callback(self._task_handlers.discard)

    async def _handle_guarded(self, task: dict[str, Any]) -> None:
        try:
            await self.handle(task)
        except asyncio.CancelledError:
            logger.info("%s task %s abandoned at shutdown", self.kind, task.get("task_id"))
            raise
        except Exception:
            logger.exception("%s task %s could not be handled", self.kind, task.get("task_id"))
        finally:
            self._in_flight -= 1
            self._slots.release()

    # --- delivery ---------------------------------------------------------------------------

    async def deliver(
        self, path: str, body: dict[str, Any], *, lease_expires_at: Any = None
    ) -> dict[str, Any] | None:
        """POST a task report, retrying through lost connections until the lease would be gone.

        The JSON layer already retries a few times; this outer loop covers a server that is
        down for longer (a restart), because a report lost here costs a whole lease timeout.

        Args:
            path: the route below ``/api``.
            body: the report.
            lease_expires_at: the task's lease expiry; retries stop there.

        Returns:
            The reply body, or None when the task was taken away (see :data:`DROP_REASONS`).

        Raises:
            errors.ServerError: the server refused the report for another reason.
            errors.TransportError: the server stayed unreachable until the lease expired.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _seconds_until(lease_expires_at, DEFAULT_DELIVERY_WINDOW_SECONDS)
        failures = 0
        while True:
            try:
                return await self.api.call("POST", path, json=body)
            except ServerError as exc:
                if is_drop(exc):
                    logger.debug("%s: dropped (%s)", path, exc.reason)
                    return None
                if exc.status < 500 and exc.status != 429:
                    raise
                error: Exception = exc
            except TransportError as exc:
                error = exc
            failures += 1
            delay = min(self.api.backoff(failures), MAX_BACKOFF_SECONDS)
            if loop.time() + delay >= deadline:
                raise error
            logger.warning("%s failed (%s); retrying in %.2f s", path, error, delay)
            await asyncio.sleep(delay)


def _seconds_until(timestamp: Any, default: float) -> float:
    moment = parse_timestamp(timestamp)
    if moment is None:
        return default
    remaining = (moment - datetime.now(UTC)).total_seconds()
    # Clock skew between worker and server must not make a report give up at once.
    return max(remaining, 30.0)
