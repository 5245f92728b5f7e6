"""The wire contract shared by the SDK and the server: versions, headers, names.

Only the standard library is used here, so the server, the worker and offline tools can all
import it. Shapes and rules are described in ``docs/protocol-decisions.md`` and the upstream
protocol reference; this package holds the names, so that a typo is an import error and not
a silent protocol mismatch.
"""

from durable_workflow.protocol._names import (
    ACTIVITY_FAILURE_EVENTS,
    CHILD_FAILURE_EVENTS,
    TERMINAL_COMMANDS,
    TERMINAL_RUN_STATUSES,
    Command,
    Event,
    RunStatus,
    status_bucket,
)
from durable_workflow.protocol._versions import (
    ACCEPT_POLL,
    CONTROL_PLANE_HEADER,
    CONTROL_PLANE_VERSION,
    NAMESPACE_HEADER,
    PAYLOAD_CODEC,
    PROTOCOL_HEADER,
    WORKER_PROTOCOL_VERSION,
    is_supported_worker_protocol,
)

__all__ = [
    "ACCEPT_POLL",
    "ACTIVITY_FAILURE_EVENTS",
    "CHILD_FAILURE_EVENTS",
    "CONTROL_PLANE_HEADER",
    "CONTROL_PLANE_VERSION",
    "NAMESPACE_HEADER",
    "PAYLOAD_CODEC",
    "PROTOCOL_HEADER",
    "TERMINAL_COMMANDS",
    "TERMINAL_RUN_STATUSES",
    "WORKER_PROTOCOL_VERSION",
    "Command",
    "Event",
    "RunStatus",
    "is_supported_worker_protocol",
    "status_bucket",
]
