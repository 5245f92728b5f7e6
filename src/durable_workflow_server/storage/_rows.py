"""The rows that cross the storage boundary: one dataclass per table.

Each class names its table, its primary key and its JSON columns; backends map fields to
columns by name, so a new column is a new field plus a migration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass
class Row:
    """Base of every stored row; subclasses name their table, key and JSON columns."""

    __table__: ClassVar[str] = ""
    __key__: ClassVar[tuple[str, ...]] = ()
    __json__: ClassVar[frozenset[str]] = frozenset()
    __bools__: ClassVar[frozenset[str]] = frozenset()


@dataclass
class WorkflowRow(Row):
    """One workflow id (an "instance"); ids are global across namespaces."""

    __table__ = "workflows"
    __key__ = ("workflow_id",)

    workflow_id: str
    namespace: str
    workflow_type: str
    current_run_id: str
    run_count: int
    created_at: float


@dataclass
class RunRow(Row):
    """One run of a workflow; ``version`` is bumped by every write that decides about the run."""

    __table__ = "runs"
    __key__ = ("run_id",)
    __json__ = frozenset({"failure", "memo", "search_attributes", "pending_resume"})
    __bools__ = frozenset({"wake_pending", "cancel_requested"})

    run_id: str
    namespace: str
    workflow_id: str
    run_number: int
    workflow_type: str
    task_queue: str
    status: str
    started_at: float
    input: str | None = None
    output: str | None = None
    failure: dict[str, Any] | None = None
    closed_reason: str | None = None
    business_key: str | None = None
    memo: dict[str, Any] = field(default_factory=dict)
    search_attributes: dict[str, Any] = field(default_factory=dict)
    compatibility: str | None = None
    execution_timeout_seconds: int | None = None
    run_timeout_seconds: int | None = None
    execution_deadline_at: float | None = None
    run_deadline_at: float | None = None
    closed_at: float | None = None
    last_progress_at: float | None = None
    last_history_sequence: int = 0
    next_workflow_sequence: int = 1
    wait_kind: str | None = None
    wake_pending: bool = False
    pending_resume: dict[str, Any] | None = None
    continued_from_run_id: str | None = None
    continued_to_run_id: str | None = None
    version: int = 0
    parent_run_id: str | None = None
    parent_workflow_id: str | None = None
    child_link_id: str | None = None
    cancel_requested: bool = False


@dataclass
class WorkflowTaskRow(Row):
    """A workflow task; at most one per run is ``ready`` or ``leased`` at a time."""

    __table__ = "workflow_tasks"
    __key__ = ("task_id",)
    __json__ = frozenset({"resume", "last_failure", "outcome"})

    task_id: str
    namespace: str
    run_id: str
    workflow_id: str
    workflow_type: str
    task_queue: str
    status: str  # ready | leased | completed | failed | released | cancelled
    available_at: float
    created_at: float
    attempt: int = 0
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    history_cap: int | None = None
    compatibility: str | None = None
    resume: dict[str, Any] = field(default_factory=dict)
    failure_count: int = 0
    last_failure: dict[str, Any] | None = None
    outcome: dict[str, Any] | None = None


@dataclass
class ActivityRow(Row):
    """One scheduled activity (its whole execution, all attempts)."""

    __table__ = "activity_executions"
    __key__ = ("activity_execution_id",)
    __json__ = frozenset({"retry_policy", "heartbeat_details", "last_failure", "parallel"})

    activity_execution_id: str
    namespace: str
    run_id: str
    workflow_id: str
    sequence: int
    activity_type: str
    task_queue: str
    status: str  # scheduled | started | completed | failed | timed_out | cancelled
    scheduled_at: float
    retry_policy: dict[str, Any]
    arguments: str | None = None
    attempt_number: int = 0
    current_task_id: str | None = None
    schedule_to_close_deadline: float | None = None
    heartbeat_details: Any = None
    last_failure: dict[str, Any] | None = None
    parallel: dict[str, Any] = field(default_factory=dict)
    closed_at: float | None = None


@dataclass
class ActivityTaskRow(Row):
    """One attempt of an activity: offered ``ready``, then ``leased`` with an attempt id, then closed."""

    __table__ = "activity_tasks"
    __key__ = ("task_id",)
    __json__ = frozenset({"outcome"})

    task_id: str
    namespace: str
    activity_execution_id: str
    run_id: str
    workflow_id: str
    activity_type: str
    task_queue: str
    status: str  # ready | leased | completed | failed | timed_out | cancelled
    attempt_number: int
    available_at: float
    created_at: float
    attempt_id: str | None = None
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    started_at: float | None = None
    last_heartbeat_at: float | None = None
    outcome: dict[str, Any] | None = None


@dataclass
class TimerRow(Row):
    """A durable deadline: a user timer, an activity timeout or a run deadline."""

    __table__ = "timers"
    __key__ = ("timer_id",)
    __json__ = frozenset({"data"})

    timer_id: str
    namespace: str
    run_id: str
    kind: str
    fire_at: float
    status: str  # pending | fired | cancelled
    ref_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class WorkerRow(Row):
    """A registered worker on one task queue."""

    __table__ = "workers"
    __key__ = ("namespace", "worker_id")
    __json__ = frozenset({"supported_workflow_types", "supported_activity_types", "fingerprints", "details"})

    namespace: str
    worker_id: str
    task_queue: str
    runtime: str
    status: str  # active | deregistered
    registered_at: float
    last_heartbeat_at: float
    build_id: str | None = None
    supported_workflow_types: list[str] = field(default_factory=list)
    supported_activity_types: list[str] = field(default_factory=list)
    fingerprints: dict[str, Any] = field(default_factory=dict)
    max_concurrent_workflow_tasks: int = 100
    max_concurrent_activity_tasks: int = 100
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EventRow:
    """One stored history event; ``sequence`` is contiguous per run from 1."""

    run_id: str
    sequence: int
    event_id: str
    event_type: str
    payload: dict[str, Any]
    recorded_at: float
    workflow_task_id: str | None = None


@dataclass
class ChildRow(Row):
    """A child workflow started by a parent's command: all its attempts and continued runs."""

    __table__ = "child_workflows"
    __key__ = ("link_id",)
    __json__ = frozenset({"retry_policy", "parallel"})

    link_id: str
    namespace: str
    parent_run_id: str
    parent_workflow_id: str
    sequence: int
    child_workflow_id: str
    child_run_id: str
    workflow_type: str
    task_queue: str
    parent_close_policy: str  # abandon | terminate | request_cancel
    status: str  # open | completed | failed | cancelled | terminated
    attempt: int
    retry_policy: dict[str, Any]
    arguments: str | None = None
    execution_timeout_seconds: int | None = None
    run_timeout_seconds: int | None = None
    parallel: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    closed_at: float | None = None


@dataclass
class SearchAttributeDefRow(Row):
    """A registered custom search attribute of a namespace (control-plane §8)."""

    __table__ = "search_attribute_defs"
    __key__ = ("namespace", "name")

    namespace: str
    name: str
    type: str
    status: str  # active | deleted
    created_at: float


@dataclass
class SearchAttributeRow(Row):
    """One typed value of a run's search attribute (list items: one row per position)."""

    __table__ = "search_attributes"
    __key__ = ("run_id", "name", "position")
    __bools__ = frozenset({"live"})

    run_id: str
    name: str
    position: int
    namespace: str
    live: bool
    text_value: str | None = None
    int_value: int | None = None
    double_value: float | None = None
    time_value: float | None = None


ROW_TYPES: tuple[type[Row], ...] = (
    WorkflowRow,
    RunRow,
    WorkflowTaskRow,
    ActivityRow,
    ActivityTaskRow,
    TimerRow,
    WorkerRow,
    ChildRow,
    SearchAttributeDefRow,
    SearchAttributeRow,
)
