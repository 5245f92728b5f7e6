"""The uvicorn protocol that writes a response's head and body together: same bytes, fewer writes."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from durable_workflow_server._http_protocol import CoalescingHttpToolsProtocol

Message = dict[str, Any]


class FakeTransport:
    """Records each write separately."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def writelines(self, chunks: list[bytes]) -> None:
        self.writes.append(b"".join(chunks))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def one_shot(scope: Message, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def streaming(scope: Message, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"a", "more_body": True})
    await send({"type": "http.response.body", "body": b"b", "more_body": False})


async def start_then_fail(scope: Message, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    raise RuntimeError("boom")


async def serve(protocol_class: type[HttpToolsProtocol], app: Any, *raw: bytes) -> FakeTransport:
    config = uvicorn.Config(app, lifespan="off", log_config=None, proxy_headers=False, server_header=False)
    config.load()
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    for data in raw:
        protocol.data_received(data)
        for _ in range(50):
            await asyncio.sleep(0)
    return transport


def without_date(data: bytes) -> bytes:
    return b"\r\n".join(line for line in data.split(b"\r\n") if not line.startswith(b"date:"))


GET = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"


async def test_head_and_body_leave_in_one_write_with_the_same_bytes() -> None:
    plain = await serve(HttpToolsProtocol, one_shot, GET, GET)
    merged = await serve(CoalescingHttpToolsProtocol, one_shot, GET, GET)
    assert len(plain.writes) == 4
    assert len(merged.writes) == 2
    assert without_date(b"".join(merged.writes)) == without_date(b"".join(plain.writes))
    assert merged.writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and merged.writes[0].endswith(b"\r\n\r\nok")


async def test_a_streamed_body_merges_only_its_first_chunk() -> None:
    plain = await serve(HttpToolsProtocol, streaming, GET)
    merged = await serve(CoalescingHttpToolsProtocol, streaming, GET)
    assert without_date(b"".join(merged.writes)) == without_date(b"".join(plain.writes))
    assert len(merged.writes) == len(plain.writes) - 1


async def test_100_continue_is_not_held_back() -> None:
    head = b"POST /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    transport = await serve(CoalescingHttpToolsProtocol, one_shot, head)
    assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    # The body arrives after the interim answer; the final answer is one write again.
    transport_after = await serve(CoalescingHttpToolsProtocol, one_shot, head, b"hi")
    assert transport_after.writes[0] == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert len(transport_after.writes) == 2 and transport_after.writes[1].endswith(b"ok")


async def test_a_held_head_is_flushed_before_the_connection_closes() -> None:
    transport = await serve(CoalescingHttpToolsProtocol, start_then_fail, GET)
    assert transport.closed
    assert len(transport.writes) == 1 and transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")


async def test_a_large_body_goes_out_with_its_head_unchanged() -> None:
    big = b"x" * (200 * 1024)

    async def large(scope: Message, receive: Any, send: Any) -> None:
        await receive()
        headers = [(b"content-length", str(len(big)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": big})

    plain = await serve(HttpToolsProtocol, large, GET)
    merged = await serve(CoalescingHttpToolsProtocol, large, GET)
    assert len(merged.writes) == 1  # one vectored write
    assert without_date(b"".join(merged.writes)) == without_date(b"".join(plain.writes))
