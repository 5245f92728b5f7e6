"""Control-plane reads and commands: list, describe, runs, history, cancel, terminate, result
(control-plane §6.2, §6.3, §6.7, §6.10). Starting a run is in ``_start``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Any

import orjson

from durable_workflow.protocol import TERMINAL_RUN_STATUSES, Event, RunStatus, status_bucket
from durable_workflow_server.engine import _cancel, _visibility
from durable_workflow_server.engine._core import (
    Core,
    close_run,
    event,
    hold_seconds,
    is_closed,
)
from durable_workflow_server.engine._errors import EngineError, invalid
from durable_workflow_server.engine._ids import new_id
from durable_workflow_server.engine._payloads import envelope, readable
from durable_workflow_server.engine._time import iso
from durable_workflow_server.engine._workflow_tasks import decode_token, encode_token
from durable_workflow_server.storage import (
    Mutation,
    RunFilter,
    RunRow,
    RunVersion,
    WorkflowRow,
)

STATUS_BUCKETS = {
    "running": (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.WAITING),
    "completed": (RunStatus.COMPLETED,),
    "failed": (RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TERMINATED),
}


# --- reads ----------------------------------------------------------------------------------


def _summary(run: RunRow) -> dict[str, Any]:
    return {
        "workflow_id": run.workflow_id,
        "run_id": run.run_id,
        "workflow_type": run.workflow_type,
        "business_key": run.business_key,
        "status": run.status,
        "status_bucket": status_bucket(run.status),
        "task_queue": run.task_queue,
        "is_terminal": run.status in TERMINAL_RUN_STATUSES,
        "started_at": iso(run.started_at),
        "closed_at": iso(run.closed_at),
        "search_attributes": run.search_attributes,
    }


async def list_workflows(
    core: Core,
    ns: str,
    *,
    workflow_type: str | None,
    status: str | None,
    query: str | None,
    page_size: int | None,
    page_token: str | None,
) -> dict[str, Any]:
    """Runs newest first with an opaque keyset page token."""
    for name, value in (("workflow_type", workflow_type), ("query", query)):
        if value is not None and not isinstance(value, str):
            raise invalid({name: ["must be a string"]})
    if status is not None and (not isinstance(status, str) or status not in STATUS_BUCKETS):
        raise invalid({"status": ["must be one of running, completed, failed"]})
    size = 50 if page_size is None else page_size
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 200:
        raise invalid({"page_size": ["must be an integer in 1..200"]})
    after: tuple[float, str] | None = None
    if page_token:
        try:
            decoded = orjson.loads(base64.urlsafe_b64decode(str(page_token).encode()))
            after = (float(decoded[0]), str(decoded[1]))
        except (ValueError, TypeError, IndexError, KeyError, binascii.Error, orjson.JSONDecodeError) as exc:
            raise EngineError("bad_request", "invalid_page_token", "The page token is not valid.") from exc
    visibility = None
    if query is not None and _visibility.is_language(query):
        # Parsed first: a syntax error is reported even before the registry is read.
        tree = _visibility.parse(query)
        defs = await core.storage.search_attribute_defs(ns)
        custom = {d.name: d.type for d in defs if d.status == "active"}
        visibility, query = _visibility.bind(tree, custom, query), None
    flt = RunFilter(
        namespace=ns,
        workflow_type=workflow_type,
        statuses=tuple(str(s) for s in STATUS_BUCKETS[status]) if status else None,
        query=query,
        visibility=visibility,
    )
    rows = await core.storage.list_runs(flt, limit=size + 1, after=after)
    token = None
    if len(rows) > size:
        rows = rows[:size]
        token = base64.urlsafe_b64encode(orjson.dumps([rows[-1].started_at, rows[-1].run_id])).decode()
    return {
        "workflows": [_summary(r) for r in rows],
        "workflow_count": await core.storage.count_runs(flt),
        "next_page_token": token,
    }


async def _resolve_run(
    core: Core, ns: str, workflow_id: str, run_id: str | None
) -> tuple[WorkflowRow, RunRow]:
    wf = await core.storage.get_workflow(workflow_id) if isinstance(workflow_id, str) else None
    if wf is None or wf.namespace != ns:
        raise EngineError("not_found", "instance_not_found", "Workflow not found.", workflow_id=workflow_id)
    run = await core.storage.get_run(run_id or wf.current_run_id) if isinstance(run_id or "", str) else None
    if run is None or run.workflow_id != workflow_id:
        raise EngineError(
            "not_found", "run_not_found", "Workflow run not found.", workflow_id=workflow_id, run_id=run_id
        )
    return wf, run


async def describe_workflow(
    core: Core, ns: str, workflow_id: str, run_id: str | None = None
) -> dict[str, Any]:
    """The run's description (control-plane §6.3) plus ``workflow_task_failure``."""
    wf, run = await _resolve_run(core, ns, workflow_id, run_id)
    current = wf.current_run_id == run.run_id
    open_run = not is_closed(run)
    task = await core.storage.open_workflow_task(run.run_id) if open_run else None
    failure = None
    if task is not None and task.last_failure is not None:
        failure = dict(task.last_failure)
    return {
        "workflow_id": run.workflow_id,
        "run_id": run.run_id,
        "namespace": run.namespace,
        "workflow_type": run.workflow_type,
        "business_key": run.business_key,
        "status": run.status,
        "status_bucket": status_bucket(run.status),
        "is_terminal": not open_run,
        "closed_reason": run.closed_reason,
        "task_queue": run.task_queue,
        "run_number": run.run_number,
        "run_count": wf.run_count,
        "is_current_run": current,
        "compatibility": run.compatibility,
        "payload_codec": "avro",
        "execution_timeout_seconds": run.execution_timeout_seconds,
        "run_timeout_seconds": run.run_timeout_seconds,
        "execution_deadline_at": iso(run.execution_deadline_at),
        "run_deadline_at": iso(run.run_deadline_at),
        "input": readable(run.input),
        "output": readable(run.output),
        "input_envelope": envelope(run.input),
        "output_envelope": envelope(run.output),
        "started_at": iso(run.started_at),
        "closed_at": iso(run.closed_at),
        "last_progress_at": iso(run.last_progress_at),
        "wait_kind": run.wait_kind,
        "wait_reason": f"waiting for {run.wait_kind}" if run.wait_kind and open_run else None,
        "memo": run.memo,
        "search_attributes": run.search_attributes,
        "failure": run.failure,
        "continued_from_run_id": run.continued_from_run_id,
        "continued_to_run_id": run.continued_to_run_id,
        "cancel_requested": run.cancel_requested,
        "workflow_task_failure": failure,
        "actions": {
            "can_signal": current and open_run,
            "can_query": open_run,
            "can_update": open_run,
            "can_cancel": current and open_run,
            "can_terminate": current and open_run,
            "can_repair": current and open_run,
            "can_archive": not open_run,
        },
    }


async def list_runs(core: Core, ns: str, workflow_id: str) -> dict[str, Any]:
    """Every run of the workflow id, oldest first."""
    wf, _ = await _resolve_run(core, ns, workflow_id, None)
    runs = await core.storage.runs_of(workflow_id)
    return {
        "workflow_id": workflow_id,
        "run_count": wf.run_count,
        "runs": [
            {
                "run_id": r.run_id,
                "run_number": r.run_number,
                "workflow_type": r.workflow_type,
                "business_key": r.business_key,
                "status": r.status,
                "task_queue": r.task_queue,
                "started_at": iso(r.started_at),
                "closed_at": iso(r.closed_at),
            }
            for r in runs
        ],
    }


async def run_history(
    core: Core,
    ns: str,
    workflow_id: str,
    run_id: str,
    *,
    page_size: int | None,
    page_token: str | None,
    wait_new_event: bool,
) -> dict[str, Any]:
    """A page of history; ``wait_new_event`` holds until an event after the token exists."""
    size = 100 if page_size is None else page_size
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 1000:
        raise invalid({"page_size": ["must be an integer in 1..1000"]})
    after = decode_token(page_token)
    _, run = await _resolve_run(core, ns, workflow_id, run_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + core.settings.history_wait_seconds
    key = ("run", run.run_id)
    while True:
        mark = core.notifier.mark(key)
        events = await core.storage.history(run.run_id, after=after, limit=size)
        if events or not wait_new_event:
            break
        current = await core.storage.get_run(run.run_id)
        remaining = deadline - loop.time()
        if (
            remaining <= 0
            or current is None
            or (is_closed(current) and current.last_history_sequence <= after)
        ):
            break
        await core.notifier.wait(key, mark, min(remaining, core.settings.poll_recheck_seconds))
    last = events[-1].sequence if events else after
    latest = await core.storage.get_run(run.run_id)
    more = latest is not None and latest.last_history_sequence > last
    # A follower (wait_new_event) keeps a token to wait from until the run is closed and read.
    following = wait_new_event and latest is not None and not is_closed(latest)
    token = encode_token(last) if (more or following) else None
    return {
        "workflow_id": workflow_id,
        "run_id": run.run_id,
        "events": [
            {
                "id": e.event_id,
                "sequence": e.sequence,
                "event_type": e.event_type,
                "timestamp": iso(e.recorded_at),
                "recorded_at": iso(e.recorded_at),
                "payload": e.payload,
            }
            for e in events
        ],
        "next_page_token": token,
    }


# --- cancel / terminate ---------------------------------------------------------------------


async def close_by_request(
    core: Core,
    ns: str,
    workflow_id: str,
    run_id: str | None,
    *,
    terminate: bool,
    reason: str | None,
    request_id: str | None,
) -> dict[str, Any]:
    """Terminate the current open run at once, or record a cooperative cancel request on it."""
    if reason is not None and (not isinstance(reason, str) or len(reason) > 1000):
        raise invalid({"reason": ["must be a string of at most 1000 characters"]})
    if request_id is not None and (not isinstance(request_id, str) or len(request_id) > 255):
        raise invalid({"request_id": ["must be a string of at most 255 characters"]})
    outcome = "terminated" if terminate else "cancelled"

    async def once() -> dict[str, Any]:
        wf, run = await _resolve_run(core, ns, workflow_id, run_id)
        if run.run_id != wf.current_run_id:
            raise EngineError(
                "conflict",
                "historical_run_command_rejected",
                "Only the current run accepts commands.",
                target_scope="run",
                workflow_id=workflow_id,
                run_id=run.run_id,
            )
        if is_closed(run):
            raise EngineError(
                "conflict",
                "run_not_active",
                f"The workflow run is already {run.status}.",
                workflow_id=workflow_id,
                run_id=run.run_id,
                status=run.status,
            )
        now = core.now()
        command_id = new_id()
        m = Mutation(preconditions=[RunVersion(run.run_id, run.version)])
        if not terminate:
            # Cooperative: the run stays open until its code finishes (engine._cancel).
            duplicate = run.cancel_requested
            if not duplicate:
                await _cancel.request_cancel(
                    core, run, m, now, reason=reason, request_id=request_id, command_id=command_id
                )
                await core.storage.apply(m)
            return {
                "workflow_id": workflow_id,
                "run_id": run.run_id,
                "outcome": "cancel_requested",
                "duplicate": duplicate,
                "reason": reason,
                "command_id": command_id,
                "command_status": "accepted",
                "command_source": "control_plane",
                "target_scope": "run" if run_id else "instance",
                "request_id": request_id,
                "workflow_type": run.workflow_type,
                "status": run.status,
            }
        requested = Event.TERMINATE_REQUESTED if terminate else Event.CANCEL_REQUESTED
        closed = Event.WORKFLOW_TERMINATED if terminate else Event.WORKFLOW_CANCELLED
        base = {
            "workflow_command_id": command_id,
            "workflow_instance_id": workflow_id,
            "workflow_run_id": run.run_id,
            "command_type": "terminate" if terminate else "cancel",
            "reason": reason,
            "request_id": request_id,
        }
        m.events.append(event(run.run_id, requested, base, now))
        message = reason or f"Workflow {outcome} by request."
        m.events.append(
            event(
                run.run_id,
                closed,
                {
                    **base,
                    "failure_id": new_id(),
                    "failure_category": outcome,
                    "closed_reason": outcome,
                    "exception_class": "WorkflowTerminated" if terminate else "WorkflowCancelled",
                    "message": message,
                },
                now,
            )
        )
        await close_run(
            core,
            run,
            m,
            now,
            status=RunStatus.TERMINATED if terminate else RunStatus.CANCELLED,
            closed_reason=outcome,
            failure={
                "message": message,
                "exception_type": closed,
                "exception_class": closed,
                "non_retryable": True,
            },
        )
        await core.storage.apply(m)
        return {
            "workflow_id": workflow_id,
            "run_id": run.run_id,
            "outcome": outcome,
            "reason": reason,
            "command_id": command_id,
            "command_status": "accepted",
            "command_source": "control_plane",
            "target_scope": "run" if run_id else "instance",
            "request_id": request_id,
            "workflow_type": run.workflow_type,
            "status": outcome,
        }

    return await core.retrying(once)


async def _named_run(core: Core, run_id: str, waits: bool) -> RunRow | None:
    """The run for the first look of a result wait, read only when this node cannot tell.

    A run this node closed is final. When the caller will wait, a run this node started is
    good enough while no other node is known to write (``Storage.has_other_nodes``): only its
    identity and "closed or not" are looked at before the wait, identity never changes, this
    node's own close is remembered (above), and a close elsewhere that this node missed is
    caught by the wait's periodic re-read, costing latency only. Whatever the wait ends with
    is read fresh, so no stale status is ever reported.
    """
    closed = core.recent.closed_run(run_id)
    if closed is not None:
        return closed
    started = core.recent.started_run(run_id) if waits else None
    if started is not None and not core.storage.has_other_nodes():
        return started
    return await core.storage.get_run(run_id)


async def await_run_result(
    core: Core, ns: str, workflow_id: str, run_id: str | None, *, wait_seconds: float | None
) -> dict[str, Any]:
    """Hold until the run is closed or ``wait_seconds`` passes; then report its outcome."""
    # With the run named, its counter is noted before the lookup, so the run read there is
    # already fresh enough for the first check (no second read of the same row).
    early = core.notifier.mark(("run_closed", run_id)) if isinstance(run_id, str) else None
    # A named run of this workflow and namespace needs no workflow row; anything else takes
    # the full lookup, which also picks the right "not found".
    waits = isinstance(wait_seconds, int | float) and not isinstance(wait_seconds, bool) and wait_seconds > 0
    named = await _named_run(core, run_id, waits) if isinstance(run_id, str) else None
    if named is not None and named.workflow_id == workflow_id and named.namespace == ns:
        run = named
    else:
        _, run = await _resolve_run(core, ns, workflow_id, run_id)
    # Bounded like a poll: a caller wanting longer simply asks again.
    wait = hold_seconds(wait_seconds, "wait_seconds", 0.0, core.settings.poll_timeout_max)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    key = ("run_closed", run.run_id)
    while True:
        if early is not None and key == ("run_closed", run_id):
            mark, early = early, None
        else:
            mark = core.notifier.mark(key)
            # A run this node closed needs no read: closed runs do not change.
            latest = core.recent.closed_run(run.run_id) or await core.storage.get_run(run.run_id)
            assert latest is not None
            run = latest
        remaining = deadline - loop.time()
        if is_closed(run) or remaining <= 0:
            break
        await core.notifier.wait(key, mark, min(remaining, core.settings.poll_recheck_seconds))
    failure = None
    if run.failure is not None:
        failure = {
            k: run.failure.get(k) for k in ("message", "exception_type", "exception_class", "non_retryable")
        }
        if run.failure.get("timeout_kind"):
            failure["timeout_kind"] = run.failure["timeout_kind"]
    return {
        "workflow_id": run.workflow_id,
        "run_id": run.run_id,
        "status": run.status,
        "is_terminal": is_closed(run),
        "output_envelope": envelope(run.output),
        "failure": failure,
        "continued_to_run_id": run.continued_to_run_id,
    }
