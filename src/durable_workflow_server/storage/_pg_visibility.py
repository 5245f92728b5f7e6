"""Compile a bound visibility tree (``storage._visibility``) to a PostgreSQL WHERE fragment.

The twin of ``_visibility_sql`` (SQLite): system attributes are columns of ``runs``; a custom
attribute is an ``EXISTS`` probe of the run's live ``search_attributes`` rows on the value
column of its type. Values are always bound (``$n``), never spliced into the text. Dialect
differences: positional ``$n`` parameters, ``live`` is a BOOLEAN, and asyncpg encodes a
parameter by the column's type, so values are coerced here (a bool attribute is stored as
0/1 in ``int_value``; an integral float compared with an int column becomes an int).
"""

from __future__ import annotations

from typing import Any

from durable_workflow_server.storage._visibility import OPERATORS, And, Attr, Compare, Expr, In, Or
from durable_workflow_server.storage._visibility_sql import SYSTEM_COLUMNS

_VALUE_COLUMNS = {
    "text": "text_value",
    "int": "int_value",
    "bool": "int_value",
    "double": "double_value",
    "time": "time_value",
}
_FLOAT_COLUMNS = frozenset({"started_at", "closed_at"})


def _value(attr: Attr, value: Any) -> Any:
    if attr.kind == "bool":
        return int(bool(value))
    if attr.system:
        column = SYSTEM_COLUMNS[attr.name]
        if column in _FLOAT_COLUMNS and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        return value
    if attr.kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    if attr.kind in ("double", "time") and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _bind(params: list[Any], value: Any) -> str:
    params.append(value)
    return f"${len(params)}"


def _probe(attr: Attr, params: list[Any], condition: str) -> str:
    column = _VALUE_COLUMNS[attr.kind]
    name = _bind(params, attr.name)
    return (
        "EXISTS (SELECT 1 FROM search_attributes sa WHERE sa.run_id = runs.run_id AND sa.live "
        f"AND sa.name = {name} AND sa.{column} {condition})"
    )


def compile_expr(expr: Expr, params: list[Any]) -> str:
    """Append the parameters of ``expr`` to ``params`` and return its SQL text."""
    if isinstance(expr, And | Or):
        joiner = " AND " if isinstance(expr, And) else " OR "
        return "(" + joiner.join(compile_expr(item, params) for item in expr.items) + ")"
    attr = expr.attr
    if not isinstance(attr, Attr):
        raise TypeError(f"unbound attribute {attr!r}")
    if isinstance(expr, Compare):
        if expr.op not in OPERATORS:
            raise ValueError(f"unknown operator {expr.op!r}")
        if attr.system:
            mark = _bind(params, _value(attr, expr.value))
            return f"runs.{SYSTEM_COLUMNS[attr.name]} {expr.op} {mark}"
        if expr.op == "!=":
            # "differs" includes runs that do not have the attribute at all.
            probe = _probe(attr, params, "= {}")
            return "NOT " + probe.format(_bind(params, _value(attr, expr.value)))
        probe = _probe(attr, params, f"{expr.op} {{}}")
        return probe.format(_bind(params, _value(attr, expr.value)))
    assert isinstance(expr, In)
    if attr.system:
        marks = ", ".join(_bind(params, _value(attr, v)) for v in expr.values)
        return f"runs.{SYSTEM_COLUMNS[attr.name]} {'NOT IN' if expr.negated else 'IN'} ({marks})"
    probe = _probe(attr, params, "IN ({})")
    marks = ", ".join(_bind(params, _value(attr, v)) for v in expr.values)
    return ("NOT " if expr.negated else "") + probe.format(marks)
