"""One pass over server history events: the recorded steps and receivers that drive replay.

The pass groups events by workflow sequence into :class:`Step` records (an activity's
``ActivityScheduled`` and ``ActivityCompleted`` are one step), keeps ``SignalReceived`` and
``UpdateApplied`` as :class:`Receiver` records at their history position, and notes the
``WorkflowStarted`` payload. Payload values stay as raw blobs here: the driver decodes only
what the workflow code consumes, which is where replay time goes.

Minimal histories (older fixtures) may omit ``sequence``; such a result event is paired with
the oldest unresolved step of its kind, or becomes a step of its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from durable_workflow import serializer
from durable_workflow.errors import InvalidPayloadFraming, UnsupportedPayloadCodec
from durable_workflow.protocol import PAYLOAD_CODEC, Event

# Step kinds; the same strings name the yielded command kinds in the driver.
ACTIVITY = "activity"
TIMER = "timer"
CHILD = "child"
SIDE_EFFECT = "side_effect"
MARKER = "marker"
UPSERT = "upsert"
MEMO = "memo"
WAIT = "wait"

# Step outcomes.
PENDING = 0
RESOLVED = 1
FAILED = 2

_AVRO_ONLY = (PAYLOAD_CODEC,)
_SERVER_EXTERNAL_PREFIX = "dw-external-payload:v1:"


class Step:
    """One recorded workflow step (all history events that share a workflow sequence)."""

    __slots__ = (
        "details",
        "event_type",
        "failure_event",
        "first_index",
        "has_timer",
        "kind",
        "name",
        "outcome",
        "result_index",
        "sequence",
        "value",
    )

    def __init__(
        self, kind: str, sequence: int | None, event_type: str, index: int, details: Mapping[str, Any]
    ):
        self.kind = kind
        self.sequence = sequence
        self.event_type = event_type
        self.first_index = index
        self.details = details
        self.name: Any = None
        self.outcome = PENDING
        self.result_index = -1
        self.value: Any = None
        self.failure_event: str | None = None
        self.has_timer = False

    def describe(self) -> str:
        """A short text naming the recorded event type and what identifies the step."""
        return f"{self.event_type}({self.kind} {self.name!r})" if self.name is not None else self.event_type


class Receiver:
    """A signal or an applied update, replayed at its history position."""

    __slots__ = ("arguments", "index", "kind", "name", "update_id")

    def __init__(self, kind: str, index: int, name: Any, arguments: Any, update_id: Any = None):
        self.kind = kind
        self.index = index
        self.name = name
        self.arguments = arguments
        self.update_id = update_id


class History:
    """The replay view of a history: steps in recorded order, receivers, start data."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.receivers: list[Receiver] = []
        self.accepted_updates: dict[str, Receiver] = {}
        self.applied_updates: set[str] = set()
        self.started: Mapping[str, Any] | None = None
        self.started_event: Mapping[str, Any] | None = None
        self.closed = False
        self.length = 0
        #: History index of the first ``CancelRequested`` (and its reason), if any.
        self.cancel_index: int | None = None
        self.cancel_reason: str | None = None
        self._by_seq: dict[int, Step] = {}
        self._unsequenced: dict[str, list[Step]] = {}
        self._waits: list[Step] = []
        self._waits_by_id: dict[Any, Step] = {}
        self._wait_timers: dict[int, Step] = {}

    # --- building blocks used by the per-event handlers ----------------------------------

    def _step(
        self, kind: str, seq: int | None, event_type: str, index: int, payload: Mapping[str, Any]
    ) -> Step:
        """The step for ``seq``, created at this event if it is new."""
        if seq is not None:
            step = self._by_seq.get(seq)
            if step is not None:
                return step
        step = Step(kind, seq, event_type, index, payload)
        self.steps.append(step)
        if seq is not None:
            self._by_seq[seq] = step
        else:
            self._unsequenced.setdefault(kind, []).append(step)
        return step

    def _result_step(
        self, kind: str, seq: int | None, event_type: str, index: int, payload: Mapping[str, Any]
    ) -> Step:
        """The step a result event belongs to."""
        if seq is None:
            pending = self._unsequenced.get(kind)
            while pending:
                step = pending.pop(0)
                if step.outcome == PENDING:
                    return step
        return self._step(kind, seq, event_type, index, payload)

    def _open_wait(self) -> Step | None:
        for wait in reversed(self._waits):
            if wait.outcome == PENDING:
                return wait
        return None

    def _find_wait(self, payload: Mapping[str, Any], seq: int | None) -> Step | None:
        wait_id = payload.get("condition_wait_id")
        if wait_id is not None and wait_id in self._waits_by_id:
            return self._waits_by_id[wait_id]
        if seq is not None:
            step = self._by_seq.get(seq)
            if step is not None and step.kind == WAIT:
                return step
            timer_owner = self._wait_timers.get(seq)
            if timer_owner is not None:
                return timer_owner
        return None


def _seq(payload: Mapping[str, Any], key: str = "sequence") -> int | None:
    value = payload.get(key)
    if value is None or isinstance(value, int):
        return value
    # The reference server tolerates numeric strings; so do we.
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _resolve(step: Step, index: int, value: Any) -> None:
    # Duplicate terminal events (same type and sequence) are ignored: the first one wins.
    if step.outcome == PENDING:
        step.outcome = RESOLVED
        step.value = value
        step.result_index = index


def _fail(step: Step, index: int, event_type: str, payload: Mapping[str, Any]) -> None:
    if step.outcome == PENDING:
        step.outcome = FAILED
        step.failure_event = event_type
        step.value = payload
        step.result_index = index


# --- per-event handlers ---------------------------------------------------------------------

_Handler = Callable[[History, int, str, Mapping[str, Any], Mapping[str, Any]], None]


def _started(h: History, index: int, et: str, p: Mapping[str, Any], event: Mapping[str, Any]) -> None:
    if h.started is None:
        h.started = p
        h.started_event = event


def _activity_scheduled(
    h: History, index: int, et: str, p: Mapping[str, Any], event: Mapping[str, Any]
) -> None:
    step = h._step(ACTIVITY, _seq(p), et, index, p)
    if step.name is None:
        step.name = p.get("activity_type")


def _activity_progress(
    h: History, index: int, et: str, p: Mapping[str, Any], event: Mapping[str, Any]
) -> None:
    seq = _seq(p)
    if seq is not None:
        _activity_scheduled(h, index, et, p, event)


def _activity_completed(
    h: History, index: int, et: str, p: Mapping[str, Any], event: Mapping[str, Any]
) -> None:
    step = h._result_step(ACTIVITY, _seq(p), et, index, p)
    if step.name is None:
        step.name = p.get("activity_type")
    _resolve(step, index, p.get("result"))


def _activity_failed(h: History, index: int, et: str, p: Mapping[str, Any], event: Mapping[str, Any]) -> None:
    step = h._result_step(ACTIVITY, _seq(p), et, index, p)
    if step.name is None:
        step.name = p.get("activity_type")
    _fail(step, index, et, p)


def _timer_scheduled(h: History, index: int, et: str, p: Mapping[str, Any], event: Mapping[str, Any]) -> None:
    seq = _seq(p)
    kind = p.get("timer_kind")
    if kind == "signal_timeout":
        return
    # Most histories have no condition waits; skip the wait lookups for them.
    wait = h._find_wait(p, seq) if h._waits else None
    if wait is None and kind == "condition_timeout":
        wait = h._open_wait()
    if wait is None and h._waits and kind is None and p.get("condition_wait_id") is None:
        # Legacy histories: a bare timer whose delay equals the open wait's timeout is that
        # wait's timer (the code is blocked on the wait, so it cannot be a sleep).
        candidate = h._open_wait()
        if (
            candidate is not None
            and not candidate.has_timer
            and p.get("delay_seconds") is not None
            and p.get("delay_seconds") == candidate.details.get("timeout_seconds")
        ):
            wait = candidate
    if wait is not None:
        wait.has_timer = True
        if seq is not None:
            h._wait_timers[seq] = wait
        return
    step = h._step(TIMER, seq, et, index, p)
    if step.name is None:
        step.name = p.get("delay_seconds")


def _timer_fired(h: History, index: int, et: str, p: Mapping[str, Any], event: Mapping[str, Any]) -> None:
    seq = _seq(p)
    kind = p.get("timer_kind")
    if kind == "signal_timeout":
        return
    wait = h._find_wait(p, seq) if h._waits else None
    if wait is None and (kind == "condition_timeout" or p.get("condition_wait_id") is not None):
        wait = h._open_wait()
    if wait is not None:
        _resolve(wait, index, False)
        return
    _resolve(h._result_step(TIMER, seq, et, index, p), index, None)


def _child_scheduled(h: History, index: int, et: str, p: Mapping[str, Any], event: Mapping[str, Any]) -> None:
    step = h._step(CHILD, _seq(p), et, index, p)
    if step.name is None:
        step.name = p.get("child_workflow_type") or p.get("workflow_type")


def _child_completed(h: History, index: int, et: str, p: Mapping[str, Any], event: Mapping[str, Any]) -> None:
    step = h._result_step(CHILD, _seq(p), et, index, p)
    _resolve(step, index, p["result"] if "result" in p else p.get("output"))


def _child_failed(h: History, index: int, et: str, p: Mapping[str, Any], event: Mapping[str, Any]) -> None:
    _fail(h._result_step(CHILD, _seq(p), et, index, p), index, et, p)


def _side_effect(h: History, index: int, et: str, p: Mapping[str, Any], event: Mapping[str, Any]) -> None:
    _resolve(h._step(SIDE_EFFECT, _seq(p), et, index, p), index, p.get("result"))


def _marker(h: History, index: int, et: str, p: Mapping[str, Any], event: Mapping[str, Any]) -> None:
    step = h._step(MARKER, _seq(p), et, index, p)
    step.name = p.get("change_id")
    _resolve(step, index, p.get("version"))


def _upsert(h: History, index: int, et: str, p: Mapping[str, Any], event: Mapping[str, Any]) -> None:
    _resolve(h._step(UPSERT, _seq(p), et, index, p), index, None)


def _memo(h: History, index: int, et: str, p: Mapping[str, Any], event: Mapping[str, Any]) -> None:
    _resolve(h._step(MEMO, _seq(p), et, index, p), index, None)


def _wait_opened(h: History, index: int, et: str, p: Mapping[str, Any], event: Mapping[str, Any]) -> None:
    step = Step(WAIT, _seq(p), et, index, p)
    step.name = p.get("condition_key")
    h.steps.append(step)
    if step.sequence is not None:
        h._by_seq[step.sequence] = step
    h._waits.append(step)
    wait_id = p.get("condition_wait_id")
    if wait_id is not None:
        h._waits_by_id[wait_id] = step


def _wait_resolved(h: History, index: int, et: str, p: Mapping[str, Any], event: Mapping[str, Any]) -> None:
    wait = h._find_wait(p, _seq(p)) or h._open_wait()
    if wait is not None:
        _resolve(wait, index, et == Event.CONDITION_WAIT_SATISFIED)


def _signal(h: History, index: int, et: str, p: Mapping[str, Any], event: Mapping[str, Any]) -> None:
    arguments = p["arguments"] if "arguments" in p else p.get("value")
    h.receivers.append(Receiver("signal", index, p.get("signal_name"), arguments))


def _update_accepted(h: History, index: int, et: str, p: Mapping[str, Any], event: Mapping[str, Any]) -> None:
    update_id = p.get("update_id")
    if isinstance(update_id, str):
        h.accepted_updates[update_id] = Receiver(
            "update", index, p.get("update_name"), p.get("arguments"), update_id
        )


def _update_applied(h: History, index: int, et: str, p: Mapping[str, Any], event: Mapping[str, Any]) -> None:
    update_id = p.get("update_id")
    if isinstance(update_id, str):
        h.applied_updates.add(update_id)
    h.receivers.append(Receiver("update", index, p.get("update_name"), p.get("arguments"), update_id))


def _closed(h: History, index: int, et: str, p: Mapping[str, Any], event: Mapping[str, Any]) -> None:
    h.closed = True


def _cancel_requested(
    h: History, index: int, et: str, p: Mapping[str, Any], event: Mapping[str, Any]
) -> None:
    if h.cancel_index is None:
        h.cancel_index = index
        reason = p.get("reason")
        h.cancel_reason = reason if isinstance(reason, str) else None


def _timer_cancelled(
    h: History, index: int, et: str, p: Mapping[str, Any], event: Mapping[str, Any]
) -> None:
    # Only plain timers are steps; a wait's timer belongs to its wait (and its own events).
    if p.get("timer_kind") is not None or p.get("condition_wait_id") is not None:
        return
    seq = _seq(p)
    step = h._by_seq.get(seq) if seq is not None else None
    if step is not None and step.kind == TIMER:
        _resolve(step, index, None)


_HANDLERS: dict[str, _Handler] = {
    Event.WORKFLOW_STARTED: _started,
    Event.ACTIVITY_SCHEDULED: _activity_scheduled,
    Event.ACTIVITY_STARTED: _activity_progress,
    Event.ACTIVITY_HEARTBEAT_RECORDED: _activity_progress,
    Event.ACTIVITY_RETRY_SCHEDULED: _activity_progress,
    Event.ACTIVITY_COMPLETED: _activity_completed,
    Event.ACTIVITY_FAILED: _activity_failed,
    Event.ACTIVITY_TIMED_OUT: _activity_failed,
    Event.ACTIVITY_CANCELLED: _activity_failed,
    Event.TIMER_SCHEDULED: _timer_scheduled,
    Event.TIMER_FIRED: _timer_fired,
    Event.CHILD_WORKFLOW_SCHEDULED: _child_scheduled,
    Event.CHILD_RUN_STARTED: _child_scheduled,
    Event.CHILD_RUN_COMPLETED: _child_completed,
    Event.CHILD_RUN_FAILED: _child_failed,
    Event.CHILD_RUN_CANCELLED: _child_failed,
    Event.CHILD_RUN_TERMINATED: _child_failed,
    Event.SIDE_EFFECT_RECORDED: _side_effect,
    Event.VERSION_MARKER_RECORDED: _marker,
    Event.SEARCH_ATTRIBUTES_UPSERTED: _upsert,
    Event.MEMO_UPSERTED: _memo,
    Event.CONDITION_WAIT_OPENED: _wait_opened,
    Event.CONDITION_WAIT_SATISFIED: _wait_resolved,
    Event.CONDITION_WAIT_TIMED_OUT: _wait_resolved,
    Event.SIGNAL_RECEIVED: _signal,
    Event.UPDATE_ACCEPTED: _update_accepted,
    Event.UPDATE_APPLIED: _update_applied,
    Event.WORKFLOW_COMPLETED: _closed,
    Event.WORKFLOW_FAILED: _closed,
    Event.WORKFLOW_CONTINUED_AS_NEW: _closed,
    Event.WORKFLOW_TIMED_OUT: _closed,
    Event.WORKFLOW_CANCELLED: _closed,
    Event.WORKFLOW_TERMINATED: _closed,
    Event.CANCEL_REQUESTED: _cancel_requested,
    Event.TIMER_CANCELLED: _timer_cancelled,
}

_EMPTY: Mapping[str, Any] = {}


def parse_history(events: list[Mapping[str, Any]]) -> History:
    """Build the replay view of ``events`` in one pass.

    Args:
        events: Server history events in history order.

    Returns:
        The :class:`History`.

    Raises:
        UnsupportedPayloadCodec: an event names a payload codec other than Avro.
    """
    history = History()
    handlers = _HANDLERS
    for index, event in enumerate(events):
        event_type = event.get("event_type") or event.get("type")
        payload = event.get("payload") or _EMPTY
        codec = payload.get("payload_codec")
        if codec is not None and codec != PAYLOAD_CODEC:
            raise UnsupportedPayloadCodec(
                f"history event {index} ({event_type}) uses payload codec {codec!r}; only 'avro' is supported"
            )
        handler = handlers.get(event_type)  # type: ignore[arg-type]
        if handler is not None:
            handler(history, index, event_type, payload, event)  # type: ignore[arg-type]
    history.length = len(events)
    return history


# --- payload values ---------------------------------------------------------------------------


def decode_value(raw: Any) -> Any:
    """Decode one history value: a bare Avro blob, an Avro envelope, or ``None``.

    Raises:
        UnsupportedPayloadCodec: a non-Avro envelope, or text in the legacy JSON codec.
        InvalidPayloadFraming: anything else that is not a valid Avro blob.
    """
    if raw is None:
        return None
    try:
        if type(raw) is str:
            return serializer.decode(raw)
        return serializer.decode_envelope(raw, allowed_codecs=_AVRO_ONLY)
    except InvalidPayloadFraming as exc:
        if isinstance(raw, str):
            if raw.startswith(_SERVER_EXTERNAL_PREFIX):
                raise serializer.UnsupportedPayloadReference(
                    "history value was moved to server-side external storage and not expanded"
                ) from exc
            if _is_json_text(raw):
                raise UnsupportedPayloadCodec(
                    "history value is JSON text from the legacy 'json' codec; only 'avro' is supported"
                ) from exc
        raise


def decode_arguments(raw: Any) -> list[Any]:
    """Decode a positional-argument payload: a list stays a list, None is ``[]``, else ``[value]``."""
    value = decode_value(raw)
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


def _is_json_text(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def started_time(history: History) -> datetime | None:
    """The run's clock: ``WorkflowStarted`` ``payload.timestamp``, else its ``recorded_at``."""
    candidates = []
    if history.started is not None:
        candidates.append(history.started.get("timestamp"))
    if history.started_event is not None:
        candidates.append(history.started_event.get("recorded_at"))
    for value in candidates:
        if isinstance(value, str) and value:
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
    return None
