"""The worker-plane half of the :class:`Engine` facade (worker-plane §3, §4, §8)."""

from __future__ import annotations

from typing import Any

from durable_workflow_server.engine import _activity_tasks, _workers, _workflow_tasks
from durable_workflow_server.engine._facade_base import FacadeBase, storage_errors


class WorkerPlane(FacadeBase):
    """Worker registration, workflow tasks and activity tasks."""

    # --- workers --------------------------------------------------------------------------

    @storage_errors
    async def register_worker(self, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        """Register (upsert) a worker on one task queue (worker-plane §3).

        Args:
            ns: the lower-cased namespace (the API checked that it exists).
            body: the register request body.

        Returns:
            ``{"worker_id", "registered": True, "heartbeat_interval_seconds"}``.

        Raises:
            EngineError: see docs/server-internals.md for kinds and reasons.
        """
        return await _workers.register(self._core, ns, body)

    @storage_errors
    async def heartbeat_worker(self, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        """Record a worker heartbeat.

        Args:
            ns: the lower-cased namespace (the API checked that it exists).
            body: ``{worker_id, task_slots?, process_metrics?}``.

        Returns:
            ``{"worker_id", "acknowledged": True, "heartbeat_interval_seconds", "stale_after_seconds"}``.

        Raises:
            EngineError: see docs/server-internals.md for kinds and reasons.
        """
        return await _workers.heartbeat(self._core, ns, body)

    @storage_errors
    async def deregister_worker(self, ns: str, worker_id: str) -> dict[str, Any]:
        """Deregister a worker and release its workflow-task leases at once.

        Args:
            ns: the lower-cased namespace (the API checked that it exists).
            worker_id: the worker to remove.

        Returns:
            ``{"worker_id", "outcome": "deregistered", "recovered_workflow_task_count"}``.

        Raises:
            EngineError: see docs/server-internals.md for kinds and reasons.
        """
        return await _workers.deregister(self._core, ns, worker_id)

    # --- workflow tasks -------------------------------------------------------------------

    @storage_errors
    async def poll_workflow_task(
        self,
        ns: str,
        *,
        worker_id: str,
        task_queue: str,
        build_id: str | None = None,
        timeout_seconds: float | None = None,
        poll_request_id: str | None = None,
        history_page_size: int | None = None,
    ) -> dict[str, Any]:
        """Long-poll a workflow task; answers the moment one is leased to this worker.

        Args:
            ns: the lower-cased namespace (the API checked that it exists).
            worker_id: a registered worker.
            task_queue: the worker's registered queue.
            build_id: must match the registration when both are given.
            timeout_seconds: hold time, clamped to 0..60 (default 30).
            poll_request_id: idempotency key of this logical poll.
            history_page_size: events in the first page, 1..1000 (default 500).

        Returns:
            ``{"task": {...}}`` (worker-plane §4.1) or ``{"task": None}`` on timeout.

        Raises:
            EngineError: see docs/server-internals.md for kinds and reasons.
        """
        return await _workflow_tasks.poll(
            self._core,
            ns,
            worker_id=worker_id,
            task_queue=task_queue,
            build_id=build_id,
            timeout_seconds=timeout_seconds,
            poll_request_id=poll_request_id,
            history_page_size=history_page_size,
        )

    @storage_errors
    async def workflow_task_history(
        self,
        ns: str,
        task_id: str,
        *,
        lease_owner: str,
        attempt: int,
        page_token: str | None,
        page_size: int | None = None,
    ) -> dict[str, Any]:
        """A later page of a leased task's history (worker-plane §4.3).

        Args:
            ns: the lower-cased namespace (the API checked that it exists).
            task_id: the workflow task id from the poll.
            lease_owner: the polling worker's id.
            attempt: ``workflow_task_attempt`` from the poll (the fencing token).
            page_token: ``next_history_page_token`` of the previous page.
            page_size: events per page, 1..1000.

        Returns:
            ``{"task_id", "workflow_task_attempt", "history_events", "total_history_events",
            "next_history_page_token"}``.

        Raises:
            EngineError: see docs/server-internals.md for kinds and reasons.
        """
        return await _workflow_tasks.history(
            self._core,
            ns,
            task_id,
            lease_owner=lease_owner,
            attempt=attempt,
            page_token=page_token,
            page_size=page_size,
        )

    @storage_errors
    async def heartbeat_workflow_task(
        self, ns: str, task_id: str, *, lease_owner: str, attempt: int
    ) -> dict[str, Any]:
        """Renew a workflow task lease (worker-plane §4.4).

        Args:
            ns: the lower-cased namespace (the API checked that it exists).
            task_id: the workflow task id from the poll.
            lease_owner: the polling worker's id.
            attempt: ``workflow_task_attempt`` from the poll (the fencing token).

        Returns:
            ``{"task_id", "workflow_task_attempt", "lease_owner", "renewed", "lease_expires_at",
            "run_status", "task_status", "reason"}``.

        Raises:
            EngineError: see docs/server-internals.md for kinds and reasons.
        """
        return await _workflow_tasks.heartbeat(
            self._core, ns, task_id, lease_owner=lease_owner, attempt=attempt
        )

    @storage_errors
    async def complete_workflow_task(
        self, ns: str, task_id: str, *, lease_owner: str, attempt: int, commands: Any
    ) -> dict[str, Any]:
        """Validate and apply the task's commands in one transaction (worker-plane §4.5).

        Args:
            ns: the lower-cased namespace (the API checked that it exists).
            task_id: the workflow task id from the poll.
            lease_owner: the polling worker's id.
            attempt: ``workflow_task_attempt`` from the poll (the fencing token).
            commands: the command list.

        Returns:
            ``{"task_id", "workflow_task_attempt", "outcome", "recorded", "run_id", "run_status",
            "created_task_ids", "reason"}``.

        Raises:
            EngineError: see docs/server-internals.md for kinds and reasons.
        """
        return await _workflow_tasks.complete(
            self._core, ns, task_id, lease_owner=lease_owner, attempt=attempt, commands=commands
        )

    @storage_errors
    async def fail_workflow_task(
        self, ns: str, task_id: str, *, lease_owner: str, attempt: int, failure: Any
    ) -> dict[str, Any]:
        """Report a task failure (worker-plane §4.6): quiet release or retry with backoff.

        Args:
            ns: the lower-cased namespace (the API checked that it exists).
            task_id: the workflow task id from the poll.
            lease_owner: the polling worker's id.
            attempt: ``workflow_task_attempt`` from the poll (the fencing token).
            failure: ``{message, type?, stack_trace?, reason?}``.

        Returns:
            ``{"task_id", "workflow_task_attempt", "outcome": "failed", "recorded", "reason",
            "next_task_id"}``.

        Raises:
            EngineError: see docs/server-internals.md for kinds and reasons.
        """
        return await _workflow_tasks.fail(
            self._core, ns, task_id, lease_owner=lease_owner, attempt=attempt, failure=failure
        )

    # --- activity tasks -------------------------------------------------------------------

    @storage_errors
    async def poll_activity_task(
        self,
        ns: str,
        *,
        worker_id: str,
        task_queue: str,
        build_id: str | None = None,
        timeout_seconds: float | None = None,
        poll_request_id: str | None = None,
    ) -> dict[str, Any]:
        """Long-poll an activity task (worker-plane §8); claiming it records ActivityStarted.

        Args:
            ns: the lower-cased namespace (the API checked that it exists).
            worker_id: a registered worker.
            task_queue: the worker's registered queue.
            build_id: must match the registration when both are given.
            timeout_seconds: hold time, clamped to 0..60 (default 30).
            poll_request_id: idempotency key of this logical poll.

        Returns:
            ``{"task": {...}}`` or ``{"task": None}`` on timeout.

        Raises:
            EngineError: see docs/server-internals.md for kinds and reasons.
        """
        return await _activity_tasks.poll(
            self._core,
            ns,
            worker_id=worker_id,
            task_queue=task_queue,
            build_id=build_id,
            timeout_seconds=timeout_seconds,
            poll_request_id=poll_request_id,
        )

    @storage_errors
    async def complete_activity_task(
        self, ns: str, task_id: str, *, attempt_id: str, lease_owner: str, result: Any
    ) -> dict[str, Any]:
        """Record an attempt's result; idempotent per (task, attempt).

        Args:
            ns: the lower-cased namespace (the API checked that it exists).
            task_id: the activity task id from the poll.
            attempt_id: ``activity_attempt_id`` from the poll.
            lease_owner: the polling worker's id.
            result: the ``{codec, blob}`` envelope (or None).

        Returns:
            ``{"task_id", "activity_attempt_id", "outcome", "recorded", "reason", "next_task_id"}``.

        Raises:
            EngineError: see docs/server-internals.md for kinds and reasons.
        """
        return await _activity_tasks.complete(
            self._core, ns, task_id, attempt_id=attempt_id, lease_owner=lease_owner, result=result
        )

    @storage_errors
    async def fail_activity_task(
        self, ns: str, task_id: str, *, attempt_id: str, lease_owner: str, failure: Any
    ) -> dict[str, Any]:
        """Record an attempt's failure and apply the retry policy.

        Args:
            ns: the lower-cased namespace (the API checked that it exists).
            task_id: the activity task id from the poll.
            attempt_id: ``activity_attempt_id`` from the poll.
            lease_owner: the polling worker's id.
            failure: ``{message, type?, class?, non_retryable?, ...}``.

        Returns:
            Like :meth:`complete_activity_task`, with ``outcome: "failed"``.

        Raises:
            EngineError: see docs/server-internals.md for kinds and reasons.
        """
        return await _activity_tasks.fail(
            self._core, ns, task_id, attempt_id=attempt_id, lease_owner=lease_owner, failure=failure
        )

    @storage_errors
    async def heartbeat_activity_task(
        self, ns: str, task_id: str, *, attempt_id: str, lease_owner: str, details: Any = None
    ) -> dict[str, Any]:
        """Renew an attempt's lease, keep its details for the next attempt, report cancellation.

        Args:
            ns: the lower-cased namespace (the API checked that it exists).
            task_id: the activity task id from the poll.
            attempt_id: ``activity_attempt_id`` from the poll.
            lease_owner: the polling worker's id.
            details: progress details (any JSON), handed to a later attempt.

        Returns:
            ``{"task_id", "activity_attempt_id", "lease_owner", "cancel_requested", "can_continue",
            "reason", "run_closed_reason", "run_closed_at", "heartbeat_recorded",
            "lease_expires_at", "last_heartbeat_at"}``.

        Raises:
            EngineError: see docs/server-internals.md for kinds and reasons.
        """
        return await _activity_tasks.heartbeat(
            self._core, ns, task_id, attempt_id=attempt_id, lease_owner=lease_owner, details=details
        )
