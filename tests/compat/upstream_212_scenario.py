"""Run by the published upstream SDK 2.12.0 (in its own virtualenv) against our server.

``python upstream_212_scenario.py URL`` registers a 2.12.0 Worker, starts a workflow that
sleeps, waits on a condition and runs an activity, queries it, signals it, reads its result
and stops the worker (which deregisters). It prints one JSON line with what it saw.
This file must import only the upstream package: it is not part of our test process.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from typing import Any

from durable_workflow import Client, Worker, activity, workflow


@activity.defn(name="compat.greet")
def greet(name: str) -> str:
    return f"hello, {name}"


@workflow.defn(name="compat.greeter")
class GreeterWorkflow:
    def __init__(self) -> None:
        self.approved_by: str | None = None

    @workflow.signal("approve")
    def approve(self, by: str) -> None:
        self.approved_by = by

    @workflow.query("status")
    def status(self) -> dict[str, Any]:
        return {"approved_by": self.approved_by}

    def run(self, ctx: Any, name: str) -> Any:
        yield ctx.sleep(1)
        yield ctx.wait_condition(lambda: self.approved_by is not None, key="approval")
        greeting = yield ctx.schedule_activity("compat.greet", [name])
        return {"greeting": greeting, "approved_by": self.approved_by}


async def main(url: str) -> None:
    client = Client(url)
    queue = f"compat-{uuid.uuid4().hex[:8]}"
    worker = Worker(client, task_queue=queue, workflows=[GreeterWorkflow], activities=[greet])
    running = asyncio.create_task(worker.run())
    workflow_id = f"compat-{uuid.uuid4().hex[:8]}"
    handle = await client.start_workflow(
        workflow_type="compat.greeter", workflow_id=workflow_id, task_queue=queue, input=["Ada"]
    )
    await asyncio.sleep(2.0)  # past the durable sleep: the run now waits on its condition
    query = await client.query_workflow(workflow_id, "status")
    await client.signal_workflow(workflow_id, "approve", args=["ops"])
    result = await client.get_result(handle, timeout=30)
    await worker.stop()
    await asyncio.wait_for(running, 30)
    answer = query.get("result") if isinstance(query, dict) and "result" in query else query
    print(json.dumps({"query": answer, "result": result}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
