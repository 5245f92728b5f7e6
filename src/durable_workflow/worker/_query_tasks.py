"""Query tasks: replay the history a task carries and answer the ``@workflow.query`` handler.

The worker polls ``/worker/query-tasks/poll`` in its own loop (worker-plane §9) and answers
``complete`` with a ``result_envelope`` or ``fail`` with a ``reason`` the caller sees
(``rejected_unknown_query``, ``query_rejected``, ``query_workflow_type_not_registered``, ...).
Replay runs with commands suppressed, so a query never changes the workflow.
"""

from __future__ import annotations

import logging
from typing import Any

from durable_workflow import serializer, workflow
from durable_workflow.errors import QueryFailed, ServerError
from durable_workflow.protocol import PAYLOAD_CODEC
from durable_workflow.worker._polling import TaskPoller, is_drop

__all__ = ["QueryTaskPoller"]

logger = logging.getLogger("durable_workflow.worker")


class QueryTaskPoller(TaskPoller):
    """Polls query tasks and answers them from replayed state.

    Args:
        workflows: workflow type name -> ``@workflow.defn`` class.
        **kwargs: see :class:`TaskPoller`.
    """

    kind = "query"

    def __init__(self, *, workflows: dict[str, type], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workflows = workflows

    async def handle(self, task: dict[str, Any]) -> None:
        task_id = str(task.get("query_task_id"))
        if task.get("lease_owner") not in (None, self.worker_id) or task.get("task_queue") not in (
            None,
            self.task_queue,
        ):
            logger.warning("query task %s: not leased to this worker; ignored", task_id)
            return
        lease = {"lease_owner": self.worker_id, "query_task_attempt": task.get("query_task_attempt", 1)}
        base = f"/worker/query-tasks/{task_id}"
        try:
            value = self._answer(task)
            blob = serializer.envelope(value)
        except QueryFailed as exc:
            await self._report(
                base, {**lease, "failure": _failure(exc, exc.reason or "query_rejected")}, task
            )
            return
        except Exception as exc:
            logger.exception("query task %s failed", task_id)
            await self._report(base, {**lease, "failure": _failure(exc, "query_rejected")}, task)
            return
        await self._report(base, {**lease, "result_envelope": blob}, task, "complete")

    def _answer(self, task: dict[str, Any]) -> Any:
        workflow_type = str(task.get("workflow_type") or "")
        cls = self.workflows.get(workflow_type)
        if cls is None:
            raise QueryFailed(
                f"no workflow registered for type {workflow_type!r}",
                reason="query_workflow_type_not_registered",
            )
        try:
            start_input = serializer.decode_envelope(
                task.get("workflow_arguments"), allowed_codecs=(PAYLOAD_CODEC,)
            )
            args = serializer.decode_envelope(task.get("query_arguments"), allowed_codecs=(PAYLOAD_CODEC,))
        except Exception as exc:
            raise QueryFailed(
                f"cannot decode the query task: {exc}", reason="query_payload_decode_failed"
            ) from exc
        return workflow.query_state(
            cls,
            task.get("history_events") or [],
            [] if start_input is None else start_input,
            str(task.get("query_name") or ""),
            args,
            workflow_id=task.get("workflow_id"),
            run_id=str(task.get("run_id") or ""),
            payload_codec=task.get("payload_codec"),
        )

    async def _report(
        self, base: str, body: dict[str, Any], task: dict[str, Any], verb: str = "fail"
    ) -> None:
        try:
            await self.deliver(f"{base}/{verb}", body, lease_expires_at=task.get("lease_expires_at"))
        except ServerError as exc:
            if not is_drop(exc):
                logger.warning("query task %s: %s refused: %s", task.get("query_task_id"), verb, exc)


def _failure(exc: BaseException, reason: str) -> dict[str, Any]:
    return {"message": str(exc) or type(exc).__name__, "reason": reason, "type": type(exc).__name__}
