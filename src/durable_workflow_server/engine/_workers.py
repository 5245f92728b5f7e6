"""Worker registration, heartbeat, deregistration and the poll preconditions (worker-plane §3)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from durable_workflow_server.engine._core import Core
from durable_workflow_server.engine._errors import EngineError, invalid
from durable_workflow_server.engine._ids import new_id
from durable_workflow_server.engine._limits import MAX_CONCURRENCY
from durable_workflow_server.storage import (
    Mutation,
    Patch,
    Put,
    RunRow,
    Wake,
    WorkerRow,
    WorkflowTaskRow,
    WorkflowTaskState,
)

RUNTIMES = frozenset({"php", "python", "typescript", "go", "java"})


def _str_list(body: dict[str, Any], key: str, errors: dict[str, list[str]]) -> list[str]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors[key] = ["must be a list of strings"]
        return []
    return list(value)


def _positive_int(body: dict[str, Any], key: str, default: int, errors: dict[str, list[str]]) -> int:
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENCY:
        errors[key] = [f"must be an integer in 1..{MAX_CONCURRENCY}"]
        return default
    return value


async def register(core: Core, ns: str, body: dict[str, Any]) -> dict[str, Any]:
    """Upsert the registration of (ns, worker_id) on one queue."""
    errors: dict[str, list[str]] = {}
    worker_id = body.get("worker_id") or new_id()
    if not isinstance(worker_id, str) or len(worker_id) > 255:
        errors["worker_id"] = ["must be a string of at most 255 characters"]
    queue = body.get("task_queue")
    if not isinstance(queue, str) or not queue or len(queue) > 255:
        errors["task_queue"] = ["is required: a string of 1-255 characters"]
    runtime = body.get("runtime")
    if runtime not in RUNTIMES:
        errors["runtime"] = [f"must be one of {', '.join(sorted(RUNTIMES))}"]
    build_id = body.get("build_id")
    if build_id is not None and not isinstance(build_id, str):
        errors["build_id"] = ["must be a string"]
    wf_types = _str_list(body, "supported_workflow_types", errors)
    act_types = _str_list(body, "supported_activity_types", errors)
    fingerprints = body.get("workflow_definition_fingerprints") or {}
    if not isinstance(fingerprints, dict):
        errors["workflow_definition_fingerprints"] = ["must be an object"]
        fingerprints = {}
    max_wf = _positive_int(body, "max_concurrent_workflow_tasks", 100, errors)
    max_act = _positive_int(body, "max_concurrent_activity_tasks", 100, errors)
    if errors:
        raise invalid(errors)
    assert isinstance(worker_id, str) and isinstance(queue, str) and isinstance(runtime, str)
    now = core.now()
    existing = await core.storage.get_worker(ns, worker_id)
    if existing is not None and existing.status == "active" and not _stale(core, existing, now):
        for wf_type, fp in fingerprints.items():
            old = existing.fingerprints.get(wf_type)
            if old is not None and old != fp:
                raise EngineError(
                    "conflict",
                    "workflow_definition_changed",
                    f"Workflow {wf_type!r} changed its definition while the worker is active.",
                    workflow_type=wf_type,
                )
    details: dict[str, Any] = {
        k: body[k]
        for k in (
            "sdk_version",
            "capabilities",
            "capability_manifest",
            "workflow_command_contracts",
            "process_metrics",
            "task_slots",
        )
        if k in body
    }
    row = WorkerRow(
        namespace=ns,
        worker_id=worker_id,
        task_queue=queue,
        runtime=runtime,
        status="active",
        registered_at=now,
        last_heartbeat_at=now,
        build_id=build_id,
        supported_workflow_types=wf_types,
        supported_activity_types=act_types,
        fingerprints=fingerprints,
        max_concurrent_workflow_tasks=max_wf,
        max_concurrent_activity_tasks=max_act,
        details=details,
    )
    await core.retrying(lambda: core.storage.apply(Mutation(ops=[Put(row)])))
    core.workers.forget(ns, worker_id)
    return {
        "worker_id": worker_id,
        "registered": True,
        "heartbeat_interval_seconds": core.settings.worker_heartbeat_interval_seconds,
    }


def _stale(core: Core, worker: WorkerRow, now: float) -> bool:
    return now - worker.last_heartbeat_at > core.settings.worker_stale_after_seconds


async def heartbeat(core: Core, ns: str, body: dict[str, Any]) -> dict[str, Any]:
    """Record a worker heartbeat."""
    worker_id = body.get("worker_id")
    if not isinstance(worker_id, str) or not worker_id:
        raise invalid({"worker_id": ["is required"]})
    worker = await core.storage.get_worker(ns, worker_id)
    if worker is None or worker.status != "active":
        raise EngineError(
            "not_found", "worker_not_registered", "The worker is not registered.", worker_id=worker_id
        )
    fields: dict[str, Any] = {"last_heartbeat_at": core.now()}
    if isinstance(body.get("task_slots"), dict) or isinstance(body.get("process_metrics"), dict):
        details = dict(worker.details)
        for key in ("task_slots", "process_metrics"):
            if isinstance(body.get(key), dict):
                details[key] = body[key]
        fields["details"] = details
    await core.retrying(lambda: core.storage.apply(Mutation(ops=[Patch(WorkerRow, (ns, worker_id), fields)])))
    core.workers.forget(ns, worker_id)
    return {
        "worker_id": worker_id,
        "acknowledged": True,
        "heartbeat_interval_seconds": core.settings.worker_heartbeat_interval_seconds,
        "stale_after_seconds": core.settings.worker_stale_after_seconds,
    }


async def deregister(core: Core, ns: str, worker_id: str) -> dict[str, Any]:
    """Mark the worker gone and release its workflow-task leases at once."""
    worker = await core.storage.get_worker(ns, worker_id) if isinstance(worker_id, str) else None
    if worker is None or worker.status != "active":
        raise EngineError(
            "not_found", "worker_not_found", "The worker is not registered.", worker_id=worker_id
        )

    async def attempt() -> int:
        now = core.now()
        leased = await core.storage.leased_workflow_tasks(ns, worker_id)
        m = Mutation(ops=[Patch(WorkerRow, (ns, worker_id), {"status": "deregistered"})])
        for task in leased:
            m.preconditions.append(WorkflowTaskState(task.task_id, "leased", worker_id, task.attempt))
            m.ops.append(
                Patch(
                    WorkflowTaskRow,
                    (task.task_id,),
                    {
                        "status": "ready",
                        "lease_owner": None,
                        "lease_expires_at": None,
                        "available_at": now,
                    },
                )
            )
            # The next lessee receives the whole history, so nothing is pending any more.
            m.ops.append(Patch(RunRow, (task.run_id,), {"wake_pending": False, "pending_resume": None}))
            m.wakes.append(Wake(("workflow_task", ns, task.task_queue), task.workflow_type))
        await core.storage.apply(m)
        return len(leased)

    try:
        count = await core.retrying(attempt)
    finally:
        core.workers.forget(ns, worker_id)
    return {"worker_id": worker_id, "outcome": "deregistered", "recovered_workflow_task_count": count}


async def worker_row(
    core: Core, ns: str, worker_id: str, usable: Callable[[WorkerRow], bool]
) -> WorkerRow | None:
    """The registration through this node's short-lived cache (``Core.get_worker``).

    A cached row that ``usable`` refuses is read again from storage before anyone relies on
    the refusal: the cache may only ever delay what another node changed, never invent a "no".
    """
    worker = await core.get_worker(ns, worker_id)
    if worker is not None and usable(worker):
        return worker
    core.workers.forget(ns, worker_id)
    return await core.get_worker(ns, worker_id)


async def require_poller(
    core: Core, ns: str, worker_id: str, task_queue: str, build_id: str | None
) -> WorkerRow:
    """The poll preconditions: registered (412), same queue and build (409)."""
    errors: dict[str, list[str]] = {}
    if not isinstance(worker_id, str) or not worker_id:
        errors["worker_id"] = ["is required: a string"]
    if not isinstance(task_queue, str) or not task_queue:
        errors["task_queue"] = ["is required: a string"]
    if build_id is not None and not isinstance(build_id, str):
        errors["build_id"] = ["must be a string"]
    if errors:
        raise invalid(errors)

    def usable(row: WorkerRow) -> bool:
        return (
            row.status == "active"
            and row.task_queue == task_queue
            and (build_id is None or row.build_id is None or build_id == row.build_id)
        )

    worker = await worker_row(core, ns, worker_id, usable)
    if worker is None or worker.status != "active":
        raise EngineError(
            "precondition",
            "worker_not_registered",
            "Register the worker before polling.",
            worker_id=worker_id,
        )
    if worker.task_queue != task_queue:
        raise EngineError(
            "conflict",
            "task_queue_mismatch",
            "The worker is registered on another task queue.",
            registered_task_queue=worker.task_queue,
            task_queue=task_queue,
        )
    if build_id is not None and worker.build_id is not None and build_id != worker.build_id:
        raise EngineError(
            "conflict",
            "build_id_mismatch",
            "The worker is registered with another build id.",
            registered_build_id=worker.build_id,
            build_id=build_id,
        )
    return worker
