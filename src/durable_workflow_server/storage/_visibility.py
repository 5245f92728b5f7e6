"""The visibility-query tree that crosses the storage boundary (control-plane §6.2, §8).

The engine parses a list query into these nodes and binds every attribute to a typed
:class:`Attr`; each backend compiles the bound tree to its own SQL. Nodes are frozen
dataclasses, so two trees compare equal when they mean the same query text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Comparison operators a query may use.
OPERATORS = ("=", "!=", "<", ">", "<=", ">=")


@dataclass(frozen=True)
class Attr:
    """A bound attribute: a system attribute (a run column) or a custom one (typed rows).

    ``kind`` is the value column to compare: ``text``, ``int``, ``double``, ``time`` (epoch
    seconds) or ``bool``.
    """

    name: str
    kind: str
    system: bool = False


@dataclass(frozen=True)
class Compare:
    """``attr op value``; ``attr`` is the name as written until the engine binds it."""

    attr: str | Attr
    op: str
    value: Any


@dataclass(frozen=True)
class In:
    """``attr [NOT] IN (v1, v2, ...)``."""

    attr: str | Attr
    values: tuple[Any, ...]
    negated: bool = False


@dataclass(frozen=True)
class And:
    """Every item holds."""

    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    """At least one item holds."""

    items: tuple[Expr, ...]


Expr = Compare | In | And | Or
