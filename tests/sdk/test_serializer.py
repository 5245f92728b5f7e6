"""Payload codecs: byte-exact Avro against the golden table, JSON, envelopes, size warnings, adapter."""

from __future__ import annotations

import base64
import collections
import dataclasses
import datetime
import decimal
import enum
import json
import logging
import struct
import uuid
from pathlib import Path
from typing import Any, NamedTuple

import attrs
import pytest

from durable_workflow import serializer
from durable_workflow.errors import (
    InvalidPayloadFraming,
    PayloadEncodeError,
    PayloadError,
    UnsupportedPayloadCodec,
    UnsupportedPayloadSchema,
)
from durable_workflow.serializer import (
    AVRO_CODEC,
    JSON_CODEC,
    UnsupportedPayloadReference,
    check_size,
    decode,
    decode_envelope,
    encode,
    encode_many,
    envelope,
    to_payload_value,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GOLDEN = json.loads((FIXTURES / "schema" / "avro-value-v1-golden.json").read_text(encoding="utf-8"))
HEADER = bytes.fromhex("c301e2a33dff55802237")

# The golden table leaves the values of its composite cases implicit; these are what the
# bytes say (checked by hand against the hex dump).
COMPOSITE_VALUES: dict[str, Any] = {
    "array": [None, True, 7, 7.0, b"\x00\xff", "text"],
    "map": {"a": 1, "b": [False]},
    "map_empty": {},
    "map_key_0": {"0": "zero"},
    "map_keys_0_1": {"0": "zero", "1": "one"},
    "nested": {"items": [{"enabled": True}, b"bytes", -2.5]},
}
ALTERNATE_ORDER_VALUES: dict[str, Any] = {
    "nested_map_list": {"outer": [{"left": 1, "right": b"x"}], "tail": "done"},
}


def blob_of(datum: bytes) -> str:
    return base64.b64encode(HEADER + datum).decode()


def same(a: Any, b: Any) -> bool:
    """Equality that also tells True from 1, 1 from 1.0 and -0.0 from 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def golden_value(case: dict[str, Any]) -> Any:
    kind = case["kind"]
    if kind == "null":
        return None
    if kind == "long":
        return int(case["value"])
    if kind == "double":
        return float(case["value"])
    if kind == "bytes":
        return base64.b64decode(case["value_base64"])
    if "value" in case:
        return case["value"]
    return COMPOSITE_VALUES[case["name"]]


# --- the golden table ---------------------------------------------------------------


def test_golden_table_header_matches_our_constants() -> None:
    assert GOLDEN["schema"] == "durable_workflow.protocol.Value"
    assert bytes.fromhex(GOLDEN["magic_hex"] + GOLDEN["fingerprint"]) == HEADER
    implicit = {c["name"] for c in GOLDEN["cases"] if c["kind"] in ("array", "map")}
    assert set(COMPOSITE_VALUES) == implicit


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=lambda c: c["name"])
def test_golden_case_encodes_byte_exact(case: dict[str, Any]) -> None:
    assert encode(golden_value(case)) == case["wire_base64"]


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=lambda c: c["name"])
def test_golden_case_decodes(case: dict[str, Any]) -> None:
    assert same(decode(case["wire_base64"]), golden_value(case))


@pytest.mark.parametrize("case", GOLDEN["alternate_map_orders"], ids=lambda c: c["name"])
def test_alternate_map_orders_decode_to_the_same_value(case: dict[str, Any]) -> None:
    expected = ALTERNATE_ORDER_VALUES[case["name"]]
    for wire in case["wire_base64"]:
        value = decode(wire)
        assert value == expected
        # Decoding keeps wire order, so re-encoding reproduces each ordering exactly.
        assert encode(value) == wire


@pytest.mark.parametrize("case", GOLDEN["malformed_frames"], ids=lambda c: c["name"])
def test_malformed_frames_are_rejected_with_the_golden_reason(case: dict[str, Any]) -> None:
    expected = {
        "invalid_payload_framing": InvalidPayloadFraming,
        "unsupported_payload_schema": UnsupportedPayloadSchema,
    }[case["error"]]
    with pytest.raises(expected) as caught:
        decode(case["wire_base64"])
    assert caught.value.reason == case["error"]


# The task-root case (a task whose payload_codec is missing or null) is a rule for the worker's
# task parsing, not for the codecs, so it is tested there.
CODEC_REGRESSIONS = [
    path
    for path in sorted((FIXTURES / "codec_regressions").glob("*.json"))
    if json.loads(path.read_text(encoding="utf-8"))["protocol"]["codec"] != "task-root"
]


@pytest.mark.parametrize("path", CODEC_REGRESSIONS, ids=lambda p: p.stem)
def test_codec_regressions(path: Path) -> None:
    case = json.loads(path.read_text(encoding="utf-8"))
    codec = case["protocol"]["codec"]
    wire = case["framing"]["wire_base64"]
    if case["failure_policy"]["operation"] == "round_trip":
        assert codec == AVRO_CODEC
        value = decode(wire)
        assert value == int(case["value"]["value"]) and type(value) is int
        assert encode(value) == wire
    else:
        # A json-tagged payload on the v2 wire must fail closed, whatever it contains.
        text = base64.b64decode(wire).decode()
        with pytest.raises(UnsupportedPayloadCodec) as caught:
            decode_envelope({"codec": codec, "blob": text}, allowed_codecs={AVRO_CODEC})
        assert caught.value.reason == case["failure_policy"]["error"]


@pytest.mark.parametrize(
    ("value", "blob"),
    [
        (None, "wwHioz3/VYAiNwA="),
        (True, "wwHioz3/VYAiNwIB"),
        (7, "wwHioz3/VYAiNwQO"),
        (["Ada"], "wwHioz3/VYAiNwwCCgZBZGEA"),
        ("hello Ada", "wwHioz3/VYAiNwoSaGVsbG8gQWRh"),
    ],
)
def test_protocol_examples(value: Any, blob: str) -> None:
    assert encode(value) == blob
    assert decode(blob) == value
    assert blob.startswith("wwHioz3/VYAiNw")


# --- Avro encoding details ------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        *(0, 1, -1, 63, -64, 64, -65),  # one-byte varints
        *(1023, 1024, -1024, -1025, 2047, 2048, -2048, -2049),  # around precomputed-table sizes
        *(8191, 8192, 10**9, -(10**12), 2**62, -(2**62), 2**63 - 1, -(2**63)),
    ],
)
def test_long_round_trip_across_varint_sizes(value: int) -> None:
    assert decode(encode(value)) == value


@pytest.mark.parametrize("size", [0, 1, 63, 64, 1023, 1024, 2047, 2048, 5000])
def test_sizes_across_the_precomputed_prefix_boundary(size: int) -> None:
    text = "é" * size
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    items = list(range(size))
    entries = {f"k{i}": i for i in range(size)}
    long_key = {"x" * size: size}
    for value in (text, data, items, entries, long_key):
        assert decode(encode(value)) == value


def test_tuples_and_builtin_subclasses_encode_as_their_base_type() -> None:
    class Color(enum.IntEnum):
        RED = 1

    class Mode(enum.StrEnum):
        FAST = "fast"

    class Point(NamedTuple):
        x: int
        y: int

    value = {
        "tuple": (1, 2),
        "int_enum": Color.RED,
        "str_enum": Mode.FAST,
        "ordered": collections.OrderedDict(b=1, a=2),
        "named": Point(3, 4),
        "bytearray": bytearray(b"ab"),
        Mode.FAST: "key",
    }
    assert same(
        decode(encode(value)),
        {
            "tuple": [1, 2],
            "int_enum": 1,
            "str_enum": "fast",
            "ordered": {"b": 1, "a": 2},
            "named": [3, 4],
            "bytearray": b"ab",
            "fast": "key",
        },
    )


def test_bool_is_not_encoded_as_long() -> None:
    assert decode(encode([True, 1, False, 0])) == [True, 1, False, 0]
    assert [type(v) for v in decode(encode([True, 1]))] == [bool, int]


def test_negative_zero_keeps_its_sign() -> None:
    (value,) = decode(encode([-0.0]))
    assert struct.pack("<d", value) == struct.pack("<d", -0.0)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (2**63, "integer_overflow"),
        (-(2**63) - 1, "integer_overflow"),
        ([10**30], "integer_overflow"),
        (float("nan"), "non_finite_float"),
        ({"x": float("inf")}, "non_finite_float"),
        (float("-inf"), "non_finite_float"),
        ({1: "a"}, "invalid_map_key"),
        ({"ok": {None: 1}}, "invalid_map_key"),
        ({1, 2}, "unsupported_value_type"),
        (object(), "unsupported_value_type"),
        (datetime.date(2026, 1, 1), "unsupported_value_type"),
        ("\ud800", "unsupported_value_type"),
        ({"\udfff": 1}, "unsupported_value_type"),
    ],
)
def test_encode_errors(value: Any, reason: str) -> None:
    with pytest.raises(PayloadEncodeError) as caught:
        encode(value)
    assert caught.value.reason == reason


def test_plain_enum_is_refused_without_the_adapter() -> None:
    class Plain(enum.Enum):
        A = "a"

    with pytest.raises(PayloadEncodeError, match="to_payload_value"):
        encode(Plain.A)
    assert decode(encode(to_payload_value(Plain.A))) == "a"


def test_cyclic_value_is_an_encode_error() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(PayloadEncodeError):
        encode(cyclic)


def test_negative_block_counts_decode() -> None:
    # Array of two longs written as one block of count -2 with its byte size (2), then 0.
    assert decode(blob_of(bytes([0x0C, 0x03, 0x04, 0x04, 0x02, 0x04, 0x04, 0x00]))) == [1, 2]
    # Map {"a": null} in block-size form: count -1, size 3, key "a", null, then 0.
    assert decode(blob_of(bytes([0x0E, 0x01, 0x06, 0x02, 0x61, 0x00, 0x00]))) == {"a": None}


def test_several_blocks_and_a_non_minimal_branch_varint_decode() -> None:
    # Array split into two blocks of one item each.
    assert decode(blob_of(bytes([0x0C, 0x02, 0x04, 0x02, 0x02, 0x04, 0x04, 0x00]))) == [1, 2]
    # Branch index 2 (LongValue) written as a two-byte varint 0x84 0x00, then the long 7.
    assert decode(blob_of(bytes([0x84, 0x00, 0x0E]))) == 7
    assert decode(blob_of(bytes([0x0C, 0x02, 0x84, 0x00, 0x0E, 0x00]))) == [7]


@pytest.mark.parametrize(
    "datum",
    [
        bytes([0x0A, 0x01]),  # string of length -1
        bytes([0x08, 0x03, 0x00]),  # bytes of length -2
        bytes([0x0A, 0x04, 0x61]),  # string shorter than its length
        bytes([0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),  # bytes length far past the end
        bytes([0x02, 0x02]),  # boolean byte 2
        bytes([0x04]) + b"\xff" * 10 + b"\x01",  # varint longer than 10 bytes
        bytes([0x04]) + b"\xff" * 9 + b"\x02",  # varint beyond 64 bits
        bytes([0x0C, 0x01, 0x01]),  # negative block count with a negative size
        bytes([0x0C, 0x02, 0x00]),  # array missing its terminator
        bytes([0x0E, 0x02, 0x02, 0x61]),  # map entry without a value
        bytes([0x81, 0x00]),  # branch -1 as a long varint
        bytes([0x90, 0x01]),  # branch 72
        bytes([0x0A, 0x02, 0xFF]),  # invalid UTF-8
        bytes([0x0E, 0x02, 0x02, 0xC3, 0x00, 0x00]),  # invalid UTF-8 key
    ],
    ids=lambda d: d.hex(),
)
def test_malformed_datums_are_framing_errors(datum: bytes) -> None:
    with pytest.raises(InvalidPayloadFraming):
        decode(blob_of(datum))


def test_deep_nesting_fails_cleanly() -> None:
    datum = bytes([0x0C, 0x02]) * 100_000 + b"\x00" + b"\x00" * 100_000
    with pytest.raises(InvalidPayloadFraming):
        decode(blob_of(datum))


@pytest.mark.parametrize("blob", ["wwHioz3/VYAiNwA", "wwHi oz3/VYAiNwA=", "wwHioz3/VYAiNwA=\n", "é", "=wwH"])
def test_non_strict_base64_is_a_framing_error(blob: str) -> None:
    with pytest.raises(InvalidPayloadFraming):
        decode(blob)


def test_non_text_blob_is_a_framing_error() -> None:
    with pytest.raises(InvalidPayloadFraming):
        decode(42)  # type: ignore[arg-type]


# --- JSON codec -------------------------------------------------------------------------


def test_json_codec_is_compact_and_round_trips() -> None:
    value = {"a": [1, 2.5, -0.0, None, True], "b": {"c": "é"}}
    blob = encode(value, JSON_CODEC)
    assert blob == '{"a":[1,2.5,-0.0,null,true],"b":{"c":"é"}}'
    assert same(decode(blob, JSON_CODEC), value)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (float("nan"), "non_finite_float"),
        ([float("inf")], "non_finite_float"),
        (2**63, "integer_overflow"),
        ({1: 2}, "invalid_map_key"),
        (b"x", "unsupported_value_type"),
        (datetime.datetime(2026, 1, 1), "unsupported_value_type"),
        (uuid.UUID(int=1), "unsupported_value_type"),
        ("\ud800", "unsupported_value_type"),
    ],
)
def test_json_encode_errors_match_avro_reasons(value: Any, reason: str) -> None:
    with pytest.raises(PayloadEncodeError) as caught:
        encode(value, JSON_CODEC)
    assert caught.value.reason == reason


def test_json_accepts_the_same_subclasses_as_avro() -> None:
    class Point(NamedTuple):
        x: int
        y: float

    blob = encode({"p": Point(1, 2.0), "t": (1,)}, JSON_CODEC)
    assert decode(blob, JSON_CODEC) == {"p": [1, 2.0], "t": [1]}


@pytest.mark.parametrize("blob", ["", "{", "NaN", "[1,]", "nul"])
def test_json_decode_errors_are_framing_errors(blob: str) -> None:
    with pytest.raises(InvalidPayloadFraming):
        decode(blob, JSON_CODEC)


# --- codec selection, batches, envelopes -----------------------------------------------------


def test_unknown_codec_is_refused_everywhere() -> None:
    for call in (
        lambda: encode(1, "msgpack"),
        lambda: decode("x", "msgpack"),
        lambda: encode_many([1], "msgpack"),
        lambda: envelope(1, "msgpack"),
        lambda: decode_envelope({"codec": "workflow-serializer-y", "blob": "x"}),
        lambda: decode_envelope("x", codec="msgpack"),
    ):
        with pytest.raises(UnsupportedPayloadCodec) as caught:
            call()
        assert caught.value.reason == "unsupported_payload_codec"


def test_encode_many_matches_encode() -> None:
    values = [None, 1, "a", [1, {"b": b"c"}]]
    assert encode_many(values) == [encode(v) for v in values]
    assert encode_many(values[:3], JSON_CODEC) == ["null", "1", '"a"']
    assert encode_many([]) == []


def test_envelope_round_trip() -> None:
    env = envelope({"x": 1})
    assert env == {"codec": "avro", "blob": encode({"x": 1})}
    assert decode_envelope(env) == {"x": 1}
    assert decode_envelope(envelope([1], JSON_CODEC)) == [1]


def test_decode_envelope_none_and_bare_blobs() -> None:
    assert decode_envelope(None) is None
    assert decode_envelope(encode("hi")) == "hi"
    assert decode_envelope("[1]", codec=JSON_CODEC) == [1]


def test_decode_envelope_allowed_codecs_fail_closed() -> None:
    with pytest.raises(UnsupportedPayloadCodec):
        decode_envelope({"codec": "json", "blob": "null"}, allowed_codecs=[AVRO_CODEC])
    with pytest.raises(UnsupportedPayloadCodec):
        decode_envelope("null", codec=JSON_CODEC, allowed_codecs=[AVRO_CODEC])
    assert decode_envelope(envelope(3), allowed_codecs=[AVRO_CODEC]) == 3


@pytest.mark.parametrize("env", [{"blob": "wwHioz3/VYAiNwA="}, {"codec": None, "blob": "wwHioz3/VYAiNwA="}])
def test_envelope_without_a_codec_fails_closed(env: dict[str, Any]) -> None:
    with pytest.raises(UnsupportedPayloadCodec):
        decode_envelope(env)


@pytest.mark.parametrize("key", ["external_storage", "external_payload"])
def test_external_references_are_reported_unsupported(key: str) -> None:
    env = {"codec": "avro", key: {"uri": "s3://b/p", "sha256": "0" * 64, "size_bytes": 10}}
    with pytest.raises(UnsupportedPayloadReference) as caught:
        decode_envelope(env)
    assert isinstance(caught.value, PayloadError)
    assert caught.value.reason == "unsupported_payload_reference"


@pytest.mark.parametrize("value", [{"codec": "avro"}, {"codec": "avro", "blob": 5}, 5, ["x"], b"x"])
def test_malformed_envelopes_are_framing_errors(value: Any) -> None:
    with pytest.raises(InvalidPayloadFraming):
        decode_envelope(value)


# --- size warnings ----------------------------------------------------------------------


def test_check_size_is_quiet_below_the_threshold(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="durable_workflow.serializer"):
        assert check_size("x" * 99, kind="activity_input", threshold=100) is False
    assert caplog.records == []


def test_check_size_logs_a_structured_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="durable_workflow.serializer"):
        warned = check_size(
            "x" * 100,
            kind="workflow_result",
            name="order",
            threshold=100,
            limit=200,
            context={"workflow_id": "wf-1", "name": "clash", "kind": "clash"},
        )
    assert warned is True
    (record,) = caplog.records
    assert record.name == "durable_workflow.serializer"
    assert record.levelno == logging.WARNING
    fields = record.__dict__
    assert fields["kind"] == "workflow_result"
    assert fields["payload_name"] == "order"
    assert fields["payload_size"] == 100
    assert fields["threshold_bytes"] == 100
    assert fields["limit_bytes"] == 200
    assert fields["workflow_id"] == "wf-1"
    assert fields["context_name"] == "clash"
    assert fields["context_kind"] == "clash"
    assert "approaches" in record.getMessage()


def test_check_size_defaults_and_over_limit_message(caplog: pytest.LogCaptureFixture) -> None:
    assert serializer.DEFAULT_PAYLOAD_LIMIT_BYTES == 2 * 1024 * 1024
    assert int(serializer.DEFAULT_PAYLOAD_LIMIT_BYTES * 0.8) == serializer.DEFAULT_PAYLOAD_SIZE_WARNING
    with caplog.at_level(logging.WARNING, logger="durable_workflow.serializer"):
        assert check_size("x" * (serializer.DEFAULT_PAYLOAD_SIZE_WARNING - 1), kind="query_result") is False
        assert check_size("x" * (serializer.DEFAULT_PAYLOAD_LIMIT_BYTES + 1), kind="query_result") is True
    assert "exceeds" in caplog.records[-1].getMessage()


# --- the adapter ------------------------------------------------------------------------


class Status(enum.Enum):
    OPEN = "open"


@dataclasses.dataclass
class Line:
    sku: str
    status: Status
    price: decimal.Decimal


@dataclasses.dataclass
class Order:
    id: uuid.UUID
    placed: datetime.datetime
    lines: list[Line]
    tags: frozenset[str]


@attrs.define
class Customer:
    name: str
    since: datetime.date
    order: Order


class Model:
    """Stands in for a pydantic model: the adapter only relies on ``model_dump``."""

    def model_dump(self) -> dict[str, Any]:
        return {"when": datetime.time(12, 30), "point": (1, 2)}


def test_to_payload_value_converts_rich_objects_recursively() -> None:
    order = Order(
        id=uuid.UUID(int=7),
        placed=datetime.datetime(2026, 11, 25, 15, 0, tzinfo=datetime.UTC),
        lines=[Line("a-1", Status.OPEN, decimal.Decimal("9.90"))],
        tags=frozenset({"b", "a", "c"}),
    )
    value = to_payload_value({"customer": Customer("Ada", datetime.date(2020, 1, 2), order), "m": Model()})
    assert value == {
        "customer": {
            "name": "Ada",
            "since": "2020-01-02",
            "order": {
                "id": "00000000-0000-0000-0000-000000000007",
                "placed": "2026-11-25T15:00:00+00:00",
                "lines": [{"sku": "a-1", "status": "open", "price": "9.90"}],
                "tags": ["a", "b", "c"],
            },
        },
        "m": {"when": "12:30:00", "point": [1, 2]},
    }
    assert decode(encode(value)) == value


def test_to_payload_value_leaves_plain_and_unknown_values_alone() -> None:
    marker = object()
    assert to_payload_value(marker) is marker
    assert to_payload_value(Order) is Order
    assert to_payload_value([1, "a", b"b", None, 1.5, True]) == [1, "a", b"b", None, 1.5, True]
    assert to_payload_value({Status.OPEN: (1,)}) == {"open": [1]}
    assert sorted(map(repr, to_payload_value({1, "a"}))) == ["'a'", "1"]


def test_public_surface() -> None:
    assert sorted(serializer.__all__) == sorted(
        [
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
    )
    assert (AVRO_CODEC, JSON_CODEC) == ("avro", "json")
