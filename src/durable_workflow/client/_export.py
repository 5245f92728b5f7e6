"""Writing a run's history to a file that :class:`durable_workflow.workflow.Replayer` replays.

The file is JSON: ``{"schema", "workflow_id", "run_id", "events": [...]}``; ``Replayer.replay``
accepts the dict as it is (it reads ``events``), so a history captured from production can be
replayed offline against changed workflow code to check that the change is deterministic.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: ``schema`` of an exported history file.
EXPORT_SCHEMA = "durable-workflow.python.history-export.v1"


def export_document(workflow_id: str, run_id: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The exported form of one run's history."""
    return {"schema": EXPORT_SCHEMA, "workflow_id": workflow_id, "run_id": run_id, "events": events}


def write_export(path: str | Path, document: dict[str, Any]) -> None:
    """Write ``document`` as UTF-8 JSON (atomically: a temporary file, then a rename)."""
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    partial.write_text(json.dumps(document, indent=1, sort_keys=True), encoding="utf-8")
    partial.replace(target)
