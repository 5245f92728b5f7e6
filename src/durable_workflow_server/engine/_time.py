"""The protocol's timestamp format: ``2026-08-01T10:05:00.000000Z`` (UTC, microseconds)."""

from __future__ import annotations

from datetime import UTC, datetime

# The last few instants formatted: a request formats the same "now" (and the same lease or
# deadline) several times, and formatting is a visible share of a request's CPU.
_RECENT: dict[float, str] = {}
_RECENT_MAX = 64


def iso(ts: float | None) -> str | None:
    """Format epoch seconds; ``None`` stays ``None``."""
    if ts is None:
        return None
    return iso_now(ts)


def iso_now(ts: float) -> str:
    """Format epoch seconds that are known to be present."""
    text = _RECENT.get(ts)
    if text is None:
        # isoformat is about twice as fast as strftime; "+00:00" becomes the protocol's "Z".
        text = datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")[:-6] + "Z"
        if len(_RECENT) >= _RECENT_MAX:
            _RECENT.clear()
        _RECENT[ts] = text
    return text
