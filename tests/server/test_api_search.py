"""Search-attribute routes and the visibility query over HTTP (control-plane §8, §6.2)."""

from __future__ import annotations

from typing import Any

import aiohttp
from api_support import unique

from durable_workflow.protocol import CONTROL_PLANE_HEADER, CONTROL_PLANE_VERSION

HEADERS = {CONTROL_PLANE_HEADER: CONTROL_PLANE_VERSION}


async def _call(http: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> tuple[int, dict[str, Any]]:
    async with http.request(method, url, headers=HEADERS, **kw) as reply:
        return reply.status, await reply.json()


async def test_register_list_delete_and_query(http: aiohttp.ClientSession, server_url: str) -> None:
    base = f"{server_url}/api/search-attributes"
    name = "Attr" + unique("x").replace("-", "_")
    status, body = await _call(http, "POST", base, json={"name": name, "type": "int"})
    assert status == 201 and body["outcome"] == "created"
    status, body = await _call(http, "POST", base, json={"name": name, "type": "int"})
    assert status == 409 and body["reason"] == "attribute_already_exists" and body["type"] == "int"
    status, body = await _call(http, "POST", base, json={"name": "WorkflowId", "type": "keyword"})
    assert status == 409 and body["reason"] == "name_reserved"
    status, body = await _call(http, "POST", base, json=["not", "an", "object"])
    assert status == 422
    status, body = await _call(http, "POST", base, json={"name": 7, "type": "int"})
    assert status == 422 and "name" in body["errors"]
    status, body = await _call(http, "GET", base)
    assert status == 200 and body["custom_attributes"][name] == "int"

    wid = unique("wf")
    started = {"workflow_type": "t", "workflow_id": wid, "search_attributes": {name: 5}}
    status, _ = await _call(http, "POST", f"{server_url}/api/workflows", json=started)
    assert status == 201
    status, body = await _call(http, "GET", f"{server_url}/api/workflows", params={"query": f"{name} >= 5"})
    assert status == 200 and [w["workflow_id"] for w in body["workflows"]] == [wid]
    for query, position in [
        (f"{name} >=", len(name) + 3),
        ("Nope = 1", 0),
        (f"{name} = 99999999999999999999", 0),
    ]:
        status, body = await _call(http, "GET", f"{server_url}/api/workflows", params={"query": query})
        assert status == 400 and body["reason"] == "invalid_query" and body["position"] == position, body

    status, body = await _call(http, "DELETE", f"{base}/{name}")
    assert status == 200 and body["outcome"] == "deleted"
    status, body = await _call(http, "DELETE", f"{base}/{name}")
    assert status == 404 and body["reason"] == "attribute_not_found"
    status, body = await _call(http, "DELETE", f"{base}/StartTime")
    assert status == 409 and body["reason"] == "system_attribute"


async def test_cluster_info_advertises_what_works(http: aiohttp.ClientSession, server_url: str) -> None:
    async with http.get(f"{server_url}/api/cluster/info") as reply:
        info = await reply.json()
    caps = info["capabilities"]
    assert caps["child_workflows"] and caps["continue_as_new"] and caps["search_attributes"]
    server_caps = info["worker_protocol"]["server_capabilities"]
    assert {"start_child_workflow", "continue_as_new"} <= set(server_caps["supported_workflow_task_commands"])
    assert server_caps["parent_close_policy"] and server_caps["child_workflow_retry_policy"]
    assert "cooperative_cancellation" not in server_caps  # 2.12.0's extension routes are not served
