"""Continue-as-new (worker-plane §5 ``continue_as_new``): close this run, start the next.

The old run closes ``completed`` with ``closed_reason: continued_as_new`` and the event
``WorkflowContinuedAsNew{continued_to_run_id}``; the new run, under the same workflow id with
``run_number + 1`` and fresh history, starts with ``WorkflowStarted{continued_from_run_id}``.
The new run keeps the chain's execution deadline (the execution timeout covers the whole
chain), gets a fresh run deadline, and inherits memo, search attributes, business key, build
pinning and the link to a parent. Both writes are one transaction.
"""

from __future__ import annotations

from typing import Any

from durable_workflow.protocol import Event, RunStatus
from durable_workflow_server.engine._core import Core, close_run, event
from durable_workflow_server.engine._errors import EngineError
from durable_workflow_server.engine._newrun import add_run
from durable_workflow_server.storage import ChildRow, Mutation, Patch, RunRow, WorkflowCurrentRun, WorkflowRow


def check_command(cmd: dict[str, Any], where: str, errors: dict[str, list[str]]) -> None:
    """Field checks of ``continue_as_new`` (the arguments payload is checked by the caller)."""
    for name in ("workflow_type", "queue"):
        value = cmd.get(name)
        if value is not None and (not isinstance(value, str) or not value or len(value) > 255):
            errors[f"{where}.{name}"] = ["must be a string of 1-255 characters"]


async def continue_as_new(
    core: Core, run: RunRow, cmd: dict[str, Any], m: Mutation, now: float, task_id: str
) -> RunRow:
    """Add the close of ``run`` and the start of its successor to ``m``; return the new run."""
    wf = await core.storage.get_workflow(run.workflow_id)
    if wf is None:  # pragma: no cover - a run always has its workflow row
        raise EngineError(
            "not_found", "instance_not_found", "Workflow not found.", workflow_id=run.workflow_id
        )
    new = add_run(
        m,
        now,
        namespace=run.namespace,
        workflow_id=run.workflow_id,
        workflow_type=cmd.get("workflow_type") or run.workflow_type,
        task_queue=cmd.get("queue") or run.task_queue,
        run_number=wf.run_count + 1,
        input=cmd.get("arguments"),
        execution_timeout_seconds=run.execution_timeout_seconds,
        run_timeout_seconds=run.run_timeout_seconds,
        execution_deadline_at=run.execution_deadline_at,
        business_key=run.business_key,
        memo=run.memo,
        search_attributes=run.search_attributes,
        compatibility=run.compatibility,
        parent_run_id=run.parent_run_id,
        parent_workflow_id=run.parent_workflow_id,
        child_link_id=run.child_link_id,
        continued_from_run_id=run.run_id,
    )
    m.events.append(
        event(
            run.run_id,
            Event.WORKFLOW_CONTINUED_AS_NEW,
            {
                "continued_to_run_id": new.run_id,
                "continued_to_run_number": new.run_number,
                "workflow_type": new.workflow_type,
                "task_queue": new.task_queue,
                "workflow_link_id": run.child_link_id,
                "closed_reason": "continued_as_new",
            },
            now,
            task_id,
        )
    )
    await close_run(core, run, m, now, status=RunStatus.COMPLETED, closed_reason="continued_as_new")
    m.ops.append(Patch(RunRow, (run.run_id,), {"continued_to_run_id": new.run_id}))
    m.preconditions.append(WorkflowCurrentRun(run.workflow_id, run.run_id))
    m.ops.append(
        Patch(WorkflowRow, (run.workflow_id,), {"current_run_id": new.run_id, "run_count": new.run_number})
    )
    if run.child_link_id:
        m.ops.append(Patch(ChildRow, (run.child_link_id,), {"child_run_id": new.run_id}))
    return new
