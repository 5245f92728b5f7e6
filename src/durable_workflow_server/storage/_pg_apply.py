"""One :class:`Mutation` as one call of ``dw_apply_prepared`` (migration 0005).

Round trips are this backend's main cost, so a mutation is compiled here into the arguments
of one ``SELECT dw_apply_prepared(...)``: every precondition and row operation becomes a
statement with its own JSON array of argument texts (the SQL is written with ``$1[k]`` and
reads ``$1->>k-1``, casting what it reads), and the events travel as one JSON array. Sent on
its own it is a whole transaction in one round trip. It sends no NOTIFY: the backend
announces wake-ups after the commit (``_pg_announce.Announcer``).

Statements keep the order the engine relies on: preconditions first (runs in run-id order,
then other rows, so that concurrent mutations lock in one order; see ``postgres``), then the
operations, then the sequence reservation of runs that no statement reserved yet, then the
events. Three foldings spare statements without changing what is written or when a mutation
fails (the SQLite backend folds the first two the same way):

- a run-version fence is one UPDATE that also reserves the run's event sequences and takes
  the run's first patch (an ``Inc`` of ``version`` included) when nothing writes ``runs``
  before it;
- a task-state precondition is one conditional UPDATE that carries the task's first patch
  when nothing writes that task table before it (else it stays a ``SELECT … FOR UPDATE``);
- the insert of a run the mutation appends history to stores the run with its sequences
  already reserved and returns them, when nothing writes ``runs`` before it and nothing
  after it could change the run's ``last_history_sequence``.

PostgreSQL runs each statement from a prepared statement of the connection's session, named
after its SQL text (:func:`statement_name`), so it is parsed and planned once per connection
rather than once per call. This module remembers per connection which names it has prepared
and sends a statement's text only with the first call that needs it on that connection.

Every value is sent as text: ``repr`` of a float reads back as the same double, JSON columns
are orjson text as before, booleans ``true``/``false``. SQL texts depend only on the shape of
an operation (table, columns, which values are NULL or lists), so they repeat and are cached.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from operator import attrgetter
from typing import Any

import orjson

from durable_workflow_server.storage._coalesce import coalesced_ops, sequencing_insert, table_of
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
from durable_workflow_server.storage._rows import (
    EventRow,
    Row,
    RunRow,
)

#: The call; asyncpg prepares it once per connection.
APPLY_SQL = "SELECT dw_apply_prepared($1::text[], $2::text[], $3::text, $4::text[], $5::text)"
#: SQLSTATE that ``dw_apply_prepared`` raises when a statement did not hold; the message is
#: its index.
FAILED = "DW001"
#: SQLSTATEs meaning the session's prepared statements are not what this module remembers
#: ("does not exist", "already exists"): something changed them behind our back.
LOST = frozenset({"26000", "42P05"})

_PRECONDITION_ORDER: dict[type, int] = {
    RunVersion: 0,
    WorkflowCurrentRun: 1,
    WorkflowTaskState: 2,
    ActivityTaskState: 3,
    TimerDue: 4,
}
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


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _bool_text(value: Any) -> str | None:
    return None if value is None else ("true" if value else "false")


def _plain_text(value: Any) -> str | None:
    if value is None or type(value) is str:
        return value
    if type(value) is float:
        return repr(value)
    if type(value) is bool:  # an int column given a bool, as asyncpg accepted
        return str(int(value))
    return str(value)


_Text = Callable[[Any], "str | None"]


def _converters(cls: type[Row]) -> dict[str, _Text]:
    """Per column, what turns its value into the text its cast reads back."""
    key = ("texts", cls)
    found: dict[str, _Text] | None = _MEMO.get(key)
    if found is None:
        found = _MEMO[key] = {
            name: _json_text if name in cls.__json__ else _bool_text if name in cls.__bools__ else _plain_text
            for name in _casts(cls)
        }
    return found


def _text(cls: type[Row], name: str, value: Any) -> str | None:
    """One value as the text its column's cast reads back (``None`` is NULL)."""
    return _converters(cls)[name](value)


def _row_texts(row: Row) -> list[str | None]:
    """Every column of ``row`` as text, in the order of :func:`_insert_sql`'s references."""
    cls = type(row)
    key = ("row", cls)
    found: tuple[Callable[[Row], tuple[Any, ...]], tuple[_Text, ...]] | None = _MEMO.get(key)
    if found is None:
        convs = _converters(cls)
        found = _MEMO[key] = (attrgetter(*convs), tuple(convs.values()))
    getter, convs_in_order = found
    return [conv(value) for conv, value in zip(convs_in_order, getter(row), strict=True)]


def _known(cls: type[Row], name: str) -> str:
    cast = _casts(cls).get(name)
    if cast is None:  # names come from engine code, never from requests; fail loudly
        raise ValueError(f"{cls.__table__} has no column {name!r}")
    return cast


def _insert_sql(cls: type[Row], upsert: bool, returning: str = "") -> str:
    key = ("insert", cls, upsert, returning)
    found: str | None = _MEMO.get(key)
    if found is None:
        found = _MEMO[key] = _build_insert(cls, upsert) + returning
    return found


def _build_insert(cls: type[Row], upsert: bool) -> str:
    casts = _casts(cls)
    cols = list(casts)
    values = ", ".join(f"$1[{i + 1}]{casts[c]}" for i, c in enumerate(cols))
    sql = f"INSERT INTO {cls.__table__} ({', '.join(cols)}) VALUES ({values})"
    if not upsert:
        # DO NOTHING on any unique index (the one-open-task one included) instead of an error
        # that would abort the transaction; a RETURNING that returns nothing reports it.
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


def _update_sql(cls: type[Row], sets: _SetShape, where: _WhereShape, returning: str = "") -> str:
    key = ("update", cls, sets, where, returning)
    found: str | None = _MEMO.get(key)
    if found is None:
        found = _MEMO[key] = _build_update(cls, sets, where) + returning
    return found


def _build_update(cls: type[Row], sets: _SetShape, where: _WhereShape) -> str:
    conds = _conds(cls, where, len(sets))
    return f"UPDATE {cls.__table__} SET {', '.join(_sets(cls, sets, 1))} WHERE {conds}"


def _lock_sql(cls: type[Row], where: _WhereShape) -> str:
    """Lock the rows that match ``where``; returns 1 per row (a precondition's check)."""
    key = ("lock", cls, where)
    found: str | None = _MEMO.get(key)
    if found is None:
        found = _MEMO[key] = f"SELECT 1 FROM {cls.__table__} WHERE {_conds(cls, where, 0)} FOR UPDATE"
    return found


def _conds(cls: type[Row], where: _WhereShape, n: int) -> str:
    """The WHERE clause of ``where``, reading its values from ``$1[n + 1]`` on."""
    casts = _casts(cls)
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
    return " AND ".join(conds) or "TRUE"


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


#: What a statement of mode 'c' returns when it touched a row (prepared statements run as a
#: utility EXECUTE, after which PL/pgSQL's ROW_COUNT is always 0).
_TOUCHED = " RETURNING 1"
_RETURN_LAST = " RETURNING last_history_sequence"


@cache
def _bump_sql(sets: _SetShape, reserve: bool) -> str:
    """The run-version fence: ``version`` grows by $1[3] (1, plus a folded patch's ``Inc``),
    optionally reserving sequences ($1[4]) and patching the run."""
    parts = ["version = version + $1[3]::bigint"]
    if reserve:
        parts.append("last_history_sequence = last_history_sequence + $1[4]::bigint")
    parts.extend(_sets(RunRow, sets, 5 if reserve else 4))
    sql = f"UPDATE runs SET {', '.join(parts)} WHERE run_id = $1[1] AND version = $1[2]::bigint"
    return sql + (_RETURN_LAST if reserve else _TOUCHED)


_ADVANCE_SQL = (
    "UPDATE runs SET last_history_sequence = last_history_sequence + $1[2]::bigint "
    "WHERE run_id = $1[1]" + _RETURN_LAST
)
_PLAIN_BUMP_SQL = (
    "UPDATE runs SET version = version + 1 WHERE run_id = $1[1] AND version = $1[2]::bigint" + _TOUCHED
)
_FIRE_TIMER_SQL = (
    # The conditional UPDATE is what makes firing exactly-once across nodes: a second node's
    # UPDATE waits for the first to commit, re-reads the row and matches nothing.
    "UPDATE timers SET status = 'fired' "
    "WHERE timer_id = $1[1] AND status = 'pending' AND fire_at <= $1[2]::double precision" + _TOUCHED
)
_CURRENT_RUN_SQL = "SELECT 1 FROM workflows WHERE workflow_id = $1[1] AND current_run_id = $1[2] FOR UPDATE"


def _precondition_key(pre: object) -> tuple[int, str]:
    ident = getattr(pre, "run_id", None) or getattr(pre, "task_id", None) or getattr(pre, "timer_id", "")
    if isinstance(pre, WorkflowCurrentRun):
        ident = pre.workflow_id
    return _PRECONDITION_ORDER.get(type(pre), 9), str(ident)


def _foldable(ops: list[Any], table: type[Row], key: tuple[Any, ...]) -> int | None:
    """The index of the first op that writes ``table`` if it is a patch of row ``key``.

    A later patch may not move up into a precondition: it would then run before an earlier
    write to its table, whose effect it might depend on or undo.
    """
    for index, op in enumerate(ops):
        if table_of(op) is table:
            return index if isinstance(op, Patch) and op.key == key and op.fields else None
    return None


def _fold_run_patch(ops: list[Any], run_id: str) -> tuple[dict[str, Any], int]:
    """Take out of ``ops`` the patch of run ``run_id`` that may move into its fence.

    Returns its fields but ``version`` and the ``Inc`` of ``version`` it carries (0 for none);
    ``({}, 0)`` when there is none or it may not move: it sets ``last_history_sequence``
    (the fence reserves sequences from it) or sets ``version`` to anything but an ``Inc``.
    """
    index = _foldable(ops, RunRow, (run_id,))
    if index is None:
        return {}, 0
    fields = dict(ops[index].fields)
    more = fields.pop("version", Inc(0))
    if not isinstance(more, Inc) or "last_history_sequence" in fields:
        return {}, 0
    del ops[index]
    return fields, more.by


#: Memoised prepared-statement names, keyed by SQL text.
_NAMES: dict[str, str] = {}


_REF = re.compile(r"\$1\[(\d+)\]")
_JSON_SQL: dict[str, str] = {}


def _json_refs(sql: str) -> str:
    """``sql`` reading its arguments from a JSON array: ``$1[k]`` becomes ``($1->>k-1)``."""
    found = _JSON_SQL.get(sql)
    if found is None:
        found = _JSON_SQL[sql] = _REF.sub(lambda m: f"($1->>{int(m.group(1)) - 1})", sql)
    return found


def statement_name(sql: str) -> str:
    """The name ``sql`` is prepared under: derived from the text alone, so a name never stands
    for two texts, whichever node or release prepared it."""
    name = _NAMES.get(sql)
    if name is None:
        name = _NAMES[sql] = "dw_" + hashlib.blake2b(sql.encode(), digest_size=8).hexdigest()
    return name


@dataclass
class Compiled:
    """The arguments of one ``dw_apply_prepared`` call and what its results mean."""

    stmts: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    modes: list[str] = field(default_factory=list)
    #: Per statement, its arguments as one JSON array (the statement reads ``$1->>k``).
    args: list[str] = field(default_factory=list)
    #: Per statement, what a ``DW001`` on it reports (the precondition, or a tuple).
    failures: list[object] = field(default_factory=list)
    #: Per run with events, its 1-based position in the function's result.
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
        """Append a statement (written with ``$1[k]`` references, k from 1); ``reserves``
        names the run whose last sequence it returns."""
        sql = _json_refs(sql)
        self.stmts.append(sql)
        self.names.append(statement_name(sql))
        self.modes.append(mode)
        self.args.append(orjson.dumps(args).decode())
        self.failures.append(failure)
        if reserves is not None:
            self.slots[reserves] = len(self.slots) + 1

    def texts(self, prepared: set[str]) -> list[str | None]:
        """Per statement, its text if the connection lacks it (first occurrence only)."""
        texts: list[str | None] = []
        sending: set[str] = set()
        for name, sql in zip(self.names, self.stmts, strict=True):
            if name in prepared or name in sending:
                texts.append(None)
            else:
                sending.add(name)
                texts.append(sql)
        return texts


def _precondition(out: Compiled, pre: object, counts: dict[str, int], ops: list[Any]) -> None:
    if isinstance(pre, RunVersion):
        if pre.run_id in out.slots:  # a second fence on the run: its sequences are reserved
            out.add(_PLAIN_BUMP_SQL, "c", [pre.run_id, str(pre.version)], pre)
            return
        fields, more = _fold_run_patch(ops, pre.run_id)
        count = counts.get(pre.run_id, 0)
        args: list[str | None] = [pre.run_id, str(pre.version), str(1 + more)]
        if count:
            args.append(str(count))
        _set_args(RunRow, fields, args)
        sql = _bump_sql(_set_shape(RunRow, fields), bool(count))
        out.add(sql, "r" if count else "c", args, pre, reserves=pre.run_id if count else None)
    elif isinstance(pre, TimerDue):
        out.add(_FIRE_TIMER_SQL, "c", [pre.timer_id, repr(float(pre.now))], pre)
    elif isinstance(pre, WorkflowTaskState | ActivityTaskState):
        _task_state(out, pre, ops)
    elif isinstance(pre, WorkflowCurrentRun):
        out.add(_CURRENT_RUN_SQL, "c", [pre.workflow_id, pre.run_id], pre)
    else:
        raise TypeError(f"unknown precondition {pre!r}")


def _task_state(out: Compiled, pre: WorkflowTaskState | ActivityTaskState, ops: list[Any]) -> None:
    """The task-state check: with a foldable patch of the task, one conditional UPDATE that
    makes it; else a ``SELECT … FOR UPDATE``. Either locks the row if it is in the expected
    state (READ COMMITTED re-checks the WHERE on the newest version after waiting for a
    concurrent writer)."""
    table = pre.table
    where = pre.conditions()
    args: list[str | None] = []
    index = _foldable(ops, table, (pre.task_id,))
    if index is None:
        out.add(_lock_sql(table, _where(table, where, args)), "c", args, pre)
        return
    fields = ops.pop(index).fields
    _set_args(table, fields, args)
    sets = _set_shape(table, fields)
    out.add(_update_sql(table, sets, _where(table, where, args), _TOUCHED), "c", args, pre)


def _reserving_insert(ops: list[Any], counts: dict[str, int], slots: dict[str, int]) -> RunRow | None:
    """The run of an insert that may reserve the run's event sequences itself
    (``_coalesce.sequencing_insert``), when no statement reserved them yet."""
    index = sequencing_insert(ops, counts)
    if index is None or ops[index].row.run_id in slots:
        return None
    row: RunRow = ops[index].row
    return row


def _insert_reserving(out: Compiled, row: RunRow, counts: dict[str, int]) -> None:
    """Insert a run with its events' sequences reserved; returns the last of them."""
    args = _row_texts(row)
    lhs = list(_casts(RunRow)).index("last_history_sequence")
    args[lhs] = str(row.last_history_sequence + counts[row.run_id])
    sql = _insert_sql(RunRow, False, _RETURN_LAST)
    out.add(sql, "r", args, ("exists", RunRow.__table__), reserves=row.run_id)


def _operation(out: Compiled, op: object) -> None:
    args: list[str | None] = []
    if isinstance(op, Insert | Put):
        cls = type(op.row)
        args = _row_texts(op.row)
        if isinstance(op, Insert):
            out.add(_insert_sql(cls, False, _TOUCHED), "c", args, ("exists", cls.__table__))
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
    ops: list[Any] = coalesced_ops(mutation.ops)
    for pre in sorted(mutation.preconditions, key=_precondition_key):
        _precondition(out, pre, counts, ops)
    reserving = _reserving_insert(ops, counts, out.slots)
    for op in ops:
        if reserving is not None and isinstance(op, Insert) and op.row is reserving:
            _insert_reserving(out, reserving, counts)
        else:
            _operation(out, op)
    for run_id, count in counts.items():
        if run_id not in out.slots:
            out.add(_ADVANCE_SQL, "r", [run_id, str(count)], ("run_exists", run_id), reserves=run_id)
    return out


def call_args(mutation: Mutation, compiled: Compiled, texts: list[str | None]) -> list[Any]:
    """The 5 arguments of :data:`APPLY_SQL`; ``texts`` as :meth:`Compiled.texts` gives them.

    Few and large on purpose: asyncpg encodes an array element by element, checking each
    against collection ABCs, which cost more than the JSON PostgreSQL parses instead.
    """
    events = None
    if mutation.events:
        remaining = {run_id: 0 for run_id in compiled.slots}
        for event in mutation.events:
            remaining[event.run_id] += 1
        rows = []
        for event in mutation.events:
            remaining[event.run_id] -= 1
            rows.append(
                (
                    event.run_id,
                    compiled.slots[event.run_id],
                    remaining[event.run_id],
                    event.event_id,
                    event.event_type,
                    orjson.dumps(event.payload).decode(),
                    float(event.recorded_at),
                    event.workflow_task_id,
                )
            )
        events = orjson.dumps(rows).decode()
    return [compiled.names, texts, "".join(compiled.modes), compiled.args, events]


def stored_events(mutation: Mutation, compiled: Compiled, lasts: list[int]) -> list[EventRow]:
    """The appended events with the sequences the call gave them."""
    remaining = {run_id: 0 for run_id in compiled.slots}
    for event in mutation.events:
        remaining[event.run_id] += 1
    stored: list[EventRow] = []
    for event in mutation.events:
        remaining[event.run_id] -= 1
        sequence = int(lasts[compiled.slots[event.run_id] - 1]) - remaining[event.run_id]
        stored.append(event.stored(sequence))
    return stored


#: Per connection, the statements it has prepared as far as this module knows (a connection
#: is one session; its entry goes with it).
_PREPARED: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


def _prepared_on(conn: Any) -> set[str]:
    prepared = _PREPARED.get(conn)
    if prepared is None:
        prepared = _PREPARED[conn] = set()
    return prepared


async def forget_prepared(conn: Any) -> None:
    """Forget what ``conn`` has prepared, here and in asyncpg's statement cache: for when
    PostgreSQL said a prepared statement does not exist or already exists (something such as
    a ``DEALLOCATE ALL`` changed the session behind our back). The next call prepares again."""
    _PREPARED.pop(conn, None)
    await conn.reload_schema_state()


async def _call(conn: Any, mutation: Mutation, compiled: Compiled, prepared: set[str]) -> list[int]:
    texts = compiled.texts(prepared)
    try:
        lasts = await conn.fetchval(APPLY_SQL, *call_args(mutation, compiled, texts))
    except Exception as exc:
        if getattr(exc, "sqlstate", None) != FAILED:
            raise
        # The function prepares every text before it runs the first statement, so they are
        # prepared even though the call failed (PREPARE is not undone by a rollback).
        prepared.update(compiled.names)
        raise PreconditionFailed(compiled.failures[int(str(getattr(exc, "message", exc))) - 1]) from None
    prepared.update(compiled.names)
    return list(lasts)


async def apply_mutation(conn: Any, mutation: Mutation) -> list[EventRow]:
    """Apply ``mutation`` with one ``dw_apply_prepared`` call (it takes effect at the commit of
    the caller's transaction, or at once outside one). Wake-ups are the caller's to announce.

    Raises:
        PreconditionFailed: a precondition did not hold or an inserted key exists; nothing of
            the mutation was written (inside a transaction, the caller rolls it back).
        asyncpg.InvalidSQLStatementNameError: inside the caller's transaction only (SQLSTATE
            in :data:`LOST`), the connection had lost its prepared statements; the transaction
            is aborted, and a re-run of it prepares them again.
    """
    compiled = compile_mutation(mutation)
    try:
        lasts = await _call(conn, mutation, compiled, _prepared_on(conn))
    except Exception as exc:
        if getattr(exc, "sqlstate", None) not in LOST:
            raise
        # Something deallocated the session's statements behind our back. Outside a
        # transaction the failed call was its own transaction and wrote nothing, so send it
        # again with every text; inside one the error aborted the caller's transaction, which
        # must re-run as a whole.
        await forget_prepared(conn)
        if conn.is_in_transaction():
            raise
        lasts = await _call(conn, mutation, compiled, _prepared_on(conn))
    return stored_events(mutation, compiled, lasts) if mutation.events else []
