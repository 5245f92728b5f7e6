"""History export (control-plane §6.10): one run's whole history as a replay bundle.

The bundle keeps the upstream keys that matter for replay and audit (``schema``,
``workflow``, ``payloads``, ``history_events``, ``integrity``); ``payload_codec`` at the top
lets ``durable_workflow.workflow.Replayer`` replay the bundle as it is. The checksum is the
SHA-256 of the canonical JSON (keys sorted recursively, no whitespace) of the bundle without
``integrity``. Open runs can be exported too (``history_complete`` is then false).
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from durable_workflow_server.engine._control import _resolve_run
from durable_workflow_server.engine._core import Core, is_closed, wire_event
from durable_workflow_server.engine._time import iso

SCHEMA = "durable-workflow.v2.history-export"
_PAGE = 1000


async def export_history(core: Core, ns: str, workflow_id: str, run_id: str | None) -> dict[str, Any]:
    """The export bundle of a run (the current run when ``run_id`` is None)."""
    _, run = await _resolve_run(core, ns, workflow_id, run_id)
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        page = await core.storage.history(run.run_id, after=after, limit=_PAGE)
        events.extend(wire_event(e) for e in page)
        if len(page) < _PAGE:
            break
        after = page[-1].sequence
    bundle: dict[str, Any] = {
        "schema": SCHEMA,
        "schema_version": 1,
        "exported_at": iso(core.now()),
        "dedupe_key": f"{run.run_id}:{len(events)}",
        "history_complete": is_closed(run),
        "payload_codec": "avro",
        "workflow": {
            "instance_id": run.workflow_id,
            "run_id": run.run_id,
            "run_number": run.run_number,
            "workflow_type": run.workflow_type,
            "namespace": run.namespace,
            "task_queue": run.task_queue,
            "status": run.status,
            "closed_reason": run.closed_reason,
            "memo": run.memo,
            "search_attributes": run.search_attributes,
            "continued_from_run_id": run.continued_from_run_id,
            "continued_to_run_id": run.continued_to_run_id,
            "parent_workflow_id": run.parent_workflow_id,
            "parent_run_id": run.parent_run_id,
        },
        "payloads": {"codec": "avro", "arguments": run.input, "output": run.output},
        "history_events": events,
        "redaction": {"applied": False},
    }
    canonical = orjson.dumps(bundle, option=orjson.OPT_SORT_KEYS)
    bundle["integrity"] = {
        "canonicalization": "json-recursive-ksort-v1",
        "checksum_algorithm": "sha256",
        "checksum": hashlib.sha256(canonical).hexdigest(),
        "signature_algorithm": None,
        "signature": None,
        "key_id": None,
    }
    return bundle
