"""Registered custom search attributes (control-plane §8).

A registration gives a name a type, which the visibility query uses to pick the value column
and to convert literals. Values themselves are stored (and indexed) whatever is registered,
as upstream does; a query may only name registered attributes and the system ones.
"""

from __future__ import annotations

import re
from typing import Any

from durable_workflow_server.engine._core import Core
from durable_workflow_server.engine._errors import EngineError, invalid
from durable_workflow_server.engine._visibility import SYSTEM_ATTRIBUTES, TYPE_KINDS
from durable_workflow_server.storage import Mutation, Put, SearchAttributeDefRow

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
#: Most custom attributes per namespace.
LIMIT = 100
_SYSTEM_TYPES = {
    name: "datetime" if kind == "time" else "keyword" for name, kind in SYSTEM_ATTRIBUTES.items()
}


async def _active(core: Core, ns: str) -> dict[str, SearchAttributeDefRow]:
    return {d.name: d for d in await core.storage.search_attribute_defs(ns) if d.status == "active"}


async def list_attributes(core: Core, ns: str) -> dict[str, Any]:
    """``{system_attributes, custom_attributes}``, each ``name -> type``."""
    custom = await _active(core, ns)
    return {
        "system_attributes": dict(_SYSTEM_TYPES),
        "custom_attributes": {name: row.type for name, row in sorted(custom.items())},
    }


async def register(core: Core, ns: str, body: dict[str, Any]) -> dict[str, Any]:
    """Register ``{name, type}``; 201 ``created`` (the API picks the status)."""
    name, kind = body.get("name"), body.get("type")
    errors: dict[str, list[str]] = {}
    if not isinstance(name, str) or not NAME.match(name) or len(name) > 128:
        errors["name"] = ["must match ^[A-Za-z][A-Za-z0-9_]*$ and be at most 128 characters"]
    if kind not in TYPE_KINDS:
        errors["type"] = [f"must be one of {', '.join(TYPE_KINDS)}"]
    if errors:
        raise invalid(errors, "The search attribute is invalid.")
    assert isinstance(name, str) and isinstance(kind, str)
    if name in _SYSTEM_TYPES:
        raise EngineError("conflict", "name_reserved", f"{name} is a system attribute.", name=name)
    active = await _active(core, ns)
    if name in active:
        raise EngineError(
            "conflict",
            "attribute_already_exists",
            f"Search attribute {name} is already registered.",
            name=name,
            type=active[name].type,
        )
    if len(active) >= LIMIT:
        raise EngineError(
            "invalid",
            "search_attribute_limit_reached",
            f"A namespace has at most {LIMIT} custom search attributes.",
            limit=LIMIT,
        )
    row = SearchAttributeDefRow(namespace=ns, name=name, type=kind, status="active", created_at=core.now())
    await core.storage.apply(Mutation(ops=[Put(row)]))
    return {"name": name, "type": kind, "outcome": "created"}


async def delete(core: Core, ns: str, name: str) -> dict[str, Any]:
    """Remove a registration (stored values stay, but queries may no longer name it)."""
    if name in _SYSTEM_TYPES:
        raise EngineError("conflict", "system_attribute", f"{name} is a system attribute.", name=name)
    active = await _active(core, ns)
    row = active.get(name)
    if row is None:
        raise EngineError("not_found", "attribute_not_found", f"No search attribute {name}.", name=name)
    row.status = "deleted"
    await core.storage.apply(Mutation(ops=[Put(row)]))
    return {"name": name, "outcome": "deleted"}
