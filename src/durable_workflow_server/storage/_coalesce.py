"""Fewer row operations for the same rows: what both backends do before compiling a mutation.

The engine builds a mutation step by step, so one row is often written more than once: a
task inserted and then leased by an eager hand-off, a run patched by two helpers. Every
extra operation is one more statement. :func:`coalesced_ops` folds

- a ``Patch`` into an earlier ``Insert`` or ``Put`` of the same row (the row is inserted
  already patched), and
- a ``Patch`` into an earlier ``Patch`` of the same row (one ``UPDATE`` with both sets of
  columns; a later plain value replaces an earlier one, increments add up),

but only when no other operation on the same table lies between the two: such an operation
could read or write the row (a ``PatchWhere`` matching it, a unique index shared with an
insert), and moving the later patch before it could change what it sees. Operations on
other tables never touch the row, so passing them changes nothing that is stored.

The input is not modified: the engine keeps using its own operations after the write.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from durable_workflow_server.storage._interface import Inc, Insert, Operation, Patch, PatchWhere, Put
from durable_workflow_server.storage._rows import Row, RunRow

__all__ = ["coalesced_ops", "sequencing_insert", "table_of"]


def coalesced_ops(ops: Sequence[Operation]) -> list[Operation]:
    """``ops`` with every foldable patch folded into the earlier operation on its row."""
    out: list[Operation | None] = []
    # Per table: the position in ``out`` of the last operation on it, and, when that
    # operation targets one row by key, that key.
    last: dict[type[Row], tuple[int, tuple[Any, ...] | None]] = {}
    for op in ops:
        table, key = _target(op)
        if isinstance(op, Patch):
            found = last.get(table)
            if found is not None and found[1] == key:
                merged = _fold(out[found[0]], op)
                if merged is not None:
                    out[found[0]] = merged
                    continue
        last[table] = (len(out), key)
        out.append(op)
    return [op for op in out if op is not None]


def table_of(op: Operation) -> type[Row]:
    """The table ``op`` writes."""
    return op.table if isinstance(op, Patch | PatchWhere) else type(op.row)


def sequencing_insert(ops: Sequence[Operation], counts: dict[str, int]) -> int | None:
    """The index of the insert of a run that gets events (``counts``: events per run id) and
    may be inserted with their sequences already reserved, instead of reserving them after.

    Only the mutation's first write to ``runs`` qualifies (nothing before it could have read
    or moved the row's sequence), and only when no later operation could move the sequence
    again (another insert or put of the run, a write of that column).
    """
    index = next((i for i, op in enumerate(ops) if table_of(op) is RunRow), None)
    if index is None:
        return None
    op = ops[index]
    if not (isinstance(op, Insert) and isinstance(op.row, RunRow)) or not counts.get(op.row.run_id):
        return None
    run_id = op.row.run_id
    for later in ops[index + 1 :]:
        if table_of(later) is not RunRow:
            continue
        if isinstance(later, Insert | Put):
            if getattr(later.row, "run_id", None) == run_id:
                return None
        elif "last_history_sequence" in later.fields:
            return None
    return index


def _target(op: Operation) -> tuple[type[Row], tuple[Any, ...] | None]:
    """The table ``op`` writes and the key of the one row it writes (None: any rows)."""
    if isinstance(op, Patch):
        return op.table, tuple(op.key)
    if isinstance(op, PatchWhere):
        return op.table, None
    row = op.row
    cls = type(row)
    return cls, tuple(getattr(row, name) for name in cls.__key__)


def _fold(earlier: Operation | None, patch: Patch) -> Operation | None:
    """``earlier`` followed by ``patch`` as one operation, or None when they cannot merge."""
    if isinstance(earlier, Insert | Put):
        values: dict[str, Any] = {}
        columns = type(earlier.row).__dataclass_fields__
        for name, value in patch.fields.items():
            if name not in columns:
                return None  # not a column: leave it to the backend to refuse loudly
            if isinstance(value, Inc):
                current = getattr(earlier.row, name)
                if type(current) is not int:
                    return None  # NULL + n stays NULL in SQL; leave such a patch alone
                value = current + value.by
            values[name] = value
        row = _with(earlier.row, values)
        return Insert(row) if isinstance(earlier, Insert) else Put(row)
    if isinstance(earlier, Patch):
        fields = dict(earlier.fields)
        for name, value in patch.fields.items():
            before = fields.get(name)
            if isinstance(value, Inc) and name in fields:
                if isinstance(before, Inc):
                    value = Inc(before.by + value.by)
                elif type(before) is int:
                    value = before + value.by
                else:
                    return None
            fields[name] = value
        return Patch(earlier.table, earlier.key, fields)
    return None


def _with(row: Row, values: dict[str, Any]) -> Row:
    """A copy of ``row`` with ``values`` set (``dataclasses.replace`` without its per-call
    cost: rows are plain dataclasses, and ``values`` names only their fields)."""
    copy: Row = object.__new__(type(row))
    copy.__dict__.update(row.__dict__)
    copy.__dict__.update(values)
    return copy
