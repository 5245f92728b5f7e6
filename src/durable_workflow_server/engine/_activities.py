"""Activities on the server side: scheduling, the retry policy and the four timeouts
(worker-plane §5 "Retry policy"/"Timeouts"). The worker routes are in ``_activity_tasks``.

One activity execution has one task per attempt. Every deadline is a durable timer row with a
deterministic id (``sts:<task>``, ``stc:<task>``, ``hb:<task>``, ``sclose:<execution>``) so
that later writes can cancel or move it without reading it first.
"""

from __future__ import annotations

from typing import Any

from durable_workflow.protocol import Event
from durable_workflow_server.engine._core import (
    Core,
    event,
    resume_info,
)
from durable_workflow_server.engine._ids import new_id
from durable_workflow_server.engine._steps import resolve_step
from durable_workflow_server.engine._time import iso
from durable_workflow_server.storage import (
    ActivityRow,
    ActivityTaskRow,
    ActivityTaskState,
    Insert,
    Mutation,
    Patch,
    RunRow,
    TimerRow,
    Wake,
)

TIMEOUT_KINDS = {
    "activity_schedule_to_start": "schedule_to_start",
    "activity_start_to_close": "start_to_close",
    "activity_heartbeat": "heartbeat",
    # Without a start-to-close timeout the lease stands in for it: an attempt whose worker
    # vanished would otherwise wait forever. Heartbeats renew the lease.
    "activity_lease": "start_to_close",
    "activity_schedule_to_close": "schedule_to_close",
}


def _policy_snapshot(cmd: dict[str, Any]) -> dict[str, Any]:
    policy = cmd.get("retry_policy")
    if isinstance(policy, dict):
        # The SDK's default is 3 attempts; a policy object without a count means that default.
        max_attempts = policy.get("max_attempts") or 3
        backoff = list(policy.get("backoff_seconds") or [])
        non_retryable = list(policy.get("non_retryable_error_types") or [])
    else:  # no policy: one attempt (worker-plane §5, [E] rule)
        max_attempts, backoff, non_retryable = 1, [], []
    return {
        "snapshot_version": 1,
        "max_attempts": max_attempts,
        "backoff_seconds": backoff,
        "start_to_close_timeout": cmd.get("start_to_close_timeout"),
        "schedule_to_start_timeout": cmd.get("schedule_to_start_timeout"),
        "schedule_to_close_timeout": cmd.get("schedule_to_close_timeout"),
        "heartbeat_timeout": cmd.get("heartbeat_timeout"),
        "non_retryable_error_types": non_retryable,
    }


def _sts_timer(task: ActivityTaskRow, policy: dict[str, Any]) -> TimerRow | None:
    sts = policy.get("schedule_to_start_timeout")
    if not sts:
        return None
    return TimerRow(
        timer_id=f"sts:{task.task_id}",
        namespace=task.namespace,
        run_id=task.run_id,
        kind="activity_schedule_to_start",
        fire_at=task.available_at + sts,
        status="pending",
        ref_id=task.task_id,
    )


def schedule(
    run: RunRow,
    cmd: dict[str, Any],
    sequence: int,
    parallel: dict[str, Any],
    m: Mutation,
    now: float,
    workflow_task_id: str,
) -> str:
    """Add an activity execution, its first task and its deadlines to ``m``; return the task id."""
    policy = _policy_snapshot(cmd)
    exec_id, task_id = new_id(), new_id()
    queue = cmd.get("queue") or run.task_queue
    sclose = policy["schedule_to_close_timeout"]
    act = ActivityRow(
        activity_execution_id=exec_id,
        namespace=run.namespace,
        run_id=run.run_id,
        workflow_id=run.workflow_id,
        sequence=sequence,
        activity_type=cmd["activity_type"],
        task_queue=queue,
        status="scheduled",
        scheduled_at=now,
        retry_policy=policy,
        arguments=cmd.get("arguments"),
        current_task_id=task_id,
        schedule_to_close_deadline=now + sclose if sclose else None,
        parallel=parallel,
    )
    task = ActivityTaskRow(
        task_id=task_id,
        namespace=run.namespace,
        activity_execution_id=exec_id,
        run_id=run.run_id,
        workflow_id=run.workflow_id,
        activity_type=act.activity_type,
        task_queue=queue,
        status="ready",
        attempt_number=1,
        available_at=now,
        created_at=now,
    )
    m.ops.extend([Insert(act), Insert(task)])
    sts = _sts_timer(task, policy)
    if sts is not None:
        m.ops.append(Insert(sts))
    if act.schedule_to_close_deadline is not None:
        m.ops.append(
            Insert(
                TimerRow(
                    timer_id=f"sclose:{exec_id}",
                    namespace=run.namespace,
                    run_id=run.run_id,
                    kind="activity_schedule_to_close",
                    fire_at=act.schedule_to_close_deadline,
                    status="pending",
                    ref_id=exec_id,
                )
            )
        )
    m.events.append(
        event(
            run.run_id,
            Event.ACTIVITY_SCHEDULED,
            {
                "activity_execution_id": exec_id,
                "activity_type": act.activity_type,
                "sequence": sequence,
                "queue": queue,
                "execution_mode": "remote",
                "retry_policy": policy,
                "activity": {
                    "activity_execution_id": exec_id,
                    "activity_type": act.activity_type,
                    "queue": queue,
                    "retry_policy": policy,
                },
                **parallel,
            },
            now,
            workflow_task_id,
        )
    )
    m.wakes.extend([Wake(("activity_task", run.namespace, queue), act.activity_type), Wake(("timers",))])
    return task_id


def resume_for(act: ActivityRow, event_type: str, attempt_id: str | None) -> dict[str, Any]:
    return resume_info(
        workflow_wait_kind="activity",
        open_wait_id=f"activity:{act.activity_execution_id}",
        resume_source_kind="activity_execution",
        resume_source_id=act.activity_execution_id,
        activity_execution_id=act.activity_execution_id,
        activity_attempt_id=attempt_id,
        activity_type=act.activity_type,
        workflow_sequence=act.sequence,
        workflow_event_type=event_type,
    )


def base_payload(act: ActivityRow, task: ActivityTaskRow) -> dict[str, Any]:
    return {
        "activity_execution_id": act.activity_execution_id,
        "activity_attempt_id": task.attempt_id,
        "activity_type": act.activity_type,
        "sequence": act.sequence,
        "attempt_number": task.attempt_number,
    }


def cancel_timers(m: Mutation, *timer_ids: str) -> None:
    for timer_id in timer_ids:
        m.ops.append(Patch(TimerRow, (timer_id,), {"status": "cancelled"}))


def attempt_timer_ids(task_id: str, policy: dict[str, Any] | None = None) -> tuple[str, ...]:
    """Deterministic ids of the deadline rows that belong to one attempt.

    Given the activity's policy snapshot, only the rows that policy can have created (see
    ``_sts_timer`` and the claim): cancelling a row never inserted is an UPDATE that matches
    nothing, one statement per id on the hot path.
    """
    if policy is None:
        return f"sts:{task_id}", f"stc:{task_id}", f"hb:{task_id}", f"lease:{task_id}"
    ids: list[str] = []
    if policy.get("schedule_to_start_timeout"):
        ids.append(f"sts:{task_id}")
    ids.append(f"stc:{task_id}" if policy.get("start_to_close_timeout") else f"lease:{task_id}")
    if policy.get("heartbeat_timeout"):
        ids.append(f"hb:{task_id}")
    return tuple(ids)


def sclose_timer_ids(act: ActivityRow) -> tuple[str, ...]:
    """The schedule-to-close deadline row of ``act``, when it has one."""
    if act.schedule_to_close_deadline is None:
        return ()
    return (f"sclose:{act.activity_execution_id}",)


def _retry_delay(act: ActivityRow, attempt_number: int, fields: dict[str, Any], now: float) -> float | None:
    """Seconds until the next attempt, or None when this failure is final."""
    policy = act.retry_policy
    if fields.get("non_retryable"):
        return None
    listed = set(policy.get("non_retryable_error_types") or [])
    if fields.get("exception_type") in listed or fields.get("exception_class") in listed:
        return None
    if attempt_number >= int(policy.get("max_attempts") or 1):
        return None
    backoff = policy.get("backoff_seconds") or []
    delay = float(backoff[min(attempt_number - 1, len(backoff) - 1)]) if backoff else 0.0
    if act.schedule_to_close_deadline is not None and now + delay >= act.schedule_to_close_deadline:
        return None
    return delay


async def attempt_ended(
    core: Core,
    run: RunRow,
    act: ActivityRow,
    task: ActivityTaskRow,
    m: Mutation,
    now: float,
    fields: dict[str, Any],
    *,
    timeout_kind: str | None,
) -> str | None:
    """The attempt failed or timed out: schedule a retry or resolve the activity for good.

    Returns:
        The id of the next activity task (retry) or of a new workflow task, if any.
    """
    delay = _retry_delay(act, task.attempt_number, fields, now)
    if delay is not None:
        retry = ActivityTaskRow(
            task_id=new_id(),
            namespace=task.namespace,
            activity_execution_id=act.activity_execution_id,
            run_id=task.run_id,
            workflow_id=task.workflow_id,
            activity_type=act.activity_type,
            task_queue=act.task_queue,
            status="ready",
            attempt_number=task.attempt_number + 1,
            available_at=now + delay,
            created_at=now,
        )
        m.ops.append(Insert(retry))
        sts = _sts_timer(retry, act.retry_policy)
        if sts is not None:
            m.ops.append(Insert(sts))
        m.ops.append(
            Patch(
                ActivityRow,
                (act.activity_execution_id,),
                {"status": "scheduled", "current_task_id": retry.task_id, "last_failure": fields},
            )
        )
        payload = base_payload(act, task)
        payload.update(
            retry_task_id=retry.task_id,
            retry_available_at=iso(retry.available_at),
            retry_backoff_seconds=delay,
            retry_after_attempt=task.attempt_number,
            retry_after_attempt_id=task.attempt_id,
            max_attempts=act.retry_policy.get("max_attempts"),
            retry_policy=act.retry_policy,
            timeout_kind=timeout_kind,
            message=fields["message"],
            exception_type=fields.get("exception_type"),
            exception_class=fields.get("exception_class"),
            code=fields.get("code"),
            exception=fields.get("exception"),
        )
        m.events.append(event(run.run_id, Event.ACTIVITY_RETRY_SCHEDULED, payload, now))
        m.wakes.extend(
            [Wake(("activity_task", task.namespace, act.task_queue), act.activity_type), Wake(("timers",))]
        )
        return retry.task_id
    status = "timed_out" if timeout_kind else "failed"
    m.ops.append(
        Patch(
            ActivityRow,
            (act.activity_execution_id,),
            {"status": status, "closed_at": now, "last_failure": fields},
        )
    )
    cancel_timers(m, *sclose_timer_ids(act))
    payload = base_payload(act, task)
    if timeout_kind:
        event_type = Event.ACTIVITY_TIMED_OUT
        payload.update(
            timeout_kind=timeout_kind,
            message=fields["message"],
            exception_class="ActivityTimedOut",
            exception_type="ActivityTimedOut",
            non_retryable=False,
            **act.parallel,
        )
    else:
        event_type = Event.ACTIVITY_FAILED
        payload.update(
            failure_id=new_id(),
            failure_category="application",
            non_retryable=fields["non_retryable"],
            exception_type=fields.get("exception_type"),
            exception_class=fields.get("exception_class"),
            message=fields["message"],
            code=fields.get("code"),
            exception=fields.get("exception"),
            **act.parallel,
        )
    m.events.append(event(run.run_id, event_type, payload, now))
    return await resolve_step(
        core,
        run,
        m,
        now,
        resume_for(act, event_type, task.attempt_id),
        parallel=act.parallel,
        activity_id=act.activity_execution_id,
    )


# --- timeouts -------------------------------------------------------------------------------


async def on_timeout(core: Core, timer: TimerRow, run: RunRow, m: Mutation, now: float) -> None:
    """Handle a due activity deadline; ``m`` already pins the timer and the run version."""
    kind = TIMEOUT_KINDS[timer.kind]
    if kind == "schedule_to_close":
        act = await core.storage.get_activity(timer.ref_id or "")
        if act is None or act.status not in ("scheduled", "started") or act.current_task_id is None:
            return
        task = await core.storage.get_activity_task(act.current_task_id)
        if task is None:
            return
        if task.status in ("ready", "leased"):
            m.ops.append(Patch(ActivityTaskRow, (task.task_id,), {"status": "timed_out"}))
        cancel_timers(m, *attempt_timer_ids(task.task_id))
        fields = {"message": "Activity exceeded its schedule-to-close timeout.", "non_retryable": True}
        m.ops.append(
            Patch(ActivityRow, (act.activity_execution_id,), {"status": "timed_out", "closed_at": now})
        )
        await _final_timeout(core, run, act, task, m, now, kind, fields)
        return
    task = await core.storage.get_activity_task(timer.ref_id or "")
    if task is None:
        return
    act = await core.storage.get_activity(task.activity_execution_id)
    if act is None or act.status not in ("scheduled", "started"):
        return
    if kind == "schedule_to_start":
        if task.status != "ready":
            return
        m.ops.append(Patch(ActivityTaskRow, (task.task_id,), {"status": "timed_out"}))
        m.ops.append(
            Patch(ActivityRow, (act.activity_execution_id,), {"status": "timed_out", "closed_at": now})
        )
        cancel_timers(m, f"sclose:{act.activity_execution_id}")
        fields = {
            "message": "Activity was not started within its schedule-to-start timeout.",
            "non_retryable": True,
        }
        await _final_timeout(core, run, act, task, m, now, kind, fields)
        return
    # start_to_close or heartbeat: this attempt is over; the retry policy decides what follows.
    if task.status != "leased" or timer.data.get("attempt_id") not in (None, task.attempt_id):
        return
    m.preconditions.append(ActivityTaskState(task.task_id, "leased", task.attempt_id))
    m.ops.append(Patch(ActivityTaskRow, (task.task_id,), {"status": "timed_out"}))
    cancel_timers(m, *(t for t in attempt_timer_ids(task.task_id) if t != timer.timer_id))
    message = (
        "Activity attempt exceeded its start-to-close timeout."
        if timer.kind == "activity_start_to_close"
        else "Activity attempt's lease expired without a heartbeat (no start-to-close timeout was set)."
        if timer.kind == "activity_lease"
        else "Activity attempt missed its heartbeat timeout."
    )
    await attempt_ended(
        core, run, act, task, m, now, {"message": message, "non_retryable": False}, timeout_kind=kind
    )


async def _final_timeout(
    core: Core,
    run: RunRow,
    act: ActivityRow,
    task: ActivityTaskRow,
    m: Mutation,
    now: float,
    kind: str,
    fields: dict[str, Any],
) -> None:
    payload = base_payload(act, task)
    payload.update(
        timeout_kind=kind,
        message=fields["message"],
        exception_class="ActivityTimedOut",
        exception_type="ActivityTimedOut",
        non_retryable=True,
        **act.parallel,
    )
    m.events.append(event(run.run_id, Event.ACTIVITY_TIMED_OUT, payload, now))
    await resolve_step(
        core,
        run,
        m,
        now,
        resume_for(act, Event.ACTIVITY_TIMED_OUT, task.attempt_id),
        parallel=act.parallel,
        activity_id=act.activity_execution_id,
    )
