"""Workflow tasks: poll, history pages, heartbeat, complete and fail (worker-plane §4).

The lease is fenced by ``workflow_task_attempt``: every claim adds one, and every route
checks owner, attempt and expiry (§4.2). Complete and fail are idempotent per
(task, attempt): a retried identical request gets the first answer again.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from durable_workflow.protocol import RunStatus
from durable_workflow_server.engine import _activity_tasks, _commands, _messages
from durable_workflow_server.engine._core import (
    RESUME_KEYS,
    Core,
    digest,
    hold_seconds,
    is_closed,
    new_workflow_task,
    run_closed_error,
    wire_event,
)
from durable_workflow_server.engine._eager import eligible_worker
from durable_workflow_server.engine._errors import EngineError, invalid
from durable_workflow_server.engine._limits import INT64_MAX
from durable_workflow_server.engine._payloads import envelope
from durable_workflow_server.engine._rowcache import (
    cached_then_fresh,
    inserted_run,
    predicted_events,
    run_after,
)
from durable_workflow_server.engine._time import iso
from durable_workflow_server.engine._workers import require_poller
from durable_workflow_server.storage import (
    ActivityRow,
    ActivityTaskRow,
    EventRow,
    Inc,
    Insert,
    Mutation,
    Patch,
    PatchWhere,
    PreconditionFailed,
    RunRow,
    RunVersion,
    Wake,
    WorkflowTaskRow,
    WorkflowTaskState,
)

T = TypeVar("T")

#: A task failure of this type means "nothing new to do": the task ends without a failure.
WAITING_FOR_HISTORY = "WorkflowTaskWaitingForHistory"


def encode_token(sequence: int) -> str:
    """History page token: base64 of the decimal last delivered sequence."""
    return base64.b64encode(str(sequence).encode()).decode()


def decode_token(token: Any) -> int:
    """The sequence inside a page token (``None``/empty means from the start).

    Raises:
        EngineError: 400 ``invalid_page_token``.
    """
    if token is None or token == "":
        return 0
    try:
        text = base64.b64decode(str(token), validate=True).decode()
        if not text.isascii() or not text.isdigit() or int(text) > INT64_MAX:
            raise ValueError(text)
        return int(text)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise EngineError("bad_request", "invalid_page_token", "The page token is not valid.") from exc


def _page_size(core: Core, value: Any) -> int:
    if value is None:
        return core.settings.history_page_size_default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise invalid({"history_page_size": ["must be an integer >= 1"]})
    return min(value, core.settings.history_page_size_max)


async def _history_page(
    core: Core, run_id: str, after: int, cap: int, size: int
) -> tuple[list[dict[str, Any]], str | None]:
    limit = max(0, min(size, cap - after))
    events = core.history.page(run_id, after, limit) if limit else []
    if events is None:
        events = await core.storage.history(run_id, after=after, limit=limit)
        core.history.add(run_id, events)
    last = events[-1].sequence if events else after
    token = encode_token(last) if last < cap else None
    return [wire_event(e) for e in events], token


async def _task_dict(core: Core, task: WorkflowTaskRow, run: RunRow, page_size: int) -> dict[str, Any]:
    cap = task.history_cap if task.history_cap is not None else run.last_history_sequence
    events, token = await _history_page(core, run.run_id, 0, cap, page_size)
    body: dict[str, Any] = {
        "task_id": task.task_id,
        "namespace": task.namespace,
        "workflow_id": task.workflow_id,
        "run_id": task.run_id,
        "workflow_task_attempt": task.attempt,
        "workflow_type": task.workflow_type,
        "payload_codec": "avro",
        "arguments": envelope(run.input),
        "run_status": run.status,
        "last_history_sequence": cap,
        "total_history_events": cap,
        "history_events": events,
        "next_history_page_token": token,
        "task_queue": task.task_queue,
        "connection": None,
        "compatibility": task.compatibility,
        "lease_owner": task.lease_owner,
        "lease_expires_at": iso(task.lease_expires_at),
    }
    for key in RESUME_KEYS:
        body[key] = task.resume.get(key)
    if "update_name" in task.resume:  # an update not accepted yet: the worker validates it
        body["update_name"] = task.resume["update_name"]
        body["update_arguments"] = envelope(task.resume.get("update_arguments"))
    return body


def _run_after_lease(run: RunRow | None) -> RunRow | None:
    """``run`` as the lease mutation of ``poll`` leaves it (version fence, the run patch)."""
    if run is None:
        return None
    return dataclasses.replace(
        run, status=RunStatus.RUNNING.value, version=run.version + 1, wake_pending=False, pending_resume=None
    )


async def poll(
    core: Core,
    ns: str,
    *,
    worker_id: str,
    task_queue: str,
    build_id: str | None,
    timeout_seconds: float | None,
    poll_request_id: str | None,
    history_page_size: int | None,
) -> dict[str, Any]:
    """Hold until a workflow task is leased to this worker or the timeout passes."""
    worker = await require_poller(core, ns, worker_id, task_queue, build_id)
    page_size = _page_size(core, history_page_size)
    timeout = hold_seconds(
        timeout_seconds, "timeout_seconds", core.settings.poll_timeout_default, core.settings.poll_timeout_max
    )
    routing_build = worker.build_id
    cache_key = (
        ("workflow", ns, task_queue, routing_build or "", worker_id, poll_request_id)
        if poll_request_id
        else None
    )
    if cache_key is not None and cache_key in core.poll_cache:
        task_id, attempt = core.poll_cache[cache_key]
        cached = await core.storage.get_workflow_task(task_id)
        if (
            cached is not None
            and cached.status == "leased"
            and cached.lease_owner == worker_id
            and cached.attempt == attempt
            and (cached.lease_expires_at or 0) > core.now()
        ):
            run = await core.storage.get_run(cached.run_id)
            if run is not None and not is_closed(run):
                return {"task": await _task_dict(core, cached, run, page_size)}
    key = ("workflow_task", ns, task_queue)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    lease = core.settings.workflow_task_lease_seconds

    # The run each lease was built on, so the claimed task's run needs no second read.
    leased_runs: dict[str, RunRow] = {}

    while True:
        mark = core.notifier.mark(key)
        now = core.now()

        def build(task: WorkflowTaskRow, run: RunRow, now: float = now) -> Mutation | None:
            if is_closed(run):
                return None
            leased_runs[task.task_id] = run
            m = Mutation(preconditions=[RunVersion(run.run_id, run.version)])
            m.ops.append(
                Patch(
                    WorkflowTaskRow,
                    (task.task_id,),
                    {
                        "status": "leased",
                        "attempt": Inc(1),
                        "lease_owner": worker_id,
                        "lease_expires_at": now + lease,
                        "history_cap": run.last_history_sequence,
                    },
                )
            )
            # The new lessee gets the whole history, so nothing is pending for it any more.
            m.ops.append(
                Patch(
                    RunRow,
                    (run.run_id,),
                    {"status": RunStatus.RUNNING, "wake_pending": False, "pending_resume": None},
                )
            )
            return m

        # A cheap read first: most polls find nothing, and a claim costs a slot in the writer.
        nxt = await core.storage.next_available_at("workflow", ns, task_queue)
        claimed = None
        if nxt is not None and nxt <= now:
            claimed = await core.claim_or_release(
                core.storage.claim_workflow_task(
                    ns, task_queue, worker.supported_workflow_types, routing_build, now, build
                ),
                lambda got: release(core, got[0]),
            )
        if claimed is not None:
            task = claimed[0]
            try:
                before = leased_runs.pop(task.task_id, None)
                run = _run_after_lease(before)
                if run is not None:
                    core.recent.put_workflow_task(task, run)
                    # The lease inserted no update: what was known of its run still holds.
                    if before is not None and core.recent.no_updates(before.run_id, before.version):
                        core.recent.note_no_updates(run.run_id, run.version)
                else:
                    run = await core.storage.get_run(task.run_id)
                assert run is not None
                body = await _task_dict(core, task, run, page_size)
            except asyncio.CancelledError:
                core.spawn(release(core, task))
                raise
            if cache_key is not None:
                core.poll_cache[cache_key] = (task.task_id, task.attempt)
                if len(core.poll_cache) > 10_000:  # a retry convenience only: keep it bounded
                    core.poll_cache.pop(next(iter(core.poll_cache)))
            return {"task": body}
        remaining = deadline - loop.time()
        if remaining <= 0:
            return {"task": None}
        wait = min(remaining, core.settings.poll_recheck_seconds)
        if nxt is not None and nxt > now:
            wait = min(wait, max(0.01, nxt - now))
        await core.notifier.wait(key, mark, wait, frozenset(worker.supported_workflow_types))


async def release(core: Core, task: WorkflowTaskRow) -> None:
    """Make a task leased to a poll that went away ready again (if it still is that lease)."""
    m = Mutation(
        preconditions=[WorkflowTaskState(task.task_id, "leased", task.lease_owner, task.attempt)],
        ops=[
            Patch(
                WorkflowTaskRow,
                (task.task_id,),
                {
                    "status": "ready",
                    "lease_owner": None,
                    "lease_expires_at": None,
                    "available_at": core.now(),
                },
            )
        ],
        wakes=[Wake(("workflow_task", task.namespace, task.task_queue), task.workflow_type)],
    )
    try:
        await core.storage.apply(m)
    except PreconditionFailed:  # completed, failed or re-leased meanwhile: nothing to give back
        pass


async def _guard(
    core: Core,
    ns: str,
    task_id: str,
    lease_owner: str,
    attempt: int,
    task: WorkflowTaskRow | None = None,
    run: RunRow | None = None,
) -> tuple[WorkflowTaskRow, RunRow]:
    """The §4.2 checks, in order; returns the task and its run (``task``, ``run``: already known)."""
    if task is None and isinstance(task_id, str):
        task = await core.storage.get_workflow_task(task_id)
    if task is None or task.namespace != ns:
        raise EngineError("not_found", "task_not_found", "Workflow task not found.", task_id=task_id)
    if run is None or run.run_id != task.run_id:
        run = await core.storage.get_run(task.run_id)
    if run is None:
        raise EngineError("not_found", "task_not_found", "Workflow task not found.", task_id=task_id)
    if is_closed(run):
        error = run_closed_error(run)
        error.extra["task_id"] = task_id
        raise error
    if task.status != "leased":
        raise EngineError(
            "conflict",
            "task_not_leased",
            "The workflow task is not leased.",
            task_id=task_id,
            task_status=task.status,
        )
    if task.lease_owner != lease_owner:
        raise EngineError(
            "conflict",
            "lease_owner_mismatch",
            "Workflow task lease is owned by another worker.",
            task_id=task_id,
            workflow_task_attempt=attempt,
            lease_owner=task.lease_owner,
        )
    if task.attempt != attempt:
        raise EngineError(
            "conflict",
            "workflow_task_attempt_mismatch",
            "The workflow task attempt does not match the current lease.",
            task_id=task_id,
            current_attempt=task.attempt,
        )
    if (task.lease_expires_at or 0) <= core.now():
        raise EngineError(
            "conflict",
            "lease_expired",
            "The workflow task lease expired.",
            task_id=task_id,
            task_status=task.status,
            lease_owner=task.lease_owner,
            lease_expires_at=iso(task.lease_expires_at),
        )
    return task, run


def _replayed(
    task: WorkflowTaskRow, kind: str, lease_owner: str, attempt: int, fingerprint: str
) -> dict[str, Any] | None:
    outcome = task.outcome
    if (
        outcome
        and outcome.get("kind") == kind
        and outcome.get("attempt") == attempt
        and outcome.get("lease_owner") == lease_owner
        and outcome.get("fingerprint") == fingerprint
        and task.attempt == attempt
    ):
        reply: dict[str, Any] = outcome["reply"]
        return reply
    return None


async def history(
    core: Core,
    ns: str,
    task_id: str,
    *,
    lease_owner: str,
    attempt: int,
    page_token: Any,
    page_size: int | None,
) -> dict[str, Any]:
    """A later page of the task's history (§4.3)."""
    after = decode_token(page_token)
    size = _page_size(core, page_size)
    task, run = await _guard(core, ns, task_id, lease_owner, attempt)
    cap = task.history_cap if task.history_cap is not None else run.last_history_sequence
    if after > cap:
        raise EngineError(
            "not_found", "history_not_available", "No history after that token.", task_id=task_id
        )
    events, token = await _history_page(core, run.run_id, after, cap, size)
    return {
        "task_id": task_id,
        "workflow_task_attempt": attempt,
        "history_events": events,
        "total_history_events": cap,
        "next_history_page_token": token,
    }


async def heartbeat(core: Core, ns: str, task_id: str, *, lease_owner: str, attempt: int) -> dict[str, Any]:
    """Renew the lease (§4.4)."""

    async def once() -> dict[str, Any]:
        _, run = await _guard(core, ns, task_id, lease_owner, attempt)
        until = core.now() + core.settings.workflow_task_lease_seconds
        await core.storage.apply(
            Mutation(
                preconditions=[WorkflowTaskState(task_id, "leased", lease_owner, attempt)],
                ops=[Patch(WorkflowTaskRow, (task_id,), {"lease_expires_at": until})],
            )
        )
        return {
            "task_id": task_id,
            "workflow_task_attempt": attempt,
            "lease_owner": lease_owner,
            "renewed": True,
            "lease_expires_at": iso(until),
            "run_status": run.status,
            "task_status": "leased",
            "reason": None,
        }

    return await core.retrying(once)


def _follow_up(
    core: Core, run: RunRow, m: Mutation, now: float, force: dict[str, Any] | None = None
) -> str | None:
    """After a task ends without closing the run: start the next one if events arrived meanwhile.

    The caller appends ``m`` after the writes that end the current task: the schema allows
    one open task per run, and the insert must not meet the old one still open.
    """
    if not run.wake_pending and force is None:
        return None
    created = new_workflow_task(run, now, force or run.pending_resume)
    m.ops.append(Insert(created))
    m.ops.append(Patch(RunRow, (run.run_id,), {"wake_pending": False, "pending_resume": None}))
    m.wakes.append(Wake(("workflow_task", run.namespace, run.task_queue), run.workflow_type))
    return created.task_id


async def complete(
    core: Core,
    ns: str,
    task_id: str,
    *,
    lease_owner: str,
    attempt: int,
    commands: Any,
    eager_activity_slots: int | None = None,
) -> dict[str, Any]:
    """Validate and apply the commands in one transaction (§4.5)."""
    fingerprint = digest(commands)

    async def attempt_on(known: tuple[WorkflowTaskRow, RunRow] | None) -> dict[str, Any]:
        task, run = known if known is not None else (None, None)
        if task is None:
            task = await core.storage.get_workflow_task(task_id) if isinstance(task_id, str) else None
        if task is not None and task.namespace == ns:
            replay = _replayed(task, "completed", lease_owner, attempt, fingerprint)
            if replay is not None:
                return replay if eager_activity_slots is None else {**replay, "eager_activity_tasks": []}
        task, run = await _guard(core, ns, task_id, lease_owner, attempt, task, run)
        plan = _commands.validate(commands, run)
        now = core.now()
        m = Mutation(
            preconditions=[
                RunVersion(run.run_id, run.version),
                WorkflowTaskState(task_id, "leased", lease_owner, attempt),
            ]
        )
        after = Mutation()
        # One read of the run's open messages serves both hooks (nothing is written between).
        reads = _messages.Reads()
        await _messages.before_commands(core, run, task, plan.commands, m, now, reads)
        # The task's own completion goes before the commands' writes (added below, once the
        # reply is known): then storage can fold it into the check that the task is leased.
        at = len(m.ops)
        status, created = await _commands.apply(core, run, task, plan, m, now)
        if status not in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED):
            force = await _messages.follow_up_resume(core, run, task, plan.commands, m, reads)
            follow = _follow_up(core, run, after, now, force)
            if follow is not None:
                created.append(follow)
        reply = {
            "task_id": task_id,
            "workflow_task_attempt": attempt,
            "outcome": "completed",
            "recorded": True,
            "run_id": run.run_id,
            "run_status": str(status),
            "created_task_ids": created,
            "reason": None,
        }
        m.ops.insert(
            at,
            Patch(
                WorkflowTaskRow,
                (task_id,),
                {
                    "status": "completed",
                    "lease_expires_at": None,
                    "outcome": {
                        "kind": "completed",
                        "attempt": attempt,
                        "lease_owner": lease_owner,
                        "fingerprint": fingerprint,
                        "reply": reply,
                    },
                },
            )
        )
        m.extend(after)
        eager: list[tuple[dict[str, Any], ActivityTaskRow, ActivityRow]] = []
        closing = status in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)
        if eager_activity_slots and not closing:
            worker = await eligible_worker(core, ns, lease_owner)
            if worker is not None:
                eager = _activity_tasks.lease_eagerly(core, m, worker, eager_activity_slots, now)
        events = await _apply_closing(core, run, m) if closing else await core.storage.apply(m)
        written = run_after(run, m, events)
        _remember_completion(core, task_id, m, events, written, closing)
        if not closing:
            core.recent.carry_no_updates(run, m, written, known=reads.read_no_updates(run.run_id))
        if eager:
            _activity_tasks.remember_leased(core, eager, written)
        if eager_activity_slots is None:
            return reply
        return {**reply, "eager_activity_tasks": [body for body, _, _ in eager]}

    return await _reported(core, task_id, attempt_on)


async def _apply_closing(core: Core, run: RunRow, m: Mutation) -> list[EventRow]:
    """Apply a completion that closes the run, announcing the closed row to this node's
    result waiters (``RecentRows.expect_close``), so they need not read it."""
    closed = run_after(run, m, predicted_events(run, m))
    wake = next((w for w in m.wakes if w.key == ("run_closed", run.run_id)), None)
    if closed is None or wake is None or not is_closed(closed):
        return await core.storage.apply(m)
    core.recent.expect_close(wake, closed)
    try:
        return await core.storage.apply(m)
    except BaseException:
        core.recent.close_failed(run.run_id, wake)
        raise


def _remember_completion(
    core: Core, task_id: str, m: Mutation, events: list[EventRow], run: RunRow | None, closing: bool
) -> None:
    """Keep what a committed completion tells about its run (``engine._rowcache``,
    ``engine._history_cache``): the history it appended, the closed run, or that no workflow
    task is open after it (the completed one was the run's only one)."""
    if run is None:
        return
    if closing:
        core.history.drop(run.run_id)
        if is_closed(run):
            core.recent.note_closed(run)
        return
    core.history.add(run.run_id, events)
    for op in m.ops:
        if isinstance(op, Insert) and isinstance(op.row, WorkflowTaskRow) and op.row.run_id == run.run_id:
            return
        if (
            isinstance(op, Patch | PatchWhere)
            and op.table is WorkflowTaskRow
            and (not isinstance(op, Patch) or op.key != (task_id,))
        ):
            return
    core.recent.note_task_free(run.run_id, run.version)


async def _reported(
    core: Core, task_id: str, attempt: Callable[[tuple[WorkflowTaskRow, RunRow] | None], Awaitable[T]]
) -> T:
    """Run a report's attempts until one is not fenced off (``Core.retrying``).

    The first attempt starts from the rows this node's lease of the task remembered, if any;
    they may be stale, so a refusal decided on them is decided again on fresh reads
    (``cached_then_fresh``) and the fenced write catches the rest. Later attempts read storage.
    """
    pending = [core.recent.take_workflow_task(task_id)]

    async def once() -> T:
        return await cached_then_fresh(pending.pop() if pending else None, attempt)

    return await core.retrying(once)


async def eager_task_dict(
    core: Core, task: WorkflowTaskRow, *, write: tuple[Mutation, Sequence[EventRow]] | None = None
) -> dict[str, Any] | None:
    """The poll's task dict for a workflow task leased eagerly (None if its run closed meanwhile).

    Call it once the lease is committed. The run comes from what this node remembered of that
    write (``engine._rowcache``) or is read, and is then remembered for the task's completion.

    Args:
        write: the committed mutation that inserted the run and leased the task (a start),
            with the events ``apply`` returned: then neither the run nor its history is read.
    """
    if write is not None:
        inserted = inserted_run(write[0], task.run_id, write[1])
        if inserted is not None:
            core.history.add(task.run_id, write[1])
            core.recent.put_workflow_task(task, inserted)
    known = core.recent.peek_workflow_task(task.task_id)
    if known is not None and known[0].attempt == task.attempt:
        run: RunRow | None = known[1]
    else:
        run = await core.storage.get_run(task.run_id)
        if run is not None and not is_closed(run):
            core.recent.put_workflow_task(task, run)
    if run is None or is_closed(run):
        return None
    return await _task_dict(core, task, run, core.settings.history_page_size_default)


async def fail(
    core: Core, ns: str, task_id: str, *, lease_owner: str, attempt: int, failure: Any
) -> dict[str, Any]:
    """A task failure (§4.6): quiet release for "waiting for history", else retry with backoff.

    Upstream never retries a failed workflow task; we retry it after 1 s, doubling up to 60 s,
    so that a transient worker problem (a deploy, a missing dependency) heals by itself, and
    show the last failure in describe meanwhile.
    """
    if not isinstance(failure, dict):
        raise invalid({"failure": ["must be an object"]})
    message = failure.get("message")
    if not isinstance(message, str):
        raise invalid({"failure.message": ["is required: a string"]})
    ftype = failure.get("type")
    if ftype is not None and not isinstance(ftype, str):
        raise invalid({"failure.type": ["must be a string"]})
    fingerprint = digest(failure)

    async def attempt_on(known: tuple[WorkflowTaskRow, RunRow] | None) -> dict[str, Any]:
        task, run = known if known is not None else (None, None)
        if task is None:
            task = await core.storage.get_workflow_task(task_id) if isinstance(task_id, str) else None
        if task is not None and task.namespace == ns:
            replay = _replayed(task, "failed", lease_owner, attempt, fingerprint)
            if replay is not None:
                return replay
        task, run = await _guard(core, ns, task_id, lease_owner, attempt, task, run)
        now = core.now()
        m = Mutation(
            preconditions=[
                RunVersion(run.run_id, run.version),
                WorkflowTaskState(task_id, "leased", lease_owner, attempt),
            ]
        )
        after = Mutation()
        fields: dict[str, Any]
        if ftype == WAITING_FOR_HISTORY:
            fields = {"status": "released", "lease_expires_at": None}
            force = await _messages.follow_up_resume(core, run, task, None, m, _messages.Reads())
            next_task = _follow_up(core, run, after, now, force)
            m.ops.append(Patch(RunRow, (run.run_id,), {"status": RunStatus.WAITING}))
        else:
            count = task.failure_count + 1
            delay = min(
                core.settings.workflow_task_backoff_max,
                core.settings.workflow_task_backoff_base * 2 ** (count - 1),
            )
            retry_at = now + delay
            fields = {
                "status": "ready",
                "lease_owner": None,
                "lease_expires_at": None,
                "available_at": retry_at,
                "failure_count": count,
                "last_failure": {
                    "message": message,
                    "type": ftype,
                    "reason": failure.get("reason"),
                    "attempt": attempt,
                    "failure_count": count,
                    "failed_at": iso(now),
                    "retry_at": iso(retry_at),
                },
            }
            # The retried task re-delivers the whole history, covering anything that arrived.
            m.ops.append(Patch(RunRow, (run.run_id,), {"wake_pending": False, "pending_resume": None}))
            m.wakes.append(Wake(("workflow_task", ns, task.task_queue), task.workflow_type))
            next_task = task_id
        reply = {
            "task_id": task_id,
            "workflow_task_attempt": attempt,
            "outcome": "failed",
            "recorded": True,
            "reason": None,
            "next_task_id": next_task,
        }
        fields["outcome"] = {
            "kind": "failed",
            "attempt": attempt,
            "lease_owner": lease_owner,
            "fingerprint": fingerprint,
            "reply": reply,
        }
        m.ops.append(Patch(WorkflowTaskRow, (task_id,), fields))
        m.extend(after)
        await core.storage.apply(m)
        return reply

    return await _reported(core, task_id, attempt_on)
