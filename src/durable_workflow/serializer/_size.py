"""Payload size limits and the structured warning for blobs that approach them.

The server rejects request bodies above its ``max_payload_bytes`` (2 MiB by default) with a
413. The SDK has no hard limit of its own: it warns early so the author can move large data
out of the payload before a run starts failing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

#: The server's default request-body limit.
DEFAULT_PAYLOAD_LIMIT_BYTES: int = 2 * 1024 * 1024
#: Warn at 80% of the limit.
DEFAULT_PAYLOAD_SIZE_WARNING: int = 1_677_721

logger = logging.getLogger("durable_workflow.serializer")

# ``logging`` refuses ``extra`` keys that shadow LogRecord attributes (``name`` among them),
# so such keys are written with a prefix instead of raising inside the caller's hot path.
_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def check_size(
    blob: str,
    *,
    kind: str,
    name: str | None = None,
    threshold: int = DEFAULT_PAYLOAD_SIZE_WARNING,
    limit: int = DEFAULT_PAYLOAD_LIMIT_BYTES,
    context: Mapping[str, Any] | None = None,
) -> bool:
    """Log a structured warning when an encoded blob is at or above ``threshold`` bytes.

    The record's extra fields are ``kind``, ``payload_name`` (the ``name`` argument; logging
    reserves ``name`` for the logger), ``payload_size``, ``threshold_bytes``, ``limit_bytes``
    and every ``context`` item (a key that clashes with a LogRecord attribute or one of those
    fields gets a ``context_`` prefix).

    Args:
        blob: The encoded blob (base64 or JSON text: one character per byte).
        kind: What the payload is, e.g. ``activity_input``, ``workflow_result``, ``query_result``.
        name: The activity, workflow, signal or query name it belongs to, if any.
        threshold: The size that triggers the warning.
        limit: The server limit, reported alongside.
        context: More fields for the record, such as ``workflow_id`` or ``task_queue``.

    Returns:
        True when a warning was logged.
    """
    size = len(blob)
    if size < threshold:
        return False
    extra: dict[str, Any] = {
        "kind": kind,
        "payload_name": name,
        "payload_size": size,
        "threshold_bytes": threshold,
        "limit_bytes": limit,
    }
    for key, item in (context or {}).items():
        extra[f"context_{key}" if key in _RESERVED or key in extra else key] = item
    over = "exceeds" if size > limit else "approaches"
    label = f"{kind} payload" if name is None else f"{kind} payload of {name!r}"
    logger.warning(
        "%s is %d bytes and %s the %d-byte payload limit",
        label,
        size,
        over,
        limit,
        extra=extra,
    )
    return True
