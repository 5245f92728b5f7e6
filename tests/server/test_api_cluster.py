"""Health, readiness and cluster info over real HTTP, including the 2.12.0 discovery gates."""

from __future__ import annotations

import aiohttp
from api_support import CONTROL_HEADERS, send

from durable_workflow.protocol import CONTROL_PLANE_HEADER, PROTOCOL_HEADER


async def test_health_is_public_and_serving(http: aiohttp.ClientSession, server_url: str) -> None:
    reply = await send(http, "GET", f"{server_url}/api/health")
    assert reply.status == 200
    assert reply.body["status"] == "serving"
    assert reply.body["checks"] == {"database": "ok"}
    assert reply.body["timestamp"].endswith("Z")
    assert CONTROL_PLANE_HEADER not in reply.headers and PROTOCOL_HEADER not in reply.headers


async def test_ready_reports_each_check(http: aiohttp.ClientSession, server_url: str) -> None:
    reply = await send(http, "GET", f"{server_url}/api/ready")
    assert reply.status == 200
    assert reply.body["status"] == "ready"
    for check in ("database", "migrations", "default_namespace", "auth"):
        assert reply.body["checks"][check]["status"] == "ok"


async def test_cluster_info_passes_the_2_12_worker_gates(
    http: aiohttp.ClientSession, server_url: str
) -> None:
    reply = await send(http, "GET", f"{server_url}/api/cluster/info")
    assert reply.status == 200
    info = reply.body
    # No version header is needed, and none is returned.
    assert CONTROL_PLANE_HEADER not in reply.headers
    control = info["control_plane"]
    assert control["version"] == "2"
    request_contract = control["request_contract"]
    assert request_contract["schema"] == "durable-workflow.v2.control-plane-request.contract"
    assert request_contract["version"] == 1
    wait_for = request_contract["operations"]["update"]["fields"]["wait_for"]["canonical_values"]
    assert wait_for == ["accepted", "completed"]
    major, minor = info["worker_protocol"]["version"].split(".")
    assert major == "1" and int(minor) >= 20
    contract = info["auth_composition_contract"]
    assert contract["schema"] == "durable-workflow.v2.auth-composition.contract"
    assert contract["version"] == 1
    assert contract["auth_material"]["token"] == {"status": "supported", "effective_config_value": "redacted"}
    assert info["limits"]["max_payload_bytes"] == 2 * 1024 * 1024
    caps = info["worker_protocol"]["server_capabilities"]
    assert caps["query_tasks"] is True  # query tasks are served
    assert caps["long_poll_timeout"] == 30
    assert "schedule_activity" in caps["supported_workflow_task_commands"]
    assert info["capabilities"]["workflow_tasks"] is True
    assert info["capabilities"]["schedules"] is False


async def test_cluster_info_ignores_an_unknown_namespace(
    http: aiohttp.ClientSession, server_url: str
) -> None:
    reply = await send(http, "GET", f"{server_url}/api/cluster/info", headers={"X-Namespace": "nowhere"})
    assert reply.status == 200


async def test_cluster_info_accepts_every_role_token(
    http: aiohttp.ClientSession, token_server_url: str, server_tokens: dict[str, str]
) -> None:
    url = f"{token_server_url}/api/cluster/info"
    for token in server_tokens.values():
        reply = await send(http, "GET", url, token=token, headers=CONTROL_HEADERS)
        assert reply.status == 200, reply.body
    assert (await send(http, "GET", url)).status == 401
    assert (await send(http, "GET", url, token="nope")).reason == "unauthorized"


async def test_health_and_ready_stay_public_with_token_auth(
    http: aiohttp.ClientSession, token_server_url: str
) -> None:
    assert (await send(http, "GET", f"{token_server_url}/api/health")).status == 200
    ready = await send(http, "GET", f"{token_server_url}/api/ready")
    assert ready.status == 200 and ready.body["checks"]["auth"]["status"] == "ok"
