"""Codec names and the ``encode``/``decode`` entry points that pick a codec by name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from durable_workflow.errors import UnsupportedPayloadCodec
from durable_workflow.serializer import _avro, _json

#: The Avro ``durable_workflow.protocol.Value`` codec: the default, and the only one on the 2.x wire.
AVRO_CODEC: str = "avro"
#: The legacy JSON codec (compact UTF-8 JSON text).
JSON_CODEC: str = "json"

KNOWN_CODECS: frozenset[str] = frozenset((AVRO_CODEC, JSON_CODEC))


def _unsupported(codec: object) -> UnsupportedPayloadCodec:
    return UnsupportedPayloadCodec(f"unsupported payload codec {codec!r} (known: avro, json)")


def encode(value: Any, codec: str = AVRO_CODEC) -> str:
    """Encode one value as a payload blob.

    Args:
        value: A payload value (None, bool, 64-bit int, finite float, bytes, str, list, tuple,
            or a dict with str keys). See :func:`to_payload_value` for richer types.
        codec: ``"avro"`` (the default) or ``"json"``.

    Returns:
        The blob: base64 of the Avro single-object frame, or compact JSON text.

    Raises:
        PayloadEncodeError: the value is outside the payload value model.
        UnsupportedPayloadCodec: the codec name is unknown.
    """
    if codec == AVRO_CODEC:
        return _avro.encode(value)
    if codec == JSON_CODEC:
        return _json.encode(value)
    raise _unsupported(codec)


def decode(blob: str, codec: str = AVRO_CODEC) -> Any:
    """Decode one payload blob.

    Args:
        blob: The blob text, as produced by :func:`encode`.
        codec: The codec that produced it.

    Returns:
        The decoded value. Avro gives back lists for arrays and dicts (in wire order) for maps.

    Raises:
        InvalidPayloadFraming: the blob is malformed for its codec.
        UnsupportedPayloadSchema: an Avro frame carries another schema's fingerprint.
        UnsupportedPayloadCodec: the codec name is unknown.
    """
    if codec == AVRO_CODEC:
        return _avro.decode(blob)
    if codec == JSON_CODEC:
        return _json.decode(blob)
    raise _unsupported(codec)


def encode_many(values: Sequence[Any], codec: str = AVRO_CODEC) -> list[str]:
    """Encode several values with one codec lookup (used when converting command batches).

    Args:
        values: The values, in order.
        codec: The codec for all of them.

    Returns:
        One blob per value, in the same order.
    """
    if codec == AVRO_CODEC:
        enc = _avro.encode
    elif codec == JSON_CODEC:
        enc = _json.encode
    else:
        raise _unsupported(codec)
    return [enc(v) for v in values]
