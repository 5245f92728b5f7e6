"""Workflows and activities for the lifecycle end-to-end tests: children, continue-as-new,
timeouts, cancellation, determinism helpers across deploys, search attributes and scale.

Activities record what they saw in module-level dicts: the workers of a test run in the test's
own process, so the test can read them.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from durable_workflow import activity, workflow
from durable_workflow.errors import ApplicationError, ChildWorkflowError
from durable_workflow.retry_policy import ChildWorkflowRetryPolicy
from durable_workflow.workflow import ContinueAsNew, WorkflowCancellationRequested

#: key -> how many times ``bump`` ran for it.
COUNTS: dict[str, int] = {}
#: key -> what an activity observed (cancellation, values before a restart...).
SEEN: dict[str, Any] = {}


@activity.defn(name="lc-echo")
def lc_echo(value: Any) -> Any:
    return value


@activity.defn(name="bump")
def bump(key: str) -> int:
    COUNTS[key] = COUNTS.get(key, 0) + 1
    return COUNTS[key]


@activity.defn(name="remember")
def remember(key: str, value: Any) -> None:
    SEEN[key] = value


@activity.defn(name="wait-for-cancel")
async def wait_for_cancel(key: str) -> str:
    try:
        for _ in range(600):
            activity.heartbeat()
            await asyncio.sleep(0.1)
    except asyncio.CancelledError:
        SEEN[key] = "activity saw the cancellation"
        raise
    return "never cancelled"


@activity.defn(name="old-path")
def old_path() -> str:
    return "old"


@activity.defn(name="new-path")
def new_path() -> str:
    return "new"


# --- children -------------------------------------------------------------------------------


@workflow.defn(name="lc-child-double")
class ChildDouble:
    def run(self, ctx: Any, value: int) -> Any:
        doubled = yield ctx.schedule_activity("lc-echo", [value * 2])
        return {"doubled": doubled, "queue_run": ctx.workflow_id}


@workflow.defn(name="lc-child-fail")
class ChildFail:
    def run(self, ctx: Any, message: str) -> Any:
        yield ctx.schedule_activity("lc-echo", [message])
        raise ApplicationError(message, type="ChildBroke", non_retryable=True)


@workflow.defn(name="lc-child-flaky")
class ChildFlaky:
    """Fails while ``bump(key)`` has run at most ``fail_times`` times (each attempt is a new run)."""

    def run(self, ctx: Any, key: str, fail_times: int) -> Any:
        attempt = yield ctx.schedule_activity("bump", [key])
        if attempt <= fail_times:
            raise RuntimeError(f"child attempt {attempt} fails on purpose")
        return attempt


@workflow.defn(name="lc-child-sleeper")
class ChildSleeper:
    def run(self, ctx: Any, seconds: int) -> Any:
        try:
            yield ctx.sleep(seconds)
        except WorkflowCancellationRequested:
            yield ctx.schedule_activity("remember", [ctx.workflow_id, "child cleaned up"])
            raise
        return "slept"


@workflow.defn(name="lc-parent")
class Parent:
    """Starts one child with the given options and reports its result or its failure."""

    def run(self, ctx: Any, child_type: str, args: list[Any], options: dict[str, Any]) -> Any:
        retry = options.pop("retry_attempts", None)
        if retry:
            options["retry_policy"] = ChildWorkflowRetryPolicy(
                max_attempts=retry, initial_interval_seconds=1.0, backoff_coefficient=1.0
            )
        try:
            result = yield ctx.start_child_workflow(child_type, args, **options)
        except ChildWorkflowError as exc:
            return {
                "caught": type(exc).__name__,
                "exception_type": exc.exception_type,
                "message": exc.message,
            }
        return {"result": result}


@workflow.defn(name="lc-parent-mixed")
class ParentMixed:
    """One parallel yield with activities, a timer and a child."""

    def run(self, ctx: Any, queue: str) -> Any:
        results = yield [
            ctx.schedule_activity("lc-echo", ["a"]),
            ctx.sleep(1),
            ctx.start_child_workflow("lc-child-double", [21], task_queue=queue),
            ctx.schedule_activity("lc-echo", ["b"]),
        ]
        return results


# --- continue-as-new and timeouts -----------------------------------------------------------------


@workflow.defn(name="lc-counter")
class Counter:
    def run(self, ctx: Any, n: int, limit: int) -> Any:
        seen = yield ctx.schedule_activity("lc-echo", [n])
        if seen < limit:
            return ContinueAsNew(arguments=[n + 1, limit])
        return {"final": seen, "run_id": ctx.run_id}


@workflow.defn(name="lc-looper")
class Looper:
    """Sleeps and continues as new forever; only an execution timeout ends it."""

    def run(self, ctx: Any, seconds: int) -> Any:
        yield ctx.sleep(seconds)
        return ContinueAsNew(arguments=[seconds])


@workflow.defn(name="lc-sleeper")
class Sleeper:
    def run(self, ctx: Any, seconds: int) -> Any:
        yield ctx.sleep(seconds)
        return "woke"


# --- cancellation -------------------------------------------------------------------------------


@workflow.defn(name="lc-cancellable")
class Cancellable:
    """Waits on a long activity; on cancellation runs a compensation, then re-raises."""

    def run(self, ctx: Any, key: str) -> Any:
        try:
            yield ctx.schedule_activity("wait-for-cancel", [key], heartbeat_timeout=10)
        except WorkflowCancellationRequested:
            undone = yield ctx.schedule_activity("lc-echo", [f"compensated {key}"])
            SEEN[f"{key}:compensation"] = undone
            raise
        return "finished without cancel"


@workflow.defn(name="lc-cancel-timer")
class CancelTimer:
    """Sleeps long; on cancellation cleans up and returns normally."""

    def run(self, ctx: Any) -> Any:
        try:
            yield ctx.sleep(600)
        except WorkflowCancellationRequested:
            yield ctx.schedule_activity("lc-echo", ["cleanup"])
            return "cleaned up"
        return "slept"


# --- determinism across deploys ---------------------------------------------------------------------


@workflow.defn(name="lc-determinism")
class Determinism:
    def run(self, ctx: Any, key: str, seconds: int) -> Any:
        values = {
            "side_effect": ctx.side_effect(lambda: uuid.uuid4().hex),
            "random": ctx.random().random(),
            "uuid4": str(ctx.uuid4()),
            "uuid7": str(ctx.uuid7()),
            "now": ctx.now().isoformat(),
        }
        yield ctx.schedule_activity("remember", [key, values])
        yield ctx.sleep(seconds)
        return values


@workflow.defn(name="lc-patchy")
class PatchyV1:
    def run(self, ctx: Any, seconds: int) -> Any:
        path = yield ctx.schedule_activity("old-path", [])
        yield ctx.sleep(seconds)
        return path


@workflow.defn(name="lc-patchy")
class PatchyV2:
    def run(self, ctx: Any, seconds: int) -> Any:
        if ctx.patched("use-new-path"):
            path = yield ctx.schedule_activity("new-path", [])
        else:
            path = yield ctx.schedule_activity("old-path", [])
        yield ctx.sleep(seconds)
        return path


@workflow.defn(name="lc-patchy")
class PatchyV3:
    def run(self, ctx: Any, seconds: int) -> Any:
        ctx.deprecate_patch("use-new-path")
        path = yield ctx.schedule_activity("new-path", [])
        yield ctx.sleep(seconds)
        return path


# --- search attributes and scale ------------------------------------------------------------------


@workflow.defn(name="lc-orders")
class Orders:
    def run(self, ctx: Any, customer: str, seconds: int) -> Any:
        yield workflow.UpsertSearchAttributes({"CustomerId": customer, "Stage": "placed"})
        yield ctx.sleep(seconds)
        return customer


@workflow.defn(name="lc-fan-out")
class FanOut:
    def run(self, ctx: Any, count: int) -> Any:
        return (yield [ctx.schedule_activity("lc-echo", [i]) for i in range(count)])


LIFECYCLE_ACTIVITIES = [lc_echo, bump, remember, wait_for_cancel, old_path, new_path]
LIFECYCLE_WORKFLOWS = [
    ChildDouble,
    ChildFail,
    ChildFlaky,
    ChildSleeper,
    Parent,
    ParentMixed,
    Counter,
    Looper,
    Sleeper,
    Cancellable,
    CancelTimer,
    Determinism,
    Orders,
    FanOut,
]
