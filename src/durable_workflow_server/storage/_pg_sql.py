"""PostgreSQL plumbing shared by the backend: named queries and record -> row mapping.

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

from durable_workflow_server.storage._rows import Row

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
_JSON_INDEXES: dict[type[Row], tuple[int, ...]] = {}


def columns(cls: type[Row]) -> tuple[str, ...]:
    """The column names of a row class, in declaration order (memoised per class)."""
    cols = _COLUMNS.get(cls)
    if cols is None:
        cols = _COLUMNS[cls] = tuple(f.name for f in dataclasses.fields(cls))
        _JSON_INDEXES[cls] = tuple(i for i, name in enumerate(cols) if name in cls.__json__)
    return cols


def from_pg(cls: type[R], record: Mapping[str, Any]) -> R:
    """Build a row dataclass from a fetched record (columns looked up by name)."""
    values = [record[name] for name in columns(cls)]
    for index in _JSON_INDEXES[cls]:
        if values[index] is not None:
            values[index] = orjson.loads(values[index])
    return cls(*values)
