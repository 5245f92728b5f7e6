"""JSON in and out: orjson parsing, orjson rendering, response compression.

Compression follows the protocol (JSON bodies of 1 KiB or more, gzip or deflate per
``Accept-Encoding``, gzip winning ties, ``Vary: Accept-Encoding`` always set). It is done here,
on bytes we already hold, rather than in a middleware that would wrap every ASGI ``send``.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from starlette.responses import Response

from durable_workflow_server.api._errors import ApiError

COMPRESS_MIN_BYTES = 1024
#: Level 1 keeps most of the size win on typical JSON for a fraction of level 6's CPU; on the
#: loopback deployments we are benchmarked on, compression is pure cost, so it must be cheap.
_COMPRESS_LEVEL = 1
_GZIP_WBITS = 31  # zlib's way of asking for a gzip header and trailer
_DEFLATE_WBITS = 15  # HTTP "deflate" is the zlib format (RFC 9110 8.4.1.2)

_encoding_cache: dict[str, str | None] = {}
_ENCODING_CACHE_MAX = 64


def parse_json(raw: bytes) -> Any:
    """Decode a request body.

    Args:
        raw: the body bytes (non-empty).

    Returns:
        The decoded value.

    Raises:
        ApiError: 400 ``malformed_json`` with ``json_error``.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(
            400, "malformed_json", "The request body is not valid JSON.", json_error=str(exc)
        ) from None


def choose_encoding(accept_encoding: str) -> str | None:
    """Pick ``gzip``, ``deflate`` or nothing for an ``Accept-Encoding`` value.

    Args:
        accept_encoding: the raw header value ("" when absent).

    Returns:
        The coding with the highest q-value among the two we offer, gzip on a tie.
    """
    if not accept_encoding:
        return None
    cached = _encoding_cache.get(accept_encoding, "")
    if cached != "":
        return cached
    listed: dict[str, float] = {}
    for item in accept_encoding.split(","):
        name, _, params = item.partition(";")
        q = 1.0
        params = params.strip()
        if params[:2].lower() == "q=":
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        listed[name.strip().lower()] = q
    star = listed.get("*", 0.0)
    gzip_q = listed.get("gzip", listed.get("x-gzip", star))
    deflate_q = listed.get("deflate", star)
    best: str | None = None
    if gzip_q > 0 and gzip_q >= deflate_q:
        best = "gzip"
    elif deflate_q > 0:
        best = "deflate"
    if len(_encoding_cache) < _ENCODING_CACHE_MAX:
        _encoding_cache[accept_encoding] = best
    return best


class JsonAnswer(Response):
    """A rendered JSON answer: the body bytes and the raw header list, nothing computed later.

    ``Response.__init__`` re-encodes and re-scans the headers of every answer; ours are
    pre-encoded pairs (see :func:`json_response`).
    """

    media_type = "application/json"

    def __init__(self, body: bytes, status_code: int, raw_headers: list[tuple[bytes, bytes]]) -> None:
        """Wrap what :func:`json_response` built.

        Args:
            body: the (possibly compressed) body.
            status_code: HTTP status.
            raw_headers: every response header, names lower-case.
        """
        self.status_code = status_code
        self.background = None
        self.body = body
        self.raw_headers = raw_headers


_VARY = (b"vary", b"Accept-Encoding")
_CONTENT_TYPE = (b"content-type", b"application/json")
_CONTENT_ENCODING = {"gzip": (b"content-encoding", b"gzip"), "deflate": (b"content-encoding", b"deflate")}


def encode_headers(headers: Mapping[str, str]) -> tuple[tuple[bytes, bytes], ...]:
    """Encode headers for :func:`json_response` (names lower-cased, latin-1 as in HTTP).

    Args:
        headers: name -> value.

    Returns:
        The raw pairs.
    """
    return tuple((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())


def json_response(
    body: Any,
    status: int,
    accept_encoding: bytes | None,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> JsonAnswer:
    """Render ``body`` as a JSON response, compressed when worthwhile.

    Args:
        body: anything orjson can serialise.
        status: HTTP status.
        accept_encoding: the request's raw ``Accept-Encoding`` (None when absent).
        headers: extra response headers, encoded (see :func:`encode_headers`).

    Returns:
        The response, with ``Vary: Accept-Encoding``.
    """
    data = orjson.dumps(body)
    out = [_VARY, *headers]
    if len(data) >= COMPRESS_MIN_BYTES and accept_encoding:
        encoding = choose_encoding(accept_encoding.decode("latin-1"))
        if encoding is not None:
            wbits = _GZIP_WBITS if encoding == "gzip" else _DEFLATE_WBITS
            data = zlib.compress(data, _COMPRESS_LEVEL, wbits)
            out.append(_CONTENT_ENCODING[encoding])
    out.append((b"content-length", b"%d" % len(data)))
    out.append(_CONTENT_TYPE)
    return JsonAnswer(data, status, out)
