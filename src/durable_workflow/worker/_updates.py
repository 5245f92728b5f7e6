"""Update tasks: a workflow task with ``workflow_update_id`` runs one update's handler.

When the server has not accepted the update yet (our in-task validation: the task carries
``update_name`` and ``update_arguments``), the worker replays with a stand-in
``UpdateAccepted`` at the end of history, so :func:`durable_workflow.workflow.apply_update`
runs the validator first: a rejection becomes ``fail_update`` of type ``InvalidUpdate``, which
the server records as a rejection with nothing in history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from durable_workflow import workflow
from durable_workflow.protocol import Event


def _accepted(events: Sequence[Mapping[str, Any]], update_id: str) -> bool:
    for event in events:
        if (event.get("event_type") or event.get("type")) == Event.UPDATE_ACCEPTED:
            payload = event.get("payload") or {}
            if payload.get("update_id") == update_id:
                return True
    return False


def replay_task(
    cls: type, history: list[dict[str, Any]], start_input: list[Any], task: Mapping[str, Any], codec: Any
) -> workflow.ReplayOutcome:
    """Replay a workflow task: the update handler for update tasks, else the workflow code."""
    update_id = task.get("workflow_update_id")
    common: dict[str, Any] = {
        "workflow_id": task.get("workflow_id"),
        "run_id": str(task.get("run_id") or ""),
        "payload_codec": codec,
    }
    if not isinstance(update_id, str) or not update_id:
        return workflow.replay(cls, history, start_input, **common)
    events: list[dict[str, Any]] = list(history)
    if task.get("update_name") is not None and not _accepted(events, update_id):
        events.append(
            {
                "id": f"requested-{update_id}",
                "sequence": len(events) + 1,
                "event_type": Event.UPDATE_ACCEPTED,
                "payload": {
                    "update_id": update_id,
                    "update_name": task.get("update_name"),
                    "arguments": task.get("update_arguments"),
                },
            }
        )
    return workflow.apply_update(cls, events, start_input, update_id, **common)
