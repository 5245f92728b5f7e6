"""Search-attribute registrations (control-plane §8), behind :class:`Client` methods.

A registered attribute can be named in a ``list_workflows(query=...)`` visibility query::

    await client.register_search_attribute("CustomerId", "keyword")
    page = await client.list_workflows(
        query="WorkflowType = 'orders' AND Status = 'running' AND CustomerId = 'c-1'"
    )

The language: ``=``, ``!=``, ``<``, ``>``, ``<=``, ``>=``, ``[NOT] IN (...)``, ``AND``, ``OR`` and
parentheses over system attributes (WorkflowType, WorkflowId, RunId, Status, TaskQueue,
BuildId, BusinessKey, StartTime, CloseTime) and registered ones; text in single quotes, times
as ISO-8601 text. A query without any of ``= < > ! ' ( )`` is a substring of the workflow id
or business key instead. A malformed query raises ``errors.ServerError`` with status 400 and
reason ``invalid_query`` (``body["position"]`` points at the problem).
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote

from durable_workflow.client._http import HttpApi

SearchAttributeType = Literal["keyword", "text", "int", "double", "bool", "datetime", "keyword_list"]


async def list_search_attributes(api: HttpApi) -> dict[str, dict[str, str]]:
    """``{"system_attributes": {name: type}, "custom_attributes": {name: type}}``."""
    body = await api.call("GET", "/search-attributes")
    return {
        "system_attributes": dict(body.get("system_attributes") or {}),
        "custom_attributes": dict(body.get("custom_attributes") or {}),
    }


async def register_search_attribute(api: HttpApi, name: str, type: SearchAttributeType) -> dict[str, Any]:
    """Register ``name`` with ``type``; returns the server's receipt."""
    return await api.call("POST", "/search-attributes", json={"name": name, "type": type})


async def delete_search_attribute(api: HttpApi, name: str) -> dict[str, Any]:
    """Delete the registration of ``name``; returns the server's receipt."""
    return await api.call("DELETE", f"/search-attributes/{quote(name, safe='')}")
