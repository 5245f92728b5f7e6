"""One :class:`Mutation` on the SQLite writer connection, in as few statements as it allows.

The statements keep the engine's order: preconditions, then row operations, then the sequence
reservation of runs no precondition pinned, then the history events. After the shared op
folds (``_coalesce``: patches merged into the insert or earlier patch of their row), four
foldings spare statements without changing what is written or when a mutation fails:

- a run-version fence is one ``UPDATE runs … WHERE run_id AND version … RETURNING`` that also
  reserves the run's event sequences and takes the mutation's patch of that run (an
  increment of ``version`` in that patch adds to the fence's own);
- a task-state precondition (workflow or activity task) is one conditional ``UPDATE`` that
  also takes the mutation's patch of that task, instead of a read and then the patch;
- a run the mutation inserts is inserted with its events' sequences already reserved;
- only a patch by key that no earlier operation's table write could touch is folded (no
  earlier write to that table at all), and never one that sets a column the fence owns.

A failed precondition raises :class:`PreconditionFailed` with that precondition, as before;
the caller's savepoint undoes whatever the mutation already wrote.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from typing import Any

import orjson

from durable_workflow_server.storage._coalesce import coalesced_ops, sequencing_insert, table_of
from durable_workflow_server.storage._interface import (
    ActivityTaskState,
    Inc,
    Insert,
    Mutation,
    Operation,
    Patch,
    PatchWhere,
    PreconditionFailed,
    Put,
    RunVersion,
    TimerDue,
    WorkflowCurrentRun,
    WorkflowTaskState,
)
from durable_workflow_server.storage._rows import (
    EventRow,
    Row,
    RunRow,
)
from durable_workflow_server.storage._sqlite_sql import insert_sql, row_values, update_sql

__all__ = ["apply_mutation"]


def apply_mutation(conn: sqlite3.Connection, q: dict[str, str], mutation: Mutation) -> list[EventRow]:
    """Run ``mutation`` on the writer connection (inside the caller's savepoint).

    Returns:
        The history events as stored, with their sequences.
    """
    counts: dict[str, int] = {}
    for event in mutation.events:
        counts[event.run_id] = counts.get(event.run_id, 0) + 1
    ops = coalesced_ops(mutation.ops)
    folded: set[int] = set()
    base: dict[str, int] = {}  # run id -> last sequence before this mutation's events
    _sequence_new_runs(ops, counts, base)
    for pre in mutation.preconditions:
        if isinstance(pre, RunVersion):
            index = _foldable_patch(ops, RunRow, (pre.run_id,), folded)
            fields: dict[str, Any] = {} if index is None else dict(_patch_of(ops, index).fields)
            count = counts.get(pre.run_id, 0)
            bump = fields.get("version")
            fields["version"] = Inc(1 + bump.by) if isinstance(bump, Inc) else Inc(1)
            if count:
                fields["last_history_sequence"] = Inc(count)
            sql, params = update_sql(RunRow, fields, {"run_id": pre.run_id, "version": pre.version})
            # fetchall: step the UPDATE ... RETURNING to its end so the statement is reset.
            recs = conn.execute(sql + " RETURNING last_history_sequence", params).fetchall()
            if not recs:
                raise PreconditionFailed(pre)
            if index is not None:
                folded.add(index)
            if count:
                base[pre.run_id] = int(recs[0][0]) - count
        elif isinstance(pre, WorkflowTaskState | ActivityTaskState):
            if not _task_state(conn, q, pre, ops, folded):
                raise PreconditionFailed(pre)
        elif not _check(conn, q, pre):
            raise PreconditionFailed(pre)
    for index, op in enumerate(ops):
        if index not in folded:
            _run_op(conn, op)
    for run_id, count in counts.items():
        if run_id in base:
            continue
        recs = conn.execute(q["advance_run_sequence"], {"run_id": run_id, "count": count}).fetchall()
        if not recs:
            raise PreconditionFailed(("run_exists", run_id))
        base[run_id] = int(recs[0][0]) - count
    stored: list[EventRow] = []
    for event in mutation.events:
        sequence = base[event.run_id] + 1
        base[event.run_id] = sequence
        conn.execute(
            q["insert_event"],
            {
                "run_id": event.run_id,
                "sequence": sequence,
                "event_id": event.event_id,
                "event_type": event.event_type,
                "payload": orjson.dumps(event.payload).decode(),
                "recorded_at": event.recorded_at,
                "workflow_task_id": event.workflow_task_id,
            },
        )
        stored.append(event.stored(sequence))
    return stored


def _sequence_new_runs(ops: list[Operation], counts: dict[str, int], base: dict[str, int]) -> None:
    """Give a run this mutation inserts its event sequences in the insert itself (when
    ``_coalesce.sequencing_insert`` allows), instead of an UPDATE reserving them after."""
    index = sequencing_insert(ops, counts)
    if index is None:
        return
    op = ops[index]
    assert isinstance(op, Insert) and isinstance(op.row, RunRow)
    row = op.row
    base[row.run_id] = row.last_history_sequence
    count = counts[row.run_id]
    ops[index] = Insert(dataclasses.replace(row, last_history_sequence=row.last_history_sequence + count))


def _run_op(conn: sqlite3.Connection, op: Operation) -> None:
    if isinstance(op, Insert):
        try:
            conn.execute(insert_sql(type(op.row), False), row_values(op.row))
        except sqlite3.IntegrityError as exc:
            raise PreconditionFailed(("exists", type(op.row).__table__)) from exc
    elif isinstance(op, Put):
        conn.execute(insert_sql(type(op.row), True), row_values(op.row))
    elif isinstance(op, Patch):
        where = dict(zip(op.table.__key__, op.key, strict=True))
        sql, params = update_sql(op.table, op.fields, where)
        conn.execute(sql, params)
    elif isinstance(op, PatchWhere):
        sql, params = update_sql(op.table, op.fields, op.where)
        conn.execute(sql, params)
    else:  # pragma: no cover - the Operation union is closed
        raise TypeError(f"unknown operation {op!r}")


def _patch_of(ops: list[Operation], index: int) -> Patch:
    op = ops[index]
    assert isinstance(op, Patch)
    return op


def _foldable_patch(
    ops: list[Operation], table: type[Row], key: tuple[Any, ...], folded: set[int]
) -> int | None:
    """The index of the first patch of ``table`` row ``key`` that may run with its precondition.

    None when an operation before it writes ``table`` (its order relative to that write would
    change), when it writes a column the fence owns, or when there is no such patch.
    """
    for index, op in enumerate(ops):
        if isinstance(op, Patch) and op.table is table and op.key == key and index not in folded:
            if table is RunRow and (
                "last_history_sequence" in op.fields
                or ("version" in op.fields and not isinstance(op.fields["version"], Inc))
            ):
                return None
            return index
        if table_of(op) is table:
            return None
    return None


def _task_state(
    conn: sqlite3.Connection,
    q: dict[str, str],
    pre: WorkflowTaskState | ActivityTaskState,
    ops: list[Operation],
    folded: set[int],
) -> bool:
    """Check a task-state precondition; with a foldable patch of that task, in its UPDATE."""
    index = _foldable_patch(ops, pre.table, (pre.task_id,), folded)
    if index is None:
        return _check(conn, q, pre)
    sql, params = update_sql(pre.table, _patch_of(ops, index).fields, pre.conditions())
    if conn.execute(sql, params).rowcount != 1:
        return False
    folded.add(index)
    return True


def _check(conn: sqlite3.Connection, q: dict[str, str], pre: object) -> bool:
    # RunVersion never gets here: apply_mutation turns it into the run's fence UPDATE.
    if isinstance(pre, TimerDue):
        # The conditional UPDATE is what makes firing exactly-once across nodes.
        cur = conn.execute(q["fire_timer"], {"timer_id": pre.timer_id, "now": pre.now})
        return cur.rowcount == 1
    if isinstance(pre, WorkflowTaskState):
        rec = conn.execute(q["get_workflow_task"], {"task_id": pre.task_id}).fetchone()
        return (
            rec is not None
            and rec["status"] == pre.status
            and (pre.lease_owner is None or rec["lease_owner"] == pre.lease_owner)
            and (pre.attempt is None or rec["attempt"] == pre.attempt)
        )
    if isinstance(pre, ActivityTaskState):
        rec = conn.execute(q["get_activity_task"], {"task_id": pre.task_id}).fetchone()
        return (
            rec is not None
            and rec["status"] == pre.status
            and (pre.attempt_id is None or rec["attempt_id"] == pre.attempt_id)
        )
    if isinstance(pre, WorkflowCurrentRun):
        rec = conn.execute(q["get_workflow"], {"workflow_id": pre.workflow_id}).fetchone()
        return rec is not None and rec["current_run_id"] == pre.run_id
    raise TypeError(f"unknown precondition {pre!r}")
