"""Replay of cancellation: ``CancelRequested`` is raised into workflow code at the yield it was
blocked on, the same yield on every replay; cleanup may schedule more steps; an uncaught
cancellation becomes ``fail_workflow`` of type ``WorkflowCancellationRequested``."""

from __future__ import annotations

from typing import Any

from wf_support import blob, event, started

from durable_workflow import workflow
from durable_workflow.workflow import (
    CompleteWorkflow,
    FailWorkflow,
    ScheduleActivity,
    StartTimer,
    WorkflowCancellationRequested,
    replay,
)


@workflow.defn(name="cancel-cleanup")
class CleanupWorkflow:
    def run(self, ctx: Any) -> Any:
        first = yield ctx.schedule_activity("step", [1])
        try:
            yield ctx.schedule_activity("step", [2])
        except WorkflowCancellationRequested as exc:
            undone = yield ctx.schedule_activity("undo", [first, exc.message])
            return undone
        return "not cancelled"


@workflow.defn(name="cancel-uncaught")
class UncaughtWorkflow:
    def run(self, ctx: Any) -> Any:
        try:
            yield ctx.sleep(600)
        except Exception:  # a broad handler must not swallow the cancellation
            return "swallowed"
        return "slept"


@workflow.defn(name="cancel-group")
class GroupWorkflow:
    def run(self, ctx: Any) -> Any:
        try:
            yield [ctx.schedule_activity("a", []), ctx.sleep(5)]
        except WorkflowCancellationRequested:
            return "group cancelled"
        return "group done"


def scheduled(seq: int, activity: str = "step") -> dict[str, Any]:
    return event("ActivityScheduled", {"sequence": seq, "activity_type": activity})


def completed(seq: int, value: Any, activity: str = "step") -> dict[str, Any]:
    return event("ActivityCompleted", {"sequence": seq, "activity_type": activity, "result": blob(value)})


CANCEL = event("CancelRequested", {"reason": "customer left"})


def test_cancel_is_raised_where_the_code_waits_and_cleanup_is_queued() -> None:
    history = [started("cancel-cleanup"), scheduled(1), completed(1, "one"), scheduled(2), CANCEL]
    outcome = replay(CleanupWorkflow, history, [])
    assert outcome.commands == [ScheduleActivity("undo", ["one", "customer left"])]
    assert outcome.last_sequence == 3


def test_replay_raises_at_the_same_yield_even_when_the_step_later_resolved() -> None:
    history = [
        started("cancel-cleanup"), scheduled(1), completed(1, "one"), scheduled(2), CANCEL,
        scheduled(3, "undo"), completed(2, "two"), completed(3, "undone", "undo"),
    ]  # fmt: skip
    outcome = replay(CleanupWorkflow, history, [])
    assert outcome.completed and outcome.result == "undone"
    assert outcome.commands == [CompleteWorkflow("undone")]


def test_a_step_resolved_before_the_request_is_not_interrupted() -> None:
    history = [started("cancel-cleanup"), scheduled(1), completed(1, "one"), CANCEL]
    outcome = replay(CleanupWorkflow, history, [])
    # Step 2 is new: it is not issued, the cancellation is raised there instead.
    assert outcome.commands == [ScheduleActivity("undo", ["one", "customer left"])]
    assert outcome.last_sequence == 2


def test_uncaught_cancellation_fails_with_its_type_and_passes_broad_handlers() -> None:
    history = [
        started("cancel-uncaught"),
        event("TimerScheduled", {"sequence": 1, "delay_seconds": 600}),
        CANCEL,
        event("TimerCancelled", {"sequence": 1, "delay_seconds": 600}),
    ]
    outcome = replay(UncaughtWorkflow, history, [])
    assert outcome.completed
    [command] = outcome.commands
    assert isinstance(command, FailWorkflow) and command.exception_type == "WorkflowCancellationRequested"


def test_cancel_before_the_first_task_is_raised_at_the_first_blocking_yield() -> None:
    outcome = replay(UncaughtWorkflow, [started("cancel-uncaught"), CANCEL], [])
    assert isinstance(outcome.commands[0], FailWorkflow)  # the timer was never issued
    assert not any(isinstance(c, StartTimer) for c in outcome.commands)


def test_parallel_group_receives_the_cancellation_once() -> None:
    first = replay(GroupWorkflow, [started("cancel-group")], [])
    wires = workflow.commands_to_server_commands(first.commands, "q")
    keys = [{k: v for k, v in w.items() if k.startswith("parallel_")} for w in wires]
    history = [
        started("cancel-group"),
        event("ActivityScheduled", {"sequence": 1, "activity_type": "a", **keys[0]}),
        event("TimerScheduled", {"sequence": 2, "delay_seconds": 5, **keys[1]}),
        CANCEL,
        event("TimerCancelled", {"sequence": 2, "delay_seconds": 5}),
    ]
    outcome = replay(GroupWorkflow, history, [])
    assert outcome.commands == [CompleteWorkflow("group cancelled")]


def test_cancellation_is_a_base_exception() -> None:
    assert issubclass(WorkflowCancellationRequested, BaseException)
    assert not issubclass(WorkflowCancellationRequested, Exception)
