"""Helpers shared by the end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from e2e_workflows import ALL_ACTIVITIES, ALL_WORKFLOWS

from durable_workflow import Client, Worker
from durable_workflow.client import AiohttpTransport, Response


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


class Recording(AiohttpTransport):
    """The real transport, noting each request body and answer."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.calls: list[tuple[str, str, Any, Response]] = []

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Response:
        answer = await super().request(
            method, path, json=json, params=params, headers=headers, timeout=timeout
        )
        self.calls.append((method, path, json, answer))
        return answer

    def bodies(self, method: str, path: str) -> list[tuple[Any, Any]]:
        """Request and decoded answer bodies of the calls to ``path``."""
        return [(sent, answer.json()) for m, p, sent, answer in self.calls if (m, p) == (method, path)]
