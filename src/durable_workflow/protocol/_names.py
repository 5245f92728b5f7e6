"""Command types, history event types and run statuses, as spelled on the wire."""

from __future__ import annotations

from enum import StrEnum


class Command(StrEnum):
    """Workflow-task command ``type`` values."""

    SCHEDULE_ACTIVITY = "schedule_activity"
    START_TIMER = "start_timer"
    START_CHILD_WORKFLOW = "start_child_workflow"
    COMPLETE_WORKFLOW = "complete_workflow"
    FAIL_WORKFLOW = "fail_workflow"
    CONTINUE_AS_NEW = "continue_as_new"
    RECORD_SIDE_EFFECT = "record_side_effect"
    RECORD_VERSION_MARKER = "record_version_marker"
    UPSERT_SEARCH_ATTRIBUTES = "upsert_search_attributes"
    OPEN_CONDITION_WAIT = "open_condition_wait"
    COMPLETE_UPDATE = "complete_update"
    FAIL_UPDATE = "fail_update"


TERMINAL_COMMANDS = frozenset(
    {Command.COMPLETE_WORKFLOW, Command.FAIL_WORKFLOW, Command.CONTINUE_AS_NEW}
)


class Event(StrEnum):
    """History ``event_type`` values."""

    START_ACCEPTED = "StartAccepted"
    WORKFLOW_STARTED = "WorkflowStarted"
    ACTIVITY_SCHEDULED = "ActivityScheduled"
    ACTIVITY_STARTED = "ActivityStarted"
    ACTIVITY_HEARTBEAT_RECORDED = "ActivityHeartbeatRecorded"
    ACTIVITY_RETRY_SCHEDULED = "ActivityRetryScheduled"
    ACTIVITY_COMPLETED = "ActivityCompleted"
    ACTIVITY_FAILED = "ActivityFailed"
    ACTIVITY_TIMED_OUT = "ActivityTimedOut"
    ACTIVITY_CANCELLED = "ActivityCancelled"
    TIMER_SCHEDULED = "TimerScheduled"
    TIMER_FIRED = "TimerFired"
    TIMER_CANCELLED = "TimerCancelled"
    CONDITION_WAIT_OPENED = "ConditionWaitOpened"
    CONDITION_WAIT_SATISFIED = "ConditionWaitSatisfied"
    CONDITION_WAIT_TIMED_OUT = "ConditionWaitTimedOut"
    SIGNAL_RECEIVED = "SignalReceived"
    UPDATE_ACCEPTED = "UpdateAccepted"
    UPDATE_REJECTED = "UpdateRejected"
    UPDATE_APPLIED = "UpdateApplied"
    UPDATE_COMPLETED = "UpdateCompleted"
    SIDE_EFFECT_RECORDED = "SideEffectRecorded"
    VERSION_MARKER_RECORDED = "VersionMarkerRecorded"
    SEARCH_ATTRIBUTES_UPSERTED = "SearchAttributesUpserted"
    MEMO_UPSERTED = "MemoUpserted"
    CHILD_WORKFLOW_SCHEDULED = "ChildWorkflowScheduled"
    CHILD_RUN_STARTED = "ChildRunStarted"
    CHILD_RUN_COMPLETED = "ChildRunCompleted"
    CHILD_RUN_FAILED = "ChildRunFailed"
    CHILD_RUN_CANCELLED = "ChildRunCancelled"
    CHILD_RUN_TERMINATED = "ChildRunTerminated"
    WORKFLOW_COMPLETED = "WorkflowCompleted"
    WORKFLOW_FAILED = "WorkflowFailed"
    WORKFLOW_CONTINUED_AS_NEW = "WorkflowContinuedAsNew"
    WORKFLOW_TIMED_OUT = "WorkflowTimedOut"
    CANCEL_REQUESTED = "CancelRequested"
    WORKFLOW_CANCELLED = "WorkflowCancelled"
    TERMINATE_REQUESTED = "TerminateRequested"
    WORKFLOW_TERMINATED = "WorkflowTerminated"


ACTIVITY_FAILURE_EVENTS = frozenset(
    {Event.ACTIVITY_FAILED, Event.ACTIVITY_TIMED_OUT, Event.ACTIVITY_CANCELLED}
)
CHILD_FAILURE_EVENTS = frozenset(
    {Event.CHILD_RUN_FAILED, Event.CHILD_RUN_CANCELLED, Event.CHILD_RUN_TERMINATED}
)


class RunStatus(StrEnum):
    """A workflow run's status; the last four are terminal."""

    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TERMINATED = "terminated"


TERMINAL_RUN_STATUSES = frozenset(
    {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TERMINATED}
)


def status_bucket(status: str) -> str:
    """Map a run status onto the list filter's three buckets."""
    if status in (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.WAITING):
        return "running"
    if status == RunStatus.COMPLETED:
        return "completed"
    return "failed"
