"""Property tests for the payload codecs: round trips over arbitrary values, and fuzzed input
that must either decode or fail with a PayloadError (never another exception)."""

from __future__ import annotations

import base64
import struct
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from durable_workflow.errors import PayloadError
from durable_workflow.serializer import AVRO_CODEC, JSON_CODEC, decode, encode

HEADER = bytes.fromhex("c301e2a33dff55802237")

longs = st.integers(min_value=-(2**63), max_value=2**63 - 1)
finite_floats = st.floats(allow_nan=False, allow_infinity=False)


def values(*, with_bytes: bool) -> st.SearchStrategy[Any]:
    """Arbitrary payload values; JSON cannot carry bytes, so it can leave them out."""
    scalars: st.SearchStrategy[Any] = st.none() | st.booleans() | longs | finite_floats | st.text()
    if with_bytes:
        scalars = scalars | st.binary()
    return st.recursive(
        scalars,
        lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(), children, max_size=6),
        max_leaves=30,
    )


def same(a: Any, b: Any) -> bool:
    """Equality that tells True from 1, 1 from 1.0 and -0.0 from 0.0 (by bit pattern)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


@given(values(with_bytes=True))
def test_avro_round_trip(value: Any) -> None:
    blob = encode(value, AVRO_CODEC)
    assert same(decode(blob, AVRO_CODEC), value)


@given(values(with_bytes=True))
def test_avro_encoding_is_canonical(value: Any) -> None:
    # Decoding keeps map order, so a decoded value re-encodes to the very same blob.
    blob = encode(value)
    assert encode(decode(blob)) == blob
    assert base64.b64decode(blob, validate=True).startswith(HEADER)


@given(values(with_bytes=False))
def test_json_round_trip(value: Any) -> None:
    blob = encode(value, JSON_CODEC)
    assert same(decode(blob, JSON_CODEC), value)


def decodes_or_payload_error(blob: str, codec: str = AVRO_CODEC) -> None:
    try:
        decode(blob, codec)
    except PayloadError:
        pass


@settings(max_examples=300)
@given(st.binary(max_size=64))
def test_avro_arbitrary_datums_decode_or_fail_cleanly(datum: bytes) -> None:
    decodes_or_payload_error(base64.b64encode(HEADER + datum).decode())


@settings(max_examples=300)
@given(st.binary(max_size=32))
def test_avro_arbitrary_frames_decode_or_fail_cleanly(frame: bytes) -> None:
    decodes_or_payload_error(base64.b64encode(frame).decode())


@given(st.text(max_size=40))
def test_avro_arbitrary_text_decodes_or_fails_cleanly(text: str) -> None:
    decodes_or_payload_error(text)


@settings(max_examples=300)
@given(values(with_bytes=True), st.data())
def test_avro_mutated_frames_decode_or_fail_cleanly(value: Any, data: st.DataObject) -> None:
    frame = bytearray(base64.b64decode(encode(value)))
    # Damage the datum (not the header, which the other tests cover): cut it, or change bytes.
    if data.draw(st.booleans(), label="truncate"):
        frame = frame[: data.draw(st.integers(len(HEADER), len(frame)), label="cut")]
    else:
        for _ in range(data.draw(st.integers(1, 4), label="flips")):
            index = data.draw(st.integers(len(HEADER), len(frame) - 1), label="index")
            frame[index] = data.draw(st.integers(0, 255), label="byte")
    decodes_or_payload_error(base64.b64encode(bytes(frame)).decode())


@given(st.text(max_size=40))
def test_json_arbitrary_text_decodes_or_fails_cleanly(text: str) -> None:
    decodes_or_payload_error(text, JSON_CODEC)
