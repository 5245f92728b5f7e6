"""``dw workflow history``: fetch a run's history over HTTP and write it for offline replay.

The file holds ``{"schema", "workflow_id", "run_id", "events"}``, the shape the SDK's
``Client.export_history`` writes and ``durable_workflow.workflow.Replayer.replay`` reads. The
CLI is part of the server package, which may not import the SDK client, so this module speaks
the control plane with the standard library.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from durable_workflow.protocol import CONTROL_PLANE_HEADER, CONTROL_PLANE_VERSION

EXPORT_SCHEMA = "durable-workflow.python.history-export.v1"
_PAGE_SIZE = 1000
_TIMEOUT_SECONDS = 30


class HistoryExportError(Exception):
    """The server could not be reached or refused; the message says why."""


def _get(base: str, path: str, params: dict[str, Any], namespace: str, token: str | None) -> dict[str, Any]:
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    request = urllib.request.Request(f"{base}/api{path}" + (f"?{query}" if query else ""))
    request.add_header("Accept", "application/json")
    request.add_header("X-Namespace", namespace)
    request.add_header(CONTROL_PLANE_HEADER, CONTROL_PLANE_VERSION)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_SECONDS) as reply:
            body: dict[str, Any] = json.loads(reply.read())
            return body
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read())
            reason = detail.get("reason") or ""
            message = detail.get("message") or detail.get("error") or ""
        except (ValueError, AttributeError):
            reason, message = "", ""
        raise HistoryExportError(f"HTTP {exc.code} {reason}: {message}".strip()) from exc
    except (OSError, ValueError) as exc:
        raise HistoryExportError(f"cannot reach {base}: {exc}") from exc


def fetch_history(
    url: str, workflow_id: str, *, run_id: str | None, namespace: str, token: str | None
) -> dict[str, Any]:
    """The export document of a run (the current run when ``run_id`` is None)."""
    base = url.rstrip("/")
    wid = urllib.parse.quote(workflow_id, safe="")
    if run_id is None:
        run_id = str(_get(base, f"/workflows/{wid}", {}, namespace, token).get("run_id") or "")
    rid = urllib.parse.quote(run_id, safe="")
    events: list[dict[str, Any]] = []
    token_seen: set[str] = set()
    page_token: str | None = None
    while True:
        page = _get(
            base,
            f"/workflows/{wid}/runs/{rid}/history",
            {"page_size": _PAGE_SIZE, "next_page_token": page_token},
            namespace,
            token,
        )
        events.extend(e for e in page.get("events") or [] if isinstance(e, dict))
        page_token = page.get("next_page_token")
        if not page_token:
            break
        if page_token in token_seen:
            raise HistoryExportError(f"the server repeated page token {page_token!r}")
        token_seen.add(page_token)
    return {"schema": EXPORT_SCHEMA, "workflow_id": workflow_id, "run_id": run_id, "events": events}


def write(path: str, document: dict[str, Any]) -> None:
    """Write the document as JSON (a temporary file, then a rename)."""
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    partial.write_text(json.dumps(document, indent=1, sort_keys=True), encoding="utf-8")
    partial.replace(target)
