"""Resolving a step (activity or timer) and waking the workflow, with the parallel barrier.

Worker-plane §12.3: a parallel group resolves in workflow code only when every member has a
result, and a worker woken early would re-emit the group. So a member's resolution wakes the
workflow only when no other member of its outermost group is still open, whatever the outcome.
"""

from __future__ import annotations

from typing import Any

from durable_workflow_server.engine._core import Core, wake_workflow
from durable_workflow_server.storage import Mutation, RunRow


def barrier_group(parallel: dict[str, Any]) -> str | None:
    """The outermost parallel group id of a step's parallel keys, if any."""
    path = parallel.get("parallel_group_path")
    if isinstance(path, list) and path:
        first = path[0]
        if isinstance(first, dict) and isinstance(first.get("parallel_group_id"), str):
            return str(first["parallel_group_id"])
        if isinstance(first, str):
            return first
    gid = parallel.get("parallel_group_id")
    return gid if isinstance(gid, str) else None


def barrier_span(parallel: dict[str, Any]) -> tuple[int, int] | None:
    """The first and last workflow sequence of the outermost parallel group, when known."""
    path = parallel.get("parallel_group_path")
    outer = path[0] if isinstance(path, list) and path and isinstance(path[0], dict) else parallel
    base, size = outer.get("parallel_group_base_sequence"), outer.get("parallel_group_size")
    if type(base) is int and type(size) is int and size >= 1:
        return base, base + size - 1
    return None


async def resolve_step(
    core: Core,
    run: RunRow,
    m: Mutation,
    now: float,
    resume: dict[str, Any],
    *,
    parallel: dict[str, Any],
    activity_id: str | None = None,
    timer_id: str | None = None,
    child_id: str | None = None,
) -> str | None:
    """Wake the workflow for a resolved step unless its parallel group still has open members.

    Returns:
        The id of a workflow task created now, if any.
    """
    group = barrier_group(parallel)
    if group is not None:
        span = barrier_span(parallel)
        if span is not None:
            # The group's members hold consecutive sequences: one indexed count, no row loads.
            if await core.storage.count_open_activities(run.run_id, span[0], span[1], activity_id or ""):
                return None
        else:
            for act in await core.storage.open_activities(run.run_id):
                if act.activity_execution_id != activity_id and barrier_group(act.parallel) == group:
                    return None
        for timer in await core.storage.pending_timers(run.run_id):
            if (
                timer.kind == "user"
                and timer.timer_id != timer_id
                and barrier_group(timer.data.get("parallel") or {}) == group
            ):
                return None
        for child in await core.storage.open_children(run.run_id):
            if child.link_id != child_id and barrier_group(child.parallel) == group:
                return None
    return await wake_workflow(core, run, m, now, resume)
