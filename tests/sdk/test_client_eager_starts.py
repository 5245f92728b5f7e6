"""The client's registry of local workers that take a new run's first task from its start."""

from __future__ import annotations

from typing import Any

from durable_workflow.client._eager import EagerStarts


class Target:
    def __init__(self, worker_id: str, queue: str, types: set[str], slots: int) -> None:
        self.worker_id = worker_id
        self.queue = queue
        self.types = types
        self.slots = slots
        self.handed: list[tuple[Any, int]] = []

    def runs(self, task_queue: str, workflow_type: str) -> bool:
        return task_queue == self.queue and workflow_type in self.types

    async def reserve_slots(self, wanted: int) -> int:
        taken = min(wanted, self.slots)
        self.slots -= taken
        return taken

    def take_eager(self, tasks: Any, reserved: int) -> None:
        self.handed.append((tasks, reserved))
        self.slots += reserved


async def test_reserve_picks_a_target_with_the_queue_the_type_and_a_free_slot() -> None:
    starts = EagerStarts()
    busy = Target("busy", "q", {"t"}, slots=0)
    other = Target("other", "elsewhere", {"t"}, slots=5)
    free = Target("free", "q", {"t"}, slots=1)
    for target in (busy, other, free):
        starts.add(target)
    assert await starts.reserve("q", "t") is free
    assert free.slots == 0
    assert await starts.reserve("q", "t") is None  # the only fitting slot is taken
    assert await starts.reserve("q", "unknown-type") is None
    starts.remove(free)
    starts.remove(free)  # removing twice is harmless
    free.slots = 1
    assert await starts.reserve("q", "t") is None
