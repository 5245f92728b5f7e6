"""Protocol versions and the HTTP headers that carry them."""

from __future__ import annotations

#: The worker-plane protocol version this code speaks and the server advertises.
WORKER_PROTOCOL_VERSION = "1.20"
#: The control-plane version; requests must send exactly this value.
CONTROL_PLANE_VERSION = "2"

PROTOCOL_HEADER = "X-Durable-Workflow-Protocol-Version"
CONTROL_PLANE_HEADER = "X-Durable-Workflow-Control-Plane-Version"
NAMESPACE_HEADER = "X-Namespace"

#: What a polling worker puts in ``Accept`` (the published 2.12.0 SDK sends the same).
ACCEPT_POLL = "application/vnd.durable-workflow.poll.v1+json, application/json;q=0.9"

#: The only payload codec tag on the v2 wire.
PAYLOAD_CODEC = "avro"

_MAX_MINOR = int(WORKER_PROTOCOL_VERSION.split(".")[1])


def is_supported_worker_protocol(value: str | None) -> bool:
    """Return True for ``1.x`` with ``x`` at most our own minor version.

    Upstream servers demand an exact match; we accept every older 1.x client so that
    the published SDKs (which send 1.19 or 1.20) and our own SDK all work.
    """
    if value is None:
        return False
    parts = value.strip().split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return False
    return parts[0] == "1" and int(parts[1]) <= _MAX_MINOR
