"""Compile a bound visibility tree (``storage._visibility``) to an SQLite WHERE fragment.

System attributes are columns of ``runs``; a custom attribute is an ``EXISTS`` probe of the
indexed ``search_attributes`` rows of the run, on the value column of its type. Values are
always bound parameters, never spliced into the text.
"""

from __future__ import annotations

from typing import Any

from durable_workflow_server.storage._visibility import OPERATORS, And, Attr, Compare, Expr, In, Or

#: System attribute -> column of ``runs``.
SYSTEM_COLUMNS = {
    "WorkflowType": "workflow_type",
    "WorkflowId": "workflow_id",
    "RunId": "run_id",
    "Status": "status",
    "TaskQueue": "task_queue",
    "BuildId": "compatibility",
    "BusinessKey": "business_key",
    "StartTime": "started_at",
    "CloseTime": "closed_at",
}
_VALUE_COLUMNS = {
    "text": "text_value",
    "int": "int_value",
    "bool": "int_value",
    "double": "double_value",
    "time": "time_value",
}


def _value(attr: Attr, value: Any) -> Any:
    return int(value) if attr.kind == "bool" else value


def _probe(attr: Attr, condition: str) -> str:
    column = _VALUE_COLUMNS[attr.kind]
    return (
        "EXISTS (SELECT 1 FROM search_attributes sa WHERE sa.run_id = runs.run_id AND sa.live = 1 "
        f"AND sa.name = ? AND sa.{column} {condition})"
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
            params.append(_value(attr, expr.value))
            return f"runs.{SYSTEM_COLUMNS[attr.name]} {expr.op} ?"
        if expr.op == "!=":
            # "differs" includes runs that do not have the attribute at all.
            params.extend([attr.name, _value(attr, expr.value)])
            return "NOT " + _probe(attr, "= ?")
        params.extend([attr.name, _value(attr, expr.value)])
        return _probe(attr, f"{expr.op} ?")
    assert isinstance(expr, In)
    marks = ", ".join("?" for _ in expr.values)
    if attr.system:
        params.extend(_value(attr, v) for v in expr.values)
        return f"runs.{SYSTEM_COLUMNS[attr.name]} {'NOT IN' if expr.negated else 'IN'} ({marks})"
    params.append(attr.name)
    params.extend(_value(attr, v) for v in expr.values)
    return ("NOT " if expr.negated else "") + _probe(attr, f"IN ({marks})")
