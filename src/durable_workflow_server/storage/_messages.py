"""The row of the ``workflow_messages`` table (migration 0002): signals, updates, waits.

Kept apart from ``_rows`` because it belongs to one feature; backends map it like any row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from durable_workflow_server.storage._rows import Row


@dataclass
class MessageRow(Row):
    """A signal receipt, an update or a condition wait of one run.

    ``kind`` is ``signal``, ``update`` or ``condition_wait``; ``status`` depends on it
    (signal: ``recorded``; update: ``requested``, ``accepted``, ``running``, ``completed``,
    ``failed``, ``rejected``; condition wait: ``open``, ``satisfied``, ``timed_out``).
    """

    __table__ = "workflow_messages"
    __key__ = ("message_id",)
    __json__ = frozenset({"data"})

    message_id: str
    namespace: str
    workflow_id: str
    run_id: str
    kind: str
    name: str | None
    status: str
    created_at: float
    fingerprint: str | None = None
    arguments: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
