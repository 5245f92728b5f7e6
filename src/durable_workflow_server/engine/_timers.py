"""The background loop that fires due rows of the durable ``timers`` table.

User timers, activity timeouts and run deadlines all live there, so after a restart the loop
simply finds what became due while the server was down. Firing is exactly-once even with
several server nodes: the mutation's ``TimerDue`` precondition is a conditional UPDATE
(pending -> fired) that only one writer can win.
"""

from __future__ import annotations

import asyncio
import logging
import time

from durable_workflow.protocol import Event, RunStatus
from durable_workflow_server.engine import _activities, _children, _messages
from durable_workflow_server.engine._core import Core, close_run, event, is_closed, resume_info
from durable_workflow_server.engine._ids import new_id
from durable_workflow_server.engine._steps import resolve_step
from durable_workflow_server.engine._time import iso
from durable_workflow_server.storage import Mutation, RunVersion, TimerDue, TimerRow

log = logging.getLogger(__name__)

_RETRY_FAILED = 5.0

RUN_DEADLINES = {"run_deadline": "run_timeout", "execution_deadline": "execution_timeout"}


async def fire(core: Core, timer: TimerRow) -> bool:
    """Fire one due timer; False if someone else already did (or it was moved or cancelled)."""

    async def once() -> bool:
        now = core.now()
        current = await core.storage.get_timer(timer.timer_id)
        if current is None or current.status != "pending" or current.fire_at > now:
            return False
        run = await core.storage.get_run(current.run_id)
        m = Mutation(preconditions=[TimerDue(current.timer_id, now)])
        if run is not None and not is_closed(run):
            m.preconditions.append(RunVersion(run.run_id, run.version))
            if current.kind == "user":
                data = current.data
                parallel = data.get("parallel") or {}
                payload = {
                    "timer_id": current.timer_id,
                    "sequence": data.get("sequence"),
                    "delay_seconds": data.get("delay_seconds"),
                    "fire_at": iso(current.fire_at),
                    "fired_at": iso(now),
                    **parallel,
                }
                if data.get("timer_kind") is not None:
                    payload["timer_kind"] = data["timer_kind"]
                m.events.append(event(run.run_id, Event.TIMER_FIRED, payload, now))
                resume = resume_info(
                    workflow_wait_kind="timer",
                    open_wait_id=f"timer:{current.timer_id}",
                    resume_source_kind="timer",
                    resume_source_id=current.timer_id,
                    timer_id=current.timer_id,
                    workflow_sequence=data.get("sequence"),
                    workflow_event_type=Event.TIMER_FIRED,
                )
                await resolve_step(core, run, m, now, resume, parallel=parallel, timer_id=current.timer_id)
            elif current.kind in RUN_DEADLINES:
                kind = RUN_DEADLINES[current.kind]
                message = f"The workflow run exceeded its {kind.replace('_', ' ')}."
                failure = {
                    "message": message,
                    "exception_type": "WorkflowTimedOut",
                    "exception_class": "WorkflowTimedOut",
                    "non_retryable": True,
                    "timeout_kind": kind,
                }
                m.events.append(
                    event(
                        run.run_id,
                        Event.WORKFLOW_TIMED_OUT,
                        {
                            "failure_id": new_id(),
                            "timeout_kind": kind,
                            "failure_category": "timeout",
                            "message": message,
                            "exception_class": "WorkflowTimedOut",
                            "execution_deadline_at": iso(run.execution_deadline_at),
                            "run_deadline_at": iso(run.run_deadline_at),
                        },
                        now,
                    )
                )
                await close_run(
                    core, run, m, now, status=RunStatus.FAILED, closed_reason="timed_out", failure=failure
                )
            elif current.kind in _activities.TIMEOUT_KINDS:
                await _activities.on_timeout(core, current, run, m, now)
            elif current.kind in _children.TIMER_KINDS:
                await _children.on_timer(core, current, run, m, now)
            elif current.kind == _messages.CONDITION_TIMER:
                await _messages.fire_condition_timer(core, current, run, m, now)
        await core.storage.apply(m)
        return True

    return await core.retrying(once)


async def fire_due(core: Core) -> int:
    """Fire everything due now; return how many fired.

    A timer whose firing raises is logged and left alone for ``_RETRY_FAILED`` seconds (in
    memory: a retry convenience), so one bad row cannot stall or flood the loop.
    """
    fired = 0
    while True:
        batch = await core.storage.due_timers(core.now(), core.settings.timer_batch)
        now_m = time.monotonic()
        due = [t for t in batch if core.timer_retry.get(t.timer_id, 0.0) <= now_m]
        if not due:
            return fired
        results = await asyncio.gather(*(fire(core, t) for t in due), return_exceptions=True)
        progressed = False
        for timer, result in zip(due, results, strict=True):
            if isinstance(result, BaseException):
                core.timer_retry[timer.timer_id] = now_m + _RETRY_FAILED
                log.error("firing timer %s (%s) failed: %r", timer.timer_id, timer.kind, result)
            else:
                core.timer_retry.pop(timer.timer_id, None)
                progressed = True
                fired += int(result)
        if len(batch) < core.settings.timer_batch or not progressed:
            return fired


async def run_loop(core: Core, stopping: asyncio.Event) -> None:
    """Fire due timers until ``stopping`` is set; wakes early when a new timer is created."""
    key = ("timers",)
    while not stopping.is_set():
        mark = core.notifier.mark(key)
        fired = 0
        nxt: float | None = None
        try:
            fired = await fire_due(core)
            nxt = await core.storage.next_timer_at()
        except Exception:  # the loop must outlive any one failure; the next pass retries
            log.exception("timer loop pass failed")
        wait = core.settings.timer_poll_seconds
        if nxt is not None:
            until = nxt - core.now()
            # Something due that did not fire is failing: wait a full pass, do not spin.
            wait = wait if until <= 0 and fired == 0 else max(0.005, min(wait, until))
        await core.notifier.wait(key, mark, wait)
