"""The Avro ``durable_workflow.protocol.Value`` codec, written out by hand for speed.

Every workflow argument, result, signal and query answer passes through here, so the
encoder and decoder avoid a general Avro library: the schema is fixed, and a pair of
type-dispatching recursive functions over a ``bytearray`` beats a schema interpreter by a
wide margin.

Wire layout of a blob (see the protocol notes, section 10): strict base64 of
``C3 01`` + the 8-byte CRC-64-AVRO fingerprint + the datum. The datum is the union branch
index as a zigzag varint followed by the branch's content.
"""

from __future__ import annotations

import binascii
import struct
from typing import Any

from durable_workflow.errors import InvalidPayloadFraming, PayloadEncodeError, UnsupportedPayloadSchema

#: Avro single-object magic bytes.
MAGIC = b"\xc3\x01"
#: CRC-64-AVRO of the schema's Parsing Canonical Form, little-endian (0x37228055ff3da3e2).
FINGERPRINT = bytes.fromhex("e2a33dff55802237")
_HEADER = MAGIC + FINGERPRINT
_HEADER_LEN = len(_HEADER)

# Union branch indexes, already zigzag-encoded: each fits in one byte.
_NULL = 0x00
_BOOLEAN = 0x02
_LONG = 0x04
_DOUBLE = 0x06
_BYTES = 0x08
_STRING = 0x0A
_ARRAY = 0x0C
_MAP = 0x0E

_LONG_MIN = -(1 << 63)
_LONG_MAX = (1 << 63) - 1

_b2a = binascii.b2a_base64
_a2b = binascii.a2b_base64
_pack_double = struct.Struct("<d").pack
_unpack_double = struct.Struct("<d").unpack_from


# Precomputed prefixes for the common small cases, so the hot path is one table lookup and
# one ``+=`` instead of a Python-level varint loop. 1024 covers most strings, byte strings,
# collection sizes and the small ints seen in practice (counters, flags, amounts).
_SMALL = 1024
# Varints of every zigzag value below 2 * _SMALL (all fit in two bytes); both the length
# prefixes (zigzag of n is 2n) and the small ints (zigzag of -1024..1023 is 0..2047) index it.
_VARINTS = tuple(bytes((z,)) if z < 0x80 else bytes(((z & 0x7F) | 0x80, z >> 7)) for z in range(2 * _SMALL))
_LENGTHS = _VARINTS[0 : 2 * _SMALL : 2]
_STRING_PREFIX = tuple(bytes((_STRING,)) + v for v in _LENGTHS)
_BYTES_PREFIX = tuple(bytes((_BYTES,)) + v for v in _LENGTHS)
_ARRAY_PREFIX = tuple(bytes((_ARRAY,)) + v for v in _LENGTHS)
_MAP_PREFIX = tuple(bytes((_MAP,)) + v for v in _LENGTHS)
_KEY_PREFIX = _LENGTHS
_INT_LOW = -_SMALL
_INT_ENCODED = tuple(
    bytes((_LONG,)) + _VARINTS[(v << 1) if v >= 0 else ((~v << 1) | 1)] for v in range(-_SMALL, _SMALL)
)
_EMPTY_ARRAY = bytes((_ARRAY, 0))
_EMPTY_MAP = bytes((_MAP, 0))


def _write_long(buf: bytearray, v: int) -> None:
    """Append a zigzag varint long (the caller has checked the 64-bit range)."""
    z = (v << 1) if v >= 0 else ((~v << 1) | 1)
    while z >= 0x80:
        buf.append((z & 0x7F) | 0x80)
        z >>= 7
    buf.append(z)


def _write(buf: bytearray, v: Any) -> None:
    """Append the datum of one value. Exact-type checks first; subclasses take the slow path.

    Strings are encoded inline rather than through a helper because a function call costs
    as much as the rest of the work for a short string; a lone surrogate surfaces as
    ``UnicodeEncodeError``, which :func:`encode` translates.
    """
    t = type(v)
    if t is str:
        data = v.encode()
        n = len(data)
        if n < _SMALL:
            buf += _STRING_PREFIX[n]
        else:
            buf.append(_STRING)
            _write_long(buf, n)
        buf += data
    elif t is int:
        if _INT_LOW <= v < _SMALL:
            buf += _INT_ENCODED[v - _INT_LOW]
        elif _LONG_MIN <= v <= _LONG_MAX:
            buf.append(_LONG)
            _write_long(buf, v)
        else:
            raise PayloadEncodeError(f"integer {v} is outside the 64-bit range", reason="integer_overflow")
    elif t is dict:
        n = len(v)
        if n == 0:
            buf += _EMPTY_MAP
            return
        if n < _SMALL:
            buf += _MAP_PREFIX[n]
        else:
            buf.append(_MAP)
            _write_long(buf, n)
        for key, item in v.items():
            if type(key) is not str:
                if not isinstance(key, str):
                    raise PayloadEncodeError(
                        f"map keys must be str, not {type(key).__name__}", reason="invalid_map_key"
                    )
                key = str.__str__(key)
            data = key.encode()
            n = len(data)
            if n < _SMALL:
                buf += _KEY_PREFIX[n]
            else:
                _write_long(buf, n)
            buf += data
            _write(buf, item)
        buf.append(0)
    elif t is list or t is tuple:
        n = len(v)
        if n == 0:
            buf += _EMPTY_ARRAY
            return
        if n < _SMALL:
            buf += _ARRAY_PREFIX[n]
        else:
            buf.append(_ARRAY)
            _write_long(buf, n)
        for item in v:
            _write(buf, item)
        buf.append(0)
    elif v is None:
        buf.append(_NULL)
    elif t is bool:
        buf.append(_BOOLEAN)
        buf.append(1 if v else 0)
    elif t is float:
        # ``v - v`` is NaN exactly when v is NaN or infinite: one subtraction, no call.
        if v - v != 0.0:
            raise PayloadEncodeError(f"float {v!r} is not finite", reason="non_finite_float")
        buf.append(_DOUBLE)
        buf += _pack_double(v)
    elif t is bytes:
        n = len(v)
        if n < _SMALL:
            buf += _BYTES_PREFIX[n]
        else:
            buf.append(_BYTES)
            _write_long(buf, n)
        buf += v
    else:
        _write(buf, _builtin_equivalent(v))


def _builtin_equivalent(v: Any) -> Any:
    """Map a subclass of a supported type (IntEnum, StrEnum, OrderedDict, namedtuple...) to its base.

    Plain enums, dates, dataclasses and the like are refused here; :func:`to_payload_value`
    is the opt-in way to turn them into plain values.
    """
    if isinstance(v, int):  # bool cannot be subclassed, so this is IntEnum, IntFlag and kin
        return int(v)
    if isinstance(v, float):
        return float(v)
    if isinstance(v, str):
        return str.__str__(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, dict):
        return dict(v)
    if isinstance(v, (list, tuple)):
        return list(v)
    raise PayloadEncodeError(
        f"cannot encode a value of type {type(v).__name__}; "
        "convert it first (serializer.to_payload_value handles enums, dates, UUIDs, dataclasses...)",
        reason="unsupported_value_type",
    )


def encode(value: Any) -> str:
    """Encode one value as a base64 Avro single-object frame.

    Args:
        value: None, bool, 64-bit int, finite float, bytes, str, list/tuple or a str-keyed dict.

    Returns:
        The blob text.
    """
    buf = bytearray(_HEADER)
    try:
        _write(buf, value)
    except UnicodeEncodeError:
        raise PayloadEncodeError(
            "a string contains characters that UTF-8 cannot encode (lone surrogates)",
            reason="unsupported_value_type",
        ) from None
    except RecursionError:
        raise PayloadEncodeError(
            "value is nested too deeply (or contains itself)", reason="unsupported_value_type"
        ) from None
    return _b2a(buf, newline=False).decode("ascii")


# --- decoding ------------------------------------------------------------------------


def _read_long(data: bytes, pos: int) -> tuple[int, int]:
    """Read a zigzag varint long at ``pos``; return it and the next position."""
    b = data[pos]
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos + 1
    z = b & 0x7F
    shift = 7
    while True:
        pos += 1
        b = data[pos]
        z |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
        if shift > 63:
            raise InvalidPayloadFraming("varint is longer than 10 bytes")
    if z >> 64:
        raise InvalidPayloadFraming("varint does not fit in 64 bits")
    return (z >> 1) ^ -(z & 1), pos + 1


def _read_size(data: bytes, pos: int) -> tuple[int, int]:
    """Read a byte length the slow way (multi-byte or negative); the caller checks bounds."""
    n, pos = _read_long(data, pos)
    if n < 0:
        raise InvalidPayloadFraming(f"negative length {n}")
    return n, pos


def _read_count(data: bytes, pos: int) -> tuple[int, int]:
    """Read an array/map block count; a negative count is followed by a block byte size."""
    count, pos = _read_long(data, pos)
    if count < 0:
        count = -count
        size, pos = _read_long(data, pos)
        if size < 0:
            raise InvalidPayloadFraming(f"negative block size {size}")
    return count, pos


def _past_end() -> InvalidPayloadFraming:
    return InvalidPayloadFraming("a length runs past the end of the frame")


def _read(data: bytes, pos: int) -> tuple[Any, int]:
    """Read one datum at ``pos``; return the value and the next position.

    Speed notes: the branch tags are literals (a constant load is cheaper than a global),
    the common one-byte varints (an even byte below 0x80) are decoded inline and only
    multi-byte or negative ones call a helper, and running off the end of ``data`` is left to
    raise ``IndexError``/``struct.error``, which :func:`decode` reports as truncation. Slices
    never raise, so every length is checked against ``len(data)`` before slicing.
    """
    tag = data[pos]
    if tag < 0x80:
        pos += 1
    else:
        # A non-minimal varint for the branch index is legal Avro, if never written by us.
        branch, pos = _read_long(data, pos)
        if not 0 <= branch <= 7:
            raise InvalidPayloadFraming(f"unknown union branch {branch}")
        tag = branch << 1
    if tag == 0x0A:  # StringValue
        b = data[pos]
        if b < 0x80 and not b & 1:
            pos += 1
            end = pos + (b >> 1)
        else:
            n, pos = _read_size(data, pos)
            end = pos + n
        if end > len(data):
            raise _past_end()
        return data[pos:end].decode(), end
    if tag == 0x04:  # LongValue
        b = data[pos]
        if b < 0x80:
            return (b >> 1) ^ -(b & 1), pos + 1
        return _read_long(data, pos)
    if tag == 0x0E:  # MapValue
        entries: dict[str, Any] = {}
        b = data[pos]
        if b < 0x80 and not b & 1:
            count = b >> 1
            pos += 1
        else:
            count, pos = _read_count(data, pos)
        while count:
            for _ in range(count):
                b = data[pos]
                if b < 0x80 and not b & 1:
                    pos += 1
                    end = pos + (b >> 1)
                else:
                    n, pos = _read_size(data, pos)
                    end = pos + n
                if end > len(data):
                    raise _past_end()
                entries[data[pos:end].decode()], pos = _read(data, end)
            b = data[pos]
            if b < 0x80 and not b & 1:
                count = b >> 1
                pos += 1
            else:
                count, pos = _read_count(data, pos)
        return entries, pos
    if tag == 0x0C:  # ArrayValue
        items: list[Any] = []
        append = items.append
        b = data[pos]
        if b < 0x80 and not b & 1:
            count = b >> 1
            pos += 1
        else:
            count, pos = _read_count(data, pos)
        while count:
            for _ in range(count):
                item, pos = _read(data, pos)
                append(item)
            b = data[pos]
            if b < 0x80 and not b & 1:
                count = b >> 1
                pos += 1
            else:
                count, pos = _read_count(data, pos)
        return items, pos
    if tag == 0x00:  # null
        return None, pos
    if tag == 0x02:  # BooleanValue
        b = data[pos]
        if b > 1:
            raise InvalidPayloadFraming(f"boolean byte {b:#04x} is neither 0 nor 1")
        return b == 1, pos + 1
    if tag == 0x06:  # DoubleValue
        (f,) = _unpack_double(data, pos)
        if f - f != 0.0:
            raise InvalidPayloadFraming(f"double {f!r} is not finite")
        return f, pos + 8
    if tag == 0x08:  # BytesValue
        b = data[pos]
        if b < 0x80 and not b & 1:
            pos += 1
            end = pos + (b >> 1)
        else:
            n, pos = _read_size(data, pos)
            end = pos + n
        if end > len(data):
            raise _past_end()
        return data[pos:end], end
    raise InvalidPayloadFraming(f"unknown union branch (tag byte {tag:#04x})")


def decode(blob: str) -> Any:
    """Decode a blob produced by :func:`encode` (or any conforming Avro writer).

    Args:
        blob: Strict base64 text of an Avro single-object frame.

    Returns:
        The decoded value: None, bool, int, float, bytes, str, list or dict.

    Raises:
        InvalidPayloadFraming: bad base64, magic, truncation, trailing bytes, bad branch...
        UnsupportedPayloadSchema: the frame names another schema's fingerprint.
    """
    try:
        data = _a2b(blob, strict_mode=True)
    except (ValueError, TypeError):
        raise InvalidPayloadFraming("payload blob is not strict base64") from None
    if data[:_HEADER_LEN] != _HEADER or len(data) == _HEADER_LEN:
        _reject_header(data)
    try:
        value, pos = _read(data, _HEADER_LEN)
    except (IndexError, struct.error):
        raise InvalidPayloadFraming("payload datum is truncated") from None
    except UnicodeDecodeError:
        raise InvalidPayloadFraming("payload string is not valid UTF-8") from None
    except RecursionError:
        raise InvalidPayloadFraming("payload datum is nested too deeply") from None
    if pos != len(data):
        raise InvalidPayloadFraming(f"{len(data) - pos} trailing bytes after the datum")
    return value


def _reject_header(data: bytes) -> None:
    """Raise the precise error for a frame whose header is wrong or which has no datum."""
    if not data:
        raise InvalidPayloadFraming("payload blob is empty")
    if data[:2] != MAGIC:
        raise InvalidPayloadFraming("payload does not start with the Avro single-object magic C3 01")
    if len(data) < _HEADER_LEN:
        raise InvalidPayloadFraming("payload frame is shorter than its header")
    if data[2:_HEADER_LEN] != FINGERPRINT:
        raise UnsupportedPayloadSchema(
            f"payload schema fingerprint {data[2:_HEADER_LEN].hex()} is not "
            f"durable_workflow.protocol.Value ({FINGERPRINT.hex()})"
        )
    raise InvalidPayloadFraming("payload frame has no datum")
