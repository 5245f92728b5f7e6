"""What every engine module shares: the storage handle, the clock, wake-ups, and the
helpers that build the writes common to many operations (events, waking a workflow,
closing a run).

Every decision follows one pattern: read the rows, decide, build one :class:`Mutation`
whose preconditions pin what was read (usually the run's ``version``), apply it. If a
precondition fails someone else changed the run in between: read again and decide again.
This is optimistic concurrency, correct with one server node or many.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from durable_workflow.protocol import TERMINAL_RUN_STATUSES, RunStatus
from durable_workflow_server.engine._clock import Clock
from durable_workflow_server.engine._errors import EngineError
from durable_workflow_server.engine._history_cache import HistoryCache
from durable_workflow_server.engine._ids import new_id
from durable_workflow_server.engine._notify import Notifier
from durable_workflow_server.engine._rowcache import RecentRows, WorkerCache
from durable_workflow_server.engine._settings import EngineSettings
from durable_workflow_server.engine._time import iso
from durable_workflow_server.storage import (
    ActivityRow,
    ActivityTaskRow,
    AnyOf,
    EventRow,
    Insert,
    Mutation,
    NewEvent,
    Patch,
    PatchWhere,
    PreconditionFailed,
    RunRow,
    Storage,
    StorageUnavailable,
    TimerRow,
    Wake,
    WorkerRow,
    WorkflowTaskRow,
    WorkflowTaskState,
)

T = TypeVar("T")
C = TypeVar("C")

log = logging.getLogger(__name__)

#: The twenty resume keys of a workflow task (worker-plane §4.1), all null by default.
RESUME_KEYS = (
    "workflow_wait_kind",
    "open_wait_id",
    "resume_source_kind",
    "resume_source_id",
    "activity_execution_id",
    "activity_attempt_id",
    "activity_type",
    "workflow_sequence",
    "workflow_event_type",
    "workflow_update_id",
    "workflow_signal_id",
    "signal_name",
    "signal_wait_id",
    "workflow_command_id",
    "child_call_id",
    "child_workflow_run_id",
    "timer_id",
    "condition_wait_id",
    "condition_key",
    "condition_definition_fingerprint",
)

_MAX_RETRIES = 50
_contention = random.Random()


@dataclass
class Core:
    """Shared engine state; nothing here is the source of truth except storage."""

    storage: Storage
    settings: EngineSettings
    clock: Clock
    notifier: Notifier = field(default_factory=Notifier)
    #: poll_request_id -> (task id, attempt): a retry convenience only (worker-plane §4.1).
    poll_cache: dict[tuple[str, ...], tuple[str, int]] = field(default_factory=dict)
    #: timer id -> monotonic time before which a timer that failed to fire is skipped.
    timer_retry: dict[str, float] = field(default_factory=dict)
    #: fire-and-forget work (lease releases) kept referenced until it finishes.
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    #: run id -> (lock, users): serialises this node's writers of one run (see run_serial).
    run_locks: dict[str, tuple[asyncio.Lock, int]] = field(default_factory=dict)
    #: worker registrations read lately (engine._rowcache: bounded staleness, local invalidation).
    workers: WorkerCache = field(init=False)
    #: rows an eager lease produced, taken once by the report that ends the task (engine._rowcache).
    recent: RecentRows = field(default_factory=RecentRows)
    #: history prefixes read or written lately (engine._history_cache: immutable events).
    history: HistoryCache = field(default_factory=HistoryCache)

    def __post_init__(self) -> None:
        self.workers = WorkerCache(self.settings.worker_cache_seconds)

    async def get_worker(self, namespace: str, worker_id: str) -> WorkerRow | None:
        """A worker registration at most ``settings.worker_cache_seconds`` old (see _rowcache).

        For decisions that tolerate that staleness only (eager leases, poll preconditions).
        """
        now = self.now()
        cached = self.workers.get(namespace, worker_id, now)
        if cached is not None:
            return cached
        row = await self.storage.get_worker(namespace, worker_id)
        if row is not None:
            self.workers.put(row, now)
        return row

    def now(self) -> float:
        """The clock's time."""
        return self.clock.now()

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run ``work`` in the background; failures are logged, never raised."""
        task = asyncio.ensure_future(work)
        self.background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self.background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("background engine work failed: %r", task.exception())

    async def claim_or_release(
        self, claim: Coroutine[Any, Any, C | None], release: Callable[[C], Coroutine[Any, Any, Any]]
    ) -> C | None:
        """Await a claim; if the poll is cancelled meanwhile (its client left), give back
        whatever the claim leased instead of leaving it leased to nobody until expiry."""
        future = asyncio.ensure_future(claim)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:

            def give_back(done: asyncio.Future[C | None]) -> None:
                if not done.cancelled() and done.exception() is None and done.result() is not None:
                    result = done.result()
                    assert result is not None
                    self.spawn(release(result))

            future.add_done_callback(give_back)
            raise

    async def run_serial(self, run_id: str | None, attempt: Callable[[], Awaitable[T]]) -> T:
        """:meth:`retrying`, one at a time per run on this node.

        Hundreds of activities of one parallel group finishing together all write the same
        run; in parallel almost every attempt would lose its version check and redo its reads.
        Queueing them here makes each one succeed on its first try (other nodes still meet
        the optimistic check, which stays the guarantee).
        """
        if run_id is None:
            return await self.retrying(attempt)
        lock, users = self.run_locks.get(run_id) or (asyncio.Lock(), 0)
        self.run_locks[run_id] = (lock, users + 1)
        try:
            async with lock:
                return await self.retrying(attempt)
        finally:
            lock, users = self.run_locks[run_id]
            if users <= 1:
                del self.run_locks[run_id]
            else:
                self.run_locks[run_id] = (lock, users - 1)

    async def retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run ``attempt`` again while a storage precondition fails (a concurrent change)."""
        for tries in range(_MAX_RETRIES):
            try:
                return await attempt()
            except PreconditionFailed:
                if tries:
                    # Many writers on one run (a thousand activities of one parallel group
                    # completing at once) would otherwise collide in every round again:
                    # a short random backoff spreads them out.
                    await asyncio.sleep(_contention.uniform(0, min(0.002 * 2**tries, 0.25)))
                continue
            except StorageUnavailable as exc:
                raise EngineError("unavailable", "storage_unavailable", str(exc)) from exc
        raise EngineError(
            "conflict", "concurrent_modification", "The run kept changing concurrently; retry the request."
        )


def hold_seconds(value: Any, field_name: str, default: float, maximum: float) -> float:
    """A hold time from a request, clamped to ``0..maximum`` (``None``: the default).

    Raises:
        EngineError: 422 when the value is not a number.
    """
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EngineError(
            "invalid",
            "validation_failed",
            "The request is invalid.",
            errors={field_name: ["must be a number of seconds"]},
        )
    seconds = float(value)
    if seconds != seconds:  # NaN
        return 0.0
    return max(0.0, min(seconds, maximum))


def digest(value: Any) -> str:
    """A stable digest of a request part, to recognise an identical retry."""
    try:
        data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # integers beyond 64 bits and the like: slower, but total
        data = json.dumps(value, sort_keys=True, default=repr).encode()
    return hashlib.sha256(data).hexdigest()


def event(
    run_id: str, event_type: str, payload: dict[str, Any], now: float, workflow_task_id: str | None = None
) -> NewEvent:
    """A new history event with a fresh id."""
    return NewEvent(run_id, new_id(), event_type, payload, now, workflow_task_id)


def wire_event(e: EventRow) -> dict[str, Any]:
    """An event as workers see it (worker-plane §6)."""
    return {
        "id": e.event_id,
        "sequence": e.sequence,
        "event_type": e.event_type,
        "payload": e.payload,
        "recorded_at": iso(e.recorded_at),
    }


def is_closed(run: RunRow) -> bool:
    """Whether the run reached a terminal status."""
    return run.status in TERMINAL_RUN_STATUSES


def resume_info(**values: Any) -> dict[str, Any]:
    """A resume dict with every key present."""
    info: dict[str, Any] = dict.fromkeys(RESUME_KEYS)
    info.update(values)
    return info


def new_workflow_task(
    run: RunRow, now: float, resume: dict[str, Any] | None, available_at: float | None = None
) -> WorkflowTaskRow:
    """A ready workflow task for ``run``."""
    return WorkflowTaskRow(
        task_id=new_id(),
        namespace=run.namespace,
        run_id=run.run_id,
        workflow_id=run.workflow_id,
        workflow_type=run.workflow_type,
        task_queue=run.task_queue,
        status="ready",
        available_at=now if available_at is None else available_at,
        created_at=now,
        compatibility=run.compatibility,
        resume=resume or resume_info(),
    )


async def wake_workflow(
    core: Core, run: RunRow, m: Mutation, now: float, resume: dict[str, Any]
) -> str | None:
    """Add to ``m`` what makes the workflow see new history.

    If no task is open a ready one is created (returned id). A ready task will deliver the
    new events anyway. A leased task may have been given history without them, so the run
    remembers ``wake_pending`` and the task's completion creates the next task.
    The caller's mutation must pin the run version, which makes the read of the open task safe
    (and lets this node skip it when it knows the run had none at that version).
    """
    free = core.recent.task_free(run.run_id, run.version)
    task = None if free else await core.storage.open_workflow_task(run.run_id)
    if task is None:
        created = new_workflow_task(run, now, resume)
        m.ops.append(Insert(created))
        m.wakes.append(Wake(("workflow_task", run.namespace, run.task_queue), run.workflow_type))
        return created.task_id
    if task.status == "leased":
        m.ops.append(Patch(RunRow, (run.run_id,), {"wake_pending": True, "pending_resume": resume}))
    return None


async def close_run(
    core: Core,
    run: RunRow,
    m: Mutation,
    now: float,
    *,
    status: str,
    closed_reason: str,
    output: str | None = None,
    failure: dict[str, Any] | None = None,
    ending_task: str | None = None,
) -> None:
    """Add to ``m`` the writes that close the run: status, and every open task and timer.

    ``ending_task`` names the workflow task whose completion closes the run when ``m`` itself
    ends that task and is fenced on it being leased (``WorkflowTaskState``). A run has at most
    one open workflow task (a unique index says so), so that one is the only one: no sweep of
    the run's workflow tasks is written.
    """
    fields: dict[str, Any] = {
        "status": status,
        "closed_reason": closed_reason,
        "closed_at": now,
        "last_progress_at": now,
        "wait_kind": None,
        "wake_pending": False,
        "pending_resume": None,
    }
    if output is not None:
        fields["output"] = output
    if failure is not None:
        fields["failure"] = failure
    m.ops.append(Patch(RunRow, (run.run_id,), fields))
    open_tasks = {"run_id": run.run_id, "status": AnyOf(("ready", "leased"))}
    if ending_task is None or not _ends_leased_task(m, ending_task):
        m.ops.append(PatchWhere(WorkflowTaskRow, open_tasks, {"status": "cancelled"}))
    # Leased activity attempts learn about it from heartbeats (cancel_requested) and
    # from the refusal of their completion.
    m.ops.append(PatchWhere(ActivityTaskRow, open_tasks, {"status": "cancelled"}))
    m.ops.append(
        PatchWhere(
            ActivityRow,
            {"run_id": run.run_id, "status": AnyOf(("scheduled", "started"))},
            {"status": "cancelled", "closed_at": now},
        )
    )
    m.ops.append(PatchWhere(TimerRow, {"run_id": run.run_id, "status": "pending"}, {"status": "cancelled"}))
    m.wakes.extend([Wake(("run", run.run_id)), Wake(("run_closed", run.run_id))])
    # Children and parents hear about the close through durable rows (engine._children).
    from durable_workflow_server.engine import _children

    await _children.on_run_closed(
        core, run, m, now, status=status, closed_reason=closed_reason, output=output, failure=failure
    )


def _ends_leased_task(m: Mutation, task_id: str) -> bool:
    """Whether ``m`` is fenced on workflow task ``task_id`` being leased (so it is open)."""
    return any(
        isinstance(pre, WorkflowTaskState) and pre.task_id == task_id and pre.status == "leased"
        for pre in m.preconditions
    )


def run_closed_error(run: RunRow) -> EngineError:
    """The 409 ``run_closed`` a task route answers once its run ended (worker-plane §4.2)."""
    stop = {
        RunStatus.CANCELLED: "run_cancelled",
        RunStatus.TERMINATED: "run_terminated",
        RunStatus.COMPLETED: "run_completed",
        RunStatus.FAILED: "run_failed",
    }.get(RunStatus(run.status), "run_closed")
    return EngineError(
        "conflict",
        "run_closed",
        "The workflow run is closed.",
        stop_reason=stop,
        cancel_requested=run.status in (RunStatus.CANCELLED, RunStatus.TERMINATED),
        can_continue=False,
        run_status=run.status,
        run_closed_reason=run.closed_reason,
        run_closed_at=iso(run.closed_at),
    )
