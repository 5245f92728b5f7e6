"""The command dataclasses that workflow code yields (or returns) to the replayer.

Each class names one thing the workflow asks the server to do. Step commands (activity,
timer, child, side effect, version marker, search-attribute upsert, condition wait) each take
one workflow sequence number; the terminal ones (complete, fail, continue-as-new) end the run;
the update ones answer one accepted update.

Some wire keys are not fields of the public dataclasses (the parallel-group keys of a yielded
list, ``exception_class`` of an uncaught exception). The replayer attaches them as private
"wire extras" so that the dataclasses keep exactly their documented constructor, ``repr``
and equality; :func:`commands_to_server_commands` merges them into the wire dict.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from durable_workflow.retry_policy import ActivityRetryPolicy, ChildWorkflowRetryPolicy


@dataclass
class ScheduleActivity:
    """Command requesting an activity task.

    Timeout fields are activity budgets, not HTTP request timeouts: ``start_to_close_timeout``
    limits one activity attempt, ``schedule_to_start_timeout`` limits queue wait before an
    attempt starts, ``schedule_to_close_timeout`` limits the whole activity execution including
    retries, and ``heartbeat_timeout`` limits the gap between activity heartbeats. All are whole
    seconds.
    """

    activity_type: str
    arguments: list[Any]
    queue: str | None = None
    retry_policy: ActivityRetryPolicy | None = None
    start_to_close_timeout: int | None = None
    schedule_to_start_timeout: int | None = None
    schedule_to_close_timeout: int | None = None
    heartbeat_timeout: int | None = None


@dataclass
class StartTimer:
    """Command requesting a durable timer of ``delay_seconds`` whole seconds."""

    delay_seconds: int


@dataclass
class CompleteWorkflow:
    """Command completing a workflow with a payload result."""

    result: Any


@dataclass
class FailWorkflow:
    """Command failing a workflow with diagnostic metadata."""

    message: str
    exception_type: str | None = None
    non_retryable: bool = False


@dataclass
class CompleteUpdate:
    """Worker command completing an accepted workflow update."""

    update_id: str
    result: Any


@dataclass
class FailUpdate:
    """Worker command failing an accepted workflow update."""

    update_id: str
    message: str
    exception_type: str | None = None
    exception_class: str | None = None
    non_retryable: bool = True


@dataclass
class ContinueAsNew:
    """Workflow return value that starts a new run with fresh history."""

    workflow_type: str | None = None
    arguments: list[Any] = field(default_factory=list)
    task_queue: str | None = None


@dataclass
class RecordSideEffect:
    """Command recording the result of a non-deterministic function."""

    result: Any


@dataclass
class StartChildWorkflow:
    """Command requesting a child workflow run.

    ``execution_timeout_seconds`` limits the overall child workflow execution and
    ``run_timeout_seconds`` limits one child run. These budgets are durable server-side
    workflow budgets and are separate from client HTTP timeouts.
    """

    workflow_type: str
    arguments: list[Any] = field(default_factory=list)
    task_queue: str | None = None
    parent_close_policy: str | None = None
    retry_policy: ChildWorkflowRetryPolicy | None = None
    execution_timeout_seconds: int | None = None
    run_timeout_seconds: int | None = None


@dataclass
class RecordVersionMarker:
    """Command recording a workflow code-version marker."""

    change_id: str
    version: int
    min_supported: int
    max_supported: int
    result_kind: str = "version"


@dataclass
class UpsertSearchAttributes:
    """Command updating workflow search attributes (a ``None`` value deletes one)."""

    attributes: dict[str, Any]


@dataclass
class WaitCondition:
    """Command that yields execution until a workflow-defined predicate becomes true.

    The replayer evaluates ``predicate`` locally against in-memory workflow state (typically
    mutated by signal/update handlers). The server records a ``ConditionWaitOpened`` history
    event and re-drives the workflow when any signal arrives or, if ``timeout_seconds`` is
    provided, when the timeout elapses (a ``TimerFired`` history event with
    ``timer_kind=condition_timeout``).
    """

    predicate: Callable[[], Any]
    condition_key: str | None = None
    condition_definition_fingerprint: str | None = None
    timeout_seconds: int | None = None


#: Every command class a workflow may produce, for isinstance checks and docs.
Command = (
    ScheduleActivity
    | StartTimer
    | CompleteWorkflow
    | FailWorkflow
    | CompleteUpdate
    | FailUpdate
    | ContinueAsNew
    | RecordSideEffect
    | StartChildWorkflow
    | RecordVersionMarker
    | UpsertSearchAttributes
    | WaitCondition
)

# The attribute name is deliberately not a dataclass field: extras must not show up in the
# constructor, in repr() or in equality, which tests and authors rely on.
_EXTRAS_ATTR = "_dw_wire_extras"


def with_wire_extras(command: Any, extras: dict[str, Any]) -> Any:
    """Return a copy of ``command`` carrying extra wire keys (copy: authors may reuse objects)."""
    copy = dataclasses.replace(command)
    merged = dict(getattr(command, _EXTRAS_ATTR, None) or {})
    merged.update(extras)
    object.__setattr__(copy, _EXTRAS_ATTR, merged)
    return copy


def wire_extras(command: Any) -> dict[str, Any] | None:
    """The extra wire keys attached by :func:`with_wire_extras`, if any."""
    extras: dict[str, Any] | None = getattr(command, _EXTRAS_ATTR, None)
    return extras
