"""The visibility query language of ``GET /api/workflows?query=`` (docs/protocol-decisions.md).

Grammar (keywords case-insensitive)::

    query      := or
    or         := and ("OR" and)*
    and        := term ("AND" term)*
    term       := "(" query ")" | name op literal | name ["NOT"] "IN" "(" literal ("," literal)* ")"
    op         := "=" | "!=" | "<>" | "<" | ">" | "<=" | ">="
    literal    := 'single-quoted text' ('' inside is one quote) | integer | decimal | true | false

:func:`parse` builds the tree of ``storage._visibility`` with attribute names as written;
:func:`bind` resolves each name to a system attribute (a run column) or a registered custom
attribute with its type and converts the literals; the storage backend compiles the bound tree
to SQL. :func:`render` writes a tree back as query text (``parse(render(t)) == t``).

A query with none of the characters ``= < > ! ' ( )`` is not parsed: it keeps the old meaning,
a substring of the workflow id or business key (the 2.12.0 SDK sends that).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from durable_workflow_server.engine._errors import EngineError
from durable_workflow_server.engine._search_index import parse_time
from durable_workflow_server.storage import And, Attr, Compare, Expr, In, Or

#: System attributes (control-plane §8) and the kind of their values.
SYSTEM_ATTRIBUTES = {
    "WorkflowType": "text",
    "WorkflowId": "text",
    "RunId": "text",
    "Status": "text",
    "TaskQueue": "text",
    "BuildId": "text",
    "BusinessKey": "text",
    "StartTime": "time",
    "CloseTime": "time",
}
#: Registration type -> value kind.
TYPE_KINDS = {
    "keyword": "text",
    "text": "text",
    "keyword_list": "text",
    "int": "int",
    "double": "double",
    "bool": "bool",
    "datetime": "time",
}
_OPEN_STATUSES = ("pending", "running", "waiting")
_LANGUAGE_CHARS = frozenset("=<>!'()")
_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
    r"|(?P<op><=|>=|!=|<>|=|<|>)|(?P<punct>[(),])|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<bad>\S))"
)
_KEYWORDS = {"AND", "OR", "IN", "NOT", "TRUE", "FALSE"}
#: Deepest parenthesis nesting accepted (the parser is recursive).
MAX_DEPTH = 32
#: Longest query text accepted.
MAX_QUERY_LENGTH = 4096


def is_language(query: str) -> bool:
    """Whether ``query`` uses the query language (else it is a plain substring)."""
    return any(ch in _LANGUAGE_CHARS for ch in query)


def invalid_query(message: str, position: int) -> EngineError:
    """The 400 refusal of a query, pointing at the character ``position`` (0-based)."""
    return EngineError(
        "bad_request", "invalid_query", f"{message} (at position {position})", position=position
    )


@dataclass
class _Tok:
    kind: str  # str | num | op | punct | name | kw | end
    value: Any
    pos: int


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:  # only trailing whitespace is left
            break
        kind = match.lastgroup or "bad"
        raw = match.group(kind)
        start = match.start(kind)
        pos = match.end()
        if kind == "bad":
            if raw == "'":
                raise invalid_query("unterminated string", start)
            raise invalid_query(f"unexpected character {raw!r}", start)
        if kind == "str":
            out.append(_Tok("str", raw[1:-1].replace("''", "'"), start))
        elif kind == "num":
            value: Any = float(raw) if any(c in raw for c in ".eE") else int(raw)
            out.append(_Tok("num", value, start))
        elif kind == "name" and raw.upper() in _KEYWORDS:
            out.append(_Tok("kw", raw.upper(), start))
        else:
            out.append(_Tok(kind, "!=" if raw == "<>" else raw, start))
    out.append(_Tok("end", None, len(text)))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, kind: str, value: Any = None, what: str = "") -> _Tok:
        tok = self.take()
        if tok.kind != kind or (value is not None and tok.value != value):
            raise invalid_query(f"expected {what or value or kind}", tok.pos)
        return tok

    def query(self) -> Expr:
        expr = self.or_()
        tok = self.peek()
        if tok.kind != "end":
            raise invalid_query("expected AND, OR or the end of the query", tok.pos)
        return expr

    def or_(self) -> Expr:
        items = [self.and_()]
        while self.peek().kind == "kw" and self.peek().value == "OR":
            self.take()
            items.append(self.and_())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_(self) -> Expr:
        items = [self.term()]
        while self.peek().kind == "kw" and self.peek().value == "AND":
            self.take()
            items.append(self.term())
        return items[0] if len(items) == 1 else And(tuple(items))

    def term(self) -> Expr:
        tok = self.take()
        if tok.kind == "punct" and tok.value == "(":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise invalid_query(f"parentheses nested deeper than {MAX_DEPTH}", tok.pos)
            inner = self.or_()
            self.expect("punct", ")", "')'")
            self.depth -= 1
            return inner
        if tok.kind != "name":
            raise invalid_query("expected an attribute name or '('", tok.pos)
        nxt = self.take()
        if nxt.kind == "op":
            return Compare(tok.value, nxt.value, self.literal())
        negated = False
        if nxt.kind == "kw" and nxt.value == "NOT":
            negated = True
            nxt = self.take()
        if nxt.kind == "kw" and nxt.value == "IN":
            self.expect("punct", "(", "'(' after IN")
            values = [self.literal()]
            while self.peek().kind == "punct" and self.peek().value == ",":
                self.take()
                values.append(self.literal())
            self.expect("punct", ")", "')' or ','")
            return In(tok.value, tuple(values), negated)
        raise invalid_query("expected an operator (=, !=, <, >, <=, >=, IN)", nxt.pos)

    def literal(self) -> Any:
        tok = self.take()
        if tok.kind in ("str", "num"):
            return tok.value
        if tok.kind == "kw" and tok.value in ("TRUE", "FALSE"):
            return tok.value == "TRUE"
        raise invalid_query("expected a value: 'text', a number, true or false", tok.pos)


def parse(text: str) -> Expr:
    """Parse query text into an unbound tree.

    Raises:
        EngineError: 400 ``invalid_query`` with the ``position`` of the problem.
    """
    if not text.strip():
        raise invalid_query("empty query", 0)
    if len(text) > MAX_QUERY_LENGTH:
        raise invalid_query(f"query longer than {MAX_QUERY_LENGTH} characters", MAX_QUERY_LENGTH)
    return _Parser(text).query()


def _render_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def render(expr: Expr) -> str:
    """Query text for a tree; parenthesised wherever a nested AND/OR needs it."""
    if isinstance(expr, And | Or):
        joiner = " AND " if isinstance(expr, And) else " OR "
        return joiner.join(
            f"({render(item)})" if isinstance(item, And | Or) else render(item) for item in expr.items
        )
    name = expr.attr.name if isinstance(expr.attr, Attr) else expr.attr
    if isinstance(expr, Compare):
        return f"{name} {expr.op} {_render_value(expr.value)}"
    values = ", ".join(_render_value(v) for v in expr.values)
    return f"{name} {'NOT IN' if expr.negated else 'IN'} ({values})"


def _convert(attr: Attr, value: Any, text: str) -> Any:
    kind = attr.kind
    if kind == "text":
        if not isinstance(value, str):
            raise invalid_query(f"{attr.name} compares with 'text'", _where(text, attr.name))
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise invalid_query(f"{attr.name} compares with true or false", _where(text, attr.name))
        return value
    if kind == "time":
        seconds = parse_time(value) if isinstance(value, str) else None
        if seconds is None:
            raise invalid_query(
                f"{attr.name} compares with an ISO-8601 time such as '2026-01-01T00:00:00Z'",
                _where(text, attr.name),
            )
        return seconds
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid_query(f"{attr.name} compares with a number", _where(text, attr.name))
    if kind == "int" and isinstance(value, float):
        raise invalid_query(f"{attr.name} is an int attribute", _where(text, attr.name))
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        raise invalid_query(f"{value} is outside the 64-bit integer range", _where(text, attr.name))
    return float(value) if kind == "double" else value


def _where(text: str, name: str) -> int:
    found = re.search(rf"\b{re.escape(name)}\b", text)
    return found.start() if found else 0


def bind(expr: Expr, custom: dict[str, str], text: str) -> Expr:
    """Resolve names and convert literals; ``custom`` maps registered names to their types.

    ``Status = 'running'`` means the open bucket (pending, running or waiting).

    Raises:
        EngineError: 400 ``invalid_query`` for an unknown attribute or a value of the wrong type.
    """
    if isinstance(expr, And | Or):
        return type(expr)(tuple(bind(item, custom, text) for item in expr.items))
    name = expr.attr if isinstance(expr.attr, str) else expr.attr.name
    if name in SYSTEM_ATTRIBUTES:
        attr = Attr(name, SYSTEM_ATTRIBUTES[name], system=True)
    elif name in custom:
        attr = Attr(name, TYPE_KINDS[custom[name]])
    else:
        raise invalid_query(
            f"unknown search attribute {name!r}; register it with POST /api/search-attributes",
            _where(text, name),
        )
    if isinstance(expr, Compare):
        if (attr.kind == "bool" or name == "Status") and expr.op not in ("=", "!="):
            raise invalid_query(f"{name} supports only =, != and IN", _where(text, name))
        value = _convert(attr, expr.value, text)
        if name == "Status" and value == "running":
            return In(attr, _OPEN_STATUSES, negated=expr.op == "!=")
        return Compare(attr, expr.op, value)
    values: list[Any] = []
    for value in expr.values:
        converted = _convert(attr, value, text)
        if name == "Status" and converted == "running":
            values.extend(_OPEN_STATUSES)
        else:
            values.append(converted)
    return In(attr, tuple(values), expr.negated)
