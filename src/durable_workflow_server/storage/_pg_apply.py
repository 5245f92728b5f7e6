"""Applying one :class:`Mutation` inside a PostgreSQL transaction (the backend's write core).

Preconditions first (runs in run-id order, then other rows, so concurrent mutations lock in
one order), then the row operations, then the appended events; see ``postgres`` for the
locking design. Round trips are this backend's main cost, so the usual shape of an engine
write (pin the run's version, patch the run, append events to it) becomes one statement for
the run.
"""

from __future__ import annotations

from typing import Any

import orjson

from durable_workflow_server.storage._interface import (
    ActivityTaskState,
    Insert,
    Mutation,
    Patch,
    PatchWhere,
    PreconditionFailed,
    Put,
    RunVersion,
    TimerDue,
    Wake,
    WorkflowCurrentRun,
    WorkflowTaskState,
)
from durable_workflow_server.storage._pg_sql import Query, bump_sql, insert_sql, row_args, update_sql
from durable_workflow_server.storage._rows import EventRow, RunRow

_PRECONDITION_ORDER: dict[type, int] = {
    RunVersion: 0,
    WorkflowCurrentRun: 1,
    WorkflowTaskState: 2,
    ActivityTaskState: 3,
    TimerDue: 4,
}


def wakes_of(mutation: Mutation) -> list[Wake]:
    """The mutation's wakes plus ``("run", id)`` for every run it appends history to."""
    wakes = list(mutation.wakes)
    for run_id in dict.fromkeys(e.run_id for e in mutation.events):
        wakes.append(Wake(("run", run_id)))
    return wakes


def _precondition_key(pre: object) -> tuple[int, str]:
    ident = getattr(pre, "run_id", None) or getattr(pre, "task_id", None) or getattr(pre, "timer_id", "")
    if isinstance(pre, WorkflowCurrentRun):
        ident = pre.workflow_id
    return _PRECONDITION_ORDER.get(type(pre), 9), str(ident)


async def _check(conn: Any, q: dict[str, Query], pre: object) -> bool:
    if isinstance(pre, RunVersion):
        status = await conn.execute(q["bump_run_version"].sql, pre.run_id, pre.version)
        return bool(status == "UPDATE 1")
    if isinstance(pre, TimerDue):
        # The conditional UPDATE is what makes firing exactly-once across nodes: a second
        # node's UPDATE waits for the first to commit, re-reads the row and matches nothing.
        status = await conn.execute(q["fire_timer"].sql, pre.timer_id, pre.now)
        return bool(status == "UPDATE 1")
    if isinstance(pre, WorkflowTaskState):
        rec = await conn.fetchrow(q["lock_workflow_task"].sql, pre.task_id)
        return (
            rec is not None
            and rec["status"] == pre.status
            and (pre.lease_owner is None or rec["lease_owner"] == pre.lease_owner)
            and (pre.attempt is None or rec["attempt"] == pre.attempt)
        )
    if isinstance(pre, ActivityTaskState):
        rec = await conn.fetchrow(q["lock_activity_task"].sql, pre.task_id)
        return (
            rec is not None
            and rec["status"] == pre.status
            and (pre.attempt_id is None or rec["attempt_id"] == pre.attempt_id)
        )
    if isinstance(pre, WorkflowCurrentRun):
        rec = await conn.fetchrow(q["lock_workflow"].sql, pre.workflow_id)
        return rec is not None and rec["current_run_id"] == pre.run_id
    raise TypeError(f"unknown precondition {pre!r}")


def _fold_run_patch(ops: list[Any], run_id: str) -> dict[str, Any]:
    """Take out of ``ops`` the first patch of run ``run_id`` that may move to the version bump.

    Allowed only while no earlier op writes ``runs`` (the patch would otherwise be reordered
    against it) and when the patch sets neither column the bump itself writes.
    """
    for index, op in enumerate(ops):
        if isinstance(op, Patch) and op.table is RunRow:
            if op.key == (run_id,) and not _BUMP_COLUMNS & op.fields.keys():
                del ops[index]
                return dict(op.fields)
            return {}
        if isinstance(op, PatchWhere) and op.table is RunRow:
            return {}
        if isinstance(op, Insert | Put) and isinstance(op.row, RunRow):
            return {}
    return {}


_BUMP_COLUMNS = frozenset({"version", "last_history_sequence"})


async def apply_mutation(conn: Any, q: dict[str, Query], mutation: Mutation) -> list[EventRow]:
    """Run one mutation inside the caller's transaction; return the appended events.

    The run-version fence is one UPDATE that also sets the run's patched columns and advances
    its history sequence (see :func:`bump_sql`).

    Raises:
        PreconditionFailed: a precondition did not hold or an inserted key exists; the caller
            rolls the transaction back.
    """
    counts: dict[str, int] = {}
    for event in mutation.events:
        counts[event.run_id] = counts.get(event.run_id, 0) + 1
    next_sequence: dict[str, int] = {}
    ops = list(mutation.ops)
    for pre in sorted(mutation.preconditions, key=_precondition_key):
        if isinstance(pre, RunVersion) and pre.run_id not in next_sequence:
            fields = _fold_run_patch(ops, pre.run_id)
            count = counts.get(pre.run_id, 0)
            sql, args = bump_sql(fields, count, pre.run_id, pre.version)
            last = await conn.fetchval(sql, *args)
            if last is None:
                raise PreconditionFailed(pre)
            if count:
                next_sequence[pre.run_id] = int(last) - count + 1
        elif not await _check(conn, q, pre):
            raise PreconditionFailed(pre)
    for op in ops:
        if isinstance(op, Insert):
            # ON CONFLICT DO NOTHING (any unique index, the one-open-task one included) instead
            # of catching the error: an error would abort the transaction on the server.
            status = await conn.execute(insert_sql(type(op.row), False), *row_args(op.row))
            if status != "INSERT 0 1":
                raise PreconditionFailed(("exists", type(op.row).__table__))
        elif isinstance(op, Put):
            await conn.execute(insert_sql(type(op.row), True), *row_args(op.row))
        elif isinstance(op, Patch):
            where = dict(zip(op.table.__key__, op.key, strict=True))
            sql, args = update_sql(op.table, op.fields, where)
            await conn.execute(sql, *args)
        elif isinstance(op, PatchWhere):
            sql, args = update_sql(op.table, op.fields, op.where)
            await conn.execute(sql, *args)
        else:  # pragma: no cover - the Operation union is closed
            raise TypeError(f"unknown operation {op!r}")
    if not mutation.events:
        return []
    advance = q["advance_run_sequence"]
    for run_id, count in counts.items():
        if run_id in next_sequence:  # already advanced by the version bump
            continue
        last = await conn.fetchval(advance.sql, *advance.args({"run_id": run_id, "count": count}))
        if last is None:
            raise PreconditionFailed(("run_exists", run_id))
        next_sequence[run_id] = int(last) - count + 1
    stored: list[EventRow] = []
    rows: list[tuple[Any, ...]] = []
    for event in mutation.events:
        sequence = next_sequence[event.run_id]
        next_sequence[event.run_id] = sequence + 1
        rows.append(
            (
                event.run_id,
                sequence,
                event.event_id,
                event.event_type,
                orjson.dumps(event.payload).decode(),
                event.recorded_at,
                event.workflow_task_id,
            )
        )
        stored.append(
            EventRow(
                event.run_id,
                sequence,
                event.event_id,
                event.event_type,
                event.payload,
                event.recorded_at,
                event.workflow_task_id,
            )
        )
    await conn.executemany(q["insert_event"].sql, rows)
    return stored
