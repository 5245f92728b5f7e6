"""The messages part of the :class:`Engine` facade: signals, queries, updates, query tasks."""

from __future__ import annotations

from typing import Any

from durable_workflow_server.engine import _queries, _signals, _updates
from durable_workflow_server.engine._facade_base import FacadeBase, storage_errors


class MessagesPlane(FacadeBase):
    """Signal, query and update a workflow (control-plane §6.4-6.6); query tasks (worker-plane §9)."""

    @storage_errors
    async def signal_workflow(
        self,
        ns: str,
        workflow_id: str,
        run_id: str | None,
        signal_name: str,
        *,
        input: Any = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """Record a signal for the current run and wake it (202 receipt of §6.4).

        Raises:
            EngineError: 404 ``instance_not_found``/``run_not_found``; 409
                ``historical_run_command_rejected``, ``run_not_active``, ``request_id_conflict``;
                422 ``validation_failed``.
        """
        return await _signals.signal(
            self._core, ns, workflow_id, run_id, signal_name, input=input, request_id=request_id
        )

    @storage_errors
    async def query_workflow(
        self, ns: str, workflow_id: str, run_id: str | None, query_name: str, *, input: Any = None
    ) -> dict[str, Any]:
        """Ask a worker to answer a query from the run's history and wait for it (§6.5).

        Raises:
            EngineError: 409 ``query_worker_unavailable``; 504 ``query_worker_timeout``; the
                worker's reason (404 ``rejected_unknown_query``, else 409).
        """
        return await _queries.query(self._core, ns, workflow_id, run_id, query_name, input=input)

    @storage_errors
    async def update_workflow(
        self,
        ns: str,
        workflow_id: str,
        run_id: str | None,
        update_name: str,
        *,
        input: Any = None,
        update_id: str | None = None,
        wait_for: str | None = None,
        wait_timeout_seconds: Any = None,
    ) -> tuple[int, dict[str, Any]]:
        """Submit an update (or find the one with this id) and wait for ``wait_for`` (§6.6).

        Returns:
            ``(status, body)``: 200 completed, 202 accepted (or the wait timed out), 409
            ``update_rejected`` by the validator, 422 ``update_failed``.
        """
        return await _updates.update(
            self._core,
            ns,
            workflow_id,
            run_id,
            update_name,
            input=input,
            update_id=update_id,
            wait_for=wait_for,
            wait_timeout_seconds=wait_timeout_seconds,
        )

    @storage_errors
    async def poll_query_task(
        self,
        ns: str,
        *,
        worker_id: str,
        task_queue: str,
        build_id: str | None = None,
        timeout_seconds: Any = None,
    ) -> dict[str, Any]:
        """Hold until a query task is leased to this worker (``{"task": {...} | None}``)."""
        return await _queries.poll(
            self._core,
            ns,
            worker_id=worker_id,
            task_queue=task_queue,
            build_id=build_id,
            timeout_seconds=timeout_seconds,
        )

    async def complete_query_task(
        self, ns: str, task_id: str, *, lease_owner: Any, attempt: Any, result_envelope: Any
    ) -> dict[str, Any]:
        """Deliver a query's answer to its caller."""
        return _queries.complete(
            self._core, ns, task_id, lease_owner=lease_owner, attempt=attempt, result_envelope=result_envelope
        )

    async def fail_query_task(
        self, ns: str, task_id: str, *, lease_owner: Any, attempt: Any, failure: Any
    ) -> dict[str, Any]:
        """Deliver a query's failure to its caller."""
        return _queries.fail(
            self._core, ns, task_id, lease_owner=lease_owner, attempt=attempt, failure=failure
        )
