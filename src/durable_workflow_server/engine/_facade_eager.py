"""Eager tasks (our extension): the worker-plane reports that may hand back the next task.

Reached as ``Engine.eager``, so the pinned facade methods keep their signatures; see
docs/protocol-decisions.md ("Eager tasks") and docs/server-internals.md.
"""

from __future__ import annotations

from typing import Any

from durable_workflow_server.engine import _activity_tasks, _workflow_tasks
from durable_workflow_server.engine._core import Core
from durable_workflow_server.engine._facade_base import FacadeBase, storage_errors


class EagerTasks(FacadeBase):
    """Workflow-task and activity reports that lease the next task to the reporting worker."""

    def __init__(self, core: Core) -> None:
        self._core = core

    @storage_errors
    async def complete_workflow_task(
        self,
        ns: str,
        task_id: str,
        *,
        lease_owner: str,
        attempt: int,
        commands: Any,
        eager_activity_slots: int,
    ) -> dict[str, Any]:
        """:meth:`Engine.complete_workflow_task`, plus ``eager_activity_tasks``: up to
        ``eager_activity_slots`` activity tasks this completion scheduled, leased to the worker
        in the same write (as its poll would), as the poll's task dicts."""
        return await _workflow_tasks.complete(
            self._core,
            ns,
            task_id,
            lease_owner=lease_owner,
            attempt=attempt,
            commands=commands,
            eager_activity_slots=eager_activity_slots,
        )

    @storage_errors
    async def complete_activity_task(
        self, ns: str, task_id: str, *, attempt_id: str, lease_owner: str, result: Any
    ) -> dict[str, Any]:
        """:meth:`Engine.complete_activity_task`, plus ``eager_workflow_task``: the workflow
        task this completion created, leased to the worker in the same write, or None."""
        reply = await _activity_tasks.complete(
            self._core,
            ns,
            task_id,
            attempt_id=attempt_id,
            lease_owner=lease_owner,
            result=result,
            eager_workflow_task=True,
        )
        return await self._with_task(reply)

    @storage_errors
    async def fail_activity_task(
        self, ns: str, task_id: str, *, attempt_id: str, lease_owner: str, failure: Any
    ) -> dict[str, Any]:
        """:meth:`Engine.fail_activity_task`, plus ``eager_workflow_task`` as for completion."""
        reply = await _activity_tasks.fail(
            self._core,
            ns,
            task_id,
            attempt_id=attempt_id,
            lease_owner=lease_owner,
            failure=failure,
            eager_workflow_task=True,
        )
        return await self._with_task(reply)

    async def _with_task(self, reply: dict[str, Any]) -> dict[str, Any]:
        row = reply.get("eager_workflow_task")
        body = await _workflow_tasks.eager_task_dict(self._core, row) if row is not None else None
        return {**reply, "eager_workflow_task": body}
