"""Workflows the signal, query and update end-to-end tests run on real workers."""

from __future__ import annotations

from typing import Any

from durable_workflow import workflow


# The seed's example, verbatim, plus the run method that waits for the approval.
@workflow.defn(name="approval")
class ApprovalWorkflow:
    def __init__(self) -> None:
        self.approved: bool = False

    @workflow.signal("approve")
    def on_approve(self, by: str) -> None:
        self.approved = True

    def run(self, ctx: Any) -> Any:
        yield ctx.wait_condition(lambda: self.approved)
        return "approved"


@workflow.defn(name="collector")
class CollectorWorkflow:
    """Collects ``add`` signals in order until ``done``; answers queries about them."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.finished = False

    @workflow.signal("add")
    def on_add(self, value: Any) -> None:
        self.items.append(value)

    @workflow.signal("done")
    def on_done(self) -> None:
        self.finished = True

    @workflow.query("items")
    def get_items(self) -> list[Any]:
        return list(self.items)

    @workflow.query("count_above")
    def count_above(self, floor: int) -> int:
        return sum(1 for item in self.items if isinstance(item, int) and item > floor)

    @workflow.query("broken")
    def broken(self) -> Any:
        raise ValueError("this query always fails")

    def run(self, ctx: Any) -> Any:
        yield ctx.wait_condition(lambda: self.finished, key="finished")
        return self.items


@workflow.defn(name="late-waiter")
class LateWaiterWorkflow:
    """Sleeps first, then waits for a signal that may have arrived during the sleep."""

    def __init__(self) -> None:
        self.value: Any = None

    @workflow.signal("value")
    def on_value(self, value: Any) -> None:
        self.value = value

    def run(self, ctx: Any, seconds: int) -> Any:
        yield ctx.sleep(seconds)
        yield ctx.wait_condition(lambda: self.value is not None)
        return self.value


@workflow.defn(name="timed-waiter")
class TimedWaiterWorkflow:
    """Waits for ``go`` at most ``seconds``; returns whether it came."""

    def __init__(self) -> None:
        self.go = False

    @workflow.signal("go")
    def on_go(self) -> None:
        self.go = True

    def run(self, ctx: Any, seconds: int) -> Any:
        came = yield ctx.wait_condition(lambda: self.go, timeout=seconds)
        return {"came": came}


@workflow.defn(name="counter")
class CounterWorkflow:
    """Updates add to a counter (a validator refuses negatives); ``finish`` ends the run."""

    def __init__(self) -> None:
        self.count = 0
        self.finished = False
        self.applied: list[str] = []

    @workflow.update("add")
    def add(self, amount: int) -> int:
        self.count += amount
        self.applied.append(f"add:{amount}")
        return self.count

    @add.validator
    def validate_add(self, amount: int) -> None:
        if amount < 0:
            raise ValueError("amount must not be negative")

    @workflow.update("add_via_activity")
    def add_via_activity(self, amount: int) -> Any:
        echoed = yield workflow.ScheduleActivity("echo", [amount])
        self.count += echoed
        self.applied.append(f"activity:{amount}")
        return self.count

    @workflow.update("add_slowly")
    def add_slowly(self, amount: int) -> Any:
        yield workflow.ScheduleActivity("sleepy", [1])
        self.count += amount
        self.applied.append(f"slowly:{amount}")
        return self.count

    @workflow.update("explode")
    def explode(self) -> int:
        raise RuntimeError("the handler blew up")

    @workflow.signal("finish")
    def on_finish(self) -> None:
        self.finished = True

    @workflow.query("count")
    def get_count(self) -> int:
        return self.count

    @workflow.query("applied")
    def get_applied(self) -> list[str]:
        return list(self.applied)

    def run(self, ctx: Any) -> Any:
        yield ctx.wait_condition(lambda: self.finished)
        return self.count


@workflow.defn(name="update-gate")
class UpdateGateWorkflow:
    """Its wait depends only on state that updates change."""

    def __init__(self) -> None:
        self.level = 0

    @workflow.update("raise")
    def raise_level(self) -> int:
        self.level += 1
        return self.level

    def run(self, ctx: Any, target: int) -> Any:
        yield ctx.wait_condition(lambda: self.level >= target, key="level")
        return self.level


MESSAGE_WORKFLOWS = [
    UpdateGateWorkflow,
    ApprovalWorkflow,
    CollectorWorkflow,
    LateWaiterWorkflow,
    TimedWaiterWorkflow,
    CounterWorkflow,
]
