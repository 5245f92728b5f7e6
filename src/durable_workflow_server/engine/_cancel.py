"""Cooperative cancellation and termination (docs/protocol-decisions.md row 9).

A cancel request does not close the run. It records ``CancelRequested``, marks the run
``cancel_requested``, cancels its pending timers (``TimerCancelled``) and wakes the workflow;
the SDK raises a cancellation at the yield the code waits on, the code may run compensations,
and whatever it finishes with closes the run as ``cancelled`` (:func:`closes_cancelled`).
Open activities learn it from their heartbeat (``cancel_requested: true``). Terminate still
closes the run at once.
"""

from __future__ import annotations

from typing import Any

from durable_workflow.protocol import Command, Event, RunStatus
from durable_workflow_server.engine._core import Core, close_run, event, resume_info, wake_workflow
from durable_workflow_server.engine._ids import new_id
from durable_workflow_server.engine._time import iso
from durable_workflow_server.storage import Mutation, Patch, RunRow, TimerRow

#: ``exception_type`` of the SDK's cancellation exception when workflow code lets it escape.
CANCELLATION_TYPE = "WorkflowCancellationRequested"


async def request_cancel(
    core: Core,
    run: RunRow,
    m: Mutation,
    now: float,
    *,
    reason: str | None,
    request_id: str | None = None,
    command_id: str | None = None,
    source: str = "control_plane",
) -> None:
    """Add the writes of a cancel request for an open run to ``m`` (pin the run version)."""
    command_id = command_id or new_id()
    m.events.append(
        event(
            run.run_id,
            Event.CANCEL_REQUESTED,
            {
                "workflow_command_id": command_id,
                "workflow_instance_id": run.workflow_id,
                "workflow_run_id": run.run_id,
                "command_type": "cancel",
                "command_source": source,
                "reason": reason,
                "request_id": request_id,
            },
            now,
        )
    )
    m.ops.append(Patch(RunRow, (run.run_id,), {"cancel_requested": True}))
    for timer in await core.storage.pending_timers(run.run_id):
        if timer.kind != "user":
            continue
        m.ops.append(Patch(TimerRow, (timer.timer_id,), {"status": "cancelled"}))
        data = timer.data
        payload: dict[str, Any] = {
            "timer_id": timer.timer_id,
            "sequence": data.get("sequence"),
            "delay_seconds": data.get("delay_seconds"),
            "fire_at": iso(timer.fire_at),
            "cancelled_at": iso(now),
            **(data.get("parallel") or {}),
        }
        if data.get("timer_kind") is not None:
            payload["timer_kind"] = data["timer_kind"]
        m.events.append(event(run.run_id, Event.TIMER_CANCELLED, payload, now))
    await wake_workflow(
        core,
        run,
        m,
        now,
        resume_info(
            workflow_wait_kind="cancel",
            resume_source_kind="workflow_cancel",
            resume_source_id=command_id,
            workflow_command_id=command_id,
            workflow_event_type=Event.CANCEL_REQUESTED,
        ),
    )


async def terminate(
    core: Core,
    run: RunRow,
    m: Mutation,
    now: float,
    *,
    reason: str | None,
    request_id: str | None = None,
    command_id: str | None = None,
    source: str = "control_plane",
) -> None:
    """Add the writes that terminate an open run at once to ``m`` (pin the run version)."""
    base = {
        "workflow_command_id": command_id or new_id(),
        "workflow_instance_id": run.workflow_id,
        "workflow_run_id": run.run_id,
        "command_type": "terminate",
        "command_source": source,
        "reason": reason,
        "request_id": request_id,
    }
    message = reason or "Workflow terminated by request."
    m.events.append(event(run.run_id, Event.TERMINATE_REQUESTED, base, now))
    m.events.append(
        event(
            run.run_id,
            Event.WORKFLOW_TERMINATED,
            {
                **base,
                "failure_id": new_id(),
                "failure_category": "terminated",
                "closed_reason": "terminated",
                "exception_class": "WorkflowTerminated",
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
        status=RunStatus.TERMINATED,
        closed_reason="terminated",
        failure={
            "message": message,
            "exception_type": Event.WORKFLOW_TERMINATED,
            "exception_class": Event.WORKFLOW_TERMINATED,
            "non_retryable": True,
        },
    )


def closes_cancelled(cmd: dict[str, Any]) -> bool:
    """Whether a terminal command of a run with a cancel request closes it as ``cancelled``.

    A normal return (``complete_workflow``) or continue-as-new after a cancel request means
    "cleanup done": the run closes cancelled and keeps the returned value as its output. A
    ``fail_workflow`` of the cancellation itself closes it cancelled too; any other failure
    (a compensation that failed) closes it ``failed``.
    """
    ctype = cmd.get("type")
    if ctype in (Command.COMPLETE_WORKFLOW, Command.CONTINUE_AS_NEW):
        return True
    return ctype == Command.FAIL_WORKFLOW and cmd.get("exception_type") == CANCELLATION_TYPE


async def close_cancelled(
    core: Core, run: RunRow, cmd: dict[str, Any], m: Mutation, now: float, task_id: str
) -> None:
    """Close a run whose code finished after a cancel request as ``cancelled``."""
    output = cmd.get("result") if cmd.get("type") == Command.COMPLETE_WORKFLOW else None
    message = "Workflow cancelled by request."
    payload: dict[str, Any] = {
        "failure_id": new_id(),
        "failure_category": "cancelled",
        "closed_reason": "cancelled",
        "exception_class": "WorkflowCancelled",
        "message": message,
        "finished_with": cmd.get("type"),
    }
    if output is not None:
        payload["output"] = output
        payload["payload_codec"] = "avro"
    m.events.append(event(run.run_id, Event.WORKFLOW_CANCELLED, payload, now, task_id))
    await close_run(
        core,
        run,
        m,
        now,
        status=RunStatus.CANCELLED,
        closed_reason="cancelled",
        output=output,
        failure={
            "message": message,
            "exception_type": Event.WORKFLOW_CANCELLED,
            "exception_class": Event.WORKFLOW_CANCELLED,
            "non_retryable": True,
        },
    )
