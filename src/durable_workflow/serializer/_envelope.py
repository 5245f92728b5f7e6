"""Payload envelopes: the ``{"codec", "blob"}`` objects that carry payloads on the wire.

History stores bare blob strings; task arguments, command payloads, activity results, query
results and failure details travel as envelopes naming their codec. ``None`` means "no payload".
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from durable_workflow.errors import InvalidPayloadFraming, PayloadError, UnsupportedPayloadCodec
from durable_workflow.serializer._codecs import AVRO_CODEC, KNOWN_CODECS, decode, encode

# Keys under which a payload's bytes live outside the envelope (direct-driver external storage
# and the runtime external-payload transport); resolving them is not implemented yet.
_REFERENCE_KEYS = ("external_storage", "external_payload")


class UnsupportedPayloadReference(PayloadError):
    """An envelope points at externally stored bytes that this reader cannot fetch."""

    reason = "unsupported_payload_reference"


def envelope(value: Any, codec: str = AVRO_CODEC) -> dict[str, str]:
    """Encode a value and wrap it in a wire envelope.

    Args:
        value: The payload value.
        codec: The codec to encode with.

    Returns:
        ``{"codec": codec, "blob": <blob>}``.
    """
    return {"codec": codec, "blob": encode(value, codec)}


def decode_envelope(
    value: Any,
    *,
    codec: str | None = None,
    allowed_codecs: Collection[str] | None = None,
) -> Any:
    """Decode a payload as found on the wire: an envelope, a bare blob, or ``None``.

    Args:
        value: ``None`` (no payload), a ``{"codec", "blob"}`` envelope, or a bare blob string.
        codec: The codec of a bare blob (the task's ``payload_codec``); Avro when not given.
            An envelope names its own codec and ignores this.
        allowed_codecs: When given, the codecs this caller accepts; any other fails closed.

    Returns:
        The decoded value, or ``None`` for no payload.

    Raises:
        UnsupportedPayloadCodec: the codec is missing, unknown or not in ``allowed_codecs``.
        UnsupportedPayloadReference: the envelope refers to externally stored bytes.
        InvalidPayloadFraming: the value is neither an envelope nor a blob, or the blob is bad.
    """
    if value is None:
        return None
    if isinstance(value, str):
        name = AVRO_CODEC if codec is None else codec
        _check_codec(name, allowed_codecs)
        return decode(value, name)
    if isinstance(value, dict):
        tag = value.get("codec")
        if not isinstance(tag, str):
            # A missing or null codec fails closed like an unknown one (protocol section 10).
            raise UnsupportedPayloadCodec("payload envelope names no codec")
        _check_codec(tag, allowed_codecs)
        blob = value.get("blob")
        if isinstance(blob, str):
            return decode(blob, tag)
        for key in _REFERENCE_KEYS:
            if key in value:
                raise UnsupportedPayloadReference(
                    f"payload is stored externally ({key}); external payload references are not supported"
                )
        raise InvalidPayloadFraming("payload envelope has no blob string")
    raise InvalidPayloadFraming(f"expected a payload envelope or blob, not {type(value).__name__}")


def _check_codec(name: str, allowed_codecs: Collection[str] | None) -> None:
    """Fail closed on codecs we do not know or the caller does not accept."""
    if name not in KNOWN_CODECS or (allowed_codecs is not None and name not in allowed_codecs):
        raise UnsupportedPayloadCodec(f"unsupported payload codec {name!r}")
