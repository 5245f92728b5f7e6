"""The shared op folds (storage._coalesce): fewer operations, the same rows."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from durable_workflow_server.storage import Inc, Insert, Patch, PatchWhere, Put
from durable_workflow_server.storage._coalesce import coalesced_ops
from durable_workflow_server.storage._interface import Operation
from durable_workflow_server.storage._rows import Row


@dataclass
class _Left(Row):
    __table__ = "left"
    __key__ = ("k",)

    k: int
    n: int | None = 0
    s: str = "a"


@dataclass
class _Right(Row):
    __table__ = "right"
    __key__ = ("k",)

    k: int
    n: int | None = 0
    s: str = "a"


_State = dict[tuple[str, int], dict[str, Any]]


def _run(ops: list[Operation]) -> _State | None:
    """A model of the backends: the rows after ``ops``, or None when an insert failed."""
    state: _State = {}
    for op in ops:
        if isinstance(op, Insert | Put):
            key = (type(op.row).__table__, op.row.k)  # type: ignore[attr-defined]
            if isinstance(op, Insert) and key in state:
                return None
            state[key] = dataclasses.asdict(op.row)
        elif isinstance(op, Patch):
            row = state.get((op.table.__table__, op.key[0]))
            if row is not None:
                _set(row, op.fields)
        else:
            for (table, _), row in state.items():
                if table == op.table.__table__ and all(row[c] == v for c, v in op.where.items()):
                    _set(row, op.fields)
    return state


def _set(row: dict[str, Any], fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        if isinstance(value, Inc):
            row[name] = None if row[name] is None else row[name] + value.by
        else:
            row[name] = value


_tables = st.sampled_from([_Left, _Right])
_keys = st.integers(0, 2)
_values = st.fixed_dictionaries(
    {},
    optional={
        "n": st.one_of(st.none(), st.integers(0, 5), st.builds(Inc, st.integers(1, 3))),
        "s": st.sampled_from(["a", "b", "c"]),
    },
)


@st.composite
def _op(draw: st.DrawFn) -> Operation:
    table = draw(_tables)
    kind = draw(st.sampled_from(["insert", "put", "patch", "patch", "patch", "where"]))
    if kind in ("insert", "put"):
        n = draw(st.one_of(st.none(), st.integers(0, 5)))
        row = table(k=draw(_keys), n=n, s=draw(st.sampled_from(["a", "b"])))
        return Insert(row) if kind == "insert" else Put(row)
    fields = draw(_values)
    if kind == "patch":
        return Patch(table, (draw(_keys),), fields)
    return PatchWhere(table, {"s": draw(st.sampled_from(["a", "b", "c"]))}, fields)


@settings(max_examples=400, deadline=None)
@given(st.lists(_op(), max_size=12))
def test_coalesced_ops_write_the_same_rows(ops: list[Operation]) -> None:
    folded = coalesced_ops(ops)
    assert len(folded) <= len(ops)
    assert _run(folded) == _run(ops)


def test_patches_fold_into_their_insert_and_into_each_other() -> None:
    ops: list[Operation] = [
        Insert(_Left(k=1, n=1)),
        Insert(_Right(k=1)),
        Patch(_Left, (1,), {"s": "b", "n": Inc(2)}),
        Patch(_Right, (2,), {"n": 5}),
        Patch(_Right, (2,), {"n": Inc(1), "s": "c"}),
    ]
    assert coalesced_ops(ops) == [
        Insert(_Left(k=1, n=3, s="b")),
        Insert(_Right(k=1)),
        Patch(_Right, (2,), {"n": 6, "s": "c"}),
    ]


def test_an_operation_on_the_same_table_in_between_keeps_both() -> None:
    ops: list[Operation] = [
        Insert(_Left(k=1)),
        PatchWhere(_Left, {"s": "a"}, {"s": "b"}),
        Patch(_Left, (1,), {"s": "c"}),
        Patch(_Left, (2,), {"n": 1}),
        Patch(_Left, (1,), {"n": 2}),
    ]
    assert coalesced_ops(ops) == ops


def test_increments_add_up_and_null_is_left_alone() -> None:
    ops: list[Operation] = [
        Patch(_Left, (1,), {"n": Inc(1)}),
        Patch(_Left, (1,), {"n": Inc(2)}),
        Insert(_Right(k=1, n=None)),
        Patch(_Right, (1,), {"n": Inc(1)}),
    ]
    assert coalesced_ops(ops) == [Patch(_Left, (1,), {"n": Inc(3)}), ops[2], ops[3]]


def test_the_input_is_not_modified() -> None:
    row = _Left(k=1)
    ops: list[Operation] = [Insert(row), Patch(_Left, (1,), {"s": "z"})]
    coalesced_ops(ops)
    assert row.s == "a" and len(ops) == 2
