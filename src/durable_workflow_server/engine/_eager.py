"""Eager tasks (our extension, see docs/protocol-decisions.md "Eager tasks").

A completion may hand the reporting worker the tasks it just made ready, leased in the same
transaction exactly as that worker's poll would lease them. When anything about eligibility
is unclear nothing is leased eagerly: the tasks stay ready for the normal polls.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from durable_workflow.protocol import RunStatus
from durable_workflow_server.engine._core import Core, is_closed
from durable_workflow_server.engine._workers import worker_row
from durable_workflow_server.storage import (
    ActivityRow,
    ActivityTaskRow,
    Insert,
    Mutation,
    Patch,
    PatchWhere,
    Put,
    RunRow,
    WorkerRow,
    WorkflowTaskRow,
)


async def eligible_worker(core: Core, ns: str, worker_id: Any) -> WorkerRow | None:
    """The worker's registration when it is active and fresh (else no eager lease).

    Read through the node's worker cache (``engine._rowcache``): a registration changed
    through another node is seen within ``EngineSettings.worker_cache_seconds``.
    """
    if not isinstance(worker_id, str) or not worker_id:
        return None

    def usable(row: WorkerRow) -> bool:
        return row.status == "active" and (
            core.now() - row.last_heartbeat_at <= core.settings.worker_stale_after_seconds
        )

    worker = await worker_row(core, ns, worker_id, usable)
    return worker if worker is not None and usable(worker) else None


def scheduled_activities(
    m: Mutation, worker: WorkerRow, slots: int, now: float
) -> list[tuple[ActivityTaskRow, ActivityRow]]:
    """Up to ``slots`` activity tasks inserted by ``m`` that ``worker``'s poll could claim."""
    acts = {
        op.row.activity_execution_id: op.row
        for op in m.ops
        if isinstance(op, Insert) and isinstance(op.row, ActivityRow)
    }
    wanted = set(worker.supported_activity_types)
    found: list[tuple[ActivityTaskRow, ActivityRow]] = []
    for op in m.ops:
        if len(found) >= slots:
            break
        if not isinstance(op, Insert) or not isinstance(op.row, ActivityTaskRow):
            continue
        task = op.row
        act = acts.get(task.activity_execution_id)
        if (
            act is None
            or act.status != "scheduled"
            or task.status != "ready"
            or task.namespace != worker.namespace
            or task.task_queue != worker.task_queue
            or task.available_at > now
            or (wanted and task.activity_type not in wanted)
        ):
            continue
        found.append((task, act))
    return found


def lease_workflow_task(
    core: Core, m: Mutation, run: RunRow, task_id: str | None, worker: WorkerRow, now: float
) -> WorkflowTaskRow | None:
    """Lease the workflow task ``m`` inserts for ``run`` to ``worker`` (as its poll would).

    Only a task created by ``m`` itself is leased; ``m`` must be fenced by the run's version
    (so ``run.last_history_sequence`` is current and the history cap is exact).
    """
    if task_id is None or is_closed(run):
        return None
    index = next(
        (
            i
            for i, op in enumerate(m.ops)
            if isinstance(op, Insert) and isinstance(op.row, WorkflowTaskRow) and op.row.task_id == task_id
        ),
        None,
    )
    if index is None:
        return None
    op = m.ops[index]
    assert isinstance(op, Insert) and isinstance(op.row, WorkflowTaskRow)
    task = op.row
    wanted = set(worker.supported_workflow_types)
    if (
        task.status != "ready"
        or task.run_id != run.run_id
        or task.namespace != worker.namespace
        or task.task_queue != worker.task_queue
        or task.available_at > now
        or (wanted and task.workflow_type not in wanted)
        or (task.compatibility not in (None, worker.build_id) and worker.build_id is not None)
    ):
        return None
    appended = sum(1 for e in m.events if e.run_id == run.run_id)
    leased = dataclasses.replace(
        task,
        status="leased",
        attempt=task.attempt + 1,
        lease_owner=worker.worker_id,
        lease_expires_at=now + core.settings.workflow_task_lease_seconds,
        history_cap=run.last_history_sequence + appended,
    )
    m.ops[index] = Insert(leased)
    drop_idle_wakes(m, WorkflowTaskRow, task.namespace, task.task_queue)
    m.ops.append(
        Patch(
            RunRow,
            (run.run_id,),
            {"status": RunStatus.RUNNING, "wake_pending": False, "pending_resume": None},
        )
    )
    return leased


def drop_idle_wakes(
    m: Mutation, table: type[WorkflowTaskRow] | type[ActivityTaskRow], ns: str, queue: str
) -> None:
    """Remove ``m``'s wake-up of the pollers of ``queue`` when ``m`` leaves them nothing to find.

    After an eager lease the task ``m`` inserts is leased already: a poll woken for it would
    read storage and go back to waiting. The wake stays whenever any task of that queue may
    end up ready after ``m`` (inserted ready, patched to ready or without a status, or
    touched by a filtered patch or a whole-row put).
    """
    kind = "workflow_task" if table is WorkflowTaskRow else "activity_task"
    status: dict[str, str | None] = {}  # task id -> its status after m, None if unknown
    for op in m.ops:
        if isinstance(op, Insert | Put) and isinstance(op.row, table):
            if op.row.namespace == ns and op.row.task_queue == queue:
                status[op.row.task_id] = op.row.status
        elif isinstance(op, Patch) and op.table is table:
            value = op.fields.get("status")
            status[str(op.key[0])] = value if isinstance(value, str) else None
        elif isinstance(op, PatchWhere) and op.table is table:
            return
    if any(value in (None, "ready") for value in status.values()):
        return
    key = (kind, ns, queue)
    m.wakes[:] = [wake for wake in m.wakes if wake.key != key]
