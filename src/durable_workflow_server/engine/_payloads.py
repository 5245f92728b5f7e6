"""Payload envelopes at the server edge.

History and rows store bare blob strings (worker-plane §6). A value that the client kept in
external storage is stored as ``dw-external-payload:v1:`` + base64(JSON of its reference), so
it still fits a string column, and is expanded back into its envelope before anyone sees it.
The server never decodes Avro except to encode a plain JSON start input and to show a
readable ``input``/``output`` in describe.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from durable_workflow import serializer
from durable_workflow.protocol import PAYLOAD_CODEC

_EXTERNAL_PREFIX = "dw-external-payload:v1:"


class PayloadInvalid(ValueError):
    """The value is not an acceptable payload; the message says why."""


def stored_from_envelope(value: Any) -> str | None:
    """Turn a wire payload (envelope or None) into what rows and history store.

    Raises:
        PayloadInvalid: not an ``avro`` envelope with a blob or an external reference.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise PayloadInvalid("must be an object {codec, blob}")
    if value.get("codec") != PAYLOAD_CODEC:
        raise PayloadInvalid("codec must be 'avro'")
    blob = value.get("blob")
    if isinstance(blob, str) and blob:
        return blob
    external = value.get("external_storage")
    if isinstance(external, dict) and isinstance(external.get("uri"), str):
        return _EXTERNAL_PREFIX + base64.b64encode(orjson.dumps(value)).decode()
    raise PayloadInvalid("must carry a non-empty 'blob' string or an 'external_storage' reference")


def stored_from_command(value: Any, payload_codec: Any) -> str | None:
    """Like :func:`stored_from_envelope`, also accepting a raw blob with ``payload_codec: avro``."""
    if isinstance(value, str):
        if payload_codec not in (None, PAYLOAD_CODEC):
            raise PayloadInvalid("payload_codec must be 'avro'")
        if not value:
            raise PayloadInvalid("blob must not be empty")
        return value
    return stored_from_envelope(value)


def envelope(stored: str | None) -> dict[str, Any] | None:
    """The wire envelope of a stored value (``None`` stays ``None``)."""
    if stored is None:
        return None
    if stored.startswith(_EXTERNAL_PREFIX):
        loaded: dict[str, Any] = orjson.loads(base64.b64decode(stored[len(_EXTERNAL_PREFIX) :]))
        return loaded
    return {"codec": PAYLOAD_CODEC, "blob": stored}


def start_input(value: Any) -> str:
    """The stored form of a start ``input``: a JSON array is Avro-encoded; absent is ``[]``.

    Raises:
        PayloadInvalid: anything but an array or an ``avro`` envelope.
    """
    if value is None:
        value = []
    if isinstance(value, list):
        try:
            blob: str = serializer.encode(value)
        except Exception as exc:  # the codec's own error text is the useful message
            raise PayloadInvalid(f"cannot be encoded: {exc}") from exc
        return blob
    stored = stored_from_envelope(value)
    if stored is None:  # pragma: no cover - value was not None
        raise PayloadInvalid("must not be null")
    return stored


def readable(stored: str | None) -> Any:
    """A decoded copy for humans (describe's ``input``/``output``), or None if not decodable."""
    if stored is None or stored.startswith(_EXTERNAL_PREFIX):
        return None
    try:
        return serializer.decode(stored)
    except Exception:  # a display convenience only; the envelope is authoritative
        return None
