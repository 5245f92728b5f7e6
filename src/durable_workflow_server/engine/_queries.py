"""Queries (control-plane §6.5, worker-plane §9 "Queries"): routed to a worker, never history.

A query becomes a transient *query task* held in memory by this server node; a worker polling
``/worker/query-tasks/poll`` on the run's queue leases it, replays the history it carries and
answers ``complete`` (a ``result_envelope``) or ``fail``. The caller's request waits for that
answer. No worker that could answer: 409 ``query_worker_unavailable`` at once; no answer in
time: 504 ``query_worker_timeout``.

Limitation (docs/protocol-decisions.md row 13): tasks live on the node that received the
query, so only workers polling that node can answer it. A shared store (a table polled with a
short lease, as workflow tasks are) would lift this; the engine API would not change.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from durable_workflow_server.engine._control import _resolve_run
from durable_workflow_server.engine._core import Core, hold_seconds, wire_event
from durable_workflow_server.engine._errors import EngineError, invalid
from durable_workflow_server.engine._ids import new_id
from durable_workflow_server.engine._messages import name_error
from durable_workflow_server.engine._payloads import PayloadInvalid, envelope, readable, stored_from_envelope
from durable_workflow_server.engine._signals import stored_arguments
from durable_workflow_server.engine._time import iso
from durable_workflow_server.engine._workers import require_poller
from durable_workflow_server.storage import RunRow

QUERY_WAIT_SECONDS = 30.0
QUERY_LEASE_SECONDS = 30.0
QUERY_CAPABILITY = "query_tasks"
MAX_PENDING_PER_QUEUE = 1024
#: Task kinds a poll may ask for; 2.12.0 asks for none and gets only queries.
KINDS = ("query",)


@dataclass
class QueryTask:
    """One pending or leased query task."""

    task_id: str
    namespace: str
    task_queue: str
    workflow_type: str
    body: dict[str, Any]
    answer: asyncio.Future[dict[str, Any]]
    lease_owner: str | None = None
    lease_expires_at: float = 0.0
    attempt: int = 0


@dataclass
class Broker:
    """This node's query tasks: pending queues per (namespace, queue), and all by id."""

    pending: dict[tuple[str, str], deque[QueryTask]] = field(default_factory=dict)
    tasks: dict[str, QueryTask] = field(default_factory=dict)
    #: Seconds a caller waits for an answer (tests shorten it).
    wait_seconds: float = QUERY_WAIT_SECONDS


_ATTR = "_dw_query_broker"


def broker(core: Core) -> Broker:
    """The query-task broker of this engine (kept on the core, so it dies with the engine)."""
    found = getattr(core, _ATTR, None)
    if not isinstance(found, Broker):
        found = Broker()
        setattr(core, _ATTR, found)
    return found


def _able(core: Core, run: RunRow, worker: Any) -> bool:
    caps = worker.details.get("capabilities") or []
    return (
        worker.runtime != "php"
        and core.now() - worker.last_heartbeat_at <= core.settings.worker_stale_after_seconds
        and (not worker.supported_workflow_types or run.workflow_type in worker.supported_workflow_types)
        and QUERY_CAPABILITY in caps
    )


async def _history(core: Core, run_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        page = await core.storage.history(run_id, after=after, limit=1000)
        events.extend(wire_event(e) for e in page)
        if len(page) < 1000:
            return events
        after = page[-1].sequence


async def query(
    core: Core, ns: str, workflow_id: str, run_id: str | None, name: str, *, input: Any = None
) -> dict[str, Any]:
    """Route a query to a worker and wait for its answer."""
    problem = name_error(name)
    if problem:
        raise invalid({"query_name": [problem]})
    arguments = stored_arguments(input, "input")
    wf, run = await _resolve_run(core, ns, workflow_id, run_id)
    if run_id is not None and run.run_id != wf.current_run_id:
        raise EngineError(
            "conflict",
            "historical_run_command_rejected",
            "Only the current run accepts commands.",
            target_scope="run",
            workflow_id=workflow_id,
            run_id=run.run_id,
        )
    workers = [w for w in await core.storage.workers_on_queue(ns, run.task_queue) if _able(core, run, w)]
    if not workers:
        raise EngineError(
            "conflict",
            "query_worker_unavailable",
            f"No live worker polling queries for workflow type {run.workflow_type!r} on task queue "
            f"{run.task_queue!r}.",
            workflow_id=workflow_id,
            run_id=run.run_id,
            query_name=name,
        )
    b = broker(core)
    queue_key = (ns, run.task_queue)
    pending = b.pending.setdefault(queue_key, deque())
    if len(pending) >= MAX_PENDING_PER_QUEUE:
        raise EngineError(
            "unavailable", "query_task_queue_full", "Too many queries are waiting for this task queue."
        )
    task = QueryTask(
        task_id=new_id(),
        namespace=ns,
        task_queue=run.task_queue,
        workflow_type=run.workflow_type,
        body={
            "workflow_id": workflow_id,
            "run_id": run.run_id,
            "namespace": ns,
            "workflow_type": run.workflow_type,
            "query_name": name,
            "payload_codec": "avro",
            "workflow_arguments": envelope(run.input),
            "query_arguments": envelope(arguments),
            "run_status": run.status,
            "last_history_sequence": run.last_history_sequence,
            "history_events": await _history(core, run.run_id),
            "task_queue": run.task_queue,
        },
        answer=asyncio.get_running_loop().create_future(),
    )
    b.tasks[task.task_id] = task
    pending.append(task)
    core.notifier.notify(("query_task", ns, run.task_queue))
    try:
        answer = await asyncio.wait_for(asyncio.shield(task.answer), b.wait_seconds)
    except TimeoutError as exc:
        raise EngineError(
            "timeout",
            "query_worker_timeout",
            f"No worker answered the query within {b.wait_seconds:g} s.",
            workflow_id=workflow_id,
            run_id=run.run_id,
            query_name=name,
        ) from exc
    finally:
        b.tasks.pop(task.task_id, None)
        if task in pending:
            pending.remove(task)
    if "failure" in answer:
        failure = answer["failure"]
        reason = failure.get("reason") or "query_rejected"
        raise EngineError(
            "not_found" if reason == "rejected_unknown_query" else "conflict",
            reason,
            failure.get("message") or "The query failed.",
            workflow_id=workflow_id,
            run_id=run.run_id,
            query_name=name,
            failure_type=failure.get("type"),
        )
    stored = answer.get("result")
    return {
        "workflow_id": workflow_id,
        "run_id": run.run_id,
        "query_name": name,
        "target_scope": "run" if run_id else "instance",
        "result": readable(stored),
        "result_envelope": envelope(stored),
    }


def _wire(task: QueryTask) -> dict[str, Any]:
    return {
        "query_task_id": task.task_id,
        "query_task_attempt": task.attempt,
        **task.body,
        "lease_owner": task.lease_owner,
        "lease_expires_at": iso(task.lease_expires_at),
    }


async def poll(
    core: Core,
    ns: str,
    *,
    worker_id: str,
    task_queue: str,
    build_id: str | None,
    timeout_seconds: Any,
) -> dict[str, Any]:
    """Hold until a query task on the queue is leased to this worker or the timeout passes."""
    worker = await require_poller(core, ns, worker_id, task_queue, build_id)
    timeout = hold_seconds(
        timeout_seconds, "timeout_seconds", core.settings.poll_timeout_default, core.settings.poll_timeout_max
    )
    types = set(worker.supported_workflow_types)
    b = broker(core)
    key = ("query_task", ns, task_queue)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        mark = core.notifier.mark(key)
        pending = b.pending.get((ns, task_queue)) or deque()
        for task in list(pending):
            if task.answer.done():
                pending.remove(task)
                continue
            if types and task.workflow_type not in types:
                continue
            pending.remove(task)
            task.attempt += 1
            task.lease_owner = worker_id
            task.lease_expires_at = core.now() + QUERY_LEASE_SECONDS
            return {"task": _wire(task)}
        remaining = deadline - loop.time()
        if remaining <= 0:
            return {"task": None}
        await core.notifier.wait(key, mark, min(remaining, core.settings.poll_recheck_seconds))


def _guard(core: Core, ns: str, task_id: str, lease_owner: Any, attempt: Any) -> QueryTask:
    task = broker(core).tasks.get(task_id) if isinstance(task_id, str) else None
    if task is None or task.namespace != ns or task.answer.done():
        raise EngineError("not_found", "query_task_not_found", "Query task not found.", query_task_id=task_id)
    if task.lease_owner is None:
        raise EngineError("conflict", "query_task_not_leased", "The query task is not leased.")
    if lease_owner != task.lease_owner:
        raise EngineError(
            "conflict", "lease_owner_mismatch", "The query task is leased to another worker.",
            lease_owner=task.lease_owner,
        )  # fmt: skip
    if attempt is not None and attempt != task.attempt:
        raise EngineError(
            "conflict",
            "query_task_attempt_mismatch",
            "The query task attempt does not match the lease.",
            current_attempt=task.attempt,
        )
    if task.lease_expires_at <= core.now():
        raise EngineError("conflict", "lease_expired", "The query task lease expired.")
    return task


def complete(
    core: Core, ns: str, task_id: str, *, lease_owner: Any, attempt: Any, result_envelope: Any
) -> dict[str, Any]:
    """A worker's answer: the result envelope goes to the waiting caller."""
    task = _guard(core, ns, task_id, lease_owner, attempt)
    try:
        stored = stored_from_envelope(result_envelope)
    except PayloadInvalid as exc:
        raise invalid({"result_envelope": [str(exc)]}) from exc
    task.answer.set_result({"result": stored})
    return {
        "query_task_id": task_id,
        "query_task_attempt": task.attempt,
        "outcome": "completed",
        "status": 200,
    }


def fail(
    core: Core, ns: str, task_id: str, *, lease_owner: Any, attempt: Any, failure: Any
) -> dict[str, Any]:
    """A worker's refusal: unknown query, handler error, replay problem."""
    if not isinstance(failure, dict) or not isinstance(failure.get("message"), str):
        raise invalid({"failure.message": ["is required: a string"]})
    task = _guard(core, ns, task_id, lease_owner, attempt)
    reason = failure.get("reason")
    task.answer.set_result(
        {
            "failure": {
                "message": failure["message"],
                "reason": reason if isinstance(reason, str) and reason else "query_rejected",
                "type": failure.get("type"),
            }
        }
    )
    return {"query_task_id": task_id, "query_task_attempt": task.attempt, "outcome": "failed", "status": 200}
