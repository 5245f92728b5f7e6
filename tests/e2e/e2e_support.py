"""Helpers shared by the end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from e2e_workflows import ALL_ACTIVITIES, ALL_WORKFLOWS

from durable_workflow import Client, Worker


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@contextlib.asynccontextmanager
async def running_worker(client: Client, task_queue: str, **options: Any) -> AsyncIterator[Worker]:
    """Run a real Worker on the loop for the duration of the block, then shut it down."""
    options.setdefault("workflows", ALL_WORKFLOWS)
    options.setdefault("activities", ALL_ACTIVITIES)
    worker = Worker(client, task_queue=task_queue, **options)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        await worker.shutdown()
        await asyncio.wait_for(task, timeout=30)


def event_types(history: list[dict[str, Any]]) -> list[str]:
    return [str(e.get("event_type")) for e in history]
