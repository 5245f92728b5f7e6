"""Updates from the control plane (control-plane §6.6, worker-plane §9 "Updates").

An update is a ``workflow_messages`` row keyed by (workflow id, update id); the same update id
sent again returns the first outcome and never runs the handler twice. It is delivered in a
workflow task carrying ``workflow_update_id``:

- if every live worker on the run's queue declares ``update_validation_in_task`` (ours does),
  the update stays *requested* (nothing in history) and the task also carries ``update_name``
  and ``update_arguments``; the worker runs the validator first. A rejection writes nothing to
  history; an acceptance writes ``UpdateAccepted`` ahead of the handler's events;
- otherwise (a 2.12.0 worker, or no worker yet) ``UpdateAccepted`` is written at once and the
  worker validates (if at all) inside the accepted update, as 2.12.0 does.

The caller waits (``wait_for``: ``accepted`` or ``completed``) on the row, woken by the
completion's ``("update", id)`` wake-up and re-reading storage every 250 ms (other nodes).
"""

from __future__ import annotations

import asyncio
from typing import Any

from durable_workflow_server.engine._core import Core, digest, hold_seconds, is_closed, new_workflow_task
from durable_workflow_server.engine._errors import EngineError, invalid
from durable_workflow_server.engine._ids import new_id
from durable_workflow_server.engine._messages import (
    accepted_event,
    message_id,
    name_error,
    update_resume,
)
from durable_workflow_server.engine._payloads import envelope, readable
from durable_workflow_server.engine._signals import current_open_run, stored_arguments
from durable_workflow_server.engine._time import iso
from durable_workflow_server.storage import Insert, Mutation, RunRow, RunVersion, Wake
from durable_workflow_server.storage._messages import MessageRow

IN_TASK_VALIDATION = "update_validation_in_task"
WAIT_DEFAULT_SECONDS = 10.0
WAIT_MAX_SECONDS = 60.0
_RECHECK_SECONDS = 0.25
_SETTLED = ("completed", "failed", "rejected")


async def _validates_in_task(core: Core, run: RunRow) -> bool:
    now = core.now()
    stale = core.settings.worker_stale_after_seconds
    workers = [
        w
        for w in await core.storage.workers_on_queue(run.namespace, run.task_queue)
        if now - w.last_heartbeat_at <= stale
        and (not w.supported_workflow_types or run.workflow_type in w.supported_workflow_types)
    ]
    return bool(workers) and all(IN_TASK_VALIDATION in (w.details.get("capabilities") or []) for w in workers)


async def _deliver(core: Core, run: RunRow, update: MessageRow, m: Mutation, now: float) -> None:
    """Create the update's task if the run has none open.

    An open task runs the workflow code first (a new run's first task included: the handler
    must see the state the code set up); its completion then starts the update's task
    (``_messages.follow_up_resume`` delivers requested updates first).
    """
    task = await core.storage.open_workflow_task(run.run_id)
    if task is None:
        m.ops.append(Insert(new_workflow_task(run, now, update_resume(update))))
        m.wakes.append(Wake(("workflow_task", run.namespace, run.task_queue), run.workflow_type))


def _reply(update: MessageRow, wait_for: str, timed_out: bool, wait_timeout: float | None) -> dict[str, Any]:
    data = update.data
    failure = data.get("failure") or {}
    status = "accepted" if update.status == "running" else update.status
    outcome = {
        "completed": "update_completed",
        "failed": "update_failed",
        "rejected": "rejected_by_validator",
    }.get(status, "update_accepted" if status == "accepted" else "update_requested")
    return {
        "workflow_id": update.workflow_id,
        "run_id": update.run_id,
        "update_name": update.name,
        "update_id": data.get("update_id"),
        "update_status": status,
        "outcome": outcome,
        "command_status": "rejected" if status == "rejected" else "accepted",
        "command_source": "control_plane",
        "command_id": data.get("command_id"),
        "wait_for": wait_for,
        "wait_timed_out": timed_out,
        "wait_timeout_seconds": wait_timeout,
        "result": readable(data.get("result")),
        "result_envelope": envelope(data.get("result")),
        "failure_id": None,
        "failure_message": failure.get("message"),
        "failure_type": failure.get("exception_type"),
        "accepted_at": iso(update.created_at),
        "closed_at": iso(data.get("closed_at")),
        "workflow_sequence": data.get("workflow_sequence"),
        "target_scope": data.get("target_scope"),
    }


async def update(
    core: Core,
    ns: str,
    workflow_id: str,
    run_id: str | None,
    name: str,
    *,
    input: Any = None,
    update_id: str | None = None,
    wait_for: str | None = None,
    wait_timeout_seconds: Any = None,
) -> tuple[int, dict[str, Any]]:
    """Submit (or find) an update and wait for the requested stage; returns (HTTP status, body).

    Raises:
        EngineError: 404 unknown workflow/run, 409 not current / closed / ``request_id_conflict``,
            422 bad fields.
    """
    problem = name_error(name)
    if problem:
        raise invalid({"update_name": [problem]})
    if update_id is not None and (not isinstance(update_id, str) or not 1 <= len(update_id) <= 255):
        raise invalid({"update_id": ["must be a string of 1-255 characters"]})
    stage = wait_for or "accepted"
    if stage not in ("accepted", "completed"):
        raise invalid({"wait_for": ["must be 'accepted' or 'completed'"]})
    wait = hold_seconds(wait_timeout_seconds, "wait_timeout_seconds", WAIT_DEFAULT_SECONDS, WAIT_MAX_SECONDS)
    arguments = stored_arguments(input, "input")
    uid = update_id or new_id()
    mid = message_id(workflow_id, "update", uid)
    intent = digest({"update_name": name, "arguments": arguments})

    async def submit() -> MessageRow:
        kept = await core.storage.get_message(mid)
        if kept is not None:
            if kept.fingerprint != intent:
                raise EngineError(
                    "conflict",
                    "request_id_conflict",
                    "The update id was already used for a different update.",
                    update_id=uid,
                    retained_command_id=kept.data.get("command_id"),
                    retained_command_type="update",
                    retained_outcome=kept.status,
                    conflict="intent_mismatch",
                )
            return kept
        _, run = await current_open_run(core, ns, workflow_id, run_id)
        now = core.now()
        row = MessageRow(
            message_id=mid,
            namespace=ns,
            workflow_id=workflow_id,
            run_id=run.run_id,
            kind="update",
            name=name,
            status="requested",
            created_at=now,
            fingerprint=intent,
            arguments=arguments,
            data={
                "update_id": uid,
                "command_id": new_id(),
                "target_scope": "run" if run_id else "instance",
            },
        )
        m = Mutation(preconditions=[RunVersion(run.run_id, run.version)])
        if not await _validates_in_task(core, run):
            row.status = "accepted"
            m.events.append(accepted_event(run, row, now, None))
        m.ops.append(Insert(row))
        await _deliver(core, run, row, m, now)
        await core.storage.apply(m)
        return row

    row = await core.retrying(submit)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    key = ("update", mid)
    done = _SETTLED if stage == "completed" else ("accepted", "running", *_SETTLED)
    while row.status not in done:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        mark = core.notifier.mark(key)
        fresh = await core.storage.get_message(mid)
        if fresh is not None:
            row = fresh
            if row.status in done:
                break
        run = await core.storage.get_run(row.run_id)
        if run is None or is_closed(run):
            # The run ended before the update got there: it will never run.
            raise EngineError(
                "conflict",
                "run_not_active",
                "The workflow run closed before the update finished.",
                workflow_id=workflow_id,
                run_id=row.run_id,
                update_id=uid,
                update_status=row.status,
                outcome="rejected_not_active",
            )
        await core.notifier.wait(key, mark, min(remaining, _RECHECK_SECONDS))
    timed_out = row.status not in done
    body = _reply(row, stage, timed_out, wait if timed_out else None)
    if row.status == "completed":
        return (200 if stage == "completed" else 202), body
    if row.status == "failed":
        body.update(reason="update_failed", message=body["failure_message"] or "The update failed.")
        return 422, body
    if row.status == "rejected":
        body.update(
            reason="update_rejected",
            rejection_reason="update_validator_rejected",
            message=body["failure_message"] or "The update was rejected by its validator.",
        )
        return 409, body
    return 202, body
