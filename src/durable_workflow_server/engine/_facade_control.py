"""The control-plane half of the :class:`Engine` facade (control-plane §6)."""

from __future__ import annotations

from typing import Any

from durable_workflow_server.engine import _control, _start
from durable_workflow_server.engine._facade_base import FacadeBase, storage_errors


class ControlPlane(FacadeBase):
    """Start, list, describe, history, cancel, terminate and results."""

    # --- control plane --------------------------------------------------------------------

    @storage_errors
    async def start_workflow(self, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        """Start a workflow run (control-plane §6.1).

        Args:
            ns: the lower-cased namespace (the API checked that it exists).
            body: the start request body (plus our ``id_reuse_policy``).

        Returns:
            ``{"workflow_id", "run_id", "workflow_type", "namespace", "status", "business_key",
            "payload_codec", "outcome"}``; ``outcome`` is ``started_new`` or
            ``returned_existing_active``.

        Raises:
            EngineError: see docs/server-internals.md for kinds and reasons.
        """
        return await _start.start_workflow(self._core, ns, body)

    @storage_errors
    async def list_workflows(
        self,
        ns: str,
        *,
        workflow_type: str | None = None,
        status: str | None = None,
        query: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> dict[str, Any]:
        """List runs newest first (control-plane §6.2).

        Args:
            ns: the lower-cased namespace (the API checked that it exists).
            workflow_type: exact type filter.
            status: a status bucket: ``running``, ``completed`` or ``failed``.
            query: substring of workflow_id or business_key.
            page_size: 1..200 (default 50).
            page_token: ``next_page_token`` of the previous page.

        Returns:
            ``{"workflows", "workflow_count", "next_page_token"}``.

        Raises:
            EngineError: see docs/server-internals.md for kinds and reasons.
        """
        return await _control.list_workflows(
            self._core,
            ns,
            workflow_type=workflow_type,
            status=status,
            query=query,
            page_size=page_size,
            page_token=page_token,
        )

    @storage_errors
    async def describe_workflow(self, ns: str, workflow_id: str, run_id: str | None = None) -> dict[str, Any]:
        """Describe the current run, or the given one (control-plane §6.3).

        Args:
            ns: the lower-cased namespace (the API checked that it exists).
            workflow_id: the workflow id.
            run_id: a run of it; None for the current run.

        Returns:
            The description, plus ``failure`` and ``workflow_task_failure``.

        Raises:
            EngineError: see docs/server-internals.md for kinds and reasons.
        """
        return await _control.describe_workflow(self._core, ns, workflow_id, run_id)

    @storage_errors
    async def list_runs(self, ns: str, workflow_id: str) -> dict[str, Any]:
        """Every run of a workflow id, oldest first.

        Args:
            ns: the lower-cased namespace (the API checked that it exists).
            workflow_id: the workflow id.

        Returns:
            ``{"workflow_id", "run_count", "runs"}``.

        Raises:
            EngineError: see docs/server-internals.md for kinds and reasons.
        """
        return await _control.list_runs(self._core, ns, workflow_id)

    @storage_errors
    async def run_history(
        self,
        ns: str,
        workflow_id: str,
        run_id: str,
        *,
        page_size: int | None = None,
        page_token: str | None = None,
        wait_new_event: bool = False,
    ) -> dict[str, Any]:
        """A page of a run's history (control-plane §6.10).

        Args:
            ns: the lower-cased namespace (the API checked that it exists).
            workflow_id: the workflow id.
            run_id: the run.
            page_size: 1..1000 (default 100).
            page_token: ``next_page_token`` of the previous page.
            wait_new_event: hold until an event after the token exists.

        Returns:
            ``{"workflow_id", "run_id", "events", "next_page_token"}``.

        Raises:
            EngineError: see docs/server-internals.md for kinds and reasons.
        """
        return await _control.run_history(
            self._core,
            ns,
            workflow_id,
            run_id,
            page_size=page_size,
            page_token=page_token,
            wait_new_event=wait_new_event,
        )

    @storage_errors
    async def cancel_workflow(
        self,
        ns: str,
        workflow_id: str,
        run_id: str | None = None,
        *,
        reason: str | None = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """Ask the current open run to cancel (CancelRequested); its code may clean up first.

        Args:
            ns: the lower-cased namespace (the API checked that it exists).
            workflow_id: the workflow id.
            run_id: must be the current run when given.
            reason: echoed and recorded.
            request_id: recorded.

        Returns:
            The receipt, ``outcome: "cancel_requested"`` (``duplicate: true`` when repeated).

        Raises:
            EngineError: see docs/server-internals.md for kinds and reasons.
        """
        return await _control.close_by_request(
            self._core, ns, workflow_id, run_id, terminate=False, reason=reason, request_id=request_id
        )

    @storage_errors
    async def terminate_workflow(
        self,
        ns: str,
        workflow_id: str,
        run_id: str | None = None,
        *,
        reason: str | None = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """Terminate the current open run at once (TerminateRequested, WorkflowTerminated).

        Args:
            ns: the lower-cased namespace (the API checked that it exists).
            workflow_id: the workflow id.
            run_id: must be the current run when given.
            reason: echoed and recorded.
            request_id: recorded.

        Returns:
            The receipt, ``outcome: "terminated"``.

        Raises:
            EngineError: see docs/server-internals.md for kinds and reasons.
        """
        return await _control.close_by_request(
            self._core, ns, workflow_id, run_id, terminate=True, reason=reason, request_id=request_id
        )

    @storage_errors
    async def await_run_result(
        self, ns: str, workflow_id: str, run_id: str | None = None, *, wait_seconds: float | None = None
    ) -> dict[str, Any]:
        """Hold until the run closes or the wait passes, then report its outcome.

        Args:
            ns: the lower-cased namespace (the API checked that it exists).
            workflow_id: the workflow id.
            run_id: a run of it; None for the current run.
            wait_seconds: longest hold (at most 60 s).

        Returns:
            ``{"workflow_id", "run_id", "status", "is_terminal", "output_envelope", "failure",
            "continued_to_run_id"}``.

        Raises:
            EngineError: see docs/server-internals.md for kinds and reasons.
        """
        return await _control.await_run_result(self._core, ns, workflow_id, run_id, wait_seconds=wait_seconds)
