"""Child workflows (worker-plane §5 ``start_child_workflow``, §6 ``Child*`` events).

Starting a child is part of the parent's task completion: one mutation adds the link row
(``child_workflows``), the child's first run (``WorkflowStarted`` with the parent ids) and
``ChildWorkflowScheduled`` + ``ChildRunStarted`` in the parent.

Everything that crosses from one run to another afterwards goes through a durable timer row
due at once, so it survives a crash between the two writes and is applied exactly once in
the target run's own transaction:

- ``child_closed`` (on the parent): the child run closed; retry it per its policy
  (``child_retry`` after the backoff) or record ``ChildRun{Completed,Failed,Cancelled,
  Terminated}`` and wake the parent (through the parallel barrier);
- ``parent_close`` (on the child): the parent closed; apply the parent-close policy
  (``terminate``, or ``request_cancel`` as a cooperative cancel; ``abandon`` writes nothing).
"""

from __future__ import annotations

from typing import Any

from durable_workflow.protocol import Event, RunStatus
from durable_workflow_server.engine import _cancel
from durable_workflow_server.engine._core import Core, event, resume_info
from durable_workflow_server.engine._ids import new_id
from durable_workflow_server.engine._limits import MAX_DURATION_SECONDS
from durable_workflow_server.engine._newrun import add_run
from durable_workflow_server.engine._steps import resolve_step
from durable_workflow_server.storage import (
    ChildRow,
    Insert,
    Mutation,
    Patch,
    RunRow,
    TimerRow,
    Wake,
    WorkflowCurrentRun,
    WorkflowRow,
)

TIMER_KINDS = frozenset({"child_closed", "child_retry", "parent_close"})
_CHILD_SCHEDULED = frozenset({Event.CHILD_WORKFLOW_SCHEDULED})
PARENT_CLOSE_POLICIES = {
    "abandon": "abandon",
    "terminate": "terminate",
    "request_cancel": "request_cancel",
    "request_cancellation": "request_cancel",
}
_CLOSED_EVENTS = {
    RunStatus.COMPLETED: Event.CHILD_RUN_COMPLETED,
    RunStatus.FAILED: Event.CHILD_RUN_FAILED,
    RunStatus.CANCELLED: Event.CHILD_RUN_CANCELLED,
    RunStatus.TERMINATED: Event.CHILD_RUN_TERMINATED,
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_command(cmd: dict[str, Any], where: str, errors: dict[str, list[str]]) -> None:
    """Field checks of ``start_child_workflow`` (payloads and retry policy are checked by the caller)."""
    wtype = cmd.get("workflow_type")
    if wtype is not None and (not isinstance(wtype, str) or not wtype or len(wtype) > 255):
        errors[f"{where}.workflow_type"] = ["must be a string of 1-255 characters"]
    queue = cmd.get("queue")
    if queue is not None and (not isinstance(queue, str) or not queue or len(queue) > 255):
        errors[f"{where}.queue"] = ["must be a string of 1-255 characters"]
    policy = cmd.get("parent_close_policy")
    if policy is not None and policy not in PARENT_CLOSE_POLICIES:
        errors[f"{where}.parent_close_policy"] = [f"must be one of {', '.join(PARENT_CLOSE_POLICIES)}"]
    values: dict[str, int] = {}
    for name in ("execution_timeout_seconds", "run_timeout_seconds"):
        value = cmd.get(name)
        if value is None:
            continue
        if not _is_int(value) or not 1 <= value <= MAX_DURATION_SECONDS:
            errors[f"{where}.{name}"] = [f"must be an integer in 1..{MAX_DURATION_SECONDS}"]
        else:
            values[name] = value
    run_t, exec_t = values.get("run_timeout_seconds"), values.get("execution_timeout_seconds")
    if run_t is not None and exec_t is not None and run_t > exec_t:
        errors[f"{where}.run_timeout_seconds"] = ["must not exceed execution_timeout_seconds"]


def _retry_snapshot(policy: Any) -> dict[str, Any]:
    if not isinstance(policy, dict):  # no policy: one attempt, as for activities
        return {
            "snapshot_version": 1,
            "max_attempts": 1,
            "backoff_seconds": [],
            "non_retryable_error_types": [],
        }
    return {
        "snapshot_version": 1,
        "max_attempts": policy.get("max_attempts") or 3,
        "backoff_seconds": list(policy.get("backoff_seconds") or []),
        "non_retryable_error_types": list(policy.get("non_retryable_error_types") or []),
    }


def _child_workflow_id(run: RunRow, sequence: int) -> str:
    wanted = f"{run.workflow_id}:r{run.run_number}:c{sequence}"
    return wanted if len(wanted) <= 128 else f"child-{new_id()}"


def _link_payload(link: ChildRow, run_number: int | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "sequence": link.sequence,
        "workflow_link_id": link.link_id,
        "child_call_id": link.link_id,
        "child_workflow_instance_id": link.child_workflow_id,
        "child_workflow_run_id": link.child_run_id,
        "child_workflow_type": link.workflow_type,
        **link.parallel,
    }
    if run_number is not None:
        payload["child_run_number"] = run_number
    return payload


def start(
    run: RunRow,
    cmd: dict[str, Any],
    sequence: int,
    parallel: dict[str, Any],
    m: Mutation,
    now: float,
    task_id: str,
) -> None:
    """Add the child link, the child's first run and the parent's events to ``m``."""
    link_id = new_id()
    child_id = _child_workflow_id(run, sequence)
    queue = cmd.get("queue") or run.task_queue
    recorded_policy = cmd.get("parent_close_policy") or "abandon"
    retry = _retry_snapshot(cmd.get("retry_policy"))
    child = add_run(
        m,
        now,
        namespace=run.namespace,
        workflow_id=child_id,
        workflow_type=cmd["workflow_type"],
        task_queue=queue,
        run_number=1,
        input=cmd.get("arguments"),
        execution_timeout_seconds=cmd.get("execution_timeout_seconds"),
        run_timeout_seconds=cmd.get("run_timeout_seconds"),
        parent_run_id=run.run_id,
        parent_workflow_id=run.workflow_id,
        child_link_id=link_id,
        started_extra={"parent_sequence": sequence, "retry_attempt": 1, "retry_policy": retry},
    )
    m.ops.append(
        Insert(
            WorkflowRow(
                workflow_id=child_id,
                namespace=run.namespace,
                workflow_type=child.workflow_type,
                current_run_id=child.run_id,
                run_count=1,
                created_at=now,
            )
        )
    )
    link = ChildRow(
        link_id=link_id,
        namespace=run.namespace,
        parent_run_id=run.run_id,
        parent_workflow_id=run.workflow_id,
        sequence=sequence,
        child_workflow_id=child_id,
        child_run_id=child.run_id,
        workflow_type=child.workflow_type,
        task_queue=queue,
        parent_close_policy=PARENT_CLOSE_POLICIES[recorded_policy],
        status="open",
        attempt=1,
        retry_policy=retry,
        arguments=cmd.get("arguments"),
        execution_timeout_seconds=cmd.get("execution_timeout_seconds"),
        run_timeout_seconds=cmd.get("run_timeout_seconds"),
        parallel=parallel,
        created_at=now,
    )
    m.ops.append(Insert(link))
    payload = {
        **_link_payload(link, 1),
        "child_status": child.status,
        "parent_close_policy": recorded_policy,
        "retry_policy": retry,
        "execution_timeout_seconds": cmd.get("execution_timeout_seconds"),
        "run_timeout_seconds": cmd.get("run_timeout_seconds"),
        "task_queue": queue,
        "retry_attempt": 1,
    }
    m.events.append(event(run.run_id, Event.CHILD_WORKFLOW_SCHEDULED, payload, now, task_id))
    m.events.append(event(run.run_id, Event.CHILD_RUN_STARTED, payload, now, task_id))


async def on_run_closed(
    core: Core,
    run: RunRow,
    m: Mutation,
    now: float,
    *,
    status: str,
    closed_reason: str,
    output: str | None,
    failure: dict[str, Any] | None,
) -> None:
    """Called by ``close_run``: tell the parent, and apply the policy to open children."""
    if run.parent_run_id and run.child_link_id and closed_reason != "continued_as_new":
        m.ops.append(
            Insert(
                TimerRow(
                    timer_id=f"child_closed:{run.run_id}",
                    namespace=run.namespace,
                    run_id=run.parent_run_id,
                    kind="child_closed",
                    fire_at=now,
                    status="pending",
                    ref_id=run.child_link_id,
                    data={
                        "run_id": run.run_id,
                        "status": status,
                        "closed_reason": closed_reason,
                        "output": output,
                        "failure": failure,
                    },
                )
            )
        )
        m.wakes.append(Wake(("timers",)))
    # Every child link is inserted with its ChildWorkflowScheduled event: a run whose history
    # (as this node holds it, ``engine._history_cache``) has none has no children to read.
    if core.history.never_recorded(run.run_id, run.last_history_sequence, _CHILD_SCHEDULED):
        return
    for child in await core.storage.open_children(run.run_id):
        if child.parent_close_policy == "abandon":
            continue
        m.ops.append(
            Insert(
                TimerRow(
                    timer_id=f"parent_close:{child.link_id}:{run.run_id}",
                    namespace=child.namespace,
                    run_id=child.child_run_id,
                    kind="parent_close",
                    fire_at=now,
                    status="pending",
                    ref_id=child.link_id,
                    data={"policy": child.parent_close_policy, "parent_run_id": run.run_id},
                )
            )
        )
        m.wakes.append(Wake(("timers",)))


async def on_timer(core: Core, timer: TimerRow, run: RunRow, m: Mutation, now: float) -> None:
    """Handle a due ``child_closed``, ``child_retry`` or ``parent_close`` row (run: its target)."""
    if timer.kind == "parent_close":
        reason = f"parent run {timer.data.get('parent_run_id')} closed (parent_close_policy)"
        if timer.data.get("policy") == "terminate":
            await _cancel.terminate(core, run, m, now, reason=reason, source="parent_close_policy")
        elif not run.cancel_requested:
            await _cancel.request_cancel(core, run, m, now, reason=reason, source="parent_close_policy")
        return
    link = await core.storage.get_child(timer.ref_id or "")
    if link is None or link.status != "open" or link.parent_run_id != run.run_id:
        return
    if timer.kind == "child_retry":
        await _retry(core, link, run, m, now)
        return
    data = timer.data
    if data.get("run_id") != link.child_run_id:
        return
    status = str(data.get("status"))
    failure = data.get("failure") or {}
    if status == RunStatus.FAILED:
        delay = _retry_delay(link, failure)
        if delay is not None:
            m.ops.append(
                Insert(
                    TimerRow(
                        timer_id=f"child_retry:{link.link_id}:{link.attempt + 1}",
                        namespace=link.namespace,
                        run_id=run.run_id,
                        kind="child_retry",
                        fire_at=now + delay,
                        status="pending",
                        ref_id=link.link_id,
                    )
                )
            )
            m.wakes.append(Wake(("timers",)))
            return
    event_type = _CLOSED_EVENTS.get(RunStatus(status), Event.CHILD_RUN_FAILED)
    payload = _link_payload(link)
    payload["closed_reason"] = data.get("closed_reason")
    payload["retry_attempt"] = link.attempt
    if event_type == Event.CHILD_RUN_COMPLETED:
        payload.update(result=data.get("output"), payload_codec="avro")
    else:
        payload.update(
            failure_id=new_id(),
            message=failure.get("message") or f"child workflow {status}",
            exception_type=failure.get("exception_type"),
            exception_class=failure.get("exception_class"),
            non_retryable=bool(failure.get("non_retryable", False)),
            timeout_kind=failure.get("timeout_kind"),
        )
    m.ops.append(Patch(ChildRow, (link.link_id,), {"status": status, "closed_at": now}))
    m.events.append(event(run.run_id, event_type, payload, now))
    resume = resume_info(
        workflow_wait_kind="child",
        open_wait_id=f"child:{link.link_id}",
        resume_source_kind="child_workflow_run",
        resume_source_id=link.child_run_id,
        child_call_id=link.link_id,
        child_workflow_run_id=link.child_run_id,
        workflow_sequence=link.sequence,
        workflow_event_type=event_type,
    )
    await resolve_step(core, run, m, now, resume, parallel=link.parallel, child_id=link.link_id)


def _retry_delay(link: ChildRow, failure: dict[str, Any]) -> float | None:
    policy = link.retry_policy
    if failure.get("non_retryable") and failure.get("exception_type") != "WorkflowTimedOut":
        return None
    listed = set(policy.get("non_retryable_error_types") or [])
    if failure.get("exception_type") in listed or failure.get("exception_class") in listed:
        return None
    if link.attempt >= int(policy.get("max_attempts") or 1):
        return None
    backoff = policy.get("backoff_seconds") or []
    return float(backoff[min(link.attempt - 1, len(backoff) - 1)]) if backoff else 0.0


async def _retry(core: Core, link: ChildRow, parent: RunRow, m: Mutation, now: float) -> None:
    wf = await core.storage.get_workflow(link.child_workflow_id)
    if wf is None:
        return
    attempt = link.attempt + 1
    child = add_run(
        m,
        now,
        namespace=link.namespace,
        workflow_id=link.child_workflow_id,
        workflow_type=link.workflow_type,
        task_queue=link.task_queue,
        run_number=wf.run_count + 1,
        input=link.arguments,
        execution_timeout_seconds=link.execution_timeout_seconds,
        run_timeout_seconds=link.run_timeout_seconds,
        parent_run_id=parent.run_id,
        parent_workflow_id=parent.workflow_id,
        child_link_id=link.link_id,
        started_extra={
            "parent_sequence": link.sequence,
            "retry_attempt": attempt,
            "retry_of_child_workflow_run_id": link.child_run_id,
            "retry_policy": link.retry_policy,
        },
    )
    m.preconditions.append(WorkflowCurrentRun(wf.workflow_id, wf.current_run_id))
    m.ops.append(
        Patch(WorkflowRow, (wf.workflow_id,), {"current_run_id": child.run_id, "run_count": wf.run_count + 1})
    )
    m.ops.append(Patch(ChildRow, (link.link_id,), {"child_run_id": child.run_id, "attempt": attempt}))
    retried = ChildRow(**{**link.__dict__, "child_run_id": child.run_id, "attempt": attempt})
    payload = _link_payload(retried, child.run_number)
    payload.update(
        retry_attempt=attempt, retry_of_child_workflow_run_id=link.child_run_id, child_status="pending"
    )
    m.events.append(event(parent.run_id, Event.CHILD_RUN_STARTED, payload, now))
