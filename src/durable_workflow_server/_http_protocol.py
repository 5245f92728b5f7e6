"""uvicorn's httptools protocol, writing each response's head and body in one ``send``.

uvicorn writes the status line and headers as soon as the application sends
``http.response.start``, and the body separately; uvloop sends each write at once, so every
answer costs two ``send`` system calls and two TCP segments, and the client usually wakes up
twice to read them. This protocol holds the head back until the next write of the same
response (its body) and writes both together. The application sends start and body back to
back (every answer is rendered whole), so nothing waits on the held head; it is also flushed
when the response completes, before the connection closes, and whenever anything else is
written, so the bytes on the wire and their order are unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["CoalescingHttpToolsProtocol"]

_INFORMATIONAL = b"HTTP/1.1 1"  # "100 Continue" must reach the client at once
_COPY_LIMIT = 64 * 1024  # below this, joining head and body is cheaper than a vectored write


class _CoalescingTransport:
    """A transport proxy that can hold one write back until the next one."""

    __slots__ = ("_held", "_transport", "hold_next")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: bytes | None = None
        #: Set when a request starts: its response head is the next write.
        self.hold_next = False

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if len(data) < _COPY_LIMIT:
                self._transport.write(held + data)
            else:
                self._transport.writelines((held, data))  # one writev, no copy of a large body
        elif self.hold_next and not data.startswith(_INFORMATIONAL):
            self.hold_next = False
            self._held = data
        else:
            self._transport.write(data)

    def writelines(self, list_of_data: Iterable[bytes]) -> None:
        self.flush()
        self._transport.writelines(list_of_data)

    def flush(self) -> None:
        """Write a held write now."""
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held)

    def drop(self) -> None:
        """Forget a held write: the connection is gone."""
        self._held = None

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        # Asked after every response: worth a method of its own rather than __getattr__.
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` whose responses leave in one write (see the module docstring)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_CoalescingTransport(transport))  # type: ignore[arg-type]

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        self.transport.hold_next = True  # type: ignore[attr-defined]
        super()._start_asgi_task(cycle, app)

    def on_response_complete(self) -> None:
        self.transport.flush()  # type: ignore[attr-defined]
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport.drop()  # type: ignore[attr-defined]
        super().connection_lost(exc)
