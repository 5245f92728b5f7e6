"""Workflows and activities the end-to-end tests run on real workers."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from durable_workflow import activity, workflow
from durable_workflow.errors import ActivityFailed, ActivityTimedOut, ApplicationError
from durable_workflow.retry_policy import ActivityRetryPolicy


@activity.defn(name="greet")
def greet(name: str) -> str:
    return f"hello, {name}"


@activity.defn(name="echo")
def echo(value: Any) -> Any:
    return value


@activity.defn(name="flaky")
def flaky(fail_times: int) -> int:
    attempt = activity.info().attempt
    if attempt <= fail_times:
        raise RuntimeError(f"attempt {attempt} fails on purpose")
    return attempt


@activity.defn(name="declined")
def declined() -> None:
    raise ApplicationError("card declined", type="CardDeclined", non_retryable=True)


@activity.defn(name="sleepy")
async def sleepy(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "slept"


@activity.defn(name="blocking-sleep")
def blocking_sleep(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"


@workflow.defn(name="greeter")
class GreeterWorkflow:
    def run(self, ctx: Any, name: str) -> Any:
        yield ctx.sleep(1)
        return (yield ctx.schedule_activity("greet", [name]))


@workflow.defn(name="retrying")
class RetryingWorkflow:
    def run(self, ctx: Any, fail_times: int) -> Any:
        policy = ActivityRetryPolicy(max_attempts=5, initial_interval_seconds=1.0, backoff_coefficient=1.0)
        return (yield ctx.schedule_activity("flaky", [fail_times], retry_policy=policy))


@workflow.defn(name="non-retryable")
class NonRetryableWorkflow:
    def run(self, ctx: Any) -> Any:
        yield ctx.schedule_activity("declined", [], retry_policy=ActivityRetryPolicy(max_attempts=5))
        return "unreachable"


@workflow.defn(name="timeout-probe")
class TimeoutProbeWorkflow:
    """Runs one activity with the given timeouts and reports how it ended."""

    def run(self, ctx: Any, activity_type: str, seconds: float, timeouts: dict[str, int],
            queue: str | None = None) -> Any:
        try:
            yield ctx.schedule_activity(
                activity_type, [seconds], queue=queue,
                retry_policy=ActivityRetryPolicy(max_attempts=1), **timeouts,
            )
        except ActivityTimedOut as exc:
            return {"timed_out": exc.timeout_kind}
        except ActivityFailed as exc:
            return {"failed": exc.exception_type}
        return {"completed": True}


@workflow.defn(name="saga")
class SagaWorkflow:
    """Books two steps, the third fails, and the booked ones are undone in reverse order."""

    def run(self, ctx: Any, order_id: str) -> Any:
        done: list[str] = []
        try:
            for step in ("reserve", "charge"):
                yield ctx.schedule_activity("echo", [f"{step}-{order_id}"])
                done.append(step)
            yield ctx.schedule_activity("declined", [])
        except ActivityFailed as exc:
            undone = []
            for step in reversed(done):
                undone.append((yield ctx.schedule_activity("echo", [f"undo-{step}"])))
            return {"undone": undone, "error": exc.exception_type}
        return {"undone": []}


@workflow.defn(name="fan-out")
class FanOutWorkflow:
    def run(self, ctx: Any, count: int) -> Any:
        results = yield [ctx.schedule_activity("echo", [i * 10]) for i in range(count)]
        return results


@workflow.defn(name="sleeper")
class SleeperWorkflow:
    def run(self, ctx: Any, seconds: int) -> Any:
        yield ctx.sleep(seconds)
        return "woke"


@workflow.defn(name="long-activity")
class LongActivityWorkflow:
    """An activity that must survive its worker dying: short start-to-close, several attempts."""

    def run(self, ctx: Any, seconds: float) -> Any:
        policy = ActivityRetryPolicy(max_attempts=5, initial_interval_seconds=1.0, backoff_coefficient=1.0)
        return (yield ctx.schedule_activity("blocking-sleep", [seconds], retry_policy=policy,
                                            start_to_close_timeout=3))


@workflow.defn(name="timer-then-activity")
class TimerThenActivityWorkflow:
    def run(self, ctx: Any, index: int, seconds: int) -> Any:
        yield ctx.sleep(seconds)
        first = yield ctx.schedule_activity("sleepy", [0.5])
        second = yield ctx.schedule_activity("echo", [index])
        return [first, second]


ALL_ACTIVITIES = [greet, echo, flaky, declined, sleepy, blocking_sleep]
ALL_WORKFLOWS = [
    GreeterWorkflow, RetryingWorkflow, NonRetryableWorkflow, TimeoutProbeWorkflow, SagaWorkflow,
    FanOutWorkflow, SleeperWorkflow, LongActivityWorkflow, TimerThenActivityWorkflow,
]
