"""The public surface of ``durable_workflow.workflow`` and its registration decorators."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Generator
from typing import Any

import pytest

from durable_workflow import workflow
from durable_workflow.errors import WorkflowDefinitionError
from durable_workflow.workflow import WorkflowContext


def test_public_surface_is_pinned() -> None:
    assert sorted(workflow.__all__) == [
        "ActivityRetryPolicy",
        "ChildWorkflowRetryPolicy",
        "CompleteUpdate",
        "CompleteWorkflow",
        "ContinueAsNew",
        "DEFAULT_VERSION",
        "FailUpdate",
        "FailWorkflow",
        "RecordSideEffect",
        "RecordVersionMarker",
        "ReplayOutcome",
        "Replayer",
        "ScheduleActivity",
        "StartChildWorkflow",
        "StartTimer",
        "UnknownUpdate",
        "UpsertSearchAttributes",
        "WaitCondition",
        "WorkflowCancellationRequested",
        "WorkflowContext",
        "WorkflowDefinition",
        "apply_update",
        "commands_to_server_commands",
        "defn",
        "query",
        "query_state",
        "registry",
        "replay",
        "signal",
        "update",
        "update_validator",
    ]
    for name in workflow.__all__:
        assert getattr(workflow, name) is not None


def test_workflow_package_imports_no_runtime() -> None:
    code = (
        "import sys, durable_workflow.workflow\n"
        "prefixes = ('durable_workflow.client', 'durable_workflow.worker', 'durable_workflow_server',"
        " 'aiohttp', 'httpx', 'http.client', 'urllib.request')\n"
        "print(sorted(m for m in sys.modules if m.startswith(prefixes)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_defn_builds_the_definition_at_decoration_time() -> None:
    @workflow.defn(name="tests.surface.approval")
    class Approval:
        def __init__(self) -> None:
            self.approved = False

        @workflow.signal("approve")
        def on_approve(self, by: str) -> None:
            self.approved = True

        @workflow.query("status")
        def status(self) -> bool:
            return self.approved

        @workflow.update("set")
        def set_value(self, value: bool) -> bool:
            return value

        @set_value.validator
        def check_set(self, value: bool) -> None:
            pass

        @workflow.update_validator("other")
        def check_other(self) -> None:
            pass

        def run(self, ctx: WorkflowContext) -> Generator[Any, Any, Any]:
            yield ctx.wait_condition(lambda: self.approved)

    definition = Approval.__workflow_definition__  # type: ignore[attr-defined]
    assert definition.name == "tests.surface.approval"
    assert definition.cls is Approval
    assert definition.signals == {"approve": "on_approve"}
    assert definition.queries == {"status": "status"}
    assert definition.updates == {"set": "set_value"}
    assert definition.validators == {"set": "check_set", "other": "check_other"}
    assert workflow.registry()["tests.surface.approval"] is Approval


def test_registry_returns_a_copy() -> None:
    copy = workflow.registry()
    copy["tests.surface.fake"] = object  # type: ignore[assignment]
    assert "tests.surface.fake" not in workflow.registry()


def test_bad_definitions_are_refused() -> None:
    with pytest.raises(WorkflowDefinitionError):

        @workflow.defn(name="tests.surface.no-run")
        class NoRun:
            pass

    with pytest.raises(WorkflowDefinitionError):

        @workflow.defn(name="tests.surface.twice")
        class Twice:
            @workflow.signal("s")
            def one(self) -> None:
                pass

            @workflow.signal("s")
            def two(self) -> None:
                pass

            def run(self, ctx: WorkflowContext) -> None:
                return None

    with pytest.raises(WorkflowDefinitionError):
        workflow.signal("")
    with pytest.raises(WorkflowDefinitionError):
        workflow.replay(object, [], [])


def test_handlers_are_inherited() -> None:
    class Base:
        @workflow.signal("ping")
        def ping(self) -> None:
            pass

        def run(self, ctx: WorkflowContext) -> None:
            return None

    @workflow.defn(name="tests.surface.child")
    class Child(Base):
        pass

    assert Child.__workflow_definition__.signals == {"ping": "ping"}  # type: ignore[attr-defined]
