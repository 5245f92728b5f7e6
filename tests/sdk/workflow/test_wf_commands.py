"""Command dataclasses (as documented) and their wire shapes."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest

from durable_workflow import serializer, workflow
from durable_workflow.errors import UnsupportedPayloadCodec, WorkflowDefinitionError
from durable_workflow.workflow import (
    ActivityRetryPolicy,
    ChildWorkflowRetryPolicy,
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
    commands_to_server_commands,
)

_REQUIRED = dataclasses.MISSING

# Field name and default, in order, as the documented API lists them.
SEED_FIELDS: dict[type, list[tuple[str, Any]]] = {
    ScheduleActivity: [
        ("activity_type", _REQUIRED),
        ("arguments", _REQUIRED),
        ("queue", None),
        ("retry_policy", None),
        ("start_to_close_timeout", None),
        ("schedule_to_start_timeout", None),
        ("schedule_to_close_timeout", None),
        ("heartbeat_timeout", None),
    ],
    StartTimer: [("delay_seconds", _REQUIRED)],
    CompleteWorkflow: [("result", _REQUIRED)],
    FailWorkflow: [("message", _REQUIRED), ("exception_type", None), ("non_retryable", False)],
    CompleteUpdate: [("update_id", _REQUIRED), ("result", _REQUIRED)],
    FailUpdate: [
        ("update_id", _REQUIRED),
        ("message", _REQUIRED),
        ("exception_type", None),
        ("exception_class", None),
        ("non_retryable", True),
    ],
    ContinueAsNew: [("workflow_type", None), ("arguments", list), ("task_queue", None)],
    RecordSideEffect: [("result", _REQUIRED)],
    StartChildWorkflow: [
        ("workflow_type", _REQUIRED),
        ("arguments", list),
        ("task_queue", None),
        ("parent_close_policy", None),
        ("retry_policy", None),
        ("execution_timeout_seconds", None),
        ("run_timeout_seconds", None),
    ],
    RecordVersionMarker: [
        ("change_id", _REQUIRED),
        ("version", _REQUIRED),
        ("min_supported", _REQUIRED),
        ("max_supported", _REQUIRED),
        ("result_kind", "version"),
    ],
    UpsertSearchAttributes: [("attributes", _REQUIRED)],
    WaitCondition: [
        ("predicate", _REQUIRED),
        ("condition_key", None),
        ("condition_definition_fingerprint", None),
        ("timeout_seconds", None),
    ],
}


@pytest.mark.parametrize("cls", list(SEED_FIELDS), ids=lambda c: c.__name__)
def test_command_fields_defaults_and_order_match_the_documented_api(cls: type) -> None:
    actual = []
    for f in dataclasses.fields(cls):
        if f.default_factory is not dataclasses.MISSING:
            actual.append((f.name, f.default_factory))
        else:
            actual.append((f.name, f.default))
    assert actual == SEED_FIELDS[cls]


def test_retry_policies_are_re_exported_and_child_extends_activity() -> None:
    assert issubclass(ChildWorkflowRetryPolicy, ActivityRetryPolicy)
    assert ActivityRetryPolicy().max_attempts == 3


def test_wire_shapes_of_every_command() -> None:
    policy = ActivityRetryPolicy(max_attempts=2)
    child_policy = ChildWorkflowRetryPolicy(max_attempts=4)

    def ready() -> bool:
        return True

    wait = WaitCondition(ready, "k", "sha256:ab", 5)
    commands = [
        ScheduleActivity(
            "charge", ["Ada", 7], retry_policy=policy, start_to_close_timeout=30, heartbeat_timeout=10
        ),
        ScheduleActivity("ship", [], queue="shipping"),
        StartTimer(5),
        StartChildWorkflow(
            "child",
            ["x"],
            task_queue="kids",
            parent_close_policy="terminate",
            retry_policy=child_policy,
            execution_timeout_seconds=60,
            run_timeout_seconds=30,
        ),
        RecordSideEffect({"n": 1}),
        RecordVersionMarker("change", 1, -1, 1),
        UpsertSearchAttributes({"Stage": "paid", "Gone": None}),
        wait,
        CompleteUpdate("u1", "ok"),
        FailUpdate("u2", "bad", "InvalidUpdate", "x.Y"),
        ContinueAsNew(workflow_type="next", arguments=[1], task_queue="other"),
        CompleteWorkflow("hello Ada"),
        FailWorkflow("boom", "ValueError", non_retryable=True),
    ]
    wire = commands_to_server_commands(commands, "main")

    def env(value: Any) -> dict[str, str]:
        return {"codec": "avro", "blob": serializer.encode(value)}

    assert wire == [
        {
            "type": "schedule_activity",
            "activity_type": "charge",
            "arguments": env(["Ada", 7]),
            "queue": "main",
            "retry_policy": policy.to_wire(),
            "start_to_close_timeout": 30,
            "heartbeat_timeout": 10,
        },
        {"type": "schedule_activity", "activity_type": "ship", "arguments": env([]), "queue": "shipping"},
        {"type": "start_timer", "delay_seconds": 5},
        {
            "type": "start_child_workflow",
            "workflow_type": "child",
            "arguments": env(["x"]),
            "queue": "kids",
            "parent_close_policy": "terminate",
            "retry_policy": child_policy.to_wire(),
            "execution_timeout_seconds": 60,
            "run_timeout_seconds": 30,
        },
        {"type": "record_side_effect", "result": serializer.encode({"n": 1}), "payload_codec": "avro"},
        {
            "type": "record_version_marker",
            "change_id": "change",
            "version": 1,
            "min_supported": -1,
            "max_supported": 1,
        },
        {"type": "upsert_search_attributes", "attributes": {"Stage": "paid", "Gone": None}},
        {
            "type": "open_condition_wait",
            "condition_key": "k",
            "condition_definition_fingerprint": "sha256:ab",
            "timeout_seconds": 5,
        },
        {"type": "complete_update", "update_id": "u1", "result": env("ok")},
        {
            "type": "fail_update",
            "update_id": "u2",
            "message": "bad",
            "exception_type": "InvalidUpdate",
            "exception_class": "x.Y",
            "non_retryable": True,
        },
        {"type": "continue_as_new", "arguments": env([1]), "workflow_type": "next", "queue": "other"},
        {"type": "complete_workflow", "result": env("hello Ada")},
        {"type": "fail_workflow", "message": "boom", "exception_type": "ValueError", "non_retryable": True},
    ]
    assert wire[0]["arguments"]["blob"].startswith("wwHioz3/VYAiNw")


def test_seconds_are_json_integers() -> None:
    (wire,) = commands_to_server_commands([ScheduleActivity("a", [], start_to_close_timeout=2.5)], "q")  # type: ignore[arg-type]
    assert wire["start_to_close_timeout"] == 3 and isinstance(wire["start_to_close_timeout"], int)
    with pytest.raises(WorkflowDefinitionError):
        commands_to_server_commands([StartTimer("soon")], "q")  # type: ignore[arg-type]


def test_payloads_are_encoded_in_one_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[Any]] = []
    real = serializer.encode_many

    def spy(values: Any, codec: str = serializer.AVRO_CODEC) -> list[str]:
        calls.append(list(values))
        return real(values, codec)

    monkeypatch.setattr(serializer, "encode_many", spy)
    commands_to_server_commands([ScheduleActivity("a", [1]), RecordSideEffect(2), CompleteWorkflow(3)], "q")
    assert calls == [[[1], 2, 3]]


def test_large_payloads_log_a_size_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="durable_workflow.serializer"):
        commands_to_server_commands(
            [CompleteWorkflow("x" * 200)], "q", size_warning=100, warning_context={"workflow_id": "wf-9"}
        )
    (record,) = caplog.records
    assert record.kind == "workflow_result"  # type: ignore[attr-defined]
    assert record.workflow_id == "wf-9"  # type: ignore[attr-defined]


def test_only_avro_goes_on_the_wire() -> None:
    with pytest.raises(UnsupportedPayloadCodec):
        commands_to_server_commands([CompleteWorkflow(1)], "q", payload_codec=serializer.JSON_CODEC)


def test_external_storage_arguments_are_accepted_and_ignored() -> None:
    plain = commands_to_server_commands([CompleteWorkflow("v")], "q")
    assert (
        commands_to_server_commands(
            [CompleteWorkflow("v")], "q", external_storage=object(), external_storage_threshold_bytes=1
        )
        == plain
    )


def test_non_commands_are_refused() -> None:
    with pytest.raises(WorkflowDefinitionError):
        commands_to_server_commands([object()], "q")


def test_repr_and_equality_ignore_wire_extras() -> None:
    from durable_workflow.workflow._commands import with_wire_extras

    command = with_wire_extras(FailWorkflow("m", "E"), {"exception_class": "m.E"})
    assert command == FailWorkflow("m", "E")
    assert "exception_class" not in repr(command)
    assert commands_to_server_commands([command], "q")[0]["exception_class"] == "m.E"
    assert workflow.FailWorkflow("m") != command
