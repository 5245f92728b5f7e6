"""One :class:`Mutation` as one call of the ``dw_apply`` function (migration 0004).

Round trips are this backend's main cost, so a mutation is compiled here into the arguments
of one ``SELECT dw_apply(...)``: every precondition and row operation becomes a statement with
its own ``text[]`` of arguments (the SQL casts what it reads), and the events and NOTIFY
payloads travel as arrays. Sent on its own it is a whole transaction in one round trip.

Statements keep the order the engine relies on: preconditions first (runs in run-id order,
then other rows, so that concurrent mutations lock in one order; see ``postgres``), then the
operations, then the sequence reservation of runs that no precondition pinned, then the
events. A run-version fence is one UPDATE that also reserves the run's event sequences and
takes the run's first patch when nothing writes ``runs`` before it.

Every value is sent as text: ``repr`` of a float reads back as the same double, JSON columns
are orjson text as before, booleans ``true``/``false``. SQL texts depend only on the shape of
an operation (table, columns, which values are NULL or lists), so they repeat and are cached.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import orjson

from durable_workflow_server.storage._interface import (
    ActivityTaskState,
    AnyOf,
    Inc,
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
from durable_workflow_server.storage._rows import EventRow, Row, RunRow

#: The call; asyncpg prepares it once per connection.
APPLY_SQL = (
    "SELECT dw_apply($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::int[], "
    "$7::int[], $8::text[], $9::text[], $10::text[], $11::float8[], $12::text[], $13::text, $14::text[])"
)
#: SQLSTATE that ``dw_apply`` raises when a statement did not hold; the message is its index.
FAILED = "DW001"

_PRECONDITION_ORDER: dict[type, int] = {
    RunVersion: 0,
    WorkflowCurrentRun: 1,
    WorkflowTaskState: 2,
    ActivityTaskState: 3,
    TimerDue: 4,
}
_BUMP_COLUMNS = frozenset({"version", "last_history_sequence"})
_CASTS = {"str": "", "int": "::bigint", "float": "::double precision", "bool": "::boolean"}


def wakes_of(mutation: Mutation) -> list[Wake]:
    """The mutation's wakes plus ``("run", id)`` for every run it appends history to."""
    wakes = list(mutation.wakes)
    for run_id in dict.fromkeys(e.run_id for e in mutation.events):
        wakes.append(Wake(("run", run_id)))
    return wakes


#: Memoised SQL texts and casts, keyed by shape (row classes are not Hashable to mypy).
_MEMO: dict[tuple[Any, ...], Any] = {}


def _casts(cls: type[Row]) -> dict[str, str]:
    """Per column, the cast that turns its text argument into the column's type."""
    key = ("casts", cls)
    found: dict[str, str] | None = _MEMO.get(key)
    if found is not None:
        return found
    casts: dict[str, str] = {}
    for f in dataclasses.fields(cls):
        if f.name in cls.__json__:
            casts[f.name] = ""
        elif f.name in cls.__bools__:
            casts[f.name] = "::boolean"
        else:
            base = str(f.type).replace(" | None", "").strip()
            if base not in _CASTS:
                raise TypeError(f"{cls.__table__}.{f.name}: no PostgreSQL cast for {f.type!r}")
            casts[f.name] = _CASTS[base]
    _MEMO[key] = casts
    return casts


def _text(cls: type[Row], name: str, value: Any) -> str | None:
    """One value as the text its column's cast reads back (``None`` is NULL)."""
    if value is None:
        return None
    if name in cls.__json__:
        return orjson.dumps(value).decode()
    if name in cls.__bools__:
        return "true" if value else "false"
    if type(value) is float:
        return repr(value)
    if type(value) is bool:  # an int column given a bool, as asyncpg accepted
        return str(int(value))
    return str(value)


def _known(cls: type[Row], name: str) -> str:
    cast = _casts(cls).get(name)
    if cast is None:  # names come from engine code, never from requests; fail loudly
        raise ValueError(f"{cls.__table__} has no column {name!r}")
    return cast


def _insert_sql(cls: type[Row], upsert: bool) -> str:
    key = ("insert", cls, upsert)
    found: str | None = _MEMO.get(key)
    if found is None:
        found = _MEMO[key] = _build_insert(cls, upsert)
    return found


def _build_insert(cls: type[Row], upsert: bool) -> str:
    casts = _casts(cls)
    cols = list(casts)
    values = ", ".join(f"$1[{i + 1}]{casts[c]}" for i, c in enumerate(cols))
    sql = f"INSERT INTO {cls.__table__} ({', '.join(cols)}) VALUES ({values})"
    if not upsert:
        # DO NOTHING on any unique index (the one-open-task one included) instead of an error
        # that would abort the transaction; dw_apply reports the missing row as ``exists``.
        return sql + " ON CONFLICT DO NOTHING"
    rest = [c for c in cols if c not in cls.__key__]
    action = "DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in rest) if rest else "DO NOTHING"
    return f"{sql} ON CONFLICT ({', '.join(cls.__key__)}) {action}"


#: (name, is Inc) per patched column.
_SetShape = tuple[tuple[str, bool], ...]
#: (name, None for IS NULL / 0 for equality / n for one of n values / -1 for one of no values)
#: per condition column.
_WhereShape = tuple[tuple[str, int | None], ...]


def _set_shape(cls: type[Row], fields: Mapping[str, Any]) -> _SetShape:
    for name in fields:
        _known(cls, name)
    return tuple((name, isinstance(value, Inc)) for name, value in fields.items())


def _set_args(cls: type[Row], fields: Mapping[str, Any], args: list[str | None]) -> None:
    for name, value in fields.items():
        args.append(str(value.by) if isinstance(value, Inc) else _text(cls, name, value))


def _sets(cls: type[Row], shape: _SetShape, start: int) -> list[str]:
    casts = _casts(cls)
    parts = []
    for offset, (name, inc) in enumerate(shape):
        ref = f"$1[{start + offset}]"
        parts.append(f"{name} = {name} + {ref}::bigint" if inc else f"{name} = {ref}{casts[name]}")
    return parts


def _update_sql(cls: type[Row], sets: _SetShape, where: _WhereShape) -> str:
    key = ("update", cls, sets, where)
    found: str | None = _MEMO.get(key)
    if found is None:
        found = _MEMO[key] = _build_update(cls, sets, where)
    return found


def _build_update(cls: type[Row], sets: _SetShape, where: _WhereShape) -> str:
    casts = _casts(cls)
    parts = _sets(cls, sets, 1)
    n = len(sets)
    conds: list[str] = []
    for name, count in where:
        if count is None:
            conds.append(f"{name} IS NULL")
        elif count < 0:
            conds.append("FALSE")  # one of no values, like SQL's IN ()
        elif count == 0:
            n += 1
            conds.append(f"{name} = $1[{n}]{casts[name]}")
        else:
            refs = [f"$1[{n + i + 1}]{casts[name]}" for i in range(count)]
            n += count
            conds.append(f"{name} IN ({', '.join(refs)})")
    return f"UPDATE {cls.__table__} SET {', '.join(parts)} WHERE {' AND '.join(conds) or 'TRUE'}"


def _where(cls: type[Row], where: Mapping[str, Any], args: list[str | None]) -> _WhereShape:
    shape: list[tuple[str, int | None]] = []
    for name, value in where.items():
        _known(cls, name)
        if value is None:
            shape.append((name, None))
        elif isinstance(value, AnyOf):
            shape.append((name, len(value.values) or -1))
            args.extend(_text(cls, name, one) for one in value.values)
        else:
            shape.append((name, 0))
            args.append(_text(cls, name, value))
    return tuple(shape)


@cache
def _bump_sql(sets: _SetShape, reserve: bool) -> str:
    """The run-version fence, optionally reserving sequences ($1[3]) and patching the run."""
    parts = ["version = version + 1"]
    if reserve:
        parts.append("last_history_sequence = last_history_sequence + $1[3]::bigint")
    parts.extend(_sets(RunRow, sets, 4 if reserve else 3))
    sql = f"UPDATE runs SET {', '.join(parts)} WHERE run_id = $1[1] AND version = $1[2]::bigint"
    return sql + " RETURNING last_history_sequence" if reserve else sql


_ADVANCE_SQL = (
    "UPDATE runs SET last_history_sequence = last_history_sequence + $1[2]::bigint "
    "WHERE run_id = $1[1] RETURNING last_history_sequence"
)
_PLAIN_BUMP_SQL = "UPDATE runs SET version = version + 1 WHERE run_id = $1[1] AND version = $1[2]::bigint"
_FIRE_TIMER_SQL = (
    # The conditional UPDATE is what makes firing exactly-once across nodes: a second node's
    # UPDATE waits for the first to commit, re-reads the row and matches nothing.
    "UPDATE timers SET status = 'fired' "
    "WHERE timer_id = $1[1] AND status = 'pending' AND fire_at <= $1[2]::double precision"
)


@cache
def _task_state_sql(table: str, extra: tuple[tuple[str, str], ...]) -> str:
    """Lock the task row if it is in the expected state (READ COMMITTED re-checks the WHERE
    on the newest version after waiting for a concurrent writer)."""
    conds = ["task_id = $1[1]", "status = $1[2]"]
    conds.extend(f"{name} = $1[{i + 3}]{cast}" for i, (name, cast) in enumerate(extra))
    return f"SELECT 1 FROM {table} WHERE {' AND '.join(conds)} FOR UPDATE"


_CURRENT_RUN_SQL = "SELECT 1 FROM workflows WHERE workflow_id = $1[1] AND current_run_id = $1[2] FOR UPDATE"


def _precondition_key(pre: object) -> tuple[int, str]:
    ident = getattr(pre, "run_id", None) or getattr(pre, "task_id", None) or getattr(pre, "timer_id", "")
    if isinstance(pre, WorkflowCurrentRun):
        ident = pre.workflow_id
    return _PRECONDITION_ORDER.get(type(pre), 9), str(ident)


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


@dataclass
class Compiled:
    """The arguments of one ``dw_apply`` call and what its results mean."""

    stmts: list[str] = field(default_factory=list)
    modes: list[str] = field(default_factory=list)
    bounds: list[int] = field(default_factory=lambda: [0])
    args: list[str | None] = field(default_factory=list)
    #: Per statement, what a ``DW001`` on it reports (the precondition, or a tuple).
    failures: list[object] = field(default_factory=list)
    #: Per run with events, its 1-based position in dw_apply's result.
    slots: dict[str, int] = field(default_factory=dict)

    def add(
        self,
        sql: str,
        mode: str,
        args: list[str | None],
        failure: object = None,
        *,
        reserves: str | None = None,
    ) -> None:
        """Append a statement; ``reserves`` names the run whose last sequence it returns."""
        self.stmts.append(sql)
        self.modes.append(mode)
        self.args.extend(args)
        self.bounds.append(len(self.args))
        self.failures.append(failure)
        if reserves is not None:
            self.slots[reserves] = len(self.slots) + 1


def _precondition(out: Compiled, pre: object, counts: dict[str, int], ops: list[Any]) -> None:
    if isinstance(pre, RunVersion):
        if pre.run_id in out.slots:  # a second fence on the run: its sequences are reserved
            out.add(_PLAIN_BUMP_SQL, "c", [pre.run_id, str(pre.version)], pre)
            return
        fields = _fold_run_patch(ops, pre.run_id)
        count = counts.get(pre.run_id, 0)
        args: list[str | None] = [pre.run_id, str(pre.version)]
        if count:
            args.append(str(count))
        _set_args(RunRow, fields, args)
        sql = _bump_sql(_set_shape(RunRow, fields), bool(count))
        out.add(sql, "r" if count else "c", args, pre, reserves=pre.run_id if count else None)
    elif isinstance(pre, TimerDue):
        out.add(_FIRE_TIMER_SQL, "c", [pre.timer_id, repr(float(pre.now))], pre)
    elif isinstance(pre, WorkflowTaskState):
        extra: list[tuple[str, str]] = []
        args = [pre.task_id, pre.status]
        if pre.lease_owner is not None:
            extra.append(("lease_owner", ""))
            args.append(pre.lease_owner)
        if pre.attempt is not None:
            extra.append(("attempt", "::bigint"))
            args.append(str(pre.attempt))
        out.add(_task_state_sql("workflow_tasks", tuple(extra)), "c", args, pre)
    elif isinstance(pre, ActivityTaskState):
        args = [pre.task_id, pre.status]
        extra = []
        if pre.attempt_id is not None:
            extra.append(("attempt_id", ""))
            args.append(pre.attempt_id)
        out.add(_task_state_sql("activity_tasks", tuple(extra)), "c", args, pre)
    elif isinstance(pre, WorkflowCurrentRun):
        out.add(_CURRENT_RUN_SQL, "c", [pre.workflow_id, pre.run_id], pre)
    else:
        raise TypeError(f"unknown precondition {pre!r}")


def _operation(out: Compiled, op: object) -> None:
    args: list[str | None] = []
    if isinstance(op, Insert | Put):
        cls = type(op.row)
        args = [_text(cls, name, getattr(op.row, name)) for name in _casts(cls)]
        if isinstance(op, Insert):
            out.add(_insert_sql(cls, False), "c", args, ("exists", cls.__table__))
        else:
            out.add(_insert_sql(cls, True), "x", args)
    elif isinstance(op, Patch):
        sets = _set_shape(op.table, op.fields)
        _set_args(op.table, op.fields, args)
        where = _where(op.table, dict(zip(op.table.__key__, op.key, strict=True)), args)
        out.add(_update_sql(op.table, sets, where), "x", args)
    elif isinstance(op, PatchWhere):
        sets = _set_shape(op.table, op.fields)
        _set_args(op.table, op.fields, args)
        where = _where(op.table, op.where, args)
        out.add(_update_sql(op.table, sets, where), "x", args)
    else:  # pragma: no cover - the Operation union is closed
        raise TypeError(f"unknown operation {op!r}")


def compile_mutation(mutation: Mutation) -> Compiled:
    """The statements of ``mutation`` in the order they run."""
    counts: dict[str, int] = {}
    for event in mutation.events:
        counts[event.run_id] = counts.get(event.run_id, 0) + 1
    out = Compiled()
    ops = list(mutation.ops)
    for pre in sorted(mutation.preconditions, key=_precondition_key):
        _precondition(out, pre, counts, ops)
    for op in ops:
        _operation(out, op)
    for run_id, count in counts.items():
        if run_id not in out.slots:
            out.add(_ADVANCE_SQL, "r", [run_id, str(count)], ("run_exists", run_id), reserves=run_id)
    return out


def call_args(mutation: Mutation, compiled: Compiled, channel: str, notes: list[str]) -> list[Any]:
    """The 14 arguments of :data:`APPLY_SQL`."""
    remaining = {run_id: 0 for run_id in compiled.slots}
    for event in mutation.events:
        remaining[event.run_id] += 1
    ev_slot: list[int] = []
    ev_back: list[int] = []
    for event in mutation.events:
        remaining[event.run_id] -= 1
        ev_slot.append(compiled.slots[event.run_id])
        ev_back.append(remaining[event.run_id])
    events = mutation.events
    return [
        compiled.stmts,
        compiled.modes,
        compiled.bounds,
        compiled.args,
        [e.run_id for e in events],
        ev_slot,
        ev_back,
        [e.event_id for e in events],
        [e.event_type for e in events],
        [orjson.dumps(e.payload).decode() for e in events],
        [float(e.recorded_at) for e in events],
        [e.workflow_task_id for e in events],
        channel,
        notes,
    ]


def stored_events(mutation: Mutation, compiled: Compiled, lasts: list[int]) -> list[EventRow]:
    """The appended events with the sequences ``dw_apply`` gave them."""
    remaining = {run_id: 0 for run_id in compiled.slots}
    for event in mutation.events:
        remaining[event.run_id] += 1
    stored: list[EventRow] = []
    for event in mutation.events:
        remaining[event.run_id] -= 1
        sequence = int(lasts[compiled.slots[event.run_id] - 1]) - remaining[event.run_id]
        stored.append(event.stored(sequence))
    return stored


async def apply_mutation(conn: Any, mutation: Mutation, channel: str, notes: list[str]) -> list[EventRow]:
    """Apply ``mutation`` with one ``dw_apply`` call and NOTIFY ``notes`` on ``channel`` (both
    take effect at the commit of the caller's transaction, or at once outside one).

    Raises:
        PreconditionFailed: a precondition did not hold or an inserted key exists; nothing of
            the mutation was written (inside a transaction, the caller rolls it back).
    """
    compiled = compile_mutation(mutation)
    try:
        lasts = await conn.fetchval(APPLY_SQL, *call_args(mutation, compiled, channel, notes))
    except Exception as exc:
        if getattr(exc, "sqlstate", None) == FAILED:
            raise PreconditionFailed(compiled.failures[int(str(getattr(exc, "message", exc))) - 1]) from None
        raise
    return stored_events(mutation, compiled, list(lasts)) if mutation.events else []
