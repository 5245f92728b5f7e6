"""Ids and timestamps: the encodings the protocol shows, exact."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from durable_workflow_server.engine._ids import new_id
from durable_workflow_server.engine._time import iso

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def test_ids_are_26_crockford_characters_led_by_the_millisecond_clock() -> None:
    before = int(time.time() * 1000)
    value = new_id()
    after = int(time.time() * 1000)
    assert len(value) == 26 and set(value) <= set(ALPHABET)
    decoded = 0
    for char in value:
        decoded = decoded * 32 + ALPHABET.index(char)
    assert before <= decoded >> 80 <= after
    assert len({new_id() for _ in range(1000)}) == 1000


@given(st.floats(min_value=0, max_value=4_000_000_000, allow_nan=False))
def test_iso_is_utc_with_microseconds_and_stable_when_repeated(ts: float) -> None:
    first = iso(ts)
    assert first is not None and first.endswith("Z") and len(first) == 27
    assert iso(ts) == first
    assert iso(None) is None
