"""PostgreSQL plumbing shared by the backend: named queries and row <-> column mapping.

Queries in ``sql/postgres/queries.sql`` use ``:name`` parameters for readability (like the
SQLite file); asyncpg speaks only positional ``$n``, so each query is rewritten once at load
time and remembers the order of its names.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, TypeVar

import orjson

from durable_workflow_server.storage._interface import AnyOf, Inc
from durable_workflow_server.storage._rows import Row, RunRow

R = TypeVar("R", bound=Row)

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
#: ``:name`` but not the ``::type`` cast syntax (nor a colon inside a word).
_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def sql_text(*parts: str) -> str:
    """Read a packaged file under ``storage/sql/postgres/``."""
    node = resources.files("durable_workflow_server.storage").joinpath("sql", "postgres", *parts)
    return node.read_text(encoding="utf-8")


@dataclass(frozen=True)
class Query:
    """One named query: positional SQL and the parameter name of each ``$n``."""

    sql: str
    names: tuple[str, ...]

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        """The positional arguments for ``params`` (a missing name raises KeyError)."""
        return [params[name] for name in self.names]


def positional(text: str) -> Query:
    """Rewrite ``:name`` parameters as ``$1..$n`` (a repeated name reuses its number)."""
    order: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in order:
            order.append(name)
        return f"${order.index(name) + 1}"

    return Query(_PARAM.sub(number, text), tuple(order))


def _statement(body: str) -> str:
    # A query ends at its first line ending in ';'. Anything after it (the comment introducing
    # the next group of queries) must not reach the server: a prepared statement takes one
    # command only.
    lines: list[str] = []
    for line in body.strip().splitlines():
        stripped = line.rstrip()
        if stripped.endswith(";"):
            lines.append(stripped[:-1])
            break
        lines.append(line)
    return "\n".join(lines).strip()


@cache
def queries() -> dict[str, Query]:
    """The named queries of ``queries.sql``, loaded and rewritten once."""
    text = sql_text("queries.sql")
    found: dict[str, Query] = {}
    matches = list(_NAME.finditer(text))
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        found[match.group(1)] = positional(_statement(text[match.end() : end]))
    return found


_COLUMNS: dict[type[Row], tuple[str, ...]] = {}
_INSERTS: dict[tuple[type[Row], bool], str] = {}


def columns(cls: type[Row]) -> tuple[str, ...]:
    """The column names of a row class, in declaration order (memoised per class)."""
    cols = _COLUMNS.get(cls)
    if cols is None:
        cols = _COLUMNS[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return cols


def to_pg(cls: type[Row], name: str, value: Any) -> Any:
    """Convert one Python value to what asyncpg sends for its column."""
    if name in cls.__json__:
        return None if value is None else orjson.dumps(value).decode()
    if name in cls.__bools__:
        # asyncpg's boolean codec refuses ints; SQLite-minded callers may pass 0/1.
        return None if value is None else bool(value)
    return value


def row_args(row: Row) -> list[Any]:
    """Every column of ``row`` converted, in column order (matching :func:`insert_sql`)."""
    cls = type(row)
    return [to_pg(cls, name, getattr(row, name)) for name in columns(cls)]


def from_pg(cls: type[R], record: Mapping[str, Any]) -> R:
    """Build a row dataclass from a fetched record."""
    values: dict[str, Any] = {}
    json_cols = cls.__json__
    for name in columns(cls):
        value = record[name]
        if name in json_cols and value is not None:
            value = orjson.loads(value)
        values[name] = value
    return cls(**values)


def insert_sql(cls: type[Row], upsert: bool) -> str:
    """``INSERT`` with ``$n`` for every column.

    ``upsert`` replaces a row with the same key; otherwise a row that collides with any unique
    index is not inserted (status ``INSERT 0 0``), which the caller reports as a failed
    precondition.
    """
    sql = _INSERTS.get((cls, upsert))
    if sql is None:
        cols = columns(cls)
        sql = (
            f"INSERT INTO {cls.__table__} ({', '.join(cols)}) "
            f"VALUES ({', '.join(f'${i + 1}' for i in range(len(cols)))})"
        )
        if upsert:
            rest = [c for c in cols if c not in cls.__key__]
            action = (
                "DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in rest) if rest else "DO NOTHING"
            )
            sql += f" ON CONFLICT ({', '.join(cls.__key__)}) {action}"
        else:
            sql += " ON CONFLICT DO NOTHING"
        _INSERTS[(cls, upsert)] = sql
    return sql


def set_clauses(cls: type[Row], fields: Mapping[str, Any], args: list[Any]) -> list[str]:
    """``column = $n`` (``Inc``: ``column = column + $n``) per field, appending to ``args``."""
    known = set(columns(cls))
    sets: list[str] = []
    for name, value in fields.items():
        if name not in known:  # names come from engine code, never from requests; fail loudly
            raise ValueError(f"{cls.__table__} has no column {name!r}")
        if isinstance(value, Inc):
            args.append(value.by)
            sets.append(f"{name} = {name} + ${len(args)}")
        else:
            args.append(to_pg(cls, name, value))
            sets.append(f"{name} = ${len(args)}")
    return sets


def update_sql(cls: type[Row], fields: Mapping[str, Any], where: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """An UPDATE for ``fields`` (``Inc`` adds) on rows whose columns equal ``where``."""
    known = set(columns(cls))
    args: list[Any] = []
    sets = set_clauses(cls, fields, args)
    conds: list[str] = []
    for name, value in where.items():
        if name not in known:
            raise ValueError(f"{cls.__table__} has no column {name!r}")
        if value is None:
            conds.append(f"{name} IS NULL")
        elif isinstance(value, AnyOf):
            marks: list[str] = []
            for one in value.values:
                args.append(to_pg(cls, name, one))
                marks.append(f"${len(args)}")
            conds.append(f"{name} IN ({', '.join(marks)})" if marks else "FALSE")
        else:
            args.append(to_pg(cls, name, value))
            conds.append(f"{name} = ${len(args)}")
    return f"UPDATE {cls.__table__} SET {', '.join(sets)} WHERE {' AND '.join(conds)}", args


def bump_sql(fields: Mapping[str, Any], events: int, run_id: str, version: int) -> tuple[str, list[Any]]:
    """The run-version fence as one UPDATE that may also patch the run and reserve sequences.

    ``UPDATE runs SET version = version + 1 [, last_history_sequence = … + events] [, fields]
    WHERE run_id = $1 AND version = $2 RETURNING last_history_sequence``: no row back means
    the run moved on (or does not exist), which fails the precondition.
    """
    sets = ["version = version + 1"]
    args: list[Any] = [run_id, version]
    if events:
        args.append(events)
        sets.append(f"last_history_sequence = last_history_sequence + ${len(args)}")
    sets.extend(set_clauses(RunRow, fields, args))
    sql = (
        f"UPDATE runs SET {', '.join(sets)} WHERE run_id = $1 AND version = $2 "
        "RETURNING last_history_sequence"
    )
    return sql, args
