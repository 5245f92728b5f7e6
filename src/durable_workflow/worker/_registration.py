"""Worker registration: what the worker runs, and its register/heartbeat/deregister calls.

The server routes a task only to a registered worker that advertised its type, and treats a
worker that stops heartbeating as gone. Registration is an upsert keyed by worker id, so
registering again after the server forgot us (a restart on a fresh database, a stale
registration) is always safe.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from durable_workflow import __version__
from durable_workflow.activity import activity_name
from durable_workflow.client import HttpApi
from durable_workflow.client._client import workflow_type_name
from durable_workflow.errors import NotFound, ServerError, TransportError, WorkflowDefinitionError
from durable_workflow.worker._polling import MAX_BACKOFF_SECONDS

__all__ = ["Registration", "new_worker_id", "resolve_activities", "resolve_workflows"]

logger = logging.getLogger("durable_workflow.worker")

#: Used until the register reply names the interval the server wants.
DEFAULT_HEARTBEAT_INTERVAL_SECONDS = 20.0
_SDK_VERSION = f"durable-workflow-python/{__version__}"


def new_worker_id() -> str:
    """A fresh worker id in the published SDK's shape, ``py-worker-<8 hex>``."""
    return f"py-worker-{secrets.token_hex(4)}"


def resolve_workflows(workflows: Iterable[type]) -> dict[str, type]:
    """Map workflow type names to ``@workflow.defn`` classes.

    Raises:
        WorkflowDefinitionError: an entry is not decorated, or two classes claim one name.
    """
    table: dict[str, type] = {}
    for cls in workflows:
        try:
            name = workflow_type_name(cls)
        except TypeError as exc:
            raise WorkflowDefinitionError(str(exc)) from None
        if name in table and table[name] is not cls:
            raise WorkflowDefinitionError(f"two workflow classes are registered as {name!r}")
        table[name] = cls
    return table


def resolve_activities(activities: Iterable[Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """Map activity type names to ``@activity.defn`` functions.

    Raises:
        WorkflowDefinitionError: an entry is not decorated, or two functions claim one name.
    """
    table: dict[str, Callable[..., Any]] = {}
    for fn in activities:
        name = activity_name(fn)
        if name in table and table[name] is not fn:
            raise WorkflowDefinitionError(f"two activity functions are registered as {name!r}")
        table[name] = fn
    return table


class Registration:
    """The worker's registration with the server.

    Args:
        api: the JSON layer.
        worker_id: this worker's id.
        task_queue: the one queue this registration covers.
        build_id: the build id tasks are routed by, or None.
        workflow_types: the workflow types this worker runs.
        activity_types: the activity types this worker runs.
        max_concurrent_workflow_tasks: advertised workflow-task concurrency.
        max_concurrent_activity_tasks: advertised activity concurrency.
        task_slots: returns the free slots, reported with every heartbeat.
    """

    def __init__(
        self,
        api: HttpApi,
        *,
        worker_id: str,
        task_queue: str,
        build_id: str | None,
        workflow_types: list[str],
        activity_types: list[str],
        max_concurrent_workflow_tasks: int,
        max_concurrent_activity_tasks: int,
        task_slots: Callable[[], dict[str, int]],
    ) -> None:
        self._api = api
        self.worker_id = worker_id
        self.task_queue = task_queue
        self.build_id = build_id
        self.workflow_types = workflow_types
        self.activity_types = activity_types
        self.max_concurrent_workflow_tasks = max_concurrent_workflow_tasks
        self.max_concurrent_activity_tasks = max_concurrent_activity_tasks
        self._task_slots = task_slots
        self.heartbeat_interval_seconds = DEFAULT_HEARTBEAT_INTERVAL_SECONDS
        self._lock = asyncio.Lock()
        self._generation = 0

    def register_body(self) -> dict[str, Any]:
        """The ``POST /worker/register`` body."""
        body: dict[str, Any] = {
            "worker_id": self.worker_id,
            "task_queue": self.task_queue,
            "runtime": "python",
            "sdk_version": _SDK_VERSION,
            "supported_workflow_types": list(self.workflow_types),
            "supported_activity_types": list(self.activity_types),
            "max_concurrent_workflow_tasks": self.max_concurrent_workflow_tasks,
            "max_concurrent_activity_tasks": self.max_concurrent_activity_tasks,
            "task_slots": self._task_slots(),
            # Query tasks are polled, and updates are validated inside the update's workflow
            # task (docs/protocol-decisions.md), whenever this worker runs workflows.
            "capabilities": ["query_tasks", "update_validation_in_task"] if self.workflow_types else [],
            "process_metrics": {"process_id": os.getpid()},
        }
        if self.build_id is not None:
            body["build_id"] = self.build_id
        return body

    async def register(self) -> None:
        """Register (or refresh the registration) once.

        Raises:
            errors.ServerError: the server refused the registration.
            errors.TransportError: no answer after the policy's retries.
        """
        reply = await self._api.call("POST", "/worker/register", json=self.register_body())
        self._adopt_interval(reply)
        self._generation += 1

    async def register_until_done(self, stop: asyncio.Event) -> bool:
        """Register, retrying through an unreachable or overloaded server.

        Args:
            stop: when set, give up.

        Returns:
            True once registered, False when ``stop`` was set first.

        Raises:
            errors.ServerError: a refusal that retrying cannot fix (401, 403, 409, 422).
        """
        failures = 0
        while not stop.is_set():
            try:
                await self.register()
                return True
            except ServerError as exc:
                if exc.status < 500 and exc.status != 429:
                    raise
                error: Exception = exc
            except TransportError as exc:
                error = exc
            failures += 1
            delay = min(self._api.backoff(failures), MAX_BACKOFF_SECONDS)
            logger.warning(
                "registering worker %s failed (%s); retrying in %.2f s", self.worker_id, error, delay
            )
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except TimeoutError:
                pass
        return False

    async def reregister(self) -> None:
        """Register again after the server forgot this worker; concurrent callers share one call."""
        generation = self._generation
        async with self._lock:
            if self._generation != generation:
                return  # another poller re-registered while this one waited for the lock
            await self.register()

    async def heartbeat_forever(self) -> None:
        """Heartbeat every ``heartbeat_interval_seconds`` until cancelled; errors are logged."""
        while True:
            await asyncio.sleep(self.heartbeat_interval_seconds)
            try:
                await self.heartbeat()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("worker %s heartbeat failed: %s", self.worker_id, exc)

    async def heartbeat(self) -> None:
        """Send one heartbeat; re-register when the server no longer knows this worker."""
        body = {"worker_id": self.worker_id, "task_slots": self._task_slots()}
        try:
            reply = await self._api.call("POST", "/worker/heartbeat", json=body)
        except NotFound as exc:
            if exc.reason != "worker_not_registered":
                raise
            await self.reregister()
            return
        self._adopt_interval(reply)

    async def deregister(self) -> None:
        """Deregister; a worker the server does not know counts as deregistered.

        Raises:
            errors.ServerError: any other refusal.
        """
        try:
            await self._api.call("DELETE", f"/worker/registrations/{quote(self.worker_id, safe='')}")
        except NotFound as exc:
            if exc.reason not in ("worker_not_found", "worker_not_registered"):
                raise

    def _adopt_interval(self, reply: dict[str, Any]) -> None:
        interval = reply.get("heartbeat_interval_seconds")
        if isinstance(interval, int | float) and not isinstance(interval, bool) and interval > 0:
            self.heartbeat_interval_seconds = float(interval)
