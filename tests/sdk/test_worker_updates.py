"""Update tasks in the worker: in-task validation with a stand-in UpdateAccepted."""

from __future__ import annotations

from typing import Any

from durable_workflow import serializer, workflow
from durable_workflow.worker._updates import replay_task


@workflow.defn(name="sdk-update-counter")
class Counter:
    def __init__(self) -> None:
        self.count = 0

    @workflow.update("add")
    def add(self, amount: int) -> int:
        self.count += amount
        return self.count

    @add.validator
    def check(self, amount: int) -> None:
        if amount < 0:
            raise ValueError("negative")

    def run(self, ctx: Any) -> Any:
        yield ctx.wait_condition(lambda: self.count > 10)
        return self.count


HISTORY = [
    {
        "id": "e1",
        "sequence": 1,
        "event_type": "WorkflowStarted",
        "payload": {"workflow_type": "sdk-update-counter"},
    },
    {"id": "e2", "sequence": 2, "event_type": "ConditionWaitOpened", "payload": {"sequence": 1}},
]


def _task(amount: int) -> dict[str, Any]:
    return {
        "workflow_id": "w",
        "run_id": "r",
        "workflow_update_id": "u-1",
        "update_name": "add",
        "update_arguments": serializer.envelope([amount]),
    }


def test_a_requested_update_runs_its_validator_and_handler() -> None:
    outcome = replay_task(Counter, HISTORY, [], _task(4), "avro")
    [done] = outcome.commands
    assert isinstance(done, workflow.CompleteUpdate) and done.result == 4


def test_a_rejected_update_becomes_fail_update_invalid_update() -> None:
    outcome = replay_task(Counter, HISTORY, [], _task(-1), "avro")
    [failed] = outcome.commands
    assert isinstance(failed, workflow.FailUpdate)
    assert failed.exception_type == "InvalidUpdate" and "negative" in failed.message


def test_a_task_without_an_update_replays_the_code() -> None:
    outcome = replay_task(Counter, HISTORY[:1], [], {"workflow_id": "w", "run_id": "r"}, "avro")
    assert [type(c).__name__ for c in outcome.commands] == ["WaitCondition"]
