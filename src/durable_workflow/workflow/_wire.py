"""Workflow commands to the JSON shapes of the worker-plane ``complete`` body.

Payloads of a whole batch are encoded with one ``serializer.encode_many`` call, then each
blob is size-checked. Command payloads travel as ``{"codec", "blob"}`` envelopes, except a
side effect's result, which is a raw blob plus ``payload_codec`` as the 2.12.0 SDK sends it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from durable_workflow import serializer
from durable_workflow.errors import UnsupportedPayloadCodec, WorkflowDefinitionError
from durable_workflow.protocol import PAYLOAD_CODEC, Command
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
    wire_extras,
)

# How a payload slot is filled once the batch is encoded.
_ENVELOPE = 0
_RAW_BLOB = 1


def _int(value: Any, what: str) -> int:
    """A JSON integer for a seconds field (floats are rounded up, as the server stores ints)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WorkflowDefinitionError(f"{what} must be a number of seconds, got {value!r}")
    return value if isinstance(value, int) else math.ceil(value)


def _put(wire: dict[str, Any], key: str, value: Any, what: str | None = None) -> None:
    if value is not None:
        wire[key] = _int(value, what or key) if what is not None else value


def commands_to_server_commands(
    commands: Sequence[Any],
    task_queue: str,
    *,
    payload_codec: str = serializer.AVRO_CODEC,
    size_warning: int = serializer.DEFAULT_PAYLOAD_SIZE_WARNING,
    warning_context: Mapping[str, Any] | None = None,
    external_storage: Any = None,
    external_storage_threshold_bytes: int | None = None,
) -> list[dict[str, Any]]:
    """Convert workflow commands to the server wire shape with batched payload encoding.

    Args:
        commands: Command dataclasses, e.g. ``ReplayOutcome.commands``.
        task_queue: The workflow's queue; an activity without its own ``queue`` goes here.
        payload_codec: Must be ``"avro"``, the only codec on the v2 wire.
        size_warning: Blobs at or above this many bytes log a structured warning.
        warning_context: Extra fields for that warning (``workflow_id``, ``task_queue`` …).
        external_storage: Reserved for offloading large blobs; ignored for now.
        external_storage_threshold_bytes: Reserved, as above.

    Returns:
        One dict per command, in order.

    Raises:
        UnsupportedPayloadCodec: ``payload_codec`` is not Avro.
        PayloadEncodeError: a payload value cannot be encoded.
        WorkflowDefinitionError: an object that is not a workflow command.
    """
    if payload_codec != PAYLOAD_CODEC:
        raise UnsupportedPayloadCodec(f"commands must be encoded with 'avro', not {payload_codec!r}")
    wires: list[dict[str, Any]] = []
    # (wire dict, key, how to fill, kind for the size warning, name for the size warning)
    slots: list[tuple[dict[str, Any], str, int, str, str | None]] = []
    values: list[Any] = []

    def payload(wire: dict[str, Any], key: str, value: Any, how: int, kind: str, name: str | None) -> None:
        wire[key] = None  # keeps the key's place in the dict; filled after the batch encode
        slots.append((wire, key, how, kind, name))
        values.append(value)

    for command in commands:
        wire = _shape(command, task_queue, payload)
        extras = wire_extras(command)
        if extras:
            wire.update(extras)
        wires.append(wire)

    blobs = serializer.encode_many(values, payload_codec)
    for (wire, key, how, kind, name), blob in zip(slots, blobs, strict=True):
        serializer.check_size(blob, kind=kind, name=name, threshold=size_warning, context=warning_context)
        if how == _ENVELOPE:
            wire[key] = {"codec": payload_codec, "blob": blob}
        else:
            wire[key] = blob
            wire["payload_codec"] = payload_codec
    return wires


def _shape(command: Any, task_queue: str, payload: Any) -> dict[str, Any]:
    """The wire dict of one command, with payload slots registered through ``payload``."""
    if isinstance(command, ScheduleActivity):
        wire: dict[str, Any] = {
            "type": Command.SCHEDULE_ACTIVITY.value,
            "activity_type": command.activity_type,
        }
        payload(
            wire, "arguments", list(command.arguments), _ENVELOPE, "activity_input", command.activity_type
        )
        wire["queue"] = command.queue or task_queue
        if command.retry_policy is not None:
            wire["retry_policy"] = command.retry_policy.to_wire()
        _put(wire, "start_to_close_timeout", command.start_to_close_timeout, "start_to_close_timeout")
        _put(
            wire, "schedule_to_start_timeout", command.schedule_to_start_timeout, "schedule_to_start_timeout"
        )
        _put(
            wire, "schedule_to_close_timeout", command.schedule_to_close_timeout, "schedule_to_close_timeout"
        )
        _put(wire, "heartbeat_timeout", command.heartbeat_timeout, "heartbeat_timeout")
        return wire
    if isinstance(command, StartTimer):
        return {
            "type": Command.START_TIMER.value,
            "delay_seconds": _int(command.delay_seconds, "delay_seconds"),
        }
    if isinstance(command, StartChildWorkflow):
        wire = {"type": Command.START_CHILD_WORKFLOW.value, "workflow_type": command.workflow_type}
        payload(
            wire,
            "arguments",
            list(command.arguments),
            _ENVELOPE,
            "child_workflow_input",
            command.workflow_type,
        )
        _put(wire, "queue", command.task_queue)
        _put(wire, "parent_close_policy", command.parent_close_policy)
        if command.retry_policy is not None:
            wire["retry_policy"] = command.retry_policy.to_wire()
        _put(
            wire, "execution_timeout_seconds", command.execution_timeout_seconds, "execution_timeout_seconds"
        )
        _put(wire, "run_timeout_seconds", command.run_timeout_seconds, "run_timeout_seconds")
        return wire
    if isinstance(command, CompleteWorkflow):
        wire = {"type": Command.COMPLETE_WORKFLOW.value}
        payload(wire, "result", command.result, _ENVELOPE, "workflow_result", None)
        return wire
    if isinstance(command, FailWorkflow):
        wire = {"type": Command.FAIL_WORKFLOW.value, "message": command.message}
        _put(wire, "exception_type", command.exception_type)
        wire["non_retryable"] = bool(command.non_retryable)
        return wire
    if isinstance(command, ContinueAsNew):
        wire = {"type": Command.CONTINUE_AS_NEW.value}
        payload(
            wire,
            "arguments",
            list(command.arguments),
            _ENVELOPE,
            "continue_as_new_input",
            command.workflow_type,
        )
        _put(wire, "workflow_type", command.workflow_type)
        _put(wire, "queue", command.task_queue)
        return wire
    if isinstance(command, RecordSideEffect):
        wire = {"type": Command.RECORD_SIDE_EFFECT.value}
        payload(wire, "result", command.result, _RAW_BLOB, "side_effect_result", None)
        return wire
    if isinstance(command, RecordVersionMarker):
        return {
            "type": Command.RECORD_VERSION_MARKER.value,
            "change_id": command.change_id,
            "version": int(command.version),
            "min_supported": int(command.min_supported),
            "max_supported": int(command.max_supported),
        }
    if isinstance(command, UpsertSearchAttributes):
        return {"type": Command.UPSERT_SEARCH_ATTRIBUTES.value, "attributes": dict(command.attributes)}
    if isinstance(command, WaitCondition):
        wire = {"type": Command.OPEN_CONDITION_WAIT.value}
        _put(wire, "condition_key", command.condition_key)
        _put(wire, "condition_definition_fingerprint", command.condition_definition_fingerprint)
        _put(wire, "timeout_seconds", command.timeout_seconds, "timeout_seconds")
        return wire
    if isinstance(command, CompleteUpdate):
        wire = {"type": Command.COMPLETE_UPDATE.value, "update_id": command.update_id}
        payload(wire, "result", command.result, _ENVELOPE, "update_result", None)
        return wire
    if isinstance(command, FailUpdate):
        wire = {"type": Command.FAIL_UPDATE.value, "update_id": command.update_id, "message": command.message}
        _put(wire, "exception_type", command.exception_type)
        _put(wire, "exception_class", command.exception_class)
        wire["non_retryable"] = bool(command.non_retryable)
        return wire
    raise WorkflowDefinitionError(f"{command!r} is not a workflow command")
