"""SQLite plumbing shared by the backend: named queries and row <-> column mapping."""

from __future__ import annotations

import dataclasses
import operator
import re
import sqlite3
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any, TypeVar

import orjson

from durable_workflow_server.storage._interface import (
    AnyOf,
    Inc,
)
from durable_workflow_server.storage._rows import (
    Row,
)

R = TypeVar("R", bound=Row)

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def sql_text(*parts: str) -> str:
    """Read a packaged file under ``storage/sql/sqlite/``."""
    node = resources.files("durable_workflow_server.storage").joinpath("sql", "sqlite", *parts)
    return node.read_text(encoding="utf-8")


@cache
def queries() -> dict[str, str]:
    """The named queries of ``queries.sql``, loaded once."""
    text = sql_text("queries.sql")
    found: dict[str, str] = {}
    matches = list(_NAME.finditer(text))
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        found[match.group(1)] = text[match.end() : end].strip().rstrip(";")
    return found


_COLUMNS: dict[str, tuple[str, ...]] = {}
_INSERTS: dict[tuple[str, bool], str] = {}


def columns(cls: type[Row]) -> tuple[str, ...]:
    """The column names of a row class, in declaration order (memoised per table)."""
    cols = _COLUMNS.get(cls.__table__)
    if cols is None:
        cols = _COLUMNS[cls.__table__] = tuple(f.name for f in dataclasses.fields(cls))
    return cols


def to_sql(cls: type[Row], name: str, value: Any) -> Any:
    """Convert one Python value to its column representation."""
    if name in cls.__json__:
        return None if value is None else orjson.dumps(value).decode()
    if isinstance(value, bool):
        return int(value)
    return value


def row_values(row: Row) -> list[Any]:
    """Every column of ``row`` converted for SQLite, in :func:`columns` order (the order of
    :func:`insert_sql`'s placeholders)."""
    cls = type(row)
    getter, json_at = _row_getter(cls)
    values = list(getter(row))
    for index in json_at:
        value = values[index]
        values[index] = None if value is None else orjson.dumps(value).decode()
    for index, value in enumerate(values):
        if value is True or value is False:
            values[index] = int(value)
    return values


_GETTERS: dict[type[Row], tuple[Callable[[Row], tuple[Any, ...]], tuple[int, ...]]] = {}


def _row_getter(cls: type[Row]) -> tuple[Callable[[Row], tuple[Any, ...]], tuple[int, ...]]:
    """A getter of every column at once (``operator.attrgetter``) and the JSON columns' positions."""
    found = _GETTERS.get(cls)
    if found is None:
        cols = columns(cls)
        getter: Callable[[Row], tuple[Any, ...]]
        if len(cols) == 1:  # attrgetter of one name returns the value, not a 1-tuple
            only = operator.attrgetter(cols[0])
            getter = lambda row: (only(row),)  # noqa: E731
        else:
            getter = operator.attrgetter(*cols)
        found = _GETTERS[cls] = (getter, tuple(i for i, name in enumerate(cols) if name in cls.__json__))
    return found


_PLAIN, _JSON, _BOOL = 0, 1, 2
_PLANS: dict[tuple[type[Row], tuple[str, ...]], tuple[tuple[int, int], ...]] = {}


def _plan(cls: type[Row], keys: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    """Each field's position in the record and its conversion, worked out once per class and
    column list: ``sqlite3.Row`` looks a name up by comparing it with every column in turn."""
    plan = _PLANS.get((cls, keys))
    if plan is None:
        position = {key.lower(): index for index, key in enumerate(keys)}  # names match any case
        plan = _PLANS[(cls, keys)] = tuple(
            (
                position[name.lower()],
                _JSON if name in cls.__json__ else _BOOL if name in cls.__bools__ else _PLAIN,
            )
            for name in columns(cls)
        )
    return plan


def from_sql(cls: type[R], record: sqlite3.Row) -> R:
    """Build a row dataclass from a fetched record."""
    values: list[Any] = []
    for index, kind in _plan(cls, tuple(record.keys())):
        value = record[index]
        if kind == _JSON:
            value = None if value is None else orjson.loads(value)
        elif kind == _BOOL:
            value = bool(value)
        values.append(value)
    # Positional: columns() is the dataclass field order, and every field is an init field.
    return cls(*values)


_UPDATES: dict[tuple[Any, ...], str] = {}


def insert_sql(cls: type[Row], replace: bool) -> str:
    """``INSERT [OR REPLACE]`` with a positional parameter per column, in :func:`columns` order
    (memoised); :func:`row_values` gives the values."""
    sql = _INSERTS.get((cls.__table__, replace))
    if sql is None:
        cols = columns(cls)
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        sql = f"{verb} INTO {cls.__table__} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        _INSERTS[(cls.__table__, replace)] = sql
    return sql


def update_sql(cls: type[Row], fields: dict[str, Any], where: dict[str, Any]) -> tuple[str, list[Any]]:
    """An UPDATE for ``fields`` (``Inc`` adds) on rows whose columns equal ``where``.

    The SQL text depends only on the shape (columns, which values are ``Inc``, ``None`` or
    ``AnyOf`` of which length), so it is memoised by shape; the parameters are built per call.
    """
    shape = (
        cls.__table__,
        tuple((name, isinstance(value, Inc)) for name, value in fields.items()),
        tuple(
            (name, -1 if value is None else len(value.values) if isinstance(value, AnyOf) else -2)
            for name, value in where.items()
        ),
    )
    sql = _UPDATES.get(shape)
    if sql is None:
        sql = _update_text(cls, fields, where)
        _UPDATES[shape] = sql
    params: list[Any] = []
    for name, value in fields.items():
        params.append(value.by if isinstance(value, Inc) else to_sql(cls, name, value))
    for name, value in where.items():
        if isinstance(value, AnyOf):
            params.extend(to_sql(cls, name, one) for one in value.values)
        elif value is not None:
            params.append(to_sql(cls, name, value))
    return sql, params


def _update_text(cls: type[Row], fields: dict[str, Any], where: dict[str, Any]) -> str:
    known = set(columns(cls))
    sets: list[str] = []
    for name, value in fields.items():
        if name not in known:  # names come from engine code, never from requests; fail loudly
            raise ValueError(f"{cls.__table__} has no column {name!r}")
        sets.append(f"{name} = {name} + ?" if isinstance(value, Inc) else f"{name} = ?")
    conds: list[str] = []
    for name, value in where.items():
        if name not in known:
            raise ValueError(f"{cls.__table__} has no column {name!r}")
        if value is None:
            conds.append(f"{name} IS NULL")
        elif isinstance(value, AnyOf):
            conds.append(f"{name} IN ({', '.join('?' * len(value.values))})" if value.values else "0")
        else:
            conds.append(f"{name} = ?")
    return f"UPDATE {cls.__table__} SET {', '.join(sets)} WHERE {' AND '.join(conds)}"
