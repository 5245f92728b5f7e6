"""Retry policies: defaults, validation, the wire shape and the transport backoff schedule."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from durable_workflow.retry_policy import ActivityRetryPolicy, ChildWorkflowRetryPolicy, TransportRetryPolicy


def test_activity_policy_defaults_match_the_documented_signature() -> None:
    policy = ActivityRetryPolicy()
    assert (
        policy.max_attempts,
        policy.initial_interval_seconds,
        policy.backoff_coefficient,
        policy.maximum_interval_seconds,
        policy.non_retryable_error_types,
        policy.backoff_seconds,
    ) == (3, 1.0, 2.0, None, [], None)
    assert [f.name for f in dataclasses.fields(ActivityRetryPolicy)] == [
        "max_attempts",
        "initial_interval_seconds",
        "backoff_coefficient",
        "maximum_interval_seconds",
        "non_retryable_error_types",
        "backoff_seconds",
    ]


def test_default_lists_are_not_shared() -> None:
    first, second = ActivityRetryPolicy(), ActivityRetryPolicy()
    assert first.non_retryable_error_types is not second.non_retryable_error_types


def test_policies_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ActivityRetryPolicy().max_attempts = 5  # type: ignore[misc]


def test_default_wire_shape() -> None:
    assert ActivityRetryPolicy().to_wire() == {
        "max_attempts": 3,
        "backoff_seconds": [1, 2],
        "non_retryable_error_types": [],
    }


@pytest.mark.parametrize(
    ("kwargs", "backoff"),
    [
        ({"max_attempts": 1}, []),
        ({"max_attempts": 6}, [1, 2, 4, 8, 16]),
        ({"max_attempts": 6, "maximum_interval_seconds": 5}, [1, 2, 4, 5, 5]),
        ({"max_attempts": 4, "initial_interval_seconds": 0.5}, [1, 1, 2]),
        ({"max_attempts": 4, "initial_interval_seconds": 1.5, "backoff_coefficient": 1.5}, [2, 3, 4]),
        ({"max_attempts": 3, "initial_interval_seconds": 0}, [0, 0]),
        ({"max_attempts": 4, "backoff_coefficient": 1}, [1, 1, 1]),
        # 0.7 * 10 is 7.000000000000001 in floats; it must still round to 7, not 8.
        ({"max_attempts": 3, "initial_interval_seconds": 0.7, "backoff_coefficient": 10}, [1, 7]),
        ({"max_attempts": 5, "backoff_seconds": [3, 0.5, 10]}, [3, 1, 10]),
        ({"max_attempts": 5, "backoff_seconds": ()}, []),
    ],
)
def test_backoff_schedule(kwargs: dict[str, Any], backoff: list[int]) -> None:
    wire = ActivityRetryPolicy(**kwargs).to_wire()
    assert wire["backoff_seconds"] == backoff
    assert all(type(s) is int for s in wire["backoff_seconds"])


def test_wire_carries_non_retryable_types_as_a_copy() -> None:
    types = ["CardDeclined", "ValueError"]
    wire = ActivityRetryPolicy(non_retryable_error_types=types).to_wire()
    assert wire["non_retryable_error_types"] == types
    assert wire["non_retryable_error_types"] is not types


def test_unbounded_growth_asks_for_a_maximum() -> None:
    with pytest.raises(ValueError, match="maximum_interval_seconds"):
        ActivityRetryPolicy(max_attempts=2000).to_wire()
    capped = ActivityRetryPolicy(max_attempts=2000, maximum_interval_seconds=60).to_wire()
    assert capped["backoff_seconds"][-1] == 60


@pytest.mark.parametrize(
    ("kwargs", "field_name"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 1.5}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
        ({"initial_interval_seconds": -1}, "initial_interval_seconds"),
        ({"initial_interval_seconds": float("nan")}, "initial_interval_seconds"),
        ({"backoff_coefficient": 0.5}, "backoff_coefficient"),
        ({"backoff_coefficient": float("inf")}, "backoff_coefficient"),
        ({"maximum_interval_seconds": -1}, "maximum_interval_seconds"),
        ({"initial_interval_seconds": 10, "maximum_interval_seconds": 5}, "maximum_interval_seconds"),
        ({"backoff_seconds": [1, -2]}, r"backoff_seconds\[1\]"),
        ({"backoff_seconds": "12"}, "backoff_seconds"),
        ({"non_retryable_error_types": "ValueError"}, "non_retryable_error_types"),
        ({"non_retryable_error_types": [ValueError]}, "non_retryable_error_types"),
    ],
)
def test_activity_policy_validation_names_the_field(kwargs: dict[str, Any], field_name: str) -> None:
    for cls in (ActivityRetryPolicy, ChildWorkflowRetryPolicy):
        with pytest.raises(ValueError, match=field_name):
            cls(**kwargs)


def test_child_policy_is_an_activity_policy_with_the_same_fields() -> None:
    policy = ChildWorkflowRetryPolicy(max_attempts=2, non_retryable_error_types=["Fatal"])
    assert isinstance(policy, ActivityRetryPolicy)
    assert [f.name for f in dataclasses.fields(ChildWorkflowRetryPolicy)] == [
        f.name for f in dataclasses.fields(ActivityRetryPolicy)
    ]
    wire = policy.to_wire()
    assert wire == {"max_attempts": 2, "backoff_seconds": [1], "non_retryable_error_types": ["Fatal"]}
    assert policy != ActivityRetryPolicy(max_attempts=2, non_retryable_error_types=["Fatal"])


# --- transport --------------------------------------------------------------------------


def test_transport_defaults() -> None:
    policy = TransportRetryPolicy()
    assert (
        policy.max_attempts,
        policy.initial_backoff_seconds,
        policy.backoff_coefficient,
        policy.maximum_backoff_seconds,
        policy.jitter,
    ) == (3, 0.1, 2.0, 5.0, 0.25)


def test_transport_delay_without_jitter() -> None:
    policy = TransportRetryPolicy(jitter=0)
    delays = [policy.delay(n) for n in range(1, 9)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0])
    assert policy.delay(100_000) == 5.0


def test_transport_delay_with_jitter_stays_in_bounds_and_is_reproducible() -> None:
    policy = TransportRetryPolicy()
    rng = random.Random(7)
    for attempt in range(1, 10):
        base = min(0.1 * 2 ** (attempt - 1), 5.0)
        for _ in range(50):
            delay = policy.delay(attempt, rng)
            assert base * 0.75 <= delay <= min(base * 1.25, 5.0)
    first = [policy.delay(n, random.Random(1)) for n in (1, 2, 3)]
    again = [policy.delay(n, random.Random(1)) for n in (1, 2, 3)]
    assert first == again
    assert len({policy.delay(1, rng) for _ in range(20)}) > 1


@pytest.mark.parametrize("attempt", [0, -1, 1.0, True])
def test_transport_delay_rejects_bad_attempts(attempt: Any) -> None:
    with pytest.raises(ValueError, match="attempt"):
        TransportRetryPolicy().delay(attempt)


@pytest.mark.parametrize(
    ("kwargs", "field_name"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"initial_backoff_seconds": -0.1}, "initial_backoff_seconds"),
        ({"backoff_coefficient": 0.9}, "backoff_coefficient"),
        ({"maximum_backoff_seconds": -1}, "maximum_backoff_seconds"),
        ({"initial_backoff_seconds": 2, "maximum_backoff_seconds": 1}, "maximum_backoff_seconds"),
        ({"jitter": 1.5}, "jitter"),
        ({"jitter": -0.1}, "jitter"),
        ({"jitter": float("nan")}, "jitter"),
    ],
)
def test_transport_validation_names_the_field(kwargs: dict[str, Any], field_name: str) -> None:
    with pytest.raises(ValueError, match=field_name):
        TransportRetryPolicy(**kwargs)
