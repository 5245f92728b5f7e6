"""Starting a workflow run (control-plane §6.1).

Id reuse: one open run per workflow id. A closed id is refused with 409
``instance_already_started`` (upstream: "a used id can never start again") unless the start
request says ``id_reuse_policy: "allow_duplicate"``, which starts run ``run_number + 1``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

import orjson

from durable_workflow.protocol import Event, RunStatus
from durable_workflow_server.engine._core import (
    Core,
    event,
    is_closed,
    new_workflow_task,
    resume_info,
)
from durable_workflow_server.engine._eager import eligible_worker, lease_workflow_task
from durable_workflow_server.engine._errors import EngineError, invalid
from durable_workflow_server.engine._ids import new_id
from durable_workflow_server.engine._limits import MAX_DURATION_SECONDS
from durable_workflow_server.engine._payloads import PayloadInvalid, start_input
from durable_workflow_server.engine._rowcache import inserted_run
from durable_workflow_server.engine._search_index import index_search_attributes
from durable_workflow_server.engine._time import iso
from durable_workflow_server.engine._workflow_tasks import eager_task_dict
from durable_workflow_server.storage import (
    EventRow,
    Insert,
    Mutation,
    Patch,
    RunRow,
    TimerRow,
    Wake,
    WorkflowCurrentRun,
    WorkflowRow,
    WorkflowTaskRow,
)

_WORKFLOW_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_ATTR_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
REJECTED_START_KEYS = (
    "workflow_execution_timeout",
    "workflow_run_timeout",
    "workflow_task_timeout",
    "retry_policy",
    "idempotency_key",
    "request_id",
)


def _opt_str(body: dict[str, Any], key: str, limit: int, errors: dict[str, list[str]]) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        errors[key] = [f"must be a string of at most {limit} characters"]
        return None
    return value


def _timeout(body: dict[str, Any], key: str, errors: dict[str, list[str]]) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DURATION_SECONDS:
        errors[key] = [f"must be an integer in 1..{MAX_DURATION_SECONDS}"]
        return None
    return value


def _validate_start(body: dict[str, Any]) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    for key in REJECTED_START_KEYS:
        if key in body:
            errors[key] = [f"{key} is not supported by the v2 control plane"]
    workflow_id = body.get("workflow_id")
    if workflow_id is None:
        workflow_id = new_id()
    elif not isinstance(workflow_id, str) or not _WORKFLOW_ID.match(workflow_id):
        errors["workflow_id"] = ["must be 1-128 characters of A-Z a-z 0-9 . _ : -"]
    wf_type = body.get("workflow_type")
    if not isinstance(wf_type, str) or not wf_type or len(wf_type) > 255:
        errors["workflow_type"] = ["is required: a string of 1-255 characters"]
    queue = body.get("task_queue", "default") or "default"
    if not isinstance(queue, str) or len(queue) > 255:
        errors["task_queue"] = ["must be a string of at most 255 characters"]
    business_key = _opt_str(body, "business_key", 255, errors)
    try:
        stored_input = start_input(body.get("input"))
    except PayloadInvalid as exc:
        errors["input"] = [f"must be a JSON array or an avro envelope: {exc}"]
        stored_input = None
    memo = body.get("memo") or {}
    if not isinstance(memo, dict):
        errors["memo"] = ["must be an object"]
    elif len(orjson.dumps(memo)) > 256 * 1024:
        errors["memo"] = ["must be at most 256 KiB as JSON"]
    attrs = body.get("search_attributes") or {}
    if not isinstance(attrs, dict):
        errors["search_attributes"] = ["must be an object"]
    else:
        for key, value in attrs.items():
            if not _ATTR_KEY.match(key) or len(key.encode()) > 128:
                errors[f"search_attributes.{key}"] = ["invalid search attribute name"]
            elif isinstance(value, str) and len(value.encode()) > 2048:
                errors[f"search_attributes.{key}"] = ["value longer than 2048 bytes"]
    dup = body.get("duplicate_policy", "fail") or "fail"
    if dup not in ("fail", "use-existing"):
        errors["duplicate_policy"] = ["must be 'fail' or 'use-existing'"]
    reuse = body.get("id_reuse_policy", "reject") or "reject"
    if reuse not in ("reject", "allow_duplicate"):
        errors["id_reuse_policy"] = ["must be 'reject' or 'allow_duplicate'"]
    exec_timeout = _timeout(body, "execution_timeout_seconds", errors)
    run_timeout = _timeout(body, "run_timeout_seconds", errors)
    eager_worker = body.get("eager_worker_id")
    if eager_worker is not None and (not isinstance(eager_worker, str) or len(eager_worker) > 255):
        errors["eager_worker_id"] = ["must be a string of at most 255 characters"]
    build = body.get("build_id") or body.get("compatibility")
    if build is not None and not isinstance(build, str):
        errors["build_id"] = ["must be a string"]
    if errors:
        raise invalid(errors, "The start request is invalid.")
    return {
        "workflow_id": workflow_id,
        "workflow_type": wf_type,
        "task_queue": queue,
        "business_key": business_key,
        "input": stored_input,
        "memo": memo,
        "search_attributes": attrs,
        "duplicate_policy": dup,
        "id_reuse_policy": reuse,
        "execution_timeout_seconds": exec_timeout,
        "run_timeout_seconds": run_timeout,
        "compatibility": build,
        "eager": "eager_worker_id" in body,
        "eager_worker_id": eager_worker,
    }


def _start_reply(run: RunRow, outcome: str) -> dict[str, Any]:
    return {
        "workflow_id": run.workflow_id,
        "run_id": run.run_id,
        "workflow_type": run.workflow_type,
        "namespace": run.namespace,
        "status": run.status,
        "business_key": run.business_key,
        "payload_codec": "avro",
        "outcome": outcome,
    }


async def start_workflow(core: Core, ns: str, body: dict[str, Any]) -> dict[str, Any]:
    """Start a run (or return the open one for ``use-existing``).

    With ``eager_worker_id`` (our extension, docs/protocol-decisions.md "Eager tasks") the
    reply also carries ``eager_workflow_task``: the new run's first workflow task leased to that
    worker in the start's own write, as its poll would lease it, or None when the worker may
    not take it (unknown, stale, other queue or types) or no new run started.
    """
    req = _validate_start(body)
    # The first attempt assumes the id is new and skips reading it: inserting the workflow row
    # fails if it exists, and the retry then reads it and applies the duplicate and reuse rules.
    attempts = iter((True,))
    reply, eager = await core.retrying(lambda: _start_once(core, ns, req, optimistic=next(attempts, False)))
    if not req["eager"]:
        return reply
    reply["eager_workflow_task"] = (
        None if eager is None else await eager_task_dict(core, eager.task, write=(eager.m, eager.events))
    )
    return reply


@dataclasses.dataclass(frozen=True, slots=True)
class _EagerLease:
    """The first workflow task a start leased, with the write that did it."""

    task: WorkflowTaskRow
    m: Mutation
    events: Sequence[EventRow]


async def _start_once(
    core: Core, ns: str, req: dict[str, Any], *, optimistic: bool
) -> tuple[dict[str, Any], _EagerLease | None]:
    """One attempt: the reply, and the first workflow task if it was leased eagerly."""
    now = core.now()
    wf = None if optimistic else await core.storage.get_workflow(req["workflow_id"])
    m = Mutation()
    run_number = 1
    if wf is not None:
        if wf.namespace != ns:
            raise EngineError(
                "conflict",
                "workflow_id_reserved_in_namespace",
                "The workflow id is reserved in another namespace.",
                workflow_id=req["workflow_id"],
            )
        if wf.workflow_type != req["workflow_type"]:
            raise invalid(
                {"workflow_type": [f"the workflow id is already used by type {wf.workflow_type!r}"]}
            )
        current = await core.storage.get_run(wf.current_run_id)
        assert current is not None
        if not is_closed(current):
            if req["duplicate_policy"] == "use-existing":
                return _start_reply(current, "returned_existing_active"), None
            raise EngineError(
                "conflict",
                "instance_already_started",
                "The workflow id already has an open run.",
                outcome="rejected_duplicate",
                workflow_id=wf.workflow_id,
                run_id=current.run_id,
            )
        if req["id_reuse_policy"] != "allow_duplicate":
            raise EngineError(
                "conflict",
                "instance_already_started",
                "The workflow id was already used; pass id_reuse_policy 'allow_duplicate' "
                "to start a new run.",
                outcome="rejected_duplicate",
                workflow_id=wf.workflow_id,
                run_id=current.run_id,
            )
        run_number = wf.run_count + 1
        m.preconditions.append(WorkflowCurrentRun(wf.workflow_id, current.run_id))
    run = RunRow(
        run_id=new_id(),
        namespace=ns,
        workflow_id=req["workflow_id"],
        run_number=run_number,
        workflow_type=req["workflow_type"],
        task_queue=req["task_queue"],
        status=RunStatus.PENDING,
        started_at=now,
        input=req["input"],
        business_key=req["business_key"],
        memo=req["memo"],
        search_attributes=req["search_attributes"],
        compatibility=req["compatibility"],
        execution_timeout_seconds=req["execution_timeout_seconds"],
        run_timeout_seconds=req["run_timeout_seconds"],
        last_progress_at=now,
    )
    if run.execution_timeout_seconds:
        run.execution_deadline_at = now + run.execution_timeout_seconds
    if run.run_timeout_seconds:
        run.run_deadline_at = now + run.run_timeout_seconds
    if wf is None:
        m.ops.append(
            Insert(
                WorkflowRow(
                    workflow_id=run.workflow_id,
                    namespace=ns,
                    workflow_type=run.workflow_type,
                    current_run_id=run.run_id,
                    run_count=1,
                    created_at=now,
                )
            )
        )
    else:
        m.ops.append(
            Patch(WorkflowRow, (wf.workflow_id,), {"current_run_id": run.run_id, "run_count": run_number})
        )
    m.ops.append(Insert(run))
    index_search_attributes(run, run.search_attributes, m, fresh=True)
    for kind, deadline in (
        ("run_deadline", run.run_deadline_at),
        ("execution_deadline", run.execution_deadline_at),
    ):
        if deadline is not None:
            m.ops.append(
                Insert(
                    TimerRow(
                        timer_id=f"{kind}:{run.run_id}",
                        namespace=ns,
                        run_id=run.run_id,
                        kind=kind,
                        fire_at=deadline,
                        status="pending",
                    )
                )
            )
            m.wakes.append(Wake(("timers",)))
    task = new_workflow_task(run, now, resume_info())
    m.ops.append(Insert(task))
    worker = await eligible_worker(core, ns, req["eager_worker_id"])
    m.events.append(
        event(
            run.run_id,
            Event.WORKFLOW_STARTED,
            {
                "workflow_type": run.workflow_type,
                "workflow_instance_id": run.workflow_id,
                "workflow_run_id": run.run_id,
                "arguments": run.input,
                "payload_codec": "avro",
                "business_key": run.business_key,
                "task_queue": run.task_queue,
                "run_number": run.run_number,
                "execution_timeout_seconds": run.execution_timeout_seconds,
                "run_timeout_seconds": run.run_timeout_seconds,
                "execution_deadline_at": iso(run.execution_deadline_at),
                "run_deadline_at": iso(run.run_deadline_at),
                "timestamp": iso(now),
            },
            now,
        )
    )
    leased = None if worker is None else lease_workflow_task(core, m, run, task.task_id, worker, now)
    if leased is None:
        m.wakes.append(Wake(("workflow_task", ns, run.task_queue), run.workflow_type))
    events = await core.storage.apply(m)
    # A run this node just created has no update yet (engine._rowcache).
    created = inserted_run(m, run.run_id, events)
    if created is not None:
        core.recent.note_no_updates(run.run_id, created.version)
        core.recent.note_started(created)
    reply = _start_reply(run, "started_new")
    if leased is None:
        return reply, None
    reply["status"] = RunStatus.RUNNING.value
    return reply, _EagerLease(leased, m, events)
