"""Eager workflow start (our extension, docs/protocol-decisions.md "Eager tasks").

When a process both starts workflows and runs a worker for their task queue through the same
:class:`~durable_workflow.client.Client`, the start request may name that worker
(``eager_worker_id``) and the server leases the new run's first workflow task to it in the
start's own write. The reply carries the task, so the worker runs it without a poll: one
request and one write fewer per workflow, and no poll round trip in the start-to-first-step
latency.

The worker reserves a slot before the request goes out, so an eager task never exceeds its
``max_concurrent_workflow_tasks``; with no free slot the start goes out plain and the task is
polled as usual.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["EagerStartTarget", "EagerStarts"]


class EagerStartTarget(Protocol):
    """A local worker's workflow-task poller, as eager starts see it."""

    @property
    def worker_id(self) -> str:
        """The worker the server leases the task to."""
        ...  # pragma: no cover - protocol

    def runs(self, task_queue: str, workflow_type: str) -> bool:
        """Whether this poller takes ``workflow_type`` tasks from ``task_queue`` now."""
        ...  # pragma: no cover - protocol

    async def reserve_slots(self, wanted: int) -> int:
        """Take up to ``wanted`` free slots without waiting."""
        ...  # pragma: no cover - protocol

    def take_eager(self, tasks: Any, reserved: int) -> None:
        """Handle the tasks a reply leased to us, each on a reserved slot; free the rest."""
        ...  # pragma: no cover - protocol


class EagerStarts:
    """The local workers a client's starts may hand their first workflow task to."""

    def __init__(self) -> None:
        self._targets: list[EagerStartTarget] = []

    def add(self, target: EagerStartTarget) -> None:
        """Offer ``target`` to this client's starts (a worker does this once it polls)."""
        self._targets.append(target)

    def remove(self, target: EagerStartTarget) -> None:
        """Stop offering ``target`` (a worker does this when it stops polling)."""
        if target in self._targets:
            self._targets.remove(target)

    async def reserve(self, task_queue: str, workflow_type: str) -> EagerStartTarget | None:
        """A local target for a start on ``task_queue``, holding one reserved slot, or None."""
        for target in self._targets:
            if target.runs(task_queue, workflow_type) and await target.reserve_slots(1):
                return target
        return None
