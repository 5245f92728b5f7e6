"""Retry policies: durable server-side budgets for activities and child workflows, and the
client's own HTTP retry schedule.

:class:`ActivityRetryPolicy` and :class:`ChildWorkflowRetryPolicy` travel with the command that
schedules the activity or starts the child. The server snapshots them when the workflow task
completes, so a later deploy cannot change the budget of work already scheduled.
:class:`TransportRetryPolicy` is unrelated to them: it only says how often the SDK's HTTP client
retries a request that got no usable answer.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

__all__ = ["ActivityRetryPolicy", "ChildWorkflowRetryPolicy", "TransportRetryPolicy"]


def _is_number(value: object) -> TypeGuard[float]:
    """True for a finite int or float; bools are refused although they are ints."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _require_attempts(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"max_attempts must be an integer >= 1, got {value!r}")


def _require_seconds(field_name: str, value: object) -> None:
    if not _is_number(value) or value < 0:
        raise ValueError(f"{field_name} must be a finite number >= 0, got {value!r}")


def _require_coefficient(value: object) -> None:
    if not _is_number(value) or value < 1:
        raise ValueError(f"backoff_coefficient must be a finite number >= 1, got {value!r}")


def _whole_seconds(seconds: float) -> int:
    """Round a delay up to whole seconds, the server's timer resolution.

    The value is first rounded to nanoseconds so that float noise such as
    ``0.7 * 10 == 7.000000000000001`` does not add a spurious second.
    """
    return math.ceil(round(seconds, 9))


@dataclass(frozen=True)
class ActivityRetryPolicy:
    """Retry policy applied to one scheduled activity call.

    It is a durable, server-side budget, recorded with the schedule command; it is not the
    SDK's HTTP retry policy. A failure whose type is named in ``non_retryable_error_types``
    skips the remaining attempts, and so does one the activity reports as non-retryable
    (raise :class:`~durable_workflow.errors.ApplicationError` with ``non_retryable=True``).

    Attributes:
        max_attempts: Total attempts, the first one included (1 means no retry).
        initial_interval_seconds: Delay before the first retry.
        backoff_coefficient: Factor applied to the delay after each retry (>= 1).
        maximum_interval_seconds: Upper bound for any one delay, or None for no bound.
        non_retryable_error_types: Failure type names that are never retried.
        backoff_seconds: An explicit delay per retry; overrides the interval settings.
    """

    max_attempts: int = 3
    initial_interval_seconds: float = 1.0
    backoff_coefficient: float = 2.0
    maximum_interval_seconds: float | None = None
    non_retryable_error_types: list[str] = field(default_factory=list)
    backoff_seconds: Sequence[float] | None = None

    def __post_init__(self) -> None:
        _require_attempts(self.max_attempts)
        _require_seconds("initial_interval_seconds", self.initial_interval_seconds)
        _require_coefficient(self.backoff_coefficient)
        if self.maximum_interval_seconds is not None:
            _require_seconds("maximum_interval_seconds", self.maximum_interval_seconds)
            if self.maximum_interval_seconds < self.initial_interval_seconds:
                raise ValueError(
                    "maximum_interval_seconds must be >= initial_interval_seconds, got "
                    f"{self.maximum_interval_seconds!r} < {self.initial_interval_seconds!r}"
                )
        if isinstance(self.non_retryable_error_types, str) or not all(
            isinstance(name, str) for name in self.non_retryable_error_types
        ):
            raise ValueError(
                f"non_retryable_error_types must be a list of str, got {self.non_retryable_error_types!r}"
            )
        if self.backoff_seconds is not None:
            if isinstance(self.backoff_seconds, (str, bytes)):
                raise ValueError(f"backoff_seconds must be a list of numbers, got {self.backoff_seconds!r}")
            for index, seconds in enumerate(self.backoff_seconds):
                _require_seconds(f"backoff_seconds[{index}]", seconds)

    def backoff_schedule(self) -> list[int]:
        """Return the delay before each retry, in whole seconds.

        Returns:
            ``backoff_seconds`` rounded up when it was given; otherwise ``max_attempts - 1``
            delays of ``initial * coefficient**n``, capped at the maximum and rounded up.
            The defaults give ``[1, 2]``.

        Raises:
            ValueError: the delays grow past what a float can hold (set a maximum).
        """
        if self.backoff_seconds is not None:
            return [_whole_seconds(s) for s in self.backoff_seconds]
        schedule: list[int] = []
        delay = float(self.initial_interval_seconds)
        cap = self.maximum_interval_seconds
        for _ in range(self.max_attempts - 1):
            current = delay if cap is None else min(delay, cap)
            if math.isinf(current):
                raise ValueError(
                    "retry delays grow without bound for this many attempts; set maximum_interval_seconds"
                )
            schedule.append(_whole_seconds(current))
            delay *= self.backoff_coefficient
        return schedule

    def to_wire(self) -> dict[str, Any]:
        """Return the policy in the shape the server records with the command.

        Returns:
            ``{"max_attempts": int, "backoff_seconds": [int, ...],
            "non_retryable_error_types": [str, ...]}``.
        """
        return {
            "max_attempts": self.max_attempts,
            "backoff_seconds": self.backoff_schedule(),
            "non_retryable_error_types": list(self.non_retryable_error_types),
        }


@dataclass(frozen=True)
class ChildWorkflowRetryPolicy(ActivityRetryPolicy):
    """Retry policy applied to one started child workflow call.

    Same fields and wire shape as :class:`ActivityRetryPolicy`; it is recorded with the
    start-child command and governs the server's durable child attempts.
    """


@dataclass(frozen=True)
class TransportRetryPolicy:
    """How the SDK's HTTP client retries a request that got no usable answer.

    This is about connection failures and timeouts between the SDK and the server; it has
    nothing to do with activity or child workflow retries.

    Attributes:
        max_attempts: Total attempts per request, the first one included.
        initial_backoff_seconds: Delay before the first retry.
        backoff_coefficient: Factor applied to the delay after each retry (>= 1).
        maximum_backoff_seconds: Upper bound for any one delay.
        jitter: Fraction in [0, 1]; each delay is spread uniformly by up to this much either way
            so that many clients do not retry in lockstep.
    """

    max_attempts: int = 3
    initial_backoff_seconds: float = 0.1
    backoff_coefficient: float = 2.0
    maximum_backoff_seconds: float = 5.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        _require_attempts(self.max_attempts)
        _require_seconds("initial_backoff_seconds", self.initial_backoff_seconds)
        _require_coefficient(self.backoff_coefficient)
        _require_seconds("maximum_backoff_seconds", self.maximum_backoff_seconds)
        if self.maximum_backoff_seconds < self.initial_backoff_seconds:
            raise ValueError(
                "maximum_backoff_seconds must be >= initial_backoff_seconds, got "
                f"{self.maximum_backoff_seconds!r} < {self.initial_backoff_seconds!r}"
            )
        if not _is_number(self.jitter) or not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be a number between 0 and 1, got {self.jitter!r}")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Return the pause before retry number ``attempt``.

        Args:
            attempt: 1 for the first retry (after the first failed attempt), 2 for the next...
            rng: Source of the jitter; the ``random`` module's shared generator when None.
                Pass a seeded ``random.Random`` for reproducible delays.

        Returns:
            ``initial * coefficient**(attempt - 1)`` capped at the maximum, then spread by
            ``±jitter`` of itself and capped at the maximum again; never negative.
        """
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
            raise ValueError(f"attempt must be an integer >= 1, got {attempt!r}")
        cap = self.maximum_backoff_seconds
        try:
            base = min(self.initial_backoff_seconds * self.backoff_coefficient ** (attempt - 1), cap)
        except OverflowError:
            base = cap  # the power left the float range long after it passed the cap
        if self.jitter:
            spread = (rng or random).uniform(-self.jitter, self.jitter)
            base = min(base * (1.0 + spread), cap)
        return max(base, 0.0)
