"""The public surface of the top-level package, the client and the worker, pinned.

A rename or a new export must be a decision: change this test with it.
"""

from __future__ import annotations

import subprocess
import sys

import durable_workflow
import durable_workflow.client
import durable_workflow.worker


def test_top_level_exports() -> None:
    assert sorted(durable_workflow.__all__) == [
        "ActivityRetryPolicy",
        "ChildWorkflowRetryPolicy",
        "Client",
        "TransportRetryPolicy",
        "Worker",
        "WorkflowHandle",
        "__version__",
        "activity",
        "errors",
        "retry_policy",
        "serializer",
        "workflow",
    ]
    for name in durable_workflow.__all__:
        assert getattr(durable_workflow, name) is not None
    assert durable_workflow.Client is durable_workflow.client.Client
    assert durable_workflow.Worker is durable_workflow.worker.Worker


def test_client_and_worker_exports() -> None:
    assert sorted(durable_workflow.client.__all__) == [
        "AiohttpTransport",
        "Client",
        "HttpApi",
        "MockTransport",
        "NetworkError",
        "Request",
        "RequestTimeout",
        "Response",
        "Transport",
        "WorkflowDescription",
        "WorkflowHandle",
        "WorkflowListPage",
        "WorkflowSummary",
    ]
    assert durable_workflow.worker.__all__ == ["Worker", "tune_process_gc"]


def test_importing_the_package_loads_no_http_library_and_no_server() -> None:
    code = (
        "import sys, durable_workflow, durable_workflow.client; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'durable_workflow_server')]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
