"""Starting a run inside someone else's mutation: a child, a child's retry, continue-as-new.

``_start`` handles the control-plane start request (validation, id reuse); this module only
adds the rows and events of one new run (run row, deadline timers, first workflow task,
``WorkflowStarted``, search-attribute index) to a mutation the caller applies.
"""

from __future__ import annotations

from typing import Any

from durable_workflow import serializer
from durable_workflow.protocol import Event, RunStatus
from durable_workflow_server.engine._core import event, new_workflow_task, resume_info
from durable_workflow_server.engine._ids import new_id
from durable_workflow_server.engine._search_index import index_search_attributes
from durable_workflow_server.engine._time import iso
from durable_workflow_server.storage import Insert, Mutation, RunRow, TimerRow, Wake

EMPTY_INPUT = serializer.encode([])


def add_run(
    m: Mutation,
    now: float,
    *,
    namespace: str,
    workflow_id: str,
    workflow_type: str,
    task_queue: str,
    run_number: int,
    input: str | None,
    execution_timeout_seconds: int | None = None,
    run_timeout_seconds: int | None = None,
    execution_deadline_at: float | None = None,
    business_key: str | None = None,
    memo: dict[str, Any] | None = None,
    search_attributes: dict[str, Any] | None = None,
    compatibility: str | None = None,
    parent_run_id: str | None = None,
    parent_workflow_id: str | None = None,
    child_link_id: str | None = None,
    continued_from_run_id: str | None = None,
    started_extra: dict[str, Any] | None = None,
) -> RunRow:
    """Add a new open run to ``m`` and return its row (the caller maintains ``workflows``)."""
    run = RunRow(
        run_id=new_id(),
        namespace=namespace,
        workflow_id=workflow_id,
        run_number=run_number,
        workflow_type=workflow_type,
        task_queue=task_queue,
        status=RunStatus.PENDING,
        started_at=now,
        input=input if input is not None else EMPTY_INPUT,
        business_key=business_key,
        memo=dict(memo or {}),
        search_attributes=dict(search_attributes or {}),
        compatibility=compatibility,
        execution_timeout_seconds=execution_timeout_seconds,
        run_timeout_seconds=run_timeout_seconds,
        last_progress_at=now,
        continued_from_run_id=continued_from_run_id,
        parent_run_id=parent_run_id,
        parent_workflow_id=parent_workflow_id,
        child_link_id=child_link_id,
    )
    if execution_deadline_at is not None:
        run.execution_deadline_at = execution_deadline_at
    elif execution_timeout_seconds:
        run.execution_deadline_at = now + execution_timeout_seconds
    if run_timeout_seconds:
        run.run_deadline_at = now + run_timeout_seconds
    m.ops.append(Insert(run))
    for kind, deadline in (
        ("run_deadline", run.run_deadline_at),
        ("execution_deadline", run.execution_deadline_at),
    ):
        if deadline is not None:
            m.ops.append(
                Insert(
                    TimerRow(
                        timer_id=f"{kind}:{run.run_id}",
                        namespace=namespace,
                        run_id=run.run_id,
                        kind=kind,
                        fire_at=deadline,
                        status="pending",
                    )
                )
            )
            m.wakes.append(Wake(("timers",)))
    index_search_attributes(run, run.search_attributes, m, fresh=True)
    m.ops.append(Insert(new_workflow_task(run, now, resume_info())))
    payload: dict[str, Any] = {
        "workflow_type": workflow_type,
        "workflow_instance_id": workflow_id,
        "workflow_run_id": run.run_id,
        "arguments": run.input,
        "payload_codec": "avro",
        "business_key": business_key,
        "task_queue": task_queue,
        "run_number": run_number,
        "execution_timeout_seconds": execution_timeout_seconds,
        "run_timeout_seconds": run_timeout_seconds,
        "execution_deadline_at": iso(run.execution_deadline_at),
        "run_deadline_at": iso(run.run_deadline_at),
        "timestamp": iso(now),
    }
    if continued_from_run_id is not None:
        payload["continued_from_run_id"] = continued_from_run_id
    if parent_run_id is not None:
        payload["parent_workflow_instance_id"] = parent_workflow_id
        payload["parent_workflow_run_id"] = parent_run_id
        payload["workflow_link_id"] = child_link_id
        payload["child_call_id"] = child_link_id
    payload.update(started_extra or {})
    m.events.append(event(run.run_id, Event.WORKFLOW_STARTED, payload, now))
    m.wakes.append(Wake(("workflow_task", namespace, task_queue), workflow_type))
    return run
