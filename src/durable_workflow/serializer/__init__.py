"""Payload codecs, envelopes and size warnings.

Every value that crosses the wire (workflow input and results, activity arguments and
results, signals, updates, queries, failure details) is encoded here. The default codec is
Avro ``durable_workflow.protocol.Value`` in a single-object frame, as strict base64 text; a
legacy JSON codec is kept for old payloads and explicit opt-in.

Public API:

- :data:`AVRO_CODEC`, :data:`JSON_CODEC`: codec names.
- :func:`encode`, :func:`decode`, :func:`encode_many`: value <-> blob.
- :func:`envelope`, :func:`decode_envelope`: the ``{"codec", "blob"}`` wire shape.
- :func:`check_size`, :data:`DEFAULT_PAYLOAD_LIMIT_BYTES`, :data:`DEFAULT_PAYLOAD_SIZE_WARNING`.
- :func:`to_payload_value`: the opt-in adapter for enums, dates, UUIDs, dataclasses and models.
- :class:`UnsupportedPayloadReference`: an envelope that points at external storage.

Errors are the :class:`~durable_workflow.errors.PayloadError` family.
"""

from durable_workflow.serializer._adapter import to_payload_value
from durable_workflow.serializer._codecs import AVRO_CODEC, JSON_CODEC, decode, encode, encode_many
from durable_workflow.serializer._envelope import UnsupportedPayloadReference, decode_envelope, envelope
from durable_workflow.serializer._size import (
    DEFAULT_PAYLOAD_LIMIT_BYTES,
    DEFAULT_PAYLOAD_SIZE_WARNING,
    check_size,
)

__all__ = [
    "AVRO_CODEC",
    "DEFAULT_PAYLOAD_LIMIT_BYTES",
    "DEFAULT_PAYLOAD_SIZE_WARNING",
    "JSON_CODEC",
    "UnsupportedPayloadReference",
    "check_size",
    "decode",
    "decode_envelope",
    "encode",
    "encode_many",
    "envelope",
    "to_payload_value",
]
