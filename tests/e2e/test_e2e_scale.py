"""Scale inside one workflow: a thousand activities yielded at once, end to end."""

from __future__ import annotations

import time

from e2e_lifecycle_workflows import LIFECYCLE_ACTIVITIES, LIFECYCLE_WORKFLOWS
from e2e_support import event_types, running_worker, unique

from durable_workflow import Client


async def test_thousand_parallel_activities(client: Client) -> None:
    queue = unique("q")
    async with running_worker(client, queue, workflows=LIFECYCLE_WORKFLOWS, activities=LIFECYCLE_ACTIVITIES):
        started = time.monotonic()
        handle = await client.start_workflow(
            workflow_type="lc-fan-out", workflow_id=unique("fan"), task_queue=queue, input=[1000]
        )
        result = await handle.result(timeout=120)
        elapsed = time.monotonic() - started
        history = await handle.history()
    assert result == list(range(1000))  # list order, whatever the completion order
    types = event_types(history)
    assert types.count("ActivityScheduled") == 1000 and types.count("ActivityCompleted") == 1000
    # The 1,000-command completion fitted the body limit and the run never got stuck on a
    # refused task; that the barrier wakes the parent once is pinned by
    # tests/server/test_engine_lifecycle.py::test_parallel_barrier_wakes_the_parent_once.
    assert types[-1] == "WorkflowCompleted"
    print(f"1000 activities in {elapsed:.1f} s")
