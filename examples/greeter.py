"""Greeter: one durable sleep, one activity, end to end against a running server.

Start a server first (``dw server start``), then::

    python examples/greeter.py                          # http://127.0.0.1:8080
    python examples/greeter.py http://127.0.0.1:9000    # or DW_SERVER_URL=...

The script runs a worker in this process, starts one workflow with a unique id, prints its
result ("hello, Ada") and shuts the worker down.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from typing import Any

from durable_workflow import Client, Worker, activity, workflow
from durable_workflow.errors import DurableWorkflowError

DEFAULT_URL = "http://127.0.0.1:8080"
TASK_QUEUE = "greeter-example"


@activity.defn(name="greet")
def greet(name: str) -> str:
    return f"hello, {name}"


@workflow.defn(name="greeter")
class GreeterWorkflow:
    def run(self, ctx: Any, name: str) -> Any:
        yield ctx.sleep(1)  # durable: survives a worker or server restart
        return (yield ctx.schedule_activity("greet", [name]))


async def wait_for_server(client: Client, seconds: float = 20.0) -> None:
    """Wait until the server answers, so this script can run right after `dw server start &`."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        try:
            await client.health()
            return
        except DurableWorkflowError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)


async def main(url: str, name: str) -> None:
    async with Client(url) as client:
        await wait_for_server(client)
        worker = Worker(client, task_queue=TASK_QUEUE, workflows=[GreeterWorkflow], activities=[greet])
        async with worker:
            handle = await client.start_workflow(
                workflow_type=GreeterWorkflow,
                workflow_id=f"greeter-{uuid.uuid4().hex[:12]}",
                task_queue=TASK_QUEUE,
                input=[name],
            )
            print(f"started {handle.workflow_id} (run {handle.run_id})", file=sys.stderr)
            print(await handle.result(timeout=60))


if __name__ == "__main__":
    server_url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("DW_SERVER_URL", DEFAULT_URL)
    asyncio.run(main(server_url, sys.argv[2] if len(sys.argv) > 2 else "Ada"))
