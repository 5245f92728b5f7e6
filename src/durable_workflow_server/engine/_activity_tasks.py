"""Activity task routes: poll, complete, fail and heartbeat (worker-plane §8).

Complete and fail are idempotent per (task, attempt): the first answer is stored on the
attempt and returned again for an identical retry.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from durable_workflow.protocol import Event, RunStatus
from durable_workflow_server.engine._activities import (
    attempt_ended,
    attempt_timer_ids,
    base_payload,
    cancel_timers,
    resume_for,
    sclose_timer_ids,
)
from durable_workflow_server.engine._core import (
    Core,
    digest,
    event,
    hold_seconds,
    is_closed,
    run_closed_error,
)
from durable_workflow_server.engine._eager import (
    drop_idle_wakes,
    eligible_worker,
    lease_workflow_task,
    scheduled_activities,
)
from durable_workflow_server.engine._errors import EngineError, invalid
from durable_workflow_server.engine._ids import new_id
from durable_workflow_server.engine._payloads import PayloadInvalid, envelope, stored_from_envelope
from durable_workflow_server.engine._rowcache import cached_then_fresh, run_after
from durable_workflow_server.engine._steps import resolve_step
from durable_workflow_server.engine._time import iso
from durable_workflow_server.engine._workers import require_poller
from durable_workflow_server.storage import (
    ActivityRow,
    ActivityTaskRow,
    ActivityTaskState,
    Inc,
    Mutation,
    Patch,
    PreconditionFailed,
    Put,
    RunRow,
    RunVersion,
    TimerRow,
    Wake,
    WorkerRow,
    WorkflowTaskRow,
)

# --- poll -----------------------------------------------------------------------------------


def _task_dict(task: ActivityTaskRow, act: ActivityRow) -> dict[str, Any]:
    policy = act.retry_policy
    deadlines: dict[str, Any] = {}
    if task.started_at is not None and policy.get("start_to_close_timeout"):
        deadlines["start_to_close"] = iso(task.started_at + policy["start_to_close_timeout"])
    if act.schedule_to_close_deadline is not None:
        deadlines["schedule_to_close"] = iso(act.schedule_to_close_deadline)
    if task.started_at is not None and policy.get("heartbeat_timeout"):
        last = task.last_heartbeat_at or task.started_at
        deadlines["heartbeat"] = iso(last + policy["heartbeat_timeout"])
    body: dict[str, Any] = {
        "task_id": task.task_id,
        "namespace": task.namespace,
        "workflow_id": task.workflow_id,
        "run_id": task.run_id,
        "activity_execution_id": act.activity_execution_id,
        "activity_attempt_id": task.attempt_id,
        "attempt_number": task.attempt_number,
        "activity_type": act.activity_type,
        "payload_codec": "avro",
        "arguments": envelope(act.arguments),
        "retry_policy": policy,
        "task_queue": task.task_queue,
        "lease_owner": task.lease_owner,
        "lease_expires_at": iso(task.lease_expires_at),
        "deadlines": deadlines,
        "heartbeat_details": act.heartbeat_details,
    }
    return {k: v for k, v in body.items() if v is not None}


def lease_ops(
    m: Mutation, task: ActivityTaskRow, act: ActivityRow, worker_id: str, now: float, lease: float
) -> str:
    """Add to ``m`` what leases ``task`` to ``worker_id`` (as a poll does); returns the attempt id."""
    attempt_id = new_id()
    policy = act.retry_policy
    m.ops.append(
        Patch(
            ActivityTaskRow,
            (task.task_id,),
            {
                "status": "leased",
                "attempt_id": attempt_id,
                "lease_owner": worker_id,
                "lease_expires_at": now + lease,
                "started_at": now,
                "last_heartbeat_at": None,
            },
        )
    )
    m.ops.append(
        Patch(
            ActivityRow,
            (act.activity_execution_id,),
            {
                "status": "started",
                "attempt_number": task.attempt_number,
                "current_task_id": task.task_id,
            },
        )
    )
    m.ops.append(Patch(RunRow, (task.run_id,), {"version": Inc(1)}))
    if policy.get("schedule_to_start_timeout"):
        cancel_timers(m, f"sts:{task.task_id}")
    deadlines = [
        ("activity_start_to_close", policy.get("start_to_close_timeout"), "stc"),
        ("activity_heartbeat", policy.get("heartbeat_timeout"), "hb"),
    ]
    if not policy.get("start_to_close_timeout"):
        deadlines.append(("activity_lease", lease, "lease"))
    for kind, seconds, prefix in deadlines:
        if seconds:
            m.ops.append(
                Put(
                    TimerRow(
                        timer_id=f"{prefix}:{task.task_id}",
                        namespace=task.namespace,
                        run_id=task.run_id,
                        kind=kind,
                        fire_at=now + seconds,
                        status="pending",
                        ref_id=task.task_id,
                        data={"attempt_id": attempt_id},
                    )
                )
            )
            m.wakes.append(Wake(("timers",)))
    payload = base_payload(act, task)
    payload.update(activity_attempt_id=attempt_id, lease_expires_at=iso(now + lease), **act.parallel)
    m.events.append(event(task.run_id, Event.ACTIVITY_STARTED, payload, now))
    return attempt_id


def lease_eagerly(
    core: Core, m: Mutation, worker: WorkerRow, slots: int, now: float
) -> list[tuple[dict[str, Any], ActivityTaskRow, ActivityRow]]:
    """Lease to ``worker`` up to ``slots`` activity tasks that ``m`` schedules (eager tasks).

    Returns each task dict exactly as the worker's poll would answer it, with the leased task
    and its execution as ``m`` leaves them (see :func:`remember_leased`).
    """
    lease = core.settings.activity_lease_seconds
    leased: list[tuple[dict[str, Any], ActivityTaskRow, ActivityRow]] = []
    for task, act in scheduled_activities(m, worker, slots, now):
        attempt_id = lease_ops(m, task, act, worker.worker_id, now, lease)
        row = dataclasses.replace(
            task,
            status="leased",
            attempt_id=attempt_id,
            lease_owner=worker.worker_id,
            lease_expires_at=now + lease,
            started_at=now,
            last_heartbeat_at=None,
        )
        started = dataclasses.replace(
            act, status="started", attempt_number=task.attempt_number, current_task_id=task.task_id
        )
        leased.append((_task_dict(row, started), row, started))
    if leased:
        drop_idle_wakes(m, ActivityTaskRow, worker.namespace, worker.task_queue)
    return leased


def remember_leased(
    core: Core, leased: list[tuple[dict[str, Any], ActivityTaskRow, ActivityRow]], run: RunRow | None
) -> None:
    """Keep committed eager leases for their reports (``engine._rowcache.RecentRows``).

    ``run`` (the run as the committed write left it) is kept only with a single lease: the
    first report of several would move the run on and leave the others a stale copy.
    """
    for _, task, act in leased:
        core.recent.put_activity_task(task, act, run if len(leased) == 1 else None)


async def poll(
    core: Core,
    ns: str,
    *,
    worker_id: str,
    task_queue: str,
    build_id: str | None,
    timeout_seconds: float | None,
    poll_request_id: str | None,
) -> dict[str, Any]:
    """Hold until an activity task is claimed for this worker or the timeout passes."""
    worker = await require_poller(core, ns, worker_id, task_queue, build_id)
    timeout = _clamp_timeout(core, timeout_seconds)
    cache_key = ("activity", ns, task_queue, worker_id, poll_request_id) if poll_request_id else None
    if cache_key is not None and cache_key in core.poll_cache:
        task_id, _ = core.poll_cache[cache_key]
        task = await core.storage.get_activity_task(task_id)
        if task is not None and task.status == "leased" and task.lease_owner == worker_id:
            act = await core.storage.get_activity(task.activity_execution_id)
            if act is not None:
                return {"task": _task_dict(task, act)}
    key = ("activity_task", ns, task_queue)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    lease = core.settings.activity_lease_seconds
    # Each claimed execution as the lease mutation leaves it, so it needs no second read.
    leased_acts: dict[str, ActivityRow] = {}

    while True:
        mark = core.notifier.mark(key)
        now = core.now()

        def build(task: ActivityTaskRow, act: ActivityRow, now: float = now) -> Mutation | None:
            if act.status not in ("scheduled", "started"):
                return None
            leased_acts[task.task_id] = dataclasses.replace(
                act, status="started", attempt_number=task.attempt_number, current_task_id=task.task_id
            )
            m = Mutation(preconditions=[ActivityTaskState(task.task_id, "ready")])
            lease_ops(m, task, act, worker_id, now, lease)
            return m

        # A cheap read first: most polls find nothing, and a claim costs a slot in the writer.
        nxt = await core.storage.next_available_at("activity", ns, task_queue)
        claimed = None
        if nxt is not None and nxt <= now:
            claimed = await core.claim_or_release(
                core.storage.claim_activity_task(ns, task_queue, worker.supported_activity_types, now, build),
                lambda got: release(core, got[0]),
            )
        if claimed is not None:
            task = claimed[0]
            core.history.add(task.run_id, claimed[1])
            try:
                act = leased_acts.pop(task.task_id, None)
                if act is None:
                    act = await core.storage.get_activity(task.activity_execution_id)
            except asyncio.CancelledError:
                core.spawn(release(core, task))
                raise
            assert act is not None
            core.recent.put_activity_task(task, act, None)
            if cache_key is not None:
                core.poll_cache[cache_key] = (task.task_id, task.attempt_number)
            return {"task": _task_dict(task, act)}
        remaining = deadline - loop.time()
        if remaining <= 0:
            return {"task": None}
        wait = min(remaining, core.settings.poll_recheck_seconds)
        if nxt is not None and nxt > now:
            wait = min(wait, max(0.01, nxt - now))
        await core.notifier.wait(key, mark, wait, frozenset(worker.supported_activity_types))


async def release(core: Core, task: ActivityTaskRow) -> None:
    """Give back an attempt leased to a poll that went away: the task is offered again.

    The ActivityStarted already written stays in history (the next claim writes another
    one for the same attempt number); replay treats both as "started, no result yet".
    """
    m = Mutation(preconditions=[ActivityTaskState(task.task_id, "leased", task.attempt_id)])
    m.ops.append(
        Patch(
            ActivityTaskRow,
            (task.task_id,),
            {
                "status": "ready",
                "attempt_id": None,
                "lease_owner": None,
                "lease_expires_at": None,
                "started_at": None,
                "available_at": core.now(),
            },
        )
    )
    m.ops.append(Patch(ActivityRow, (task.activity_execution_id,), {"status": "scheduled"}))
    sts, *attempt_deadlines = attempt_timer_ids(task.task_id)
    cancel_timers(m, *attempt_deadlines)
    m.ops.append(Patch(TimerRow, (sts,), {"status": "pending"}))  # no-op when it had none
    m.wakes.append(Wake(("activity_task", task.namespace, task.task_queue), task.activity_type))
    try:
        await core.storage.apply(m)
    except PreconditionFailed:  # the attempt already ended: nothing to give back
        pass


def _clamp_timeout(core: Core, timeout_seconds: float | None) -> float:
    return hold_seconds(
        timeout_seconds, "timeout_seconds", core.settings.poll_timeout_default, core.settings.poll_timeout_max
    )


# --- the guard of complete / fail / heartbeat ----------------------------------------------


#: What a report may already know before it reads: the attempt's task row, and perhaps its
#: execution and run (remembered by this node's lease, ``engine._rowcache``).
Known = tuple[ActivityTaskRow, ActivityRow | None, RunRow | None]


async def _guard(
    core: Core, ns: str, task_id: str, attempt_id: str, lease_owner: str, known: Known | None = None
) -> tuple[ActivityTaskRow, ActivityRow, RunRow]:
    """The checks of complete / fail / heartbeat; rows from ``known`` are not read again."""
    # Ids that are not strings cannot name anything: "not found", not a database error.
    if known is not None and known[0].task_id == task_id:
        named: ActivityTaskRow | None = known[0]
    else:
        known = None
        named = await core.storage.get_activity_task(task_id) if isinstance(task_id, str) else None
    if named is None or named.namespace != ns:
        raise EngineError("not_found", "task_not_found", "Activity task not found.", task_id=task_id)
    task = (
        named
        if named.attempt_id == attempt_id
        else await core.storage.activity_task_by_attempt(attempt_id)
        if isinstance(attempt_id, str)
        else None
    )
    if task is None or task.namespace != ns:
        raise EngineError(
            "not_found",
            "attempt_not_found",
            "Activity attempt not found.",
            task_id=task_id,
            activity_attempt_id=attempt_id,
        )
    if task.task_id != task_id:
        raise EngineError(
            "conflict",
            "task_mismatch",
            "The attempt belongs to another task.",
            task_id=task_id,
            activity_attempt_id=attempt_id,
        )
    if task.lease_owner != lease_owner:
        raise EngineError(
            "conflict",
            "lease_owner_mismatch",
            "The attempt is leased by another worker.",
            task_id=task_id,
            lease_owner=task.lease_owner,
        )
    mine = known is not None and task is named
    act = known[1] if known is not None and mine else None
    run = known[2] if known is not None and mine else None
    if act is None:
        act = await core.storage.get_activity(task.activity_execution_id)
    if run is None:
        run = await core.storage.get_run(task.run_id)
    if act is None or run is None:
        raise EngineError("not_found", "task_not_found", "Activity task not found.", task_id=task_id)
    return task, act, run


async def _reported(
    core: Core, task_id: str, attempt: Callable[[Known | None], Awaitable[dict[str, Any]]]
) -> dict[str, Any]:
    """Run a report's attempts one at a time per run on this node (``Core.run_serial``).

    The first attempt starts from what is known already: the rows this node's lease
    remembered, else the task row read to find the run. Those may be stale, so a refusal
    decided on them is decided again on fresh reads (``cached_then_fresh``) and the fenced
    write catches the rest; every later attempt reads storage.
    """
    first: Known | None = core.recent.take_activity_task(task_id)
    if first is None and isinstance(task_id, str):
        row = await core.storage.get_activity_task(task_id)
        first = (row, None, None) if row is not None else None
    pending = [first]

    async def once() -> dict[str, Any]:
        return await cached_then_fresh(pending.pop() if pending else None, attempt)

    return await core.run_serial(first[0].run_id if first is not None else None, once)


def _replayed(task: ActivityTaskRow, kind: str, fingerprint: str) -> dict[str, Any] | None:
    """The stored reply when this exact request already succeeded (idempotent retries)."""
    outcome = task.outcome
    if outcome and outcome.get("kind") == kind and outcome.get("fingerprint") == fingerprint:
        reply: dict[str, Any] = outcome["reply"]
        return reply
    return None


def _closed_run_refusal(task: ActivityTaskRow, act: ActivityRow, run: RunRow) -> EngineError:
    if run.status in (RunStatus.CANCELLED, RunStatus.TERMINATED):
        reason = "run_cancelled" if run.status == RunStatus.CANCELLED else "run_terminated"
        return EngineError(
            "conflict",
            reason,
            f"The workflow run was {run.status}.",
            outcome="ignored",
            task_id=task.task_id,
            activity_attempt_id=task.attempt_id,
            cancel_requested=True,
            can_continue=False,
            run_status=run.status,
            activity_status=act.status,
            attempt_status=task.status,
            task_status=task.status,
            lease_owner=task.lease_owner,
            lease_expires_at=iso(task.lease_expires_at),
        )
    return run_closed_error(run)


def _attempt_closed(task: ActivityTaskRow) -> EngineError:
    reason = "stale_attempt" if task.status == "timed_out" else "attempt_closed"
    return EngineError(
        "conflict",
        reason,
        f"The activity attempt is already {task.status}.",
        task_id=task.task_id,
        activity_attempt_id=task.attempt_id,
        attempt_status=task.status,
    )


# --- outcomes -------------------------------------------------------------------------------


async def complete(
    core: Core,
    ns: str,
    task_id: str,
    *,
    attempt_id: str,
    lease_owner: str,
    result: Any,
    eager_workflow_task: bool = False,
) -> dict[str, Any]:
    """Record the attempt's result and wake the workflow (barrier permitting)."""
    try:
        stored = stored_from_envelope(result)
    except PayloadInvalid as exc:
        raise invalid({"result": [str(exc)]}) from exc
    fingerprint = digest(result)

    async def once(known: Known | None) -> dict[str, Any]:
        task, act, run = await _guard(core, ns, task_id, attempt_id, lease_owner, known)
        replay = _replayed(task, "completed", fingerprint)
        if replay is not None:
            return {**replay, "eager_workflow_task": None} if eager_workflow_task else replay
        if is_closed(run):
            raise _closed_run_refusal(task, act, run)
        if task.status != "leased":
            raise _attempt_closed(task)
        now = core.now()
        m = Mutation(
            preconditions=[
                RunVersion(run.run_id, run.version),
                ActivityTaskState(task.task_id, "leased", attempt_id),
            ]
        )
        m.ops.append(
            Patch(ActivityRow, (act.activity_execution_id,), {"status": "completed", "closed_at": now})
        )
        cancel_timers(m, *attempt_timer_ids(task.task_id, act.retry_policy), *sclose_timer_ids(act))
        payload = base_payload(act, task)
        payload.update(result=stored, payload_codec="avro", **act.parallel)
        m.events.append(event(run.run_id, Event.ACTIVITY_COMPLETED, payload, now))
        next_task = await resolve_step(
            core,
            run,
            m,
            now,
            resume_for(act, Event.ACTIVITY_COMPLETED, attempt_id),
            parallel=act.parallel,
            activity_id=act.activity_execution_id,
        )
        leased = await _eager_workflow(core, ns, m, run, next_task, lease_owner, now, eager_workflow_task)
        reply = await _record_outcome(
            core, m, run, task, attempt_id, "completed", fingerprint, next_task, leased
        )
        return {**reply, "eager_workflow_task": leased} if eager_workflow_task else reply

    return await _reported(core, task_id, once)


def _failure_fields(failure: Any) -> dict[str, Any]:
    if not isinstance(failure, dict):
        raise invalid({"failure": ["must be an object"]})
    message = failure.get("message")
    if not isinstance(message, str):
        raise invalid({"failure.message": ["is required: a string"]})
    errors: dict[str, list[str]] = {}
    for name in ("type", "class", "stack_trace", "kind", "timeout_type"):
        if failure.get(name) is not None and not isinstance(failure[name], str):
            errors[f"failure.{name}"] = ["must be a string"]
    for name in ("non_retryable", "retryable", "cancelled"):
        if failure.get(name) is not None and not isinstance(failure[name], bool):
            errors[f"failure.{name}"] = ["must be a boolean"]
    if errors:
        raise invalid(errors)
    non_retryable = bool(failure.get("non_retryable")) or failure.get("retryable") is False
    exception = {
        k: failure.get(k)
        for k in ("type", "class", "message", "code", "stack_trace", "details")
        if failure.get(k) is not None
    }
    return {
        "message": message,
        "exception_type": failure.get("type"),
        "exception_class": failure.get("class"),
        "code": failure.get("code"),
        "non_retryable": non_retryable,
        "exception": exception,
    }


async def fail(
    core: Core,
    ns: str,
    task_id: str,
    *,
    attempt_id: str,
    lease_owner: str,
    failure: Any,
    eager_workflow_task: bool = False,
) -> dict[str, Any]:
    """Record the attempt's failure and apply the retry policy."""
    fields = _failure_fields(failure)
    fingerprint = digest(failure)

    async def once(known: Known | None) -> dict[str, Any]:
        task, act, run = await _guard(core, ns, task_id, attempt_id, lease_owner, known)
        replay = _replayed(task, "failed", fingerprint)
        if replay is not None:
            return {**replay, "eager_workflow_task": None} if eager_workflow_task else replay
        if is_closed(run):
            raise _closed_run_refusal(task, act, run)
        if task.status != "leased":
            raise _attempt_closed(task)
        now = core.now()
        m = Mutation(
            preconditions=[
                RunVersion(run.run_id, run.version),
                ActivityTaskState(task.task_id, "leased", attempt_id),
            ]
        )
        cancel_timers(m, *attempt_timer_ids(task.task_id, act.retry_policy))
        next_task = await attempt_ended(core, run, act, task, m, now, fields, timeout_kind=None)
        leased = await _eager_workflow(core, ns, m, run, next_task, lease_owner, now, eager_workflow_task)
        reply = await _record_outcome(
            core, m, run, task, attempt_id, "failed", fingerprint, next_task, leased
        )
        return {**reply, "eager_workflow_task": leased} if eager_workflow_task else reply

    return await _reported(core, task_id, once)


async def heartbeat(
    core: Core, ns: str, task_id: str, *, attempt_id: str, lease_owner: str, details: Any
) -> dict[str, Any]:
    """Renew the lease, keep the details for the next attempt, report cancellation."""

    async def once() -> dict[str, Any]:
        task, act, run = await _guard(core, ns, task_id, attempt_id, lease_owner)
        now = core.now()
        reply: dict[str, Any] = {
            "task_id": task.task_id,
            "activity_attempt_id": attempt_id,
            "lease_owner": task.lease_owner,
            "cancel_requested": False,
            "can_continue": True,
            "reason": None,
            "run_closed_reason": None,
            "run_closed_at": None,
            "heartbeat_recorded": False,
            "lease_expires_at": iso(task.lease_expires_at),
            "last_heartbeat_at": iso(task.last_heartbeat_at),
        }
        if is_closed(run):
            cancelled = run.status in (RunStatus.CANCELLED, RunStatus.TERMINATED)
            reply.update(
                cancel_requested=cancelled,
                can_continue=False,
                reason={"cancelled": "run_cancelled", "terminated": "run_terminated"}.get(
                    run.status, "run_closed"
                ),
                run_closed_reason=run.closed_reason,
                run_closed_at=iso(run.closed_at),
            )
            return reply
        if task.status != "leased":
            reply.update(
                can_continue=False, reason="stale_attempt" if task.status == "timed_out" else "attempt_closed"
            )
            return reply
        if run.cancel_requested:  # cooperative cancel: the activity may clean up and fail
            reply.update(cancel_requested=True, reason="run_cancel_requested")
        lease_until = now + core.settings.activity_lease_seconds
        m = Mutation(preconditions=[ActivityTaskState(task.task_id, "leased", attempt_id)])
        m.ops.append(
            Patch(
                ActivityTaskRow, (task.task_id,), {"last_heartbeat_at": now, "lease_expires_at": lease_until}
            )
        )
        if details is not None:
            m.ops.append(Patch(ActivityRow, (act.activity_execution_id,), {"heartbeat_details": details}))
        hb = act.retry_policy.get("heartbeat_timeout")
        if hb:
            m.ops.append(Patch(TimerRow, (f"hb:{task.task_id}",), {"fire_at": now + hb}))
        # Moves the stand-in start-to-close deadline, if this attempt has one.
        m.ops.append(Patch(TimerRow, (f"lease:{task.task_id}",), {"fire_at": lease_until}))
        await core.storage.apply(m)
        reply.update(heartbeat_recorded=True, lease_expires_at=iso(lease_until), last_heartbeat_at=iso(now))
        return reply

    return await core.retrying(once)


async def _eager_workflow(
    core: Core,
    ns: str,
    m: Mutation,
    run: RunRow,
    next_task: str | None,
    lease_owner: str,
    now: float,
    wanted: bool,
) -> WorkflowTaskRow | None:
    """Lease the workflow task ``m`` creates to the reporting worker, when it asked and may."""
    if not wanted or next_task is None:
        return None
    worker = await eligible_worker(core, ns, lease_owner)
    if worker is None:
        return None
    return lease_workflow_task(core, m, run, next_task, worker, now)


async def _record_outcome(
    core: Core,
    m: Mutation,
    run: RunRow,
    task: ActivityTaskRow,
    attempt_id: str,
    kind: str,
    fingerprint: str,
    next_task: str | None,
    leased: WorkflowTaskRow | None,
) -> dict[str, Any]:
    """Close the task with its reply stored beside it, so a retried identical report gets the
    same answer (completions and failures are idempotent per attempt), and apply ``m``.

    A workflow task ``m`` leases eagerly is remembered with the run as ``m`` leaves it, for
    its task dict and its completion (``engine._rowcache``)."""
    reply = {
        "task_id": task.task_id,
        "activity_attempt_id": attempt_id,
        "outcome": kind,
        "recorded": True,
        "reason": None,
        "next_task_id": next_task,
    }
    m.ops.append(
        Patch(
            ActivityTaskRow,
            (task.task_id,),
            {"status": kind, "outcome": {"kind": kind, "fingerprint": fingerprint, "reply": reply}},
        )
    )
    events = await core.storage.apply(m)
    core.history.add(run.run_id, events)
    after = run_after(run, m, events)
    core.recent.carry_no_updates(run, m, after)
    if leased is not None and after is not None:
        core.recent.put_workflow_task(leased, after)
    return reply
