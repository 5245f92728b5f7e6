"""The aiohttp transport against a real local HTTP server: what goes out, what comes back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from durable_workflow.client import AiohttpTransport


@pytest.fixture
async def echo_server() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A server answering every request with what it received; also kept in a list."""
    seen: list[dict[str, Any]] = []

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        entry = {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": body.decode(),
        }
        seen.append(entry)
        response = web.json_response(entry)
        response.headers["X-Echo"] = "Yes"
        response.set_cookie("session", "abc")
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


async def test_headers_body_and_answer(echo_server: tuple[str, list[dict[str, Any]]]) -> None:
    url, seen = echo_server
    transport = AiohttpTransport(url + "/")
    try:
        reply = await transport.request(
            "POST", "/api/things", json={"a": 1}, params={"q": "x y"}, headers={"X-Namespace": "ns"}
        )
        assert reply.status == 200
        assert reply.headers["x-echo"] == "Yes"  # names lower-cased
        assert reply.headers["content-type"].startswith("application/json")
        sent = seen[-1]
        assert (sent["method"], sent["path"], sent["query"]) == ("POST", "/api/things", {"q": "x y"})
        assert sent["body"] == '{"a":1}'
        assert sent["headers"]["content-type"] == "application/json"
        assert sent["headers"]["accept-encoding"] == "identity"
        assert sent["headers"]["x-namespace"] == "ns"
        assert "cookie" not in sent["headers"]
        assert reply.json()["path"] == "/api/things"
    finally:
        await transport.close()


async def test_header_sets_are_reused_but_never_mixed(echo_server: tuple[str, list[dict[str, Any]]]) -> None:
    url, seen = echo_server
    transport = AiohttpTransport(url)
    try:
        await transport.request("GET", "/a", headers={"X-One": "1"})
        await transport.request("POST", "/b", json=[], headers={"X-One": "1"})
        await transport.request("GET", "/c", headers={"X-Two": "2", "Accept-Encoding": "gzip"})
        await transport.request("GET", "/d", headers={"X-One": "1"})
        first, with_body, other, again = (entry["headers"] for entry in seen)
        assert first["x-one"] == "1" and "content-type" not in first
        assert with_body["content-type"] == "application/json"
        assert "x-one" not in other and other["x-two"] == "2"
        assert other["accept-encoding"] == "gzip"  # the caller's choice wins
        assert again == first
    finally:
        await transport.close()


async def test_a_cookie_from_the_server_is_never_sent_back(
    echo_server: tuple[str, list[dict[str, Any]]],
) -> None:
    url, seen = echo_server
    transport = AiohttpTransport(url)
    try:
        await transport.request("GET", "/one", headers={"Cookie": "sent=by-caller"})
        await transport.request("GET", "/two")
        assert seen[0]["headers"]["cookie"] == "sent=by-caller"
        assert "cookie" not in seen[1]["headers"]
    finally:
        await transport.close()
