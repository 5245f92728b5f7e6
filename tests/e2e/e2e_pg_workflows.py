"""Workflows of the PostgreSQL multi-node tests.

Their activities carry a ``start_to_close_timeout``: an attempt whose worker (or whose node)
died is retried after seconds, not after the default lease of minutes.
"""

from __future__ import annotations

from typing import Any

from durable_workflow import workflow
from durable_workflow.retry_policy import ActivityRetryPolicy

RETRY = ActivityRetryPolicy(max_attempts=20, initial_interval_seconds=0.5, backoff_coefficient=1.0)


@workflow.defn(name="pg.child")
class ChildWorkflow:
    """One activity; its result is the child's result."""

    def run(self, ctx: Any, value: int) -> Any:
        return (yield ctx.schedule_activity("echo", [value], retry_policy=RETRY, start_to_close_timeout=5))


@workflow.defn(name="pg.mixed")
class MixedWorkflow:
    """An activity, a durable timer, two activities in parallel, a signal, and (if asked) a child."""

    def __init__(self) -> None:
        self.bonus: Any = None

    @workflow.signal("bonus")
    def on_bonus(self, value: Any) -> None:
        self.bonus = value

    def run(self, ctx: Any, index: int, sleep_seconds: int, with_child: bool) -> Any:
        first = yield ctx.schedule_activity("echo", [index], retry_policy=RETRY, start_to_close_timeout=5)
        yield ctx.sleep(sleep_seconds)
        pair = yield [
            ctx.schedule_activity("echo", [index * 10 + i], retry_policy=RETRY, start_to_close_timeout=5)
            for i in range(2)
        ]
        yield ctx.wait_condition(lambda: self.bonus is not None, key="bonus")
        child = None
        if with_child:
            child = yield ctx.start_child_workflow("pg.child", [index * 100])
        return [first, *pair, self.bonus, child]


PG_WORKFLOWS = [MixedWorkflow, ChildWorkflow]
