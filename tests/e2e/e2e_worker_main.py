"""A worker process for the crash tests: ``python e2e_worker_main.py URL QUEUE``."""

from __future__ import annotations

import asyncio
import sys

from e2e_workflows import ALL_ACTIVITIES, ALL_WORKFLOWS

from durable_workflow import Client, Worker


async def main(url: str, queue: str) -> None:
    async with Client(url) as client:
        worker = Worker(client, task_queue=queue, workflows=ALL_WORKFLOWS, activities=ALL_ACTIVITIES)
        print("worker ready", flush=True)
        await worker.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
