"""The driver: yields, results, failures, parallel groups, sequences, signals, waits, updates."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
import wf_support as s

from durable_workflow import errors, workflow
from durable_workflow.workflow import (
    CompleteUpdate,
    CompleteWorkflow,
    ContinueAsNew,
    FailUpdate,
    FailWorkflow,
    ScheduleActivity,
    StartTimer,
    WaitCondition,
    WorkflowContext,
)

# --- shapes of run -------------------------------------------------------------------------------


@workflow.defn(name="tests.plain-function")
class PlainWorkflow:
    def run(self, ctx: WorkflowContext, a: int, b: int) -> int:
        return a + b


@workflow.defn(name="tests.continue")
class ContinueWorkflow:
    def run(self, ctx: WorkflowContext, n: int) -> Generator[Any, Any, Any]:
        yield ctx.sleep(1)
        return ContinueAsNew(arguments=[n + 1])


@workflow.defn(name="tests.raises")
class RaisingWorkflow:
    def run(self, ctx: WorkflowContext) -> Generator[Any, Any, Any]:
        yield ctx.schedule_activity("charge", [])
        raise ValueError("card declined")


def test_plain_function_run_completes_without_yielding() -> None:
    outcome = workflow.replay(PlainWorkflow, [s.started("tests.plain-function", [2, 3])], [2, 3])
    assert outcome.commands == [CompleteWorkflow(5)]
    assert outcome.completed and not outcome.waiting and outcome.result == 5


def test_returning_continue_as_new_becomes_continue_as_new() -> None:
    outcome = s.SimServer(ContinueWorkflow, [1]).run()
    assert outcome.done
    assert outcome.tasks[-1][1] == [
        {"type": "continue_as_new", "arguments": {"codec": "avro", "blob": s.blob([2])}}
    ]


def test_uncaught_exception_fails_the_workflow_with_type_and_class() -> None:
    sim = s.SimServer(RaisingWorkflow).run()
    last = workflow.replay(RaisingWorkflow, sim.history[:-1], [])
    assert last.commands == [FailWorkflow("card declined", exception_type="ValueError")]
    (wire,) = workflow.commands_to_server_commands(last.commands, "q")
    assert wire == {
        "type": "fail_workflow",
        "message": "card declined",
        "exception_type": "ValueError",
        "non_retryable": False,
        "exception_class": "builtins.ValueError",
    }


def test_bad_start_input_is_a_definition_error_not_a_workflow_failure() -> None:
    with pytest.raises(errors.WorkflowDefinitionError):
        workflow.replay(PlainWorkflow, [s.started("tests.plain-function")], [1])


# --- results and failures ------------------------------------------------------------------------


@workflow.defn(name="tests.failures")
class FailureWorkflow:
    def run(self, ctx: WorkflowContext) -> Generator[Any, Any, Any]:
        caught = []
        for name in ("a", "b", "c"):
            try:
                yield ctx.schedule_activity(name, [])
            except errors.ActivityError as exc:
                caught.append([type(exc).__name__, exc.message, exc.exception_type, exc.sequence])
        for name in ("x", "y", "z"):
            try:
                yield ctx.start_child_workflow(name, [])
            except errors.ChildWorkflowError as exc:
                caught.append([type(exc).__name__, exc.message])
        return caught


def test_recorded_failures_are_thrown_as_typed_exceptions() -> None:
    history = [s.started("tests.failures")]
    for seq, (event_type, extra) in enumerate(
        [
            ("ActivityFailed", {"exception_type": "Boom"}),
            ("ActivityTimedOut", {"timeout_kind": "start_to_close"}),
            ("ActivityCancelled", {}),
        ],
        start=1,
    ):
        history.append(s.event("ActivityScheduled", {"sequence": seq, "activity_type": "abc"[seq - 1]}))
        history.append(s.event(event_type, {"sequence": seq, "message": f"m{seq}", **extra}))
    for seq, event_type in enumerate(["ChildRunFailed", "ChildRunCancelled", "ChildRunTerminated"], start=4):
        history.append(
            s.event("ChildWorkflowScheduled", {"sequence": seq, "child_workflow_type": "xyz"[seq - 4]})
        )
        history.append(s.event(event_type, {"sequence": seq, "message": f"c{seq}"}))
    outcome = workflow.replay(FailureWorkflow, history, [])
    assert outcome.commands == [
        CompleteWorkflow(
            [
                ["ActivityFailed", "m1", "Boom", 1],
                ["ActivityTimedOut", "m2", None, 2],
                ["ActivityCancelled", "m3", None, 3],
                ["ChildWorkflowFailed", "c4"],
                ["ChildWorkflowCancelled", "c5"],
                ["ChildWorkflowTerminated", "c6"],
            ]
        )
    ]


def test_saga_compensation_runs_to_completion_on_the_simulated_server() -> None:
    def payment(*args: Any) -> Any:
        raise RuntimeError("payment declined")

    sim = s.SimServer(s.SagaWorkflow, ["order-1"], children={"golden.payment": payment}).run()
    assert sim.result == "compensated"
    release = [
        c for _, wire in sim.tasks for c in wire if c.get("activity_type") == "golden.release-inventory"
    ]
    assert len(release) == 1


# --- parallel groups -----------------------------------------------------------------------------


@workflow.defn(name="tests.parallel")
class ParallelWorkflow:
    def run(self, ctx: WorkflowContext) -> Generator[Any, Any, Any]:
        first = yield ctx.schedule_activity("solo", [0])
        nested = yield [
            ctx.schedule_activity("a", [1]),
            [ctx.schedule_activity("b", [2]), ctx.start_timer(1)],
            ctx.start_child_workflow("child", [3]),
        ]
        empty = yield []
        return {"first": first, "nested": nested, "empty": empty}


@pytest.mark.parametrize("reverse", [False, True])
def test_parallel_lists_resolve_in_position_order_whatever_the_completion_order(reverse: bool) -> None:
    sim = s.SimServer(ParallelWorkflow, reverse_groups=reverse).run()
    assert sim.result == {"first": [0], "nested": [[1], [[2], None], [3]], "empty": []}
    # One task scheduled all four leaves; the dense sequences are 2..5.
    group_task = sim.tasks[1][1]
    assert [c["parallel_group_base_sequence"] + c["parallel_group_index"] for c in group_task] == [2, 3, 4, 5]
    assert group_task[0]["parallel_group_id"] == "parallel-calls:2:4"
    assert group_task[1]["parallel_group_path"][-1]["parallel_group_id"] == "parallel-calls:3:2"
    assert sim.step_sequences == [1, 2, 3, 4, 5]


def test_partial_group_waits_and_reissues_nothing() -> None:
    sim = s.SimServer(ParallelWorkflow)
    sim.task()
    sim.resolve_pending()
    sim.task()  # schedules the group
    # Only the first member completes.
    sim.append("ActivityCompleted", {"sequence": 2, "result": s.blob("done")})
    outcome = workflow.replay(ParallelWorkflow, sim.history, [])
    assert outcome.commands == [] and outcome.waiting


@workflow.defn(name="tests.parallel-failure")
class ParallelFailureWorkflow:
    def run(self, ctx: WorkflowContext) -> Generator[Any, Any, Any]:
        try:
            yield [
                ctx.schedule_activity("ok", []),
                ctx.schedule_activity("bad1", []),
                ctx.schedule_activity("bad2", []),
            ]
        except errors.ActivityFailed as exc:
            return exc.activity_type
        return None


def test_first_failure_by_position_is_thrown_once_the_group_resolved() -> None:
    def boom(*args: Any) -> Any:
        raise s.PlannedFailure("no")

    sim = s.SimServer(
        ParallelFailureWorkflow, activities={"bad1": boom, "bad2": boom}, reverse_groups=True
    ).run()
    assert sim.result == "bad1"


def test_a_condition_in_a_parallel_list_is_refused() -> None:
    @workflow.defn(name="tests.bad-group")
    class BadGroup:
        def run(self, ctx: WorkflowContext) -> Generator[Any, Any, Any]:
            yield [ctx.wait_condition(lambda: False)]

    with pytest.raises(errors.WorkflowDefinitionError):
        workflow.replay(BadGroup, [], [])


# --- determinism -------------------------------------------------------------------------------


@workflow.defn(name="tests.orders")
class OrderV1:
    def run(self, ctx: WorkflowContext) -> Generator[Any, Any, Any]:
        yield ctx.schedule_activity("reserve", [])
        yield ctx.start_timer(5)
        return (yield ctx.schedule_activity("charge", []))


def _record_v1() -> list[dict[str, Any]]:
    sim = s.SimServer(OrderV1).run()
    assert sim.done
    return sim.history


def test_changed_code_raises_non_determinism_naming_type_sequence_and_both_sides() -> None:
    history = _record_v1()

    @workflow.defn(name="tests.orders")
    class OrderV2:
        def run(self, ctx: WorkflowContext) -> Generator[Any, Any, Any]:
            yield ctx.schedule_activity("reserve", [])
            yield ctx.schedule_activity("fraud-check", [])  # was a timer
            return (yield ctx.schedule_activity("charge", []))

    with pytest.raises(errors.NonDeterministicReplayError) as info:
        workflow.replay(OrderV2, history, [])
    error = info.value
    assert error.workflow_type == "tests.orders"
    assert error.sequence == 2
    assert error.recorded is not None and "TimerScheduled" in error.recorded
    assert error.yielded is not None and "fraud-check" in error.yielded
    for part in ("tests.orders", "sequence 2", "TimerScheduled", "fraud-check"):
        assert part in str(error)
    workflow.defn(name="tests.orders")(OrderV1)  # restore the registry entry for other tests


def test_changed_activity_type_and_timer_delay_are_detected() -> None:
    history = _record_v1()

    @workflow.defn(name="tests.orders-type")
    class Renamed:
        def run(self, ctx: WorkflowContext) -> Generator[Any, Any, Any]:
            yield ctx.schedule_activity("reserve-v2", [])

    @workflow.defn(name="tests.orders-delay")
    class Delayed:
        def run(self, ctx: WorkflowContext) -> Generator[Any, Any, Any]:
            yield ctx.schedule_activity("reserve", [])
            yield ctx.start_timer(6)

    with pytest.raises(errors.NonDeterministicReplayError, match="activity type"):
        workflow.replay(Renamed, history, [])
    with pytest.raises(errors.NonDeterministicReplayError, match="timer delay"):
        workflow.replay(Delayed, history, [])


def test_completing_with_unconsumed_history_is_non_deterministic() -> None:
    history = _record_v1()

    @workflow.defn(name="tests.orders-short")
    class Short:
        def run(self, ctx: WorkflowContext) -> Generator[Any, Any, Any]:
            yield ctx.schedule_activity("reserve", [])
            return "early"

    with pytest.raises(errors.NonDeterministicReplayError, match="still holds") as info:
        workflow.replay(Short, history, [])
    assert info.value.sequence == 2


def test_workflow_code_cannot_swallow_non_determinism() -> None:
    history = [s.started("tests.swallow"), s.event("TimerScheduled", {"sequence": 1, "delay_seconds": 1})]

    @workflow.defn(name="tests.swallow")
    class Swallow:
        def run(self, ctx: WorkflowContext) -> Generator[Any, Any, Any]:
            try:
                ctx.side_effect(lambda: 1)
            except Exception:
                pass
            yield ctx.start_timer(1)

    with pytest.raises(errors.NonDeterministicReplayError):
        workflow.replay(Swallow, history, [])


def test_scheduled_step_without_result_is_not_reissued() -> None:
    history = _record_v1()[:2]  # WorkflowStarted, ActivityScheduled
    outcome = workflow.replay(OrderV1, history, [])
    assert outcome.commands == [] and outcome.waiting and not outcome.completed


def test_sequences_follow_history_numbering_and_continue_after_it() -> None:
    # A server that numbers by event position leaves gaps; new steps continue after the last one.
    history = [
        s.started("tests.orders"),
        s.event("ActivityScheduled", {"sequence": 4, "activity_type": "reserve"}),
        s.event("ActivityCompleted", {"sequence": 4, "result": s.blob(None)}),
    ]
    outcome = workflow.replay(OrderV1, history, [])
    assert outcome.commands == [StartTimer(5)]
    assert outcome.last_sequence == 5


# --- signals -------------------------------------------------------------------------------------


@workflow.defn(name="tests.signals")
class SignalWorkflow:
    def __init__(self) -> None:
        self.seen: list[str] = []

    @workflow.signal("note")
    def note(self, text: str) -> None:
        self.seen.append(text)

    def run(self, ctx: WorkflowContext) -> Generator[Any, Any, Any]:
        snapshots = []
        for _ in range(3):
            yield ctx.start_timer(1)
            snapshots.append(list(self.seen))
        return snapshots


def test_signal_runs_before_the_code_sees_the_next_result() -> None:
    history = [
        s.started("tests.signals"),
        s.event("TimerScheduled", {"sequence": 1, "delay_seconds": 1}),
        s.event(
            "SignalReceived", {"signal_name": "note", "arguments": {"codec": "avro", "blob": s.blob(["a"])}}
        ),
        s.event("TimerFired", {"sequence": 1}),
        s.event("TimerScheduled", {"sequence": 2, "delay_seconds": 1}),
        s.event("TimerFired", {"sequence": 2}),
        s.event("SignalReceived", {"signal_name": "unknown", "arguments": s.blob([])}),
        s.event("SignalReceived", {"signal_name": "note", "value": s.blob(["b"])}),
        s.event("TimerScheduled", {"sequence": 3, "delay_seconds": 1}),
        s.event("TimerFired", {"sequence": 3}),
    ]
    outcome = workflow.replay(SignalWorkflow, history, [])
    assert outcome.commands == [CompleteWorkflow([["a"], ["a"], ["a", "b"]])]


# --- condition waits -----------------------------------------------------------------------------


@workflow.defn(name="tests.wait")
class WaitWorkflow:
    def __init__(self) -> None:
        self.count = 0

    @workflow.signal("bump")
    def bump(self) -> None:
        self.count += 1

    def run(self, ctx: WorkflowContext, needed: int) -> Generator[Any, Any, Any]:
        ok = yield ctx.wait_condition(lambda: self.count >= needed, key="bumps", timeout=10)
        after = yield ctx.schedule_activity("after", [self.count])
        return [ok, after]


def test_wait_that_is_already_true_emits_nothing_and_takes_no_sequence() -> None:
    outcome = workflow.replay(WaitWorkflow, [s.started("tests.wait", [0])], [0])
    assert outcome.commands == [ScheduleActivity("after", [0])]
    assert outcome.last_sequence == 1


def test_wait_resolves_true_after_signal_on_the_simulated_server() -> None:
    sim = s.SimServer(WaitWorkflow, [1])
    first = sim.task()
    assert isinstance(first.commands[0], WaitCondition)
    assert sim.tasks[0][1][0]["timeout_seconds"] == 10
    sim.signal("bump")
    sim.run()
    assert sim.result == [True, [1]]
    assert s.SimServer  # the recorded history replays to the same result
    assert workflow.replay(WaitWorkflow, sim.history, [1]).result == [True, [1]]


def test_wait_times_out_to_false() -> None:
    sim = s.SimServer(WaitWorkflow, [1])
    sim.task()
    sim.fire_wait_timeout()
    sim.run()
    assert sim.result == [False, [0]]


def test_wait_reopens_when_satisfied_but_predicate_still_false() -> None:
    sim = s.SimServer(WaitWorkflow, [2])
    sim.task()
    wait_seq = sim.open_wait["sequence"]  # type: ignore[index]
    sim.append("SignalReceived", {"signal_name": "bump", "arguments": s.blob([])})
    # A server that marks the latest wait satisfied after every signal task.
    sim.append("ConditionWaitSatisfied", {"sequence": wait_seq, "condition_wait_id": f"condition:{wait_seq}"})
    outcome = workflow.replay(WaitWorkflow, sim.history, [2])
    assert len(outcome.commands) == 1 and isinstance(outcome.commands[0], WaitCondition)
    (wire,) = workflow.commands_to_server_commands(outcome.commands, "q")
    assert wire["condition_key"] == "bumps"
    assert (
        wire["condition_definition_fingerprint"]
        == sim.history[1]["payload"]["condition_definition_fingerprint"]
    )
    assert outcome.last_sequence == 2


def test_changed_wait_key_is_non_deterministic() -> None:
    sim = s.SimServer(WaitWorkflow, [1])
    sim.task()

    @workflow.defn(name="tests.wait-renamed")
    class Renamed(WaitWorkflow):
        def run(self, ctx: WorkflowContext, needed: int) -> Generator[Any, Any, Any]:
            yield ctx.wait_condition(lambda: self.count >= needed, key="renamed", timeout=10)

    with pytest.raises(errors.NonDeterministicReplayError, match="condition_key_changed"):
        workflow.replay(Renamed, sim.history, [1])


# --- updates and queries -------------------------------------------------------------------------


@workflow.defn(name="tests.updates")
class UpdateWorkflow:
    def __init__(self) -> None:
        self.total = 0
        self.done = False

    @workflow.update("add")
    def add(self, amount: int) -> int:
        self.total += amount
        return self.total

    @add.validator
    def check_add(self, amount: int) -> None:
        if amount < 0:
            raise ValueError("negative")

    @workflow.update("add_checked")
    def add_checked(self, amount: int) -> Generator[Any, Any, Any]:
        verdict = yield ctx_free_activity("check", amount)
        self.total += verdict
        return self.total

    @workflow.update("explode")
    def explode(self) -> None:
        raise KeyError("no such thing")

    @workflow.signal("finish")
    def finish(self) -> None:
        self.done = True

    @workflow.query("total")
    def get_total(self) -> int:
        return self.total

    @workflow.query("broken")
    def broken(self) -> int:
        raise RuntimeError("query blew up")

    def run(self, ctx: WorkflowContext) -> Generator[Any, Any, Any]:
        yield ctx.wait_condition(lambda: self.done, key="finish")
        return self.total


def ctx_free_activity(name: str, *args: Any) -> ScheduleActivity:
    return ScheduleActivity(name, list(args))


def test_apply_update_completes_and_replays_at_its_point() -> None:
    sim = s.SimServer(UpdateWorkflow)
    sim.task()
    outcome = sim.update("u1", "add", 5)
    assert outcome.commands == [CompleteUpdate("u1", 5)]
    assert workflow.query_state(UpdateWorkflow, sim.history, [], "total") == 5
    sim.signal("finish")
    assert sim.result == 5
    assert workflow.replay(UpdateWorkflow, sim.history, []).result == 5


def test_apply_update_failures() -> None:
    sim = s.SimServer(UpdateWorkflow)
    sim.task()
    sim.append("UpdateAccepted", {"update_id": "neg", "update_name": "add", "arguments": s.blob([-1])})
    sim.append("UpdateAccepted", {"update_id": "boom", "update_name": "explode", "arguments": s.blob([])})
    sim.append("UpdateAccepted", {"update_id": "what", "update_name": "nope", "arguments": s.blob([])})
    history = sim.history
    (neg,) = workflow.apply_update(UpdateWorkflow, history, [], "neg").commands
    assert neg == FailUpdate("neg", "negative", "InvalidUpdate", "builtins.ValueError")
    (boom,) = workflow.apply_update(UpdateWorkflow, history, [], "boom").commands
    assert isinstance(boom, FailUpdate) and boom.exception_type == "KeyError"
    assert boom.exception_class == "builtins.KeyError" and boom.non_retryable
    (what,) = workflow.apply_update(UpdateWorkflow, history, [], "what").commands
    assert isinstance(what, FailUpdate) and what.exception_type == "UnknownUpdate"
    (missing,) = workflow.apply_update(UpdateWorkflow, history, [], "missing").commands
    assert isinstance(missing, FailUpdate) and missing.exception_type == "UpdateNotFound"


def test_generator_update_handler_yields_an_activity() -> None:
    sim = s.SimServer(UpdateWorkflow, activities={"check": lambda amount: amount * 10})
    sim.task()
    first = sim.update("u2", "add_checked", 2)
    assert first.commands == [ScheduleActivity("check", [2])] and first.waiting
    sim.resolve_pending()
    second = workflow.apply_update(UpdateWorkflow, sim.history, [], "u2")
    assert second.commands == [CompleteUpdate("u2", 20)]


def test_unknown_applied_update_fails_the_workflow() -> None:
    history = [
        s.started("tests.updates"),
        s.event("ConditionWaitOpened", {"sequence": 1, "condition_key": "finish"}),
        s.event("UpdateApplied", {"update_id": "x", "update_name": "gone", "arguments": s.blob([])}),
    ]
    (command,) = workflow.replay(UpdateWorkflow, history, []).commands
    assert isinstance(command, FailWorkflow) and command.exception_type == "UnknownUpdate"


def test_query_state_failures_are_query_failed() -> None:
    history = [s.started("tests.updates")]
    with pytest.raises(errors.QueryFailed) as unknown:
        workflow.query_state(UpdateWorkflow, history, [], "nope")
    assert unknown.value.reason == "rejected_unknown_query"
    with pytest.raises(errors.QueryFailed) as broken:
        workflow.query_state(UpdateWorkflow, history, [], "broken")
    assert broken.value.reason == "query_rejected"


def test_query_does_not_run_new_side_effects() -> None:
    calls: list[int] = []

    @workflow.defn(name="tests.query-side-effect")
    class Effectful:
        def __init__(self) -> None:
            self.value = None

        @workflow.query("value")
        def get(self) -> Any:
            return self.value

        def run(self, ctx: WorkflowContext) -> Generator[Any, Any, Any]:
            self.value = ctx.side_effect(lambda: calls.append(1) or 7)
            yield ctx.start_timer(1)

    assert workflow.query_state(Effectful, [s.started("tests.query-side-effect")], [], "value") is None
    assert calls == []


# --- Replayer -------------------------------------------------------------------------------------


def test_replayer_accepts_lists_and_dicts_and_infers_type_and_input() -> None:
    sim = s.SimServer(s.SingleActivityWorkflow, ["Ada"]).run()
    replayer = workflow.Replayer(workflows=s.FIXTURE_WORKFLOWS)
    for history in (
        sim.history,
        {"events": sim.history},
        {"payload_codec": "avro", "history_events": sim.history},
    ):
        assert replayer.replay(history).commands == [CompleteWorkflow(["Ada"])]
    started_with_envelope = dict(sim.history[0])
    started_with_envelope["payload"] = {
        "workflow_type": "golden.single-activity",
        "input": {"codec": "avro", "blob": s.blob("Grace")},  # not a list: becomes ["Grace"]
    }
    outcome = replayer.replay([started_with_envelope])
    assert outcome.commands == [ScheduleActivity("golden.greet", ["Grace"])]
    overridden = replayer.replay([], workflow_type="golden.single-activity", start_input=["Lin"])
    assert overridden.commands == [ScheduleActivity("golden.greet", ["Lin"])]
    with pytest.raises(errors.WorkflowDefinitionError):
        replayer.replay([], workflow_type="tests.not-registered")


def test_replay_rejects_a_non_avro_task_codec() -> None:
    with pytest.raises(errors.UnsupportedPayloadCodec):
        workflow.replay(s.SingleActivityWorkflow, [], ["Ada"], payload_codec="json")
    assert workflow.replay(s.SingleActivityWorkflow, [], ["Ada"], payload_codec="avro").waiting


def test_signal_recorded_while_the_opening_task_ran_does_not_break_replay() -> None:
    # Task 1 saw only WorkflowStarted and opened the wait; the signal arrived during that task,
    # so the server recorded it before the task's ConditionWaitOpened.
    first = workflow.replay(WaitWorkflow, [s.started("tests.wait", [1])], [1])
    assert [type(c) for c in first.commands] == [WaitCondition]
    history = [
        s.started("tests.wait", [1]),
        s.event("SignalReceived", {"signal_name": "bump", "arguments": s.blob([])}),
        s.event("ConditionWaitOpened", {"sequence": 1, "condition_key": "bumps", "timeout_seconds": 10}),
    ]
    outcome = workflow.replay(WaitWorkflow, history, [1])
    assert outcome.commands == [ScheduleActivity("after", [1])]


def test_new_wait_already_satisfied_by_earlier_signals_is_opened_and_passed() -> None:
    # A signal recorded after the last result is applied only where the code waits, so the wait
    # is opened (keeping replay aligned) and resolves within the same task.
    history = [
        s.started("tests.signals-then-wait", []),
        s.event("TimerScheduled", {"sequence": 1, "delay_seconds": 1}),
        s.event("TimerFired", {"sequence": 1}),
        s.event("SignalReceived", {"signal_name": "bump", "arguments": s.blob([])}),
    ]

    @workflow.defn(name="tests.signals-then-wait")
    class SignalsThenWait(WaitWorkflow):
        def run(self, ctx: WorkflowContext) -> Generator[Any, Any, Any]:
            yield ctx.start_timer(1)
            ok = yield ctx.wait_condition(lambda: self.count >= 1, key="bumps")
            return ok

    outcome = workflow.replay(SignalsThenWait, history, [])
    assert [type(c) for c in outcome.commands] == [WaitCondition, CompleteWorkflow]
    assert outcome.result is True


# --- more determinism and failure edges ----------------------------------------------------------


def test_changed_wait_predicate_is_non_deterministic() -> None:
    sim = s.SimServer(WaitWorkflow, [1])
    sim.task()

    @workflow.defn(name="tests.wait-new-predicate")
    class NewPredicate(WaitWorkflow):
        def run(self, ctx: WorkflowContext, needed: int) -> Generator[Any, Any, Any]:
            yield ctx.wait_condition(lambda: self.count > needed + 1, key="bumps", timeout=10)

    with pytest.raises(errors.NonDeterministicReplayError, match="condition_fingerprint_changed"):
        workflow.replay(NewPredicate, sim.history, [1])


def test_changed_parallel_shape_is_non_deterministic() -> None:
    sim = s.SimServer(s.ParallelResultWorkflow)
    sim.task()

    @workflow.defn(name="tests.parallel-reshaped")
    class Sequential:
        def run(self, ctx: WorkflowContext) -> Generator[Any, Any, Any]:
            yield ctx.schedule_activity("position-first", [])

    with pytest.raises(errors.NonDeterministicReplayError, match="parallel group shape"):
        workflow.replay(Sequential, sim.history, [])


def test_changed_parent_close_policy_is_non_deterministic() -> None:
    history = [
        s.started("tests.child-policy"),
        s.event(
            "ChildWorkflowScheduled",
            {"sequence": 1, "child_workflow_type": "kid", "parent_close_policy": "terminate"},
        ),
    ]

    @workflow.defn(name="tests.child-policy")
    class ChildPolicy:
        def run(self, ctx: WorkflowContext) -> Generator[Any, Any, Any]:
            yield ctx.start_child_workflow("kid", parent_close_policy="abandon")

    with pytest.raises(errors.NonDeterministicReplayError, match="parent close policy"):
        workflow.replay(ChildPolicy, history, [])


def test_numeric_string_sequences_and_duplicate_terminal_events() -> None:
    history = [
        s.started("golden.single-activity", ["Ada"]),
        s.event("ActivityScheduled", {"sequence": "1", "activity_type": "golden.greet"}),
        s.event("ActivityCompleted", {"sequence": "1", "result": s.blob("first")}),
        s.event("ActivityCompleted", {"sequence": 1, "result": s.blob("first")}),
    ]
    assert workflow.replay(s.SingleActivityWorkflow, history, ["Ada"]).commands == [CompleteWorkflow("first")]


def test_yielding_something_that_is_not_a_command_is_a_definition_error() -> None:
    @workflow.defn(name="tests.bad-yield")
    class BadYield:
        def run(self, ctx: WorkflowContext) -> Generator[Any, Any, Any]:
            yield "not a command"

    with pytest.raises(errors.WorkflowDefinitionError):
        workflow.replay(BadYield, [], [])


def test_uncaught_activity_failure_carries_an_exception_object_and_application_errors_keep_retry_flag() -> (
    None
):
    @workflow.defn(name="tests.uncaught-activity")
    class Uncaught:
        def run(self, ctx: WorkflowContext) -> Generator[Any, Any, Any]:
            yield ctx.schedule_activity("charge", [])

    history = [
        s.started("tests.uncaught-activity"),
        s.event("ActivityScheduled", {"sequence": 1, "activity_type": "charge"}),
        s.event(
            "ActivityFailed",
            {
                "sequence": 1,
                "message": "declined",
                "exception_type": "CardError",
                "exception_class": "shop.CardError",
            },
        ),
    ]
    (wire,) = workflow.commands_to_server_commands(workflow.replay(Uncaught, history, []).commands, "q")
    assert wire["exception_type"] == "ActivityFailed"
    assert wire["exception_class"] == "durable_workflow.errors.ActivityFailed"
    assert wire["exception"] == {"type": "CardError", "class": "shop.CardError", "message": "declined"}

    @workflow.defn(name="tests.application-error")
    class Fatal:
        def run(self, ctx: WorkflowContext) -> Any:
            raise errors.ApplicationError("stop", non_retryable=True)

    (command,) = workflow.replay(Fatal, [], []).commands
    assert command == FailWorkflow("stop", "ApplicationError", non_retryable=True)


def test_signal_handler_exception_fails_the_workflow() -> None:
    @workflow.defn(name="tests.bad-signal")
    class BadSignal:
        @workflow.signal("poke")
        def poke(self) -> None:
            raise RuntimeError("handler broke")

        def run(self, ctx: WorkflowContext) -> Generator[Any, Any, Any]:
            yield ctx.start_timer(1)

    history = [
        s.started("tests.bad-signal"),
        s.event("TimerScheduled", {"sequence": 1, "delay_seconds": 1}),
        s.event("SignalReceived", {"signal_name": "poke", "arguments": s.blob([])}),
        s.event("TimerFired", {"sequence": 1}),
    ]
    (command,) = workflow.replay(BadSignal, history, []).commands
    assert command == FailWorkflow("handler broke", "RuntimeError")


def test_applied_update_whose_handler_now_raises_is_non_deterministic() -> None:
    history = [
        s.started("tests.updates"),
        s.event("ConditionWaitOpened", {"sequence": 1, "condition_key": "finish"}),
        s.event("UpdateApplied", {"update_id": "x", "update_name": "explode", "arguments": s.blob([])}),
    ]
    with pytest.raises(errors.NonDeterministicReplayError, match="explode"):
        workflow.replay(UpdateWorkflow, history, [])


def test_replayer_needs_a_workflow_type() -> None:
    with pytest.raises(errors.WorkflowDefinitionError):
        workflow.Replayer(workflows=[]).replay([])
    with pytest.raises(errors.WorkflowDefinitionError):
        workflow.Replayer(workflows=[]).replay({"no": "events"})
