"""Per-node row caches that spare the engine storage reads (docs/server-internals.md,
"Reads per request").

Both are safe with several server nodes over one database because of how they are used:

- :class:`WorkerCache` holds worker registrations for the eager-lease check and the poll
  preconditions, at most ``EngineSettings.worker_cache_seconds`` old, and drops an entry
  locally on register, heartbeat and deregister. A registration changed through another node
  is seen here within that bound; registration, heartbeat and deregistration themselves always
  read storage.
- :class:`RecentRows` keeps the rows an eager lease left behind (the leased task, its
  activity execution, the run as that write left it) for the report that ends that task. The
  report takes them once, as the rows of its first attempt only. That attempt is fenced like
  any other (``RunVersion`` and the task-state precondition), so a row that went stale makes
  its write fail and the retry reads storage; a refusal decided on them is decided again on
  fresh rows (see ``cached_then_fresh``). It also keeps two facts that cannot go stale: a run
  this node closed (a closed run stays closed, with its outcome), "run R had no open
  workflow task at version V" (every write that opens or ends a workflow task moves the run
  version, so the fact is only used by a write fenced on exactly that version), and "run R
  had no open update at version V" (an update is only ever inserted by a write fenced on the
  run version; the fact starts with a run this node created and is carried by this node's
  own fenced writes that insert no update).
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from enum import Enum
from typing import Any, Generic, TypeVar

from durable_workflow_server.engine._errors import EngineError
from durable_workflow_server.storage import (
    ActivityRow,
    ActivityTaskRow,
    EventRow,
    Inc,
    Insert,
    Mutation,
    Patch,
    PatchWhere,
    Put,
    RunRow,
    RunVersion,
    Wake,
    WorkerRow,
    WorkflowTaskRow,
)
from durable_workflow_server.storage._messages import MessageRow

T = TypeVar("T")
R = TypeVar("R")
K = TypeVar("K")
V = TypeVar("V")

_RUN_FIELDS = frozenset(f.name for f in dataclasses.fields(RunRow))


def run_after(run: RunRow, m: Mutation, events: Sequence[EventRow]) -> RunRow | None:
    """``run`` as the committed ``m`` left it, or None when that is not certain.

    Certain means: ``m`` pinned exactly this version of the run (so nobody changed it in
    between) and touched the run only with ``Patch`` by key; ``events`` are what ``apply``
    returned. The storage contract makes the rest arithmetic: the fence bumps the version by
    one, an ``Inc`` adds to the column, appended events advance ``last_history_sequence``.
    """
    fences = [p for p in m.preconditions if isinstance(p, RunVersion) and p.run_id == run.run_id]
    if len(fences) != 1 or fences[0].version != run.version:
        return None
    return _patched(run, m, events, {"version": run.version + 1}, skip=None)


def inserted_run(m: Mutation, run_id: str, events: Sequence[EventRow]) -> RunRow | None:
    """The run the committed ``m`` inserted, as ``m`` left it (None if it inserted none).

    An ``Insert`` fails on an existing key, so the committed row is exactly the one in ``m``
    plus ``m``'s later patches of it and its appended events.
    """
    inserts = [op for op in m.ops if isinstance(op, Insert) and getattr(op.row, "run_id", None) == run_id]
    inserts = [op for op in inserts if isinstance(op.row, RunRow)]
    if len(inserts) != 1 or any(isinstance(p, RunVersion) and p.run_id == run_id for p in m.preconditions):
        return None
    row = inserts[0].row
    assert isinstance(row, RunRow)
    return _patched(row, m, events, {}, skip=inserts[0])


def predicted_events(run: RunRow, m: Mutation) -> list[EventRow]:
    """The events ``m`` appends to ``run`` with the sequences storage will give them.

    Exact only when ``m`` is fenced on ``run.version`` (nobody appends in between).
    """
    mine = [e for e in m.events if e.run_id == run.run_id]
    return [
        EventRow(e.run_id, run.last_history_sequence + i, e.event_id, e.event_type, e.payload, e.recorded_at)
        for i, e in enumerate(mine, 1)
    ]


def _patched(
    run: RunRow, m: Mutation, events: Sequence[EventRow], fields: dict[str, Any], skip: Insert | None
) -> RunRow | None:
    """``run`` with ``fields`` and then ``m``'s patches of it and its appended events applied."""
    for op in m.ops:
        if op is skip:
            continue
        if isinstance(op, Patch) and op.table is RunRow and op.key == (run.run_id,):
            for name, value in op.fields.items():
                if name not in _RUN_FIELDS:
                    return None
                if isinstance(value, Inc):
                    fields[name] = fields.get(name, getattr(run, name)) + value.by
                else:
                    fields[name] = value.value if isinstance(value, Enum) else value
        elif (isinstance(op, Insert | Put) and isinstance(op.row, RunRow)) or (
            isinstance(op, PatchWhere) and op.table is RunRow
        ):
            return None  # a whole row or a filtered patch: not worth predicting
    appended = [e.sequence for e in events if e.run_id == run.run_id]
    if len(appended) != sum(1 for e in m.events if e.run_id == run.run_id):
        return None
    if appended:
        fields["last_history_sequence"] = max(appended)
    return dataclasses.replace(run, **fields)


class _Bounded(Generic[K, V]):
    """An insertion-ordered map that forgets its oldest entries beyond ``limit``."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._items: OrderedDict[K, V] = OrderedDict()

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._limit:
            self._items.popitem(last=False)

    def get(self, key: K) -> V | None:
        return self._items.get(key)

    def pop(self, key: K) -> V | None:
        return self._items.pop(key, None)


class WorkerCache:
    """Worker registrations read recently on this node (see the module notes)."""

    def __init__(self, ttl: float, limit: int = 10_000) -> None:
        self.ttl = ttl
        self._rows: _Bounded[tuple[str, str], tuple[WorkerRow, float]] = _Bounded(limit)

    def get(self, namespace: str, worker_id: str, now: float) -> WorkerRow | None:
        """The cached row, if it was read at most ``ttl`` seconds before ``now``."""
        entry = self._rows.get((namespace, worker_id))
        if entry is None:
            return None
        row, read_at = entry
        if not 0 <= now - read_at <= self.ttl:
            self._rows.pop((namespace, worker_id))
            return None
        return row

    def put(self, row: WorkerRow, now: float) -> None:
        """Remember a row read from storage at ``now``."""
        if self.ttl > 0:
            self._rows.put((row.namespace, row.worker_id), (row, now))

    def forget(self, namespace: str, worker_id: str) -> None:
        """Drop the entry (this node changed the registration)."""
        self._rows.pop((namespace, worker_id))


class RecentRows:
    """Rows an eager lease produced, taken once by the report that ends the task."""

    def __init__(self, limit: int = 10_000) -> None:
        self._workflow: _Bounded[str, tuple[WorkflowTaskRow, RunRow]] = _Bounded(limit)
        self._activity: _Bounded[str, tuple[ActivityTaskRow, ActivityRow, RunRow | None]] = _Bounded(limit)
        self._closed: _Bounded[str, RunRow] = _Bounded(limit)
        self._closing: dict[str, tuple[Wake, RunRow]] = {}
        self._task_free: _Bounded[str, int] = _Bounded(limit)
        self._no_updates: _Bounded[str, int] = _Bounded(limit)
        self._started: _Bounded[str, RunRow] = _Bounded(limit)

    def put_workflow_task(self, task: WorkflowTaskRow, run: RunRow) -> None:
        """Remember a committed leased workflow task and its run as that write left it."""
        self._workflow.put(task.task_id, (task, run))

    def take_workflow_task(self, task_id: Any) -> tuple[WorkflowTaskRow, RunRow] | None:
        """The rows for the first attempt of a report on ``task_id``, once."""
        return self._workflow.pop(task_id) if isinstance(task_id, str) else None

    def peek_workflow_task(self, task_id: str) -> tuple[WorkflowTaskRow, RunRow] | None:
        """The remembered rows of ``task_id`` without taking them."""
        return self._workflow.get(task_id)

    def put_activity_task(self, task: ActivityTaskRow, act: ActivityRow, run: RunRow | None) -> None:
        """Remember a committed leased activity attempt, its execution and (if known) its run."""
        self._activity.put(task.task_id, (task, act, run))

    def take_activity_task(self, task_id: Any) -> tuple[ActivityTaskRow, ActivityRow, RunRow | None] | None:
        """The rows for the first attempt of a report on ``task_id``, once."""
        return self._activity.pop(task_id) if isinstance(task_id, str) else None

    def note_closed(self, run: RunRow) -> None:
        """Remember a run this node closed, as its closing write left it."""
        self._closed.put(run.run_id, run)

    def expect_close(self, wake: Wake, run: RunRow) -> None:
        """A write in flight closes ``run`` and raises ``wake`` (its ``run_closed``) at commit.

        :meth:`on_wake` remembers the run when that very wake object comes back, before the
        waiters hear of it, so a result waiter needs no read. A wake from another node is
        another object and promotes nothing.
        """
        self._closing[run.run_id] = (wake, run)

    def close_failed(self, run_id: str, wake: Wake) -> None:
        """The write announced by :meth:`expect_close` did not commit."""
        entry = self._closing.get(run_id)
        if entry is not None and entry[0] is wake:
            del self._closing[run_id]

    def on_wake(self, wake: Wake) -> None:
        """Called with every wake-up before it is delivered (``Engine._on_wake``)."""
        if wake.key[0] != "run_closed" or len(wake.key) != 2:
            return
        entry = self._closing.get(wake.key[1])
        if entry is not None and entry[0] is wake:
            del self._closing[wake.key[1]]
            self._closed.put(entry[1].run_id, entry[1])

    def closed_run(self, run_id: str) -> RunRow | None:
        """A run this node closed (closed runs do not change), if remembered."""
        return self._closed.get(run_id)

    def note_task_free(self, run_id: str, version: int) -> None:
        """Remember that at ``version`` the run had no ready or leased workflow task."""
        self._task_free.put(run_id, version)

    def task_free(self, run_id: str, version: int) -> bool:
        """Whether the run is known to have no open workflow task at exactly ``version``."""
        return self._task_free.get(run_id) == version

    def note_started(self, run: RunRow) -> None:
        """Remember a run this node started, as the start's write left it."""
        self._started.put(run.run_id, run)

    def started_run(self, run_id: str) -> RunRow | None:
        """A run this node started, as it was then (it may have moved on since)."""
        return self._started.get(run_id)

    def note_no_updates(self, run_id: str, version: int) -> None:
        """Remember that at ``version`` the run had no open update."""
        self._no_updates.put(run_id, version)

    def no_updates(self, run_id: str, version: int) -> bool:
        """Whether the run is known to have no open update at exactly ``version``."""
        return self._no_updates.get(run_id) == version

    def carry_no_updates(self, run: RunRow, m: Mutation, after: RunRow | None, known: bool = False) -> None:
        """After the committed ``m``, fenced on ``run``: if the run had no open update at that
        version (remembered, or ``known`` from a read under the same fence) and ``m`` inserted
        none, it has none at the version ``m`` left (``after``)."""
        if after is None or not (known or self.no_updates(run.run_id, run.version)):
            return
        if not any(p == RunVersion(run.run_id, run.version) for p in m.preconditions):
            return
        for op in m.ops:
            if isinstance(op, Insert | Put) and isinstance(op.row, MessageRow) and op.row.kind == "update":
                return
        self.note_no_updates(run.run_id, after.version)


async def cached_then_fresh(cached: R | None, attempt: Callable[[R | None], Awaitable[T]]) -> T:
    """``attempt(cached)`` on rows remembered by this node if there are some, else ``attempt(None)``
    (which reads storage).

    Only a success on remembered rows counts: a refusal decided on them (``EngineError``) is
    decided again on rows read from storage, because a remembered row may be stale. A write
    that fails its precondition propagates as usual, and the caller's retry reads storage.
    ``attempt`` must write last, so nothing follows a successful write that could refuse.
    """
    if cached is not None:
        try:
            return await attempt(cached)
        except EngineError:
            pass
    return await attempt(None)
