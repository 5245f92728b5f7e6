"""Shared helpers for the workflow tests: a simulated server and the fixture workflows.

``SimServer`` applies wire commands to a history list the way the server does (dense
workflow sequences, ``ActivityScheduled`` then ``ActivityCompleted`` and so on) and runs a
workflow task after every change, so tests can drive a workflow to completion and then
replay what was recorded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from durable_workflow import serializer, workflow
from durable_workflow.errors import ActivityFailed, ChildWorkflowFailed
from durable_workflow.workflow import ReplayOutcome, WorkflowContext

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
START_TIME = "2026-01-01T10:00:00.000000Z"


def load_fixture(relative: str) -> dict[str, Any]:
    return json.loads((FIXTURES / relative).read_text())


def blob(value: Any) -> str:
    return serializer.encode(value)


def event(event_type: str, payload: dict[str, Any], **wrapper: Any) -> dict[str, Any]:
    return {"event_type": event_type, "payload": payload, **wrapper}


def started(workflow_type: str, args: list[Any] | None = None, run_id: str = "run-1") -> dict[str, Any]:
    return event(
        "WorkflowStarted",
        {
            "workflow_type": workflow_type,
            "workflow_run_id": run_id,
            "workflow_instance_id": "wf-1",
            "arguments": blob(list(args or [])),
        },
        recorded_at=START_TIME,
    )


class PlannedFailure(Exception):
    """An activity failure used by the simulated server's activity table."""


_PARALLEL_KEYS = (
    "parallel_group_id",
    "parallel_group_kind",
    "parallel_group_base_sequence",
    "parallel_group_size",
    "parallel_group_index",
    "parallel_group_path",
)


class SimServer:
    """Applies commands to a history the way the server does, one workflow task at a time.

    Args:
        workflow_cls: The workflow class.
        args: Start arguments.
        activities: Activity implementations by type; the default returns its arguments.
        reverse_groups: Complete parallel members in reverse order (the server may).
    """

    def __init__(
        self,
        workflow_cls: type,
        args: list[Any] | None = None,
        *,
        activities: dict[str, Callable[..., Any]] | None = None,
        children: dict[str, Callable[..., Any]] | None = None,
        reverse_groups: bool = False,
        run_id: str = "run-1",
    ) -> None:
        self.cls = workflow_cls
        self.args = list(args or [])
        self.run_id = run_id
        self.activities = activities or {}
        self.children = children or {}
        self.reverse_groups = reverse_groups
        definition = workflow_cls.__workflow_definition__  # type: ignore[attr-defined]
        self.history: list[dict[str, Any]] = []
        self.append(
            "WorkflowStarted",
            {
                "workflow_type": definition.name,
                "workflow_run_id": run_id,
                "workflow_instance_id": "wf-1",
                "arguments": blob(self.args),
            },
        )
        self.seq = 0
        self.pending: list[tuple[str, int, dict[str, Any]]] = []
        self.open_wait: dict[str, Any] | None = None
        self.tasks: list[tuple[int, list[dict[str, Any]]]] = []
        self.done = False
        self.result: Any = None
        self.failure: dict[str, Any] | None = None
        self.step_sequences: list[int] = []

    # --- history ------------------------------------------------------------------------

    def append(self, event_type: str, payload: dict[str, Any]) -> None:
        self.history.append(
            {
                "id": f"evt-{len(self.history) + 1}",
                "sequence": len(self.history) + 1,
                "event_type": event_type,
                "payload": payload,
                "recorded_at": START_TIME,
            }
        )

    def _next_seq(self, command: dict[str, Any]) -> int:
        self.seq += 1
        if "parallel_group_base_sequence" in command:
            # The server checks base + index against the number it assigns.
            expected = command["parallel_group_base_sequence"] + command["parallel_group_index"]
            assert expected == self.seq, (command, self.seq)
        self.step_sequences.append(self.seq)
        return self.seq

    # --- tasks --------------------------------------------------------------------------

    def task(self) -> ReplayOutcome:
        outcome = workflow.replay(self.cls, self.history, self.args, run_id=self.run_id, workflow_id="wf-1")
        wire = workflow.commands_to_server_commands(outcome.commands, "sim-queue")
        self.tasks.append((len(self.history), wire))
        if self.open_wait is not None and wire:
            # The code moved on while a wait was open: the server records it satisfied.
            wait = self.open_wait
            self.open_wait = None
            self.append(
                "ConditionWaitSatisfied", {"sequence": wait["sequence"], "condition_wait_id": wait["id"]}
            )
        self.apply(wire)
        return outcome

    def apply(self, wire: list[dict[str, Any]]) -> None:
        for command in wire:
            kind = command["type"]
            parallel = {key: command[key] for key in _PARALLEL_KEYS if key in command}
            if kind == "schedule_activity":
                seq = self._next_seq(command)
                self.append(
                    "ActivityScheduled",
                    {"sequence": seq, "activity_type": command["activity_type"], **parallel},
                )
                self.pending.append(("activity", seq, command))
            elif kind == "start_timer":
                seq = self._next_seq(command)
                self.append(
                    "TimerScheduled", {"sequence": seq, "delay_seconds": command["delay_seconds"], **parallel}
                )
                self.pending.append(("timer", seq, command))
            elif kind == "start_child_workflow":
                seq = self._next_seq(command)
                self.append(
                    "ChildWorkflowScheduled",
                    {"sequence": seq, "child_workflow_type": command["workflow_type"], **parallel},
                )
                self.pending.append(("child", seq, command))
            elif kind == "record_side_effect":
                assert command["payload_codec"] == "avro"
                seq = self._next_seq(command)
                self.append("SideEffectRecorded", {"sequence": seq, "result": command["result"]})
            elif kind == "record_version_marker":
                seq = self._next_seq(command)
                self.append(
                    "VersionMarkerRecorded",
                    {key: command[key] for key in ("change_id", "version", "min_supported", "max_supported")}
                    | {"sequence": seq},
                )
            elif kind == "upsert_search_attributes":
                seq = self._next_seq(command)
                self.append(
                    "SearchAttributesUpserted", {"sequence": seq, "attributes": command["attributes"]}
                )
            elif kind == "open_condition_wait":
                seq = self._next_seq(command)
                wait_id = f"condition:{seq}"
                self.append(
                    "ConditionWaitOpened",
                    {
                        "sequence": seq,
                        "condition_wait_id": wait_id,
                        "condition_key": command.get("condition_key"),
                        "condition_definition_fingerprint": command.get("condition_definition_fingerprint"),
                        "timeout_seconds": command.get("timeout_seconds"),
                    },
                )
                if command.get("timeout_seconds"):
                    self.append(
                        "TimerScheduled",
                        {
                            "sequence": seq,
                            "timer_kind": "condition_timeout",
                            "condition_wait_id": wait_id,
                            "delay_seconds": command["timeout_seconds"],
                        },
                    )
                self.open_wait = {"sequence": seq, "id": wait_id}
            elif kind == "complete_workflow":
                self.append("WorkflowCompleted", {"result": command["result"]["blob"]})
                self.result = serializer.decode_envelope(command["result"])
                self.done = True
            elif kind == "fail_workflow":
                self.append("WorkflowFailed", {k: v for k, v in command.items() if k != "type"})
                self.failure = command
                self.done = True
            elif kind == "continue_as_new":
                self.append("WorkflowContinuedAsNew", {"sequence": self.seq + 1})
                self.done = True
            else:  # pragma: no cover - the tests only use the kinds above here
                raise AssertionError(f"simulated server cannot apply {kind}")

    def resolve_pending(self) -> None:
        pending, self.pending = self.pending, []
        if self.reverse_groups:
            pending.reverse()
        for kind, seq, command in pending:
            if kind == "activity":
                args = serializer.decode_envelope(command["arguments"])
                impl = self.activities.get(command["activity_type"], lambda *a: list(a))
                try:
                    value = impl(*args)
                except Exception as exc:
                    self.append(
                        "ActivityFailed",
                        {
                            "sequence": seq,
                            "activity_type": command["activity_type"],
                            "message": str(exc),
                            "exception_type": type(exc).__name__,
                            "exception_class": f"{type(exc).__module__}.{type(exc).__qualname__}",
                            "non_retryable": True,
                        },
                    )
                else:
                    self.append(
                        "ActivityCompleted",
                        {"sequence": seq, "activity_type": command["activity_type"], "result": blob(value)},
                    )
            elif kind == "timer":
                self.append("TimerFired", {"sequence": seq, "delay_seconds": command["delay_seconds"]})
            else:
                args = serializer.decode_envelope(command["arguments"])
                impl = self.children.get(command["workflow_type"], lambda *a: list(a))
                try:
                    value = impl(*args)
                except Exception as exc:
                    self.append(
                        "ChildRunFailed", {"sequence": seq, "message": str(exc), "exception_type": "Boom"}
                    )
                else:
                    self.append("ChildRunCompleted", {"sequence": seq, "output": blob(value)})

    def run(self, max_tasks: int = 500, between: Callable[[SimServer, int], None] | None = None) -> SimServer:
        """Run tasks until the workflow closes or waits on something only a test can deliver."""
        for number in range(max_tasks):
            if between is not None:
                between(self, number)
            self.task()
            if self.done or not self.pending:
                return self
            self.resolve_pending()
        raise AssertionError("workflow did not settle")

    def signal(self, name: str, *args: Any) -> ReplayOutcome:
        self.append(
            "SignalReceived",
            {"signal_name": name, "arguments": blob(list(args)), "workflow_sequence": self.seq},
        )
        return self.task()

    def fire_wait_timeout(self) -> ReplayOutcome:
        assert self.open_wait is not None
        wait, self.open_wait = self.open_wait, None
        self.append(
            "TimerFired",
            {
                "sequence": wait["sequence"],
                "timer_kind": "condition_timeout",
                "condition_wait_id": wait["id"],
            },
        )
        return self.task()

    def update(self, update_id: str, name: str, *args: Any) -> ReplayOutcome:
        arguments = blob(list(args))
        self.append("UpdateAccepted", {"update_id": update_id, "update_name": name, "arguments": arguments})
        outcome = workflow.apply_update(self.cls, self.history, self.args, update_id, run_id=self.run_id)
        for command in workflow.commands_to_server_commands(outcome.commands, "sim-queue"):
            if command["type"] == "complete_update":
                self.append(
                    "UpdateApplied",
                    {
                        "sequence": self.seq,
                        "update_id": update_id,
                        "update_name": name,
                        "arguments": arguments,
                    },
                )
                self.append("UpdateCompleted", {"update_id": update_id, "result": command["result"]["blob"]})
            elif command["type"] == "fail_update":
                self.append("UpdateCompleted", {"update_id": update_id, "message": command["message"]})
            else:
                self.apply([command])
        return outcome


# --- workflows for the checked-in fixtures ------------------------------------------------------


@workflow.defn(name="golden.single-activity")
class SingleActivityWorkflow:
    def run(self, ctx: WorkflowContext, name: str) -> Generator[Any, Any, Any]:
        greeting = yield ctx.schedule_activity("golden.greet", [name])
        return greeting


@workflow.defn(name="golden.signal-wait")
class SignalWaitWorkflow:
    def __init__(self) -> None:
        self.approved_by: str | None = None

    @workflow.signal("approve")
    def approve(self, by: str) -> None:
        self.approved_by = by

    def run(self, ctx: WorkflowContext) -> Generator[Any, Any, Any]:
        yield ctx.wait_condition(lambda: self.approved_by is not None, key="approval", timeout=30)
        notified = yield ctx.schedule_activity("golden.notify", [self.approved_by])
        return {"approved_by": self.approved_by, "activity_result": notified}


@workflow.defn(name="golden.timeout-wait")
class TimeoutWaitWorkflow:
    def __init__(self) -> None:
        self.approved = False

    @workflow.signal("approve")
    def approve(self) -> None:
        self.approved = True

    def run(self, ctx: WorkflowContext) -> Generator[Any, Any, Any]:
        approved = yield ctx.wait_condition(lambda: self.approved, key="approval", timeout=5)
        return "approved" if approved else "timed-out"


@workflow.defn(name="golden.version-marker")
class VersionMarkerWorkflow:
    def run(self, ctx: WorkflowContext) -> Generator[Any, Any, Any]:
        version = ctx.get_version("golden-version", 1, 2)
        if version >= 2:
            return (yield ctx.schedule_activity("golden.version-new-path", []))
        return (yield ctx.schedule_activity("golden.version-old-path", []))


@workflow.defn(name="golden.saga-compensation")
class SagaWorkflow:
    def run(self, ctx: WorkflowContext, order_id: str) -> Generator[Any, Any, Any]:
        reservation = yield ctx.schedule_activity("golden.reserve-inventory", [order_id])
        try:
            yield ctx.start_child_workflow("golden.payment", [order_id, reservation])
        except ChildWorkflowFailed as failure:
            yield ctx.schedule_activity("golden.release-inventory", [order_id, reservation, failure.message])
            return "compensated"
        return "charged"


@workflow.defn(name="tests.replay.parallel-metadata-producer")
class ParallelMetadataWorkflow:
    def run(self, ctx: WorkflowContext) -> Generator[Any, Any, Any]:
        results = yield [
            ctx.schedule_activity("parallel-activity", []),
            ctx.start_child_workflow("parallel-child", []),
            ctx.start_timer(1),
        ]
        return results


@workflow.defn(name="tests.replay.nested-parallel-path")
class NestedParallelWorkflow:
    def run(self, ctx: WorkflowContext) -> Generator[Any, Any, Any]:
        results = yield [
            ctx.schedule_activity("path-first", []),
            [ctx.start_child_workflow("path-child", []), ctx.start_timer(1)],
        ]
        return results


@workflow.defn(name="tests.replay.parallel-result-binding")
class ParallelResultWorkflow:
    def run(self, ctx: WorkflowContext) -> Generator[Any, Any, Any]:
        results = yield [
            ctx.schedule_activity("position-first", []),
            ctx.schedule_activity("position-second", []),
        ]
        return {"results": results}


@workflow.defn(name="tests.replay.update-signal-condition-timer")
class UpdateSignalConditionWorkflow:
    def __init__(self) -> None:
        self.message: str | None = None
        self.marker: str | None = None
        self.finished: dict[str, Any] | None = None
        self.failure_type: str | None = None

    @workflow.query("state")
    def state(self) -> dict[str, Any]:
        return {"message": self.message, "marker": self.marker, "failure_type": self.failure_type}

    @workflow.update("set_message")
    def set_message(self, message: str) -> dict[str, str]:
        self.message = message
        return {"message": message}

    @workflow.signal("condition_ready")
    def condition_ready(self, marker: str) -> None:
        self.marker = marker

    @workflow.signal("finish")
    def finish(self, result: dict[str, Any]) -> None:
        self.finished = result

    def run(self, ctx: WorkflowContext) -> Generator[Any, Any, Any]:
        yield ctx.sleep(1)
        successful = yield ctx.schedule_activity("successful", [])
        try:
            yield ctx.schedule_activity("non-retryable-failure", [])
        except ActivityFailed as failure:
            self.failure_type = failure.exception_type
        ready = yield ctx.wait_condition(
            lambda: self.message is not None and self.marker is not None, key="update-and-signal", timeout=1
        )
        after = yield ctx.schedule_activity("after-condition", [self.message, self.marker])
        yield ctx.wait_condition(lambda: self.finished is not None, key="finish", timeout=30)
        return {
            "status": "completed",
            "successful": successful,
            "failure_type": self.failure_type,
            "message": self.message,
            "signal_marker": self.marker,
            "condition_completed": ready,
            "after_condition": after,
            "result": self.finished,
        }


FIXTURE_WORKFLOWS: list[type] = [
    SingleActivityWorkflow,
    SignalWaitWorkflow,
    TimeoutWaitWorkflow,
    VersionMarkerWorkflow,
    SagaWorkflow,
    ParallelMetadataWorkflow,
    NestedParallelWorkflow,
    ParallelResultWorkflow,
    UpdateSignalConditionWorkflow,
]
