"""The protocol's timestamp format: ``2026-08-01T10:05:00.000000Z`` (UTC, microseconds)."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(ts: float | None) -> str | None:
    """Format epoch seconds; ``None`` stays ``None``."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_now(ts: float) -> str:
    """Format epoch seconds that are known to be present."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
