"""Failures in both directions: recorded failure events to the exceptions workflow code sees,
and uncaught workflow exceptions to the ``fail_workflow`` command.
"""

from __future__ import annotations

from typing import Any

from durable_workflow import errors
from durable_workflow.workflow import _history as h
from durable_workflow.workflow._commands import FailWorkflow, with_wire_extras

_CHILD_ERRORS: dict[str, type[errors.ChildWorkflowError]] = {
    "ChildRunCancelled": errors.ChildWorkflowCancelled,
    "ChildRunTerminated": errors.ChildWorkflowTerminated,
}


def exception_class_name(exc: BaseException) -> str:
    """``module.QualName`` of an exception's class, as the wire's ``exception_class``."""
    cls = type(exc)
    return f"{cls.__module__}.{cls.__qualname__}"


def step_failure(step: h.Step) -> BaseException:
    """The typed exception for a failed activity or child step, to throw into the code."""
    payload = step.value
    event_type = step.failure_event or ""
    message = payload.get("message") or f"{step.kind} failed ({event_type})"
    if step.kind == h.ACTIVITY:
        common: dict[str, Any] = {
            "activity_type": step.name,
            "sequence": step.sequence,
            "exception_type": payload.get("exception_type"),
            "exception_class": payload.get("exception_class"),
            "non_retryable": bool(payload.get("non_retryable", False)),
            "attempt": payload.get("attempt_number"),
            "details": payload.get("exception"),
        }
        if event_type == "ActivityTimedOut":
            return errors.ActivityTimedOut(message, timeout_kind=payload.get("timeout_kind"), **common)
        if event_type == "ActivityCancelled":
            return errors.ActivityCancelled(message, **common)
        return errors.ActivityFailed(message, **common)
    return _CHILD_ERRORS.get(event_type, errors.ChildWorkflowFailed)(
        message,
        workflow_type=step.name,
        workflow_id=payload.get("child_workflow_instance_id"),
        run_id=payload.get("child_workflow_run_id"),
        sequence=step.sequence,
        exception_type=payload.get("exception_type"),
        exception_class=payload.get("exception_class"),
    )


def fail_workflow_command(exc: BaseException) -> FailWorkflow:
    """The ``FailWorkflow`` for an uncaught exception, with ``exception_class`` on the wire.

    Activity and child failures (the saga case) also carry an ``exception`` object naming
    the original failure.
    """
    command = FailWorkflow(
        message=str(exc) or type(exc).__name__,
        exception_type=type(exc).__name__,
        non_retryable=isinstance(exc, errors.ApplicationError) and exc.non_retryable,
    )
    extras: dict[str, Any] = {"exception_class": exception_class_name(exc)}
    if isinstance(exc, errors.ActivityError | errors.ChildWorkflowError):
        extras["exception"] = {
            "type": exc.exception_type or type(exc).__name__,
            "class": exc.exception_class or exception_class_name(exc),
            "message": exc.message,
        }
    wired: FailWorkflow = with_wire_extras(command, extras)
    return wired
