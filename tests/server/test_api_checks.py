"""The protocol's check order, step by step, over real HTTP (worker-plane §1, control-plane §2)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from api_support import CONTROL_HEADERS, WORKER_HEADERS, DwServer, send, unique

from durable_workflow.protocol import CONTROL_PLANE_HEADER, PROTOCOL_HEADER, WORKER_PROTOCOL_VERSION

REGISTER = "/api/worker/register"


def _register_body() -> dict[str, str]:
    return {"worker_id": unique("w"), "task_queue": unique("q"), "runtime": "python"}


def _assert_worker_envelope(reply: object) -> None:
    body = reply.body  # type: ignore[attr-defined]
    headers = reply.headers  # type: ignore[attr-defined]
    assert headers[PROTOCOL_HEADER] == WORKER_PROTOCOL_VERSION
    assert body["protocol_version"] == WORKER_PROTOCOL_VERSION
    assert "long_poll_timeout" in body["server_capabilities"]
    assert CONTROL_PLANE_HEADER not in headers


# --- 1. size ------------------------------------------------------------------------------


@pytest.fixture
def small_server(dw_server: Callable[..., DwServer]) -> DwServer:
    return dw_server("--max-payload-bytes", "4096")


async def test_oversized_body_by_content_length_is_413(
    http: aiohttp.ClientSession, small_server: DwServer
) -> None:
    body = b'{"pad":"' + b"x" * 5000 + b'"}'
    reply = await send(
        http, "POST", small_server.url + REGISTER, data=body, headers={"Content-Type": "text/plain"}
    )
    # Size is checked before the media type.
    assert reply.status == 413
    assert reply.reason == "payload_too_large"
    assert reply.body["limit"] == 4096
    _assert_worker_envelope(reply)
    info = await send(http, "GET", small_server.url + "/api/cluster/info")
    assert info.body["limits"]["max_payload_bytes"] == 4096


async def test_oversized_chunked_body_is_413(http: aiohttp.ClientSession, small_server: DwServer) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"pad":"'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    async with http.post(
        small_server.url + "/api/workflows",
        data=chunks(),
        headers={"Content-Type": "application/json", **CONTROL_HEADERS},
    ) as response:
        assert "Content-Length" not in response.request_info.headers
        body = await response.json()
    assert response.status == 413
    assert body["reason"] == "payload_too_large"


# --- 2., 3. media type and JSON syntax -------------------------------------------------------


async def test_wrong_media_type_is_415(http: aiohttp.ClientSession, server_url: str) -> None:
    reply = await send(
        http,
        "POST",
        server_url + REGISTER,
        data=b"{}",
        headers={"Content-Type": "text/plain", **WORKER_HEADERS},
    )
    assert reply.status == 415
    assert reply.reason == "unsupported_media_type"
    assert "application/json" in reply.body["accepted_content_types"]
    _assert_worker_envelope(reply)


async def test_vendor_json_media_type_is_accepted(http: aiohttp.ClientSession, server_url: str) -> None:
    reply = await send(
        http,
        "POST",
        server_url + REGISTER,
        data=b'{"task_queue": "q", "runtime": "python"}',
        headers={"Content-Type": "application/vnd.example+json; charset=utf-8", **WORKER_HEADERS},
    )
    assert reply.status == 201, reply.body


async def test_malformed_json_is_400(http: aiohttp.ClientSession, server_url: str) -> None:
    reply = await send(
        http,
        "POST",
        server_url + REGISTER,
        data=b'{"worker_id": ',
        headers={"Content-Type": "application/json", **WORKER_HEADERS},
    )
    assert reply.status == 400
    assert reply.reason == "malformed_json"
    assert reply.body["json_error"]


async def test_body_checks_come_before_auth(http: aiohttp.ClientSession, token_server_url: str) -> None:
    media = await send(
        http, "POST", token_server_url + REGISTER, data=b"{}", headers={"Content-Type": "text/xml"}
    )
    assert media.status == 415
    syntax = await send(
        http, "POST", token_server_url + REGISTER, data=b"{", headers={"Content-Type": "application/json"}
    )
    assert syntax.status == 400 and syntax.reason == "malformed_json"


# --- 4., 5. authentication and role ---------------------------------------------------------


async def test_missing_or_wrong_token_is_401(http: aiohttp.ClientSession, token_server_url: str) -> None:
    for token in (None, "not-a-token"):
        worker = await send(http, "POST", token_server_url + REGISTER, json=_register_body(), token=token)
        assert worker.status == 401 and worker.reason == "unauthorized"
        _assert_worker_envelope(worker)
        control = await send(http, "GET", token_server_url + "/api/workflows", token=token)
        assert control.status == 401 and control.reason == "unauthorized"


async def test_wrong_role_is_403_with_role_and_allowed_roles(
    http: aiohttp.ClientSession, token_server_url: str, server_tokens: dict[str, str]
) -> None:
    # No version header either: the role check comes first.
    worker_route = await send(
        http, "POST", token_server_url + REGISTER, json=_register_body(), token=server_tokens["operator"]
    )
    assert worker_route.status == 403
    assert worker_route.reason == "forbidden"
    assert worker_route.body["role"] == "operator"
    assert worker_route.body["allowed_roles"] == ["worker"]
    admin_on_worker = await send(
        http, "POST", token_server_url + REGISTER, json=_register_body(), token=server_tokens["admin"]
    )
    assert admin_on_worker.status == 403
    control_route = await send(
        http, "GET", token_server_url + "/api/workflows", token=server_tokens["worker"]
    )
    assert control_route.status == 403
    assert control_route.body["role"] == "worker"
    assert sorted(control_route.body["allowed_roles"]) == ["admin", "operator"]


async def test_right_roles_pass(
    http: aiohttp.ClientSession, token_server_url: str, server_tokens: dict[str, str]
) -> None:
    worker = await send(
        http,
        "POST",
        token_server_url + REGISTER,
        json=_register_body(),
        headers=WORKER_HEADERS,
        token=server_tokens["worker"],
    )
    assert worker.status == 201, worker.body
    for role in ("operator", "admin"):
        control = await send(
            http,
            "GET",
            token_server_url + "/api/workflows",
            headers=CONTROL_HEADERS,
            token=server_tokens[role],
        )
        assert control.status == 200, control.body


# --- 6. version headers ----------------------------------------------------------------------


async def test_missing_worker_protocol_version_is_400(http: aiohttp.ClientSession, server_url: str) -> None:
    reply = await send(http, "POST", server_url + REGISTER, json=_register_body())
    assert reply.status == 400
    assert reply.reason == "missing_protocol_version"
    assert reply.body["supported_version"] == WORKER_PROTOCOL_VERSION
    assert reply.body["requested_version"] is None
    assert reply.body["remediation"]
    _assert_worker_envelope(reply)


@pytest.mark.parametrize("version", ["2.0", "1.21", "one", "1"])
async def test_unsupported_worker_protocol_version_is_400(
    http: aiohttp.ClientSession, server_url: str, version: str
) -> None:
    reply = await send(
        http, "POST", server_url + REGISTER, json=_register_body(), headers={PROTOCOL_HEADER: version}
    )
    assert reply.status == 400
    assert reply.reason == "unsupported_protocol_version"
    assert reply.body["requested_version"] == version


@pytest.mark.parametrize("version", ["1.20", "1.19", "1.0", " 1.20 "])
async def test_older_1x_worker_protocol_versions_are_accepted(
    http: aiohttp.ClientSession, server_url: str, version: str
) -> None:
    reply = await send(
        http, "POST", server_url + REGISTER, json=_register_body(), headers={PROTOCOL_HEADER: version}
    )
    assert reply.status == 201, reply.body


async def test_control_plane_version_header(http: aiohttp.ClientSession, server_url: str) -> None:
    missing = await send(http, "GET", server_url + "/api/workflows")
    assert missing.status == 400 and missing.reason == "missing_control_plane_version"
    assert missing.body["supported_version"] == "2"
    wrong = await send(http, "GET", server_url + "/api/workflows", headers={CONTROL_PLANE_HEADER: "1"})
    assert wrong.status == 400 and wrong.reason == "unsupported_control_plane_version"
    assert wrong.body["requested_version"] == "1"
    ok = await send(http, "GET", server_url + "/api/workflows", headers=CONTROL_HEADERS)
    assert ok.status == 200
    assert ok.headers[CONTROL_PLANE_HEADER] == "2"
    assert PROTOCOL_HEADER not in ok.headers


async def test_version_is_checked_before_the_namespace(http: aiohttp.ClientSession, server_url: str) -> None:
    reply = await send(http, "GET", server_url + "/api/workflows", headers={"X-Namespace": "nowhere"})
    assert reply.reason == "missing_control_plane_version"


# --- 7. namespace ----------------------------------------------------------------------------


async def test_unknown_namespace_is_404(http: aiohttp.ClientSession, server_url: str) -> None:
    by_header = await send(
        http, "GET", server_url + "/api/workflows", headers={**CONTROL_HEADERS, "X-Namespace": "nowhere"}
    )
    assert by_header.status == 404
    assert by_header.reason == "namespace_not_found"
    assert by_header.body["namespace"] == "nowhere"
    by_query = await send(
        http, "GET", server_url + "/api/workflows", headers=CONTROL_HEADERS, params={"namespace": "elsewhere"}
    )
    assert by_query.status == 404 and by_query.body["namespace"] == "elsewhere"
    worker = await send(
        http,
        "POST",
        server_url + REGISTER,
        json=_register_body(),
        headers={**WORKER_HEADERS, "X-Namespace": "no"},
    )
    assert worker.status == 404 and worker.reason == "namespace_not_found"
    _assert_worker_envelope(worker)


async def test_namespace_is_lower_cased(http: aiohttp.ClientSession, server_url: str) -> None:
    reply = await send(
        http, "GET", server_url + "/api/workflows", headers={**CONTROL_HEADERS, "X-Namespace": "DEFAULT"}
    )
    assert reply.status == 200


# --- 8. validation ---------------------------------------------------------------------------


async def test_missing_fields_are_422_with_errors_and_validation_errors(
    http: aiohttp.ClientSession, server_url: str
) -> None:
    reply = await send(http, "POST", server_url + REGISTER, json={"worker_id": 7}, headers=WORKER_HEADERS)
    assert reply.status == 422
    assert reply.reason == "validation_failed"
    assert {"worker_id", "task_queue", "runtime"} <= set(reply.body["errors"])
    assert reply.body["validation_errors"] == reply.body["errors"]
    _assert_worker_envelope(reply)


async def test_a_non_object_body_is_422(http: aiohttp.ClientSession, server_url: str) -> None:
    reply = await send(http, "POST", server_url + "/api/workflows", json=[1, 2], headers=CONTROL_HEADERS)
    assert reply.status == 422 and reply.reason == "validation_failed"


# --- routing ---------------------------------------------------------------------------------


async def test_unknown_route_is_404_not_found(http: aiohttp.ClientSession, server_url: str) -> None:
    reply = await send(http, "GET", server_url + "/api/nothing-here")
    assert reply.status == 404 and reply.reason == "not_found"
    worker = await send(http, "POST", server_url + "/api/worker/nothing", json={}, headers=WORKER_HEADERS)
    assert worker.status == 404 and worker.reason == "not_found"
    _assert_worker_envelope(worker)
    slash = await send(http, "GET", server_url + "/api/workflows/", headers=CONTROL_HEADERS)
    assert slash.status == 404


async def test_wrong_verb_is_405_method_not_allowed(http: aiohttp.ClientSession, server_url: str) -> None:
    reply = await send(http, "DELETE", server_url + "/api/health")
    assert reply.status == 405
    assert reply.reason == "method_not_allowed"
    assert "GET" in reply.headers["Allow"]
    listing = await send(http, "PUT", server_url + "/api/workflows", json={}, headers=CONTROL_HEADERS)
    assert listing.status == 405
    assert {"GET", "POST"} <= {m.strip() for m in listing.headers["Allow"].split(",")}
    poll = await send(http, "GET", server_url + "/api/worker/workflow-tasks/poll", headers=WORKER_HEADERS)
    assert poll.status == 405 and poll.reason == "method_not_allowed"


# --- compression -----------------------------------------------------------------------------


async def test_large_json_is_compressed_per_accept_encoding(
    http: aiohttp.ClientSession, server_url: str
) -> None:
    for accept, expected in (("gzip", "gzip"), ("deflate", "deflate"), ("gzip, deflate", "gzip")):
        reply = await send(http, "GET", server_url + "/api/cluster/info", headers={"Accept-Encoding": accept})
        assert reply.headers.get("Content-Encoding") == expected
        assert reply.headers["Vary"] == "Accept-Encoding"
        assert reply.body["control_plane"]["version"] == "2"
    plain = await send(http, "GET", server_url + "/api/cluster/info", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    small = await send(http, "GET", server_url + "/api/health", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in small.headers


async def test_a_parameter_may_look_like_a_static_segment(
    http: aiohttp.ClientSession, server_url: str
) -> None:
    # "poll" is also a static segment at this depth; the router must still find the history route.
    reply = await send(
        http,
        "POST",
        server_url + "/api/worker/workflow-tasks/poll/history",
        json={"lease_owner": "w", "workflow_task_attempt": 1},
        headers=WORKER_HEADERS,
    )
    assert reply.status == 404 and reply.reason == "task_not_found"


async def test_legacy_token_alone_has_full_access(
    http: aiohttp.ClientSession, dw_server: Callable[..., DwServer]
) -> None:
    server = dw_server("--auth", "token", "--auth-token", "legacy-1")
    worker = await send(
        http, "POST", server.url + REGISTER, json=_register_body(), headers=WORKER_HEADERS, token="legacy-1"
    )
    assert worker.status == 201, worker.body
    control = await send(
        http, "GET", server.url + "/api/workflows", headers=CONTROL_HEADERS, token="legacy-1"
    )
    assert control.status == 200, control.body


async def test_legacy_token_is_admin_only_beside_role_tokens(
    http: aiohttp.ClientSession, dw_server: Callable[..., DwServer]
) -> None:
    server = dw_server("--auth", "token", "--auth-token", "legacy-2", "--worker-token", "w-2")
    worker = await send(
        http, "POST", server.url + REGISTER, json=_register_body(), headers=WORKER_HEADERS, token="legacy-2"
    )
    assert worker.status == 403 and worker.body["role"] == "admin"
    control = await send(
        http, "GET", server.url + "/api/workflows", headers=CONTROL_HEADERS, token="legacy-2"
    )
    assert control.status == 200, control.body
