"""JSON in and out: orjson parsing, orjson rendering, response compression.

Compression follows the protocol (JSON bodies of 1 KiB or more, gzip or deflate per
``Accept-Encoding``, gzip winning ties, ``Vary: Accept-Encoding`` always set). It is done here,
on bytes we already hold, rather than in a middleware that would wrap every ASGI ``send``.
"""

from __future__ import annotations

import zlib
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


def json_response(
    body: Any,
    status: int,
    accept_encoding: str,
    headers: dict[str, str] | None = None,
) -> Response:
    """Render ``body`` as a JSON response, compressed when worthwhile.

    Args:
        body: anything orjson can serialise.
        status: HTTP status.
        accept_encoding: the request's ``Accept-Encoding`` ("" when absent).
        headers: extra response headers.

    Returns:
        The response, with ``Vary: Accept-Encoding``.
    """
    data = orjson.dumps(body)
    out = {"vary": "Accept-Encoding"}
    if headers:
        out.update(headers)
    if len(data) >= COMPRESS_MIN_BYTES:
        encoding = choose_encoding(accept_encoding)
        if encoding is not None:
            wbits = _GZIP_WBITS if encoding == "gzip" else _DEFLATE_WBITS
            data = zlib.compress(data, _COMPRESS_LEVEL, wbits)
            out["content-encoding"] = encoding
    return Response(data, status_code=status, headers=out, media_type="application/json")
