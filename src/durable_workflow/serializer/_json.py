"""The legacy JSON codec: compact UTF-8 JSON text through orjson.

The 2.x wire carries only Avro; this codec exists for tools and tests that read 0.x/1.x
payloads and for callers that opt in explicitly. It accepts the same value model as the Avro
codec except bytes, which JSON cannot carry, and reports errors with the same reasons.
"""

from __future__ import annotations

from typing import Any

import orjson

from durable_workflow.errors import InvalidPayloadFraming, PayloadEncodeError

_LONG_MIN = -(1 << 63)
_LONG_MAX = (1 << 63) - 1


def _check(v: Any) -> None:
    """Refuse what the value model forbids, before orjson sees it.

    orjson on its own would quietly write NaN as ``null`` and serialise dataclasses, dates,
    enums and UUIDs natively, so JSON payloads would accept values that Avro refuses; this walk
    gives both codecs the same rules (bytes apart, which JSON cannot carry).
    """
    t = type(v)
    if t is str or v is None or t is bool:
        return
    if isinstance(v, int):  # exact bools returned above; bool cannot be subclassed
        if not _LONG_MIN <= v <= _LONG_MAX:
            raise PayloadEncodeError(f"integer {v} is outside the 64-bit range", reason="integer_overflow")
    elif isinstance(v, float):
        if v - v != 0.0:
            raise PayloadEncodeError(f"float {v!r} is not finite", reason="non_finite_float")
    elif isinstance(v, str):
        return
    elif isinstance(v, dict):
        for key, item in v.items():
            if not isinstance(key, str):
                raise PayloadEncodeError(
                    f"map keys must be str, not {type(key).__name__}", reason="invalid_map_key"
                )
            _check(item)
    elif isinstance(v, (list, tuple)):
        for item in v:
            _check(item)
    else:
        raise PayloadEncodeError(
            f"cannot encode a value of type {type(v).__name__} as JSON", reason="unsupported_value_type"
        )


def _default(v: Any) -> Any:
    """Hand orjson the base type of the subclasses it does not serialise itself."""
    if isinstance(v, tuple):  # namedtuples and other tuple subclasses
        return list(v)
    if isinstance(v, float):
        return float(v)
    raise TypeError(f"cannot encode a value of type {type(v).__name__} as JSON")


def encode(value: Any) -> str:
    """Encode a value as compact JSON text.

    Args:
        value: None, bool, 64-bit int, finite float, str, list/tuple or a str-keyed dict.

    Returns:
        The JSON text.
    """
    try:
        _check(value)
    except RecursionError:
        raise PayloadEncodeError(
            "value is nested too deeply (or contains itself)", reason="unsupported_value_type"
        ) from None
    try:
        return orjson.dumps(value, default=_default).decode()
    except (TypeError, orjson.JSONEncodeError) as exc:
        # Reached only for what the walk lets through but orjson refuses (e.g. lone surrogates).
        raise PayloadEncodeError(
            f"cannot encode value as JSON: {exc}", reason="unsupported_value_type"
        ) from None


def decode(blob: str) -> Any:
    """Decode JSON text.

    Args:
        blob: UTF-8 JSON text.

    Returns:
        The decoded value.

    Raises:
        InvalidPayloadFraming: the text is not one valid JSON document.
    """
    if not isinstance(blob, (str, bytes)):
        raise InvalidPayloadFraming(f"a JSON payload must be text, not {type(blob).__name__}")
    try:
        return orjson.loads(blob)
    except orjson.JSONDecodeError as exc:
        raise InvalidPayloadFraming(f"payload is not valid JSON: {exc}") from None
