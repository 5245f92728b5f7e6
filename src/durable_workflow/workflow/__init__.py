"""Workflow authoring primitives: decorators, context, commands, and replayer.

A workflow is a class registered with :func:`defn`. Its ``run(self, ctx, *args)`` method is a
generator that yields command dataclasses (:class:`ScheduleActivity`, :class:`StartTimer`,
:class:`StartChildWorkflow`, …); the replayer resolves each yielded command against the run's
history and sends its result back. Yield a list of commands to run them in parallel; the
``yield`` resolves to their results in list order. A failed activity or child raises its
typed exception at the ``yield``, so the code can catch it and compensate.

Determinism-sensitive helpers live on :class:`WorkflowContext`: ``random``, ``uuid4``,
``uuid7``, ``now``, ``side_effect``, ``patched``, ``deprecate_patch`` and ``get_version``
produce values that are recorded on first execution and replayed verbatim afterwards.

Example::

    @workflow.defn(name="greeting")
    class Greeting:
        def run(self, ctx: workflow.WorkflowContext, name: str):
            text = yield ctx.schedule_activity("greet", [name])
            return text

This package never imports the client, the worker or an HTTP library: the worker calls
:func:`replay` and :func:`commands_to_server_commands` and does the I/O itself.
"""

from durable_workflow.retry_policy import ActivityRetryPolicy, ChildWorkflowRetryPolicy
from durable_workflow.workflow._cancel import WorkflowCancellationRequested
from durable_workflow.workflow._commands import (
    CompleteUpdate,
    CompleteWorkflow,
    ContinueAsNew,
    FailUpdate,
    FailWorkflow,
    RecordSideEffect,
    RecordVersionMarker,
    ScheduleActivity,
    StartChildWorkflow,
    StartTimer,
    UpsertSearchAttributes,
    WaitCondition,
)
from durable_workflow.workflow._context import DEFAULT_VERSION, WorkflowContext
from durable_workflow.workflow._definition import (
    WorkflowDefinition,
    defn,
    query,
    registry,
    signal,
    update,
    update_validator,
)
from durable_workflow.workflow._replay import UnknownUpdate
from durable_workflow.workflow._replayer import Replayer, ReplayOutcome, apply_update, query_state, replay
from durable_workflow.workflow._wire import commands_to_server_commands

__all__ = [
    "DEFAULT_VERSION",
    "ActivityRetryPolicy",
    "ChildWorkflowRetryPolicy",
    "CompleteUpdate",
    "CompleteWorkflow",
    "ContinueAsNew",
    "FailUpdate",
    "FailWorkflow",
    "RecordSideEffect",
    "RecordVersionMarker",
    "ReplayOutcome",
    "Replayer",
    "ScheduleActivity",
    "StartChildWorkflow",
    "StartTimer",
    "UnknownUpdate",
    "UpsertSearchAttributes",
    "WaitCondition",
    "WorkflowCancellationRequested",
    "WorkflowContext",
    "WorkflowDefinition",
    "apply_update",
    "commands_to_server_commands",
    "defn",
    "query",
    "query_state",
    "registry",
    "replay",
    "signal",
    "update",
    "update_validator",
]
