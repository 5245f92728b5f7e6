"""Every exception the SDK raises, under one root.

The tree::

    DurableWorkflowError
    ├── PayloadError                      payload codecs and envelopes
    │   ├── UnsupportedPayloadCodec       reason ``unsupported_payload_codec``
    │   ├── InvalidPayloadFraming         reason ``invalid_payload_framing``
    │   ├── UnsupportedPayloadSchema      reason ``unsupported_payload_schema``
    │   └── PayloadEncodeError            reason ``integer_overflow`` | ``non_finite_float`` |
    │                                     ``invalid_map_key`` | ``unsupported_value_type``
    ├── WorkflowDefinitionError           bad decorators, unknown workflow type, bad arguments
    ├── ReplayError                       history cannot drive the workflow code
    │   └── NonDeterministicReplayError   code and recorded history disagree
    ├── QueryFailed                       unknown query name or a query handler raised
    ├── UpdateFailed                      an update was rejected or its handler failed
    ├── ActivityError                     raised *inside workflow code* for an activity outcome
    │   ├── ActivityFailed                the activity failed (after its retries)
    │   ├── ActivityTimedOut              a timeout ended it
    │   └── ActivityCancelled             it was cancelled
    ├── ChildWorkflowError                raised inside workflow code for a child's outcome
    │   ├── ChildWorkflowFailed
    │   ├── ChildWorkflowCancelled
    │   └── ChildWorkflowTerminated
    ├── ClientError                       talking to the server
    │   ├── TransportError                no usable HTTP answer (connection, timeout)
    │   └── ServerError                   the server answered 4xx/5xx: ``status``, ``reason``
    │       ├── Unauthorized              401
    │       ├── Forbidden                 403
    │       ├── NotFound                  404 (``WorkflowNotFound`` for workflows)
    │       │   └── WorkflowNotFound
    │       ├── Conflict                  409
    │       │   └── WorkflowAlreadyStarted
    │       └── ValidationFailed          422
    └── WorkflowOutcomeError              ``handle.result()`` of a run that did not complete
        ├── WorkflowFailedError           the run failed (``failure`` carries the details)
        ├── WorkflowCancelledError
        ├── WorkflowTerminatedError
        └── WorkflowTimedOutError

Activity code may raise anything; the worker reports ``type(exc).__name__`` and whether it is
``non_retryable`` (an :class:`ApplicationError` lets the author say so explicitly).
"""

from __future__ import annotations

from typing import Any


class DurableWorkflowError(Exception):
    """Root of every exception raised by ``durable_workflow``."""


# --- payloads ---------------------------------------------------------------------------


class PayloadError(DurableWorkflowError):
    """A payload could not be encoded or decoded. ``reason`` is the protocol's code."""

    reason = "payload_error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class UnsupportedPayloadCodec(PayloadError):
    """A codec tag that this SDK refuses (anything but ``avro`` on the v2 wire)."""

    reason = "unsupported_payload_codec"


class InvalidPayloadFraming(PayloadError):
    """Bad base64, missing magic bytes, a truncated datum, trailing bytes, an unknown branch."""

    reason = "invalid_payload_framing"


class UnsupportedPayloadSchema(PayloadError):
    """An Avro frame whose schema fingerprint is not ``durable_workflow.protocol.Value``."""

    reason = "unsupported_payload_schema"


class PayloadEncodeError(PayloadError):
    """A Python value that the codec cannot represent."""

    reason = "unsupported_value_type"


# --- workflow definitions and replay ----------------------------------------------------


class WorkflowDefinitionError(DurableWorkflowError):
    """A workflow class or call is malformed: bad decorator use, unknown type, bad input."""


class ReplayError(DurableWorkflowError):
    """Recorded history cannot drive the workflow code."""


class NonDeterministicReplayError(ReplayError):
    """The workflow code yielded something other than what history recorded.

    Attributes name the workflow type, the workflow sequence number, what history recorded
    and what the code yielded, so the message can point at the change that broke replay.
    """

    def __init__(
        self,
        message: str,
        *,
        workflow_type: str | None = None,
        sequence: int | None = None,
        recorded: str | None = None,
        yielded: str | None = None,
    ) -> None:
        super().__init__(message)
        self.workflow_type = workflow_type
        self.sequence = sequence
        self.recorded = recorded
        self.yielded = yielded


class QueryFailed(DurableWorkflowError):
    """A query named no handler, or its handler raised."""

    def __init__(self, message: str, *, query_name: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.query_name = query_name
        self.reason = reason


class UpdateFailed(DurableWorkflowError):
    """An update was rejected by its validator, or its handler failed."""

    def __init__(
        self,
        message: str,
        *,
        update_name: str | None = None,
        update_id: str | None = None,
        reason: str | None = None,
        exception_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.update_name = update_name
        self.update_id = update_id
        self.reason = reason
        self.exception_type = exception_type


# --- activity and child outcomes seen by workflow code ----------------------------------


class ApplicationError(DurableWorkflowError):
    """Raise from activity code to fail with an explicit type and retry decision."""

    def __init__(
        self,
        message: str,
        *,
        type: str | None = None,
        non_retryable: bool = False,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.type = type
        self.non_retryable = non_retryable
        self.details = details


class ActivityError(DurableWorkflowError):
    """Raised inside workflow code when an activity did not complete."""

    def __init__(
        self,
        message: str,
        *,
        activity_type: str | None = None,
        sequence: int | None = None,
        exception_type: str | None = None,
        exception_class: str | None = None,
        non_retryable: bool = False,
        attempt: int | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.activity_type = activity_type
        self.sequence = sequence
        self.exception_type = exception_type
        self.exception_class = exception_class
        self.non_retryable = non_retryable
        self.attempt = attempt
        self.details = details


class ActivityFailed(ActivityError):
    """The activity failed and its retry budget is spent (or the failure was non-retryable)."""


class ActivityTimedOut(ActivityError):
    """A timeout (start-to-close, schedule-to-start, schedule-to-close, heartbeat) ended it."""

    def __init__(self, message: str, *, timeout_kind: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.timeout_kind = timeout_kind


class ActivityCancelled(ActivityError):
    """The activity was cancelled."""


class ChildWorkflowError(DurableWorkflowError):
    """Raised inside workflow code when a child workflow did not complete."""

    def __init__(
        self,
        message: str,
        *,
        workflow_type: str | None = None,
        workflow_id: str | None = None,
        run_id: str | None = None,
        sequence: int | None = None,
        exception_type: str | None = None,
        exception_class: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.workflow_type = workflow_type
        self.workflow_id = workflow_id
        self.run_id = run_id
        self.sequence = sequence
        self.exception_type = exception_type
        self.exception_class = exception_class


class ChildWorkflowFailed(ChildWorkflowError):
    """The child run failed."""


class ChildWorkflowCancelled(ChildWorkflowError):
    """The child run was cancelled."""


class ChildWorkflowTerminated(ChildWorkflowError):
    """The child run was terminated."""


# --- client ------------------------------------------------------------------------------


class ClientError(DurableWorkflowError):
    """A call to the server did not succeed."""


class TransportError(ClientError):
    """No usable HTTP answer: connection refused or reset, or a timeout, after retries."""


class ServerError(ClientError):
    """The server answered with an error status.

    ``status`` is the HTTP status, ``reason`` the machine-readable code from the body and
    ``body`` the whole decoded error body (or ``{}`` when it was not JSON).
    """

    def __init__(
        self, message: str, *, status: int, reason: str | None, body: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.body = body or {}


class Unauthorized(ServerError):
    """401: missing or wrong token."""


class Forbidden(ServerError):
    """403: the token's role may not call this route."""


class NotFound(ServerError):
    """404."""


class WorkflowNotFound(NotFound):
    """404 for a workflow id or run id."""


class Conflict(ServerError):
    """409."""


class WorkflowAlreadyStarted(Conflict):
    """409 on start: the workflow id already has a run (reason ``instance_already_started``)."""


class ValidationFailed(ServerError):
    """422: the request was understood but its fields are invalid (``errors`` maps field to messages)."""

    @property
    def errors(self) -> dict[str, list[str]]:
        value = self.body.get("errors")
        return value if isinstance(value, dict) else {}


# --- workflow outcomes seen by callers ---------------------------------------------------


class WorkflowOutcomeError(DurableWorkflowError):
    """``handle.result()`` found the run closed without completing."""

    def __init__(
        self,
        message: str,
        *,
        workflow_id: str,
        run_id: str | None,
        failure: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.workflow_id = workflow_id
        self.run_id = run_id
        self.failure = failure or {}

    @property
    def exception_type(self) -> str | None:
        value = self.failure.get("exception_type")
        return value if isinstance(value, str) else None


class WorkflowFailedError(WorkflowOutcomeError):
    """The run failed: ``failure`` holds ``message``, ``exception_type``, ``exception_class``."""


class WorkflowCancelledError(WorkflowOutcomeError):
    """The run was cancelled."""


class WorkflowTerminatedError(WorkflowOutcomeError):
    """The run was terminated."""


class WorkflowTimedOutError(WorkflowOutcomeError):
    """The run (or its execution chain) passed its timeout."""


_STATUS_ERRORS: dict[int, type[ServerError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: ValidationFailed,
}


def server_error_for(status: int, body: dict[str, Any] | None) -> ServerError:
    """Build the most specific :class:`ServerError` for an HTTP error answer."""
    body = body or {}
    reason = body.get("reason") if isinstance(body.get("reason"), str) else None
    message = body.get("message") or body.get("error") or f"server answered HTTP {status}"
    cls: type[ServerError] = _STATUS_ERRORS.get(status, ServerError)
    if status == 404 and reason in ("instance_not_found", "run_not_found", "workflow_not_found"):
        cls = WorkflowNotFound
    elif status == 409 and reason in ("instance_already_started", "duplicate_not_allowed"):
        cls = WorkflowAlreadyStarted
    text = f"{message} (HTTP {status}, reason {reason})" if reason else f"{message} (HTTP {status})"
    return cls(text, status=status, reason=reason, body=body)
