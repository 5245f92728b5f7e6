"""The storage boundary: mutations, preconditions and the abstract backend (rows: ``_rows``).

The engine decides, storage persists. Reads are plain async methods returning row
dataclasses; every write is one :class:`Mutation` applied atomically by :meth:`Storage.apply`
(or one of the two claim operations). A mutation lists *preconditions* checked inside the
same transaction; when one fails nothing of that mutation is written and
:class:`PreconditionFailed` names it, so the engine can re-read and decide again
(optimistic concurrency that works the same with one server process or several).

Times are float seconds since the epoch (UTC); the engine formats them at the edge.
Payload blobs are opaque strings that storage never decodes.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from durable_workflow_server.storage._messages import MessageRow
from durable_workflow_server.storage._rows import (
    ActivityRow,
    ActivityTaskRow,
    ChildRow,
    EventRow,
    Row,
    RunRow,
    SearchAttributeDefRow,
    TimerRow,
    WorkerRow,
    WorkflowRow,
    WorkflowTaskRow,
)
from durable_workflow_server.storage._visibility import Expr

# --- mutation operations -----------------------------------------------------------------


@dataclass(frozen=True)
class Inc:
    """A patch value meaning "add ``by`` to the stored column"."""

    by: int = 1


@dataclass(frozen=True)
class Insert:
    """Insert a new row; an existing key fails the mutation with precondition ``exists``."""

    row: Row


@dataclass(frozen=True)
class Put:
    """Insert or replace a whole row."""

    row: Row


@dataclass(frozen=True)
class Patch:
    """Set some columns of the row with this key (no-op if it does not exist)."""

    table: type[Row]
    key: tuple[Any, ...]
    fields: dict[str, Any]


@dataclass(frozen=True)
class AnyOf:
    """A ``PatchWhere`` condition value: the column equals one of ``values`` (SQL ``IN``)."""

    values: tuple[Any, ...]


@dataclass(frozen=True)
class PatchWhere:
    """Set some columns of every row whose columns equal ``where`` (a value may be ``AnyOf``)."""

    table: type[Row]
    where: dict[str, Any]
    fields: dict[str, Any]


@dataclass(frozen=True)
class NewEvent:
    """An event to append; storage assigns the run's next history sequence."""

    run_id: str
    event_id: str
    event_type: str
    payload: dict[str, Any]
    recorded_at: float
    workflow_task_id: str | None = None

    def stored(self, sequence: int) -> EventRow:
        """This event as stored at ``sequence``."""
        return EventRow(
            self.run_id,
            sequence,
            self.event_id,
            self.event_type,
            self.payload,
            self.recorded_at,
            self.workflow_task_id,
        )


# --- preconditions -----------------------------------------------------------------------


@dataclass(frozen=True)
class RunVersion:
    """The run is still at ``version`` (then storage bumps it by one)."""

    run_id: str
    version: int


@dataclass(frozen=True)
class WorkflowTaskState:
    """The workflow task has this status (and, if given, owner and attempt)."""

    task_id: str
    status: str
    lease_owner: str | None = None
    attempt: int | None = None

    @property
    def table(self) -> type[Row]:
        """The table of the task row."""
        return WorkflowTaskRow

    def conditions(self) -> dict[str, Any]:
        """The column values the task row must have, its key first (for a conditional write)."""
        where: dict[str, Any] = {"task_id": self.task_id, "status": self.status}
        if self.lease_owner is not None:
            where["lease_owner"] = self.lease_owner
        if self.attempt is not None:
            where["attempt"] = self.attempt
        return where


@dataclass(frozen=True)
class ActivityTaskState:
    """The activity task has this status (and, if given, this attempt id)."""

    task_id: str
    status: str
    attempt_id: str | None = None

    @property
    def table(self) -> type[Row]:
        """The table of the task row."""
        return ActivityTaskRow

    def conditions(self) -> dict[str, Any]:
        """The column values the task row must have, its key first (for a conditional write)."""
        where: dict[str, Any] = {"task_id": self.task_id, "status": self.status}
        if self.attempt_id is not None:
            where["attempt_id"] = self.attempt_id
        return where


@dataclass(frozen=True)
class TimerDue:
    """The timer is still pending and due at ``now`` (makes firing exactly-once)."""

    timer_id: str
    now: float


@dataclass(frozen=True)
class WorkflowCurrentRun:
    """The workflow id's current run is ``run_id``."""

    workflow_id: str
    run_id: str


Precondition = RunVersion | WorkflowTaskState | ActivityTaskState | TimerDue | WorkflowCurrentRun
Operation = Insert | Put | Patch | PatchWhere


@dataclass(frozen=True)
class Wake:
    """A wake-up raised after commit: ``("workflow_task"|"activity_task", ns, queue)``,
    ``("run", run_id)`` (history appended or closed) or ``("timers",)``."""

    key: tuple[str, ...]
    #: For task-queue keys, the new task's type, so only a poller that accepts it is woken.
    detail: str | None = None


@dataclass
class Mutation:
    """One atomic write: preconditions, then operations, then appended events."""

    preconditions: list[Precondition] = field(default_factory=list)
    ops: list[Operation] = field(default_factory=list)
    events: list[NewEvent] = field(default_factory=list)
    wakes: list[Wake] = field(default_factory=list)

    def extend(self, other: Mutation) -> None:
        """Append everything of ``other`` to this mutation."""
        self.preconditions.extend(other.preconditions)
        self.ops.extend(other.ops)
        self.events.extend(other.events)
        self.wakes.extend(other.wakes)


# --- errors -------------------------------------------------------------------------------


class StorageError(Exception):
    """Root of storage failures."""


class PreconditionFailed(StorageError):
    """A mutation's precondition did not hold; nothing of it was written."""

    def __init__(self, precondition: object) -> None:
        super().__init__(f"precondition failed: {precondition!r}")
        self.precondition = precondition


class StorageUnavailable(StorageError):
    """The backend cannot be reached or is closed."""


class SchemaTooNew(StorageError):
    """The database was migrated by a newer release than this one."""


# --- the interface -------------------------------------------------------------------------

WakeListener = Callable[[Wake], None]
#: Builds the lease mutation for a claim candidate: (task row, related row) -> mutation or None.
WorkflowClaimBuilder = Callable[[WorkflowTaskRow, RunRow], Mutation | None]
ActivityClaimBuilder = Callable[[ActivityTaskRow, ActivityRow], Mutation | None]


@dataclass(frozen=True)
class RunFilter:
    """Filters of the workflow list."""

    namespace: str
    workflow_type: str | None = None
    statuses: tuple[str, ...] | None = None
    query: str | None = None
    #: A bound visibility query (``storage._visibility``), compiled by the backend.
    visibility: Expr | None = None


class Storage(abc.ABC):
    """Everything the engine needs from a database. One subclass per backend."""

    # lifecycle
    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, migrate and start background writers; idempotent."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush pending writes and disconnect; idempotent."""

    def has_other_nodes(self) -> bool:
        """Whether other server nodes are known to write to this database right now.

        False means a row this node remembers can only have been changed by this node's own
        writes, as far as the backend knows: a node that appeared a moment ago may not be
        known yet, so it is a hint for sparing reads whose staleness costs latency only,
        never a guarantee. The default (one node, SQLite) is False.
        """
        return False

    @abc.abstractmethod
    def set_wake_listener(self, listener: WakeListener | None) -> None:
        """Register the callback that receives wake-ups (on the event loop thread).

        It receives this node's wakes after their commit and, where several server nodes can
        share the database, the wakes other nodes committed (PostgreSQL: LISTEN/NOTIFY), so a
        long poll on any node answers at once. A backend without remote writers (SQLite on
        one machine) delivers only its own; polls re-check storage periodically anyway.
        """

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise :class:`StorageUnavailable` when the database does not answer."""

    # writes
    @abc.abstractmethod
    async def apply(self, mutation: Mutation) -> list[EventRow]:
        """Apply atomically and return the appended events with their sequences."""

    @abc.abstractmethod
    async def claim_workflow_task(
        self,
        namespace: str,
        task_queue: str,
        types: Sequence[str],
        build_id: str | None,
        now: float,
        build: WorkflowClaimBuilder,
    ) -> tuple[WorkflowTaskRow, list[EventRow]] | None:
        """Lease the oldest eligible ready (or lease-expired) task, atomically.

        ``build`` receives the candidate and its run and returns the mutation that leases it;
        the returned row is the task as stored afterwards.
        """

    @abc.abstractmethod
    async def claim_activity_task(
        self,
        namespace: str,
        task_queue: str,
        types: Sequence[str],
        now: float,
        build: ActivityClaimBuilder,
    ) -> tuple[ActivityTaskRow, list[EventRow]] | None:
        """Lease the oldest eligible ready activity task, atomically (see claim_workflow_task)."""

    # reads
    @abc.abstractmethod
    async def namespace_exists(self, namespace: str) -> bool:
        """Whether the namespace is known."""

    @abc.abstractmethod
    async def get_workflow(self, workflow_id: str) -> WorkflowRow | None:
        """The workflow id's row, any namespace."""

    @abc.abstractmethod
    async def get_run(self, run_id: str) -> RunRow | None:
        """One run."""

    @abc.abstractmethod
    async def runs_of(self, workflow_id: str) -> list[RunRow]:
        """Every run of a workflow id, oldest first."""

    @abc.abstractmethod
    async def list_runs(
        self,
        flt: RunFilter,
        *,
        limit: int,
        after: tuple[float, str] | None,
    ) -> list[RunRow]:
        """Runs newest first (started_at, run_id descending), strictly after the cursor."""

    @abc.abstractmethod
    async def count_runs(self, flt: RunFilter) -> int:
        """How many runs match."""

    @abc.abstractmethod
    async def history(self, run_id: str, *, after: int, limit: int) -> list[EventRow]:
        """Events with sequence > ``after``, ascending."""

    @abc.abstractmethod
    async def get_workflow_task(self, task_id: str) -> WorkflowTaskRow | None:
        """One workflow task."""

    @abc.abstractmethod
    async def open_workflow_task(self, run_id: str) -> WorkflowTaskRow | None:
        """The run's ready or leased workflow task, if any."""

    @abc.abstractmethod
    async def leased_workflow_tasks(self, namespace: str, worker_id: str) -> list[WorkflowTaskRow]:
        """Workflow tasks currently leased by a worker."""

    @abc.abstractmethod
    async def get_activity(self, activity_execution_id: str) -> ActivityRow | None:
        """One activity execution."""

    @abc.abstractmethod
    async def open_activities(self, run_id: str) -> list[ActivityRow]:
        """The run's activity executions that are not closed."""

    @abc.abstractmethod
    async def get_activity_task(self, task_id: str) -> ActivityTaskRow | None:
        """One activity task (attempt)."""

    @abc.abstractmethod
    async def activity_task_by_attempt(self, attempt_id: str) -> ActivityTaskRow | None:
        """The activity task that holds this attempt id."""

    @abc.abstractmethod
    async def get_timer(self, timer_id: str) -> TimerRow | None:
        """One timer row."""

    @abc.abstractmethod
    async def pending_timers(self, run_id: str) -> list[TimerRow]:
        """The run's pending timers."""

    @abc.abstractmethod
    async def due_timers(self, now: float, limit: int) -> list[TimerRow]:
        """Pending timers with fire_at <= now, earliest first."""

    @abc.abstractmethod
    async def next_timer_at(self) -> float | None:
        """The earliest pending fire_at."""

    @abc.abstractmethod
    async def next_available_at(self, kind: str, namespace: str, task_queue: str) -> float | None:
        """Earliest time a ``workflow``/``activity`` task on the queue becomes claimable."""

    @abc.abstractmethod
    async def get_worker(self, namespace: str, worker_id: str) -> WorkerRow | None:
        """One worker registration."""

    # children and search attributes (0003)
    @abc.abstractmethod
    async def get_child(self, link_id: str) -> ChildRow | None:
        """One child-workflow link."""

    @abc.abstractmethod
    async def open_children(self, parent_run_id: str) -> list[ChildRow]:
        """The parent run's children that have not closed, by sequence."""

    @abc.abstractmethod
    async def search_attribute_defs(self, namespace: str) -> list[SearchAttributeDefRow]:
        """Every registration row of the namespace (``status`` says whether it is deleted)."""

    @abc.abstractmethod
    async def count_open_activities(self, run_id: str, first: int, last: int, exclude: str) -> int:
        """Open activity executions of the run with ``first <= sequence <= last``, not ``exclude``."""

    # messages: signals, updates, condition waits (storage/_messages.py, migration 0002)
    @abc.abstractmethod
    async def get_message(self, message_id: str) -> MessageRow | None:
        """One signal receipt, update or condition wait."""

    @abc.abstractmethod
    async def open_messages(self, run_id: str) -> list[MessageRow]:
        """The run's open condition waits and unfinished updates (status ``open``,
        ``requested``, ``accepted`` or ``running``), oldest first; one read per task completion."""

    @abc.abstractmethod
    async def workers_on_queue(self, namespace: str, task_queue: str) -> list[WorkerRow]:
        """Active worker registrations on a task queue (query routing)."""
