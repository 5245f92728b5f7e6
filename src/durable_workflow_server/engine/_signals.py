"""Signals (control-plane §6.4, worker-plane §9 "Signals").

A signal is written to history at once as ``SignalReceived`` and wakes the workflow: a new
task when none is open, otherwise the open one delivers it (a ready task) or the run gets
another task after the leased one completes (``wake_pending``). A ``request_id`` makes the
call idempotent: the same id with the same intent returns the first receipt and writes
nothing; the same id with another intent is 409 ``request_id_conflict``.
"""

from __future__ import annotations

from typing import Any

from durable_workflow.protocol import Event
from durable_workflow_server.engine._control import _resolve_run
from durable_workflow_server.engine._core import Core, digest, event, is_closed, resume_info, wake_workflow
from durable_workflow_server.engine._errors import EngineError, invalid
from durable_workflow_server.engine._ids import new_id
from durable_workflow_server.engine._messages import message_id, name_error
from durable_workflow_server.engine._payloads import PayloadInvalid, start_input
from durable_workflow_server.storage import Insert, Mutation, RunRow, RunVersion, WorkflowRow
from durable_workflow_server.storage._messages import MessageRow


def stored_arguments(value: Any, field_name: str) -> str | None:
    """The stored positional-argument blob of a request ``input`` (``None``: no arguments).

    Raises:
        EngineError: 422 when it is neither a JSON array nor an Avro envelope.
    """
    if value is None:
        return None
    try:
        return start_input(value)
    except PayloadInvalid as exc:
        raise invalid({field_name: [f"must be a JSON array or an avro envelope: {exc}"]}) from exc


async def current_open_run(
    core: Core, ns: str, workflow_id: str, run_id: str | None
) -> tuple[WorkflowRow, RunRow]:
    """The run a command targets: it must be the current run and still open (§6.8).

    Raises:
        EngineError: 404 unknown workflow/run; 409 ``historical_run_command_rejected`` or
            ``run_not_active``.
    """
    wf, run = await _resolve_run(core, ns, workflow_id, run_id)
    if run.run_id != wf.current_run_id:
        raise EngineError(
            "conflict",
            "historical_run_command_rejected",
            "Only the current run accepts commands.",
            target_scope="run",
            workflow_id=workflow_id,
            run_id=run.run_id,
            outcome="rejected_not_current",
        )
    if is_closed(run):
        raise EngineError(
            "conflict",
            "run_not_active",
            f"The workflow run is already {run.status}.",
            workflow_id=workflow_id,
            run_id=run.run_id,
            status=run.status,
            outcome="rejected_not_active",
        )
    return wf, run


async def signal(
    core: Core,
    ns: str,
    workflow_id: str,
    run_id: str | None,
    name: str,
    *,
    input: Any = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Record a signal and wake the workflow; returns the §6.4 receipt."""
    problem = name_error(name)
    if problem:
        raise invalid({"signal_name": [problem]})
    if request_id is not None and (not isinstance(request_id, str) or not 1 <= len(request_id) <= 255):
        raise invalid({"request_id": ["must be a string of 1-255 characters"]})
    arguments = stored_arguments(input, "input")
    intent = digest({"signal_name": name, "arguments": arguments})

    async def once() -> dict[str, Any]:
        mid = message_id(workflow_id, "signal", request_id) if request_id else None
        if mid is not None:
            kept = await core.storage.get_message(mid)
            if kept is not None:
                receipt: dict[str, Any] = kept.data["receipt"]
                if kept.fingerprint != intent:
                    raise EngineError(
                        "conflict",
                        "request_id_conflict",
                        "The request_id was already used for a different signal.",
                        request_id=request_id,
                        retained_command_id=receipt.get("command_id"),
                        retained_command_type="signal",
                        retained_outcome=receipt.get("outcome"),
                        conflict="intent_mismatch",
                    )
                return {**receipt, "retained": True}
        _, run = await current_open_run(core, ns, workflow_id, run_id)
        now = core.now()
        command_id = new_id()
        sequence = run.next_workflow_sequence - 1
        m = Mutation(preconditions=[RunVersion(run.run_id, run.version)])
        m.events.append(
            event(
                run.run_id,
                Event.SIGNAL_RECEIVED,
                {
                    "workflow_command_id": command_id,
                    "signal_id": command_id,
                    "signal_name": name,
                    "signal_wait_id": None,
                    "arguments": arguments,
                    "payload_codec": "avro",
                    "workflow_sequence": sequence,
                    "request_id": request_id,
                },
                now,
            )
        )
        resume = resume_info(
            workflow_wait_kind="signal",
            resume_source_kind="workflow_signal",
            resume_source_id=command_id,
            workflow_signal_id=command_id,
            signal_name=name,
            workflow_command_id=command_id,
            workflow_sequence=sequence,
            workflow_event_type=Event.SIGNAL_RECEIVED,
        )
        await wake_workflow(core, run, m, now, resume)
        receipt = {
            "workflow_id": workflow_id,
            "run_id": run.run_id,
            "signal_name": name,
            "outcome": "signal_received",
            "command_status": "accepted",
            "command_source": "control_plane",
            "command_id": command_id,
            "command_sequence": run.last_history_sequence + 1,
            "workflow_sequence": sequence,
            "target_scope": "run" if run_id else "instance",
            "workflow_type": run.workflow_type,
            "reason": None,
            "rejection_reason": None,
            "validation_errors": [],
            "request_id": request_id,
            "retained": False,
            "intent_verified": True,
        }
        if mid is not None:
            m.ops.append(
                Insert(
                    MessageRow(
                        message_id=mid,
                        namespace=ns,
                        workflow_id=workflow_id,
                        run_id=run.run_id,
                        kind="signal",
                        name=name,
                        status="recorded",
                        created_at=now,
                        fingerprint=intent,
                        data={"receipt": receipt},
                    )
                )
            )
        stored = await core.storage.apply(m)
        if stored:
            receipt["command_sequence"] = stored[0].sequence
        return receipt

    return await core.retrying(once)
