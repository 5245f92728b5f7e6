"""Pin the engine's public surface: the HTTP layer is written against these names."""

from __future__ import annotations

import inspect

import durable_workflow_server.engine as engine_pkg
from durable_workflow_server.engine import Engine

FACADE = {
    "start",
    "stop",
    "health",
    "namespace_exists",
    "fire_due_timers",
    "register_worker",
    "heartbeat_worker",
    "deregister_worker",
    "poll_workflow_task",
    "workflow_task_history",
    "heartbeat_workflow_task",
    "complete_workflow_task",
    "fail_workflow_task",
    "poll_activity_task",
    "complete_activity_task",
    "fail_activity_task",
    "heartbeat_activity_task",
    "start_workflow",
    "list_workflows",
    "describe_workflow",
    "list_runs",
    "run_history",
    "cancel_workflow",
    "terminate_workflow",
    "await_run_result",
    "signal_workflow",
    "query_workflow",
    "update_workflow",
    "poll_query_task",
    "complete_query_task",
    "fail_query_task",
    "list_search_attributes",
    "register_search_attribute",
    "delete_search_attribute",
    "export_history",
}


def test_exports() -> None:
    assert set(engine_pkg.__all__) == {
        "Clock",
        "Engine",
        "EngineError",
        "EngineSettings",
        "ManualClock",
        "SystemClock",
    }


def test_facade_methods() -> None:
    public = {
        name for name, value in inspect.getmembers(Engine) if not name.startswith("_") and callable(value)
    }
    assert public == FACADE
    for name in FACADE:
        assert inspect.iscoroutinefunction(getattr(Engine, name)), name


def test_keyword_names_match_the_doc() -> None:
    def params(name: str) -> list[str]:
        return list(inspect.signature(getattr(Engine, name)).parameters)[1:]

    assert params("poll_workflow_task") == [
        "ns",
        "worker_id",
        "task_queue",
        "build_id",
        "timeout_seconds",
        "poll_request_id",
        "history_page_size",
    ]
    assert params("complete_workflow_task") == ["ns", "task_id", "lease_owner", "attempt", "commands"]
    assert params("complete_activity_task") == ["ns", "task_id", "attempt_id", "lease_owner", "result"]
    assert params("heartbeat_activity_task") == ["ns", "task_id", "attempt_id", "lease_owner", "details"]
    assert params("run_history") == [
        "ns",
        "workflow_id",
        "run_id",
        "page_size",
        "page_token",
        "wait_new_event",
    ]
    assert params("cancel_workflow") == ["ns", "workflow_id", "run_id", "reason", "request_id"]
    assert params("await_run_result") == ["ns", "workflow_id", "run_id", "wait_seconds"]


def test_eager_sub_facade() -> None:
    """The eager-task extension (docs/protocol-decisions.md) is its own small surface,
    ``engine.eager``, so the protocol's facade above keeps its exact parameters."""
    from durable_workflow_server.engine._facade_eager import EagerTasks

    assert isinstance(Engine.__dict__["eager"], property)
    public = {
        name for name, value in inspect.getmembers(EagerTasks) if not name.startswith("_") and callable(value)
    }
    assert public == {"complete_workflow_task", "complete_activity_task", "fail_activity_task"}
    for name in public:
        assert inspect.iscoroutinefunction(getattr(EagerTasks, name)), name
