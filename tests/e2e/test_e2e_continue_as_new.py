"""Continue-as-new end to end: a fresh run per step of the chain, ``result()`` follows the
chain to its end, and describe shows the chain."""

from __future__ import annotations

from e2e_lifecycle_workflows import LIFECYCLE_ACTIVITIES, LIFECYCLE_WORKFLOWS
from e2e_support import event_types, running_worker, unique

from durable_workflow import Client


async def test_chain_of_runs_and_result_follows_it(client: Client) -> None:
    queue = unique("q")
    async with running_worker(client, queue, workflows=LIFECYCLE_WORKFLOWS, activities=LIFECYCLE_ACTIVITIES):
        handle = await client.start_workflow(
            workflow_type="lc-counter", workflow_id=unique("chain"), task_queue=queue, input=[0, 3]
        )
        first_run = handle.run_id
        result = await handle.result(timeout=30)  # the handle is pinned to run 1
    assert result["final"] == 3

    runs = (await client.api.call("GET", f"/workflows/{handle.workflow_id}/runs"))["runs"]
    assert [r["run_number"] for r in runs] == [1, 2, 3, 4]
    assert runs[0]["run_id"] == first_run and runs[-1]["run_id"] == result["run_id"]

    current = await client.describe_workflow(handle.workflow_id)
    assert current.run_id == result["run_id"] and current.status == "completed"
    assert current.raw["run_count"] == 4
    assert current.raw["continued_from_run_id"] == runs[2]["run_id"]

    first = await client.describe_workflow(handle.workflow_id, first_run)
    assert first.raw["closed_reason"] == "continued_as_new"
    assert first.raw["continued_to_run_id"] == runs[1]["run_id"]

    old_history = await client.get_workflow_handle(handle.workflow_id, first_run).history()
    assert event_types(old_history)[-1] == "WorkflowContinuedAsNew"
    assert old_history[-1]["payload"]["continued_to_run_id"] == runs[1]["run_id"]
    new_history = await client.get_workflow_handle(handle.workflow_id, runs[1]["run_id"]).history()
    assert event_types(new_history)[0] == "WorkflowStarted"  # fresh history
    assert new_history[0]["payload"]["continued_from_run_id"] == first_run
    assert "ActivityScheduled" in event_types(new_history) and len(new_history) < len(old_history) + 5
