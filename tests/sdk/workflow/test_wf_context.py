"""WorkflowContext: command builders and the replay-stable value helpers."""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Generator
from datetime import UTC, datetime
from typing import Any

import pytest
import wf_support as s

from durable_workflow import errors, workflow
from durable_workflow.workflow import (
    CompleteWorkflow,
    RecordSideEffect,
    RecordVersionMarker,
    ScheduleActivity,
    StartTimer,
    UpsertSearchAttributes,
    WorkflowContext,
)


def test_sleep_and_timer_round_up_to_whole_seconds() -> None:
    ctx = WorkflowContext()
    assert ctx.sleep(1.2) == StartTimer(2)
    assert ctx.sleep(60) == StartTimer(60)
    assert ctx.start_timer(3) == StartTimer(3)
    with pytest.raises(errors.WorkflowDefinitionError):
        ctx.sleep(-1)


def test_wait_condition_builds_the_command() -> None:
    ctx = WorkflowContext()

    def ready() -> bool:
        return True

    command = ctx.wait_condition(ready, key="k", timeout=2.5)
    assert command.predicate is ready
    assert command.condition_key == "k"
    assert command.timeout_seconds == 3
    assert command.condition_definition_fingerprint is not None
    assert command.condition_definition_fingerprint.startswith("sha256:")
    assert len(command.condition_definition_fingerprint) == len("sha256:") + 64
    # Stable for the same predicate, different for different code.
    assert (
        ctx.wait_condition(ready).condition_definition_fingerprint == command.condition_definition_fingerprint
    )
    assert ctx.wait_condition(lambda: False).condition_definition_fingerprint != (
        command.condition_definition_fingerprint
    )
    assert ctx.wait_condition(ready).timeout_seconds is None


def test_schedule_activity_and_child_builders() -> None:
    ctx = WorkflowContext()
    policy = workflow.ActivityRetryPolicy(max_attempts=2)
    assert ctx.schedule_activity(
        "a", ("x",), queue="q", retry_policy=policy, heartbeat_timeout=5
    ) == ScheduleActivity("a", ["x"], queue="q", retry_policy=policy, heartbeat_timeout=5)
    child = ctx.start_child_workflow("c", parent_close_policy="terminate", run_timeout_seconds=9)
    assert (
        child.arguments == [] and child.parent_close_policy == "terminate" and child.run_timeout_seconds == 9
    )


def test_random_is_seeded_from_the_first_16_hex_digits_of_sha256_of_the_run_id() -> None:
    seed = int(hashlib.sha256(b"run-42").hexdigest()[:16], 16)
    expected = random.Random(seed)
    ctx = WorkflowContext(run_id="run-42")
    assert [ctx.random().random() for _ in range(3)] == [expected.random() for _ in range(3)]
    assert WorkflowContext(run_id="run-42").uuid4() == WorkflowContext(run_id="run-42").uuid4()
    assert WorkflowContext(run_id="run-42").uuid4() != WorkflowContext(run_id="run-43").uuid4()
    assert WorkflowContext(run_id="run-42").uuid4().version == 4


def test_uuid7_takes_its_time_from_now() -> None:
    start = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    value = WorkflowContext(run_id="r", current_time=start).uuid7()
    assert value.version == 7
    assert value.int >> 80 == int(start.timestamp() * 1000)
    assert value == WorkflowContext(run_id="r", current_time=start).uuid7()


def test_now_without_a_start_time_is_non_deterministic() -> None:
    with pytest.raises(errors.NonDeterministicReplayError):
        WorkflowContext().now()
    naive = WorkflowContext(current_time=datetime(2026, 1, 1))
    assert naive.now().tzinfo is UTC


@workflow.defn(name="tests.context-values")
class ValuesWorkflow:
    calls = 0

    def run(self, ctx: WorkflowContext) -> Generator[Any, Any, Any]:
        def draw() -> int:
            ValuesWorkflow.calls += 1
            return ctx.random().randint(0, 10**9)

        drawn = ctx.side_effect(draw)
        yield ctx.start_timer(1)
        return {
            "drawn": drawn,
            "now": ctx.now().isoformat(),
            "uuid4": str(ctx.uuid4()),
            "uuid7": str(ctx.uuid7()),
            "identity": [ctx.workflow_id, ctx.run_id, ctx.workflow_type, ctx.is_replaying],
        }


def test_values_are_stable_across_replays_and_side_effects_run_once() -> None:
    ValuesWorkflow.calls = 0
    sim = s.SimServer(ValuesWorkflow, run_id="run-7").run()
    assert ValuesWorkflow.calls == 1
    assert sim.history[1]["event_type"] == "SideEffectRecorded"
    result = sim.result
    assert result["now"] == "2026-01-01T10:00:00+00:00"
    assert result["identity"] == ["wf-1", "run-7", "tests.context-values", False]
    again = workflow.replay(ValuesWorkflow, sim.history, [], run_id="run-7")
    assert again.result == result
    assert ValuesWorkflow.calls == 1
    uuid.UUID(result["uuid7"])


def test_first_side_effect_keeps_running_in_the_same_task() -> None:
    outcome = workflow.replay(ValuesWorkflow, [s.started("tests.context-values")], [])
    assert len(outcome.commands) == 2
    assert isinstance(outcome.commands[0], RecordSideEffect)
    assert outcome.commands[1] == StartTimer(1)
    (wire, _) = workflow.commands_to_server_commands(outcome.commands, "q")
    assert wire["payload_codec"] == "avro" and isinstance(wire["result"], str)


def test_side_effect_exception_propagates_into_the_workflow() -> None:
    @workflow.defn(name="tests.side-effect-raises")
    class Raises:
        def run(self, ctx: WorkflowContext) -> Any:
            try:
                ctx.side_effect(lambda: 1 // 0)
            except ZeroDivisionError:
                return "caught"
            return "not raised"

    assert workflow.replay(Raises, [], []).commands == [CompleteWorkflow("caught")]


def test_yielded_record_side_effect_and_upsert_keep_running() -> None:
    @workflow.defn(name="tests.yielded-records")
    class Yielded:
        def run(self, ctx: WorkflowContext) -> Generator[Any, Any, Any]:
            value = yield RecordSideEffect("fresh")
            none = yield UpsertSearchAttributes({"Stage": "one"})
            return [value, none]

    outcome = workflow.replay(Yielded, [], [])
    assert outcome.commands == [
        RecordSideEffect("fresh"),
        UpsertSearchAttributes({"Stage": "one"}),
        CompleteWorkflow(["fresh", None]),
    ]
    recorded = [
        s.started("tests.yielded-records"),
        s.event("SideEffectRecorded", {"sequence": 1, "result": s.blob("recorded")}),
        s.event("SearchAttributesUpserted", {"sequence": 2, "attributes": {"Stage": "one"}}),
    ]
    assert workflow.replay(Yielded, recorded, []).commands == [CompleteWorkflow(["recorded", None])]


@workflow.defn(name="tests.patched")
class PatchedWorkflow:
    def run(self, ctx: WorkflowContext) -> Generator[Any, Any, Any]:
        first = ctx.patched("fix-1")
        yield ctx.schedule_activity("step", [])
        second = ctx.patched("fix-1")  # same id: the first decision
        ctx.deprecate_patch("old-fix")
        return [first, second]


def test_patched_on_a_new_run_records_version_one() -> None:
    outcome = workflow.replay(PatchedWorkflow, [s.started("tests.patched")], [])
    assert outcome.commands == [RecordVersionMarker("fix-1", 1, -1, 1), ScheduleActivity("step", [])]
    sim = s.SimServer(PatchedWorkflow).run()
    assert sim.result == [True, True]
    markers = [e["payload"] for e in sim.history if e["event_type"] == "VersionMarkerRecorded"]
    assert [(m["change_id"], m["version"], m["min_supported"], m["max_supported"]) for m in markers] == [
        ("fix-1", 1, -1, 1),
        ("old-fix", 1, -1, 1),
    ]
    assert workflow.replay(PatchedWorkflow, sim.history, []).result == [True, True]


def test_patched_on_an_older_run_without_marker_is_false() -> None:
    history = [
        s.started("tests.patched"),
        s.event("ActivityScheduled", {"sequence": 1, "activity_type": "step"}),
        s.event("ActivityCompleted", {"sequence": 1, "result": s.blob(None)}),
        s.event("WorkflowCompleted", {"result": s.blob(None)}),
    ]
    assert workflow.replay(PatchedWorkflow, history, []).result == [False, False]


def test_duplicate_markers_from_older_sdks_are_consumed() -> None:
    history = [
        s.started("tests.patched"),
        s.event("VersionMarkerRecorded", {"sequence": 1, "change_id": "fix-1", "version": 1}),
        s.event("ActivityScheduled", {"sequence": 2, "activity_type": "step"}),
        s.event("ActivityCompleted", {"sequence": 2, "result": s.blob(None)}),
        s.event("VersionMarkerRecorded", {"sequence": 3, "change_id": "fix-1", "version": 1}),
        s.event("VersionMarkerRecorded", {"sequence": 4, "change_id": "old-fix", "version": 1}),
    ]
    assert workflow.replay(PatchedWorkflow, history, []).commands == [CompleteWorkflow([True, True])]


def test_marker_with_another_change_id_or_out_of_range_is_non_deterministic() -> None:
    other = [
        s.started("tests.patched"),
        s.event("VersionMarkerRecorded", {"sequence": 1, "change_id": "x", "version": 1}),
    ]
    with pytest.raises(errors.NonDeterministicReplayError, match="different change id"):
        workflow.replay(PatchedWorkflow, other, [])
    too_new = [
        s.started("tests.patched"),
        s.event("VersionMarkerRecorded", {"sequence": 1, "change_id": "fix-1", "version": 5}),
    ]
    with pytest.raises(errors.NonDeterministicReplayError, match="outside"):
        workflow.replay(PatchedWorkflow, too_new, [])


def test_get_version_records_max_on_a_new_path() -> None:
    outcome = workflow.replay(s.VersionMarkerWorkflow, [], [])
    assert outcome.commands == [
        RecordVersionMarker("golden-version", 2, 1, 2),
        ScheduleActivity("golden.version-new-path", []),
    ]


def test_context_without_a_runtime_behaves_like_a_new_run() -> None:
    ctx = WorkflowContext(run_id="r")
    assert ctx.side_effect(lambda: 3) == 3
    assert ctx.patched("p") is True
    assert ctx.get_version("v", 1, 4) == 4
    assert ctx.deprecate_patch("p") is None
    assert ctx.is_replaying is False and ctx.workflow_id is None and ctx.run_id == "r"


def test_is_replaying_is_true_while_recorded_steps_remain() -> None:
    seen: list[bool] = []

    @workflow.defn(name="tests.is-replaying")
    class Watch:
        def run(self, ctx: WorkflowContext) -> Generator[Any, Any, Any]:
            seen.append(ctx.is_replaying)
            yield ctx.start_timer(1)
            seen.append(ctx.is_replaying)
            yield ctx.start_timer(1)

    history = [
        s.started("tests.is-replaying"),
        s.event("TimerScheduled", {"sequence": 1, "delay_seconds": 1}),
        s.event("TimerFired", {"sequence": 1}),
    ]
    workflow.replay(Watch, history, [])
    assert seen == [True, False]
