"""Workflow-task commands: validation of the whole list, then application (worker-plane §5).

Validation runs completely before anything is written, and reports field problems as a 422
``validation_failed`` with an ``errors`` map (``commands.<i>.<field>``) and problems of the
list as a whole (terminal placement, parallel-group numbering) as 409 ``invalid_commands``.
Application builds one mutation; the caller applies it together with the task completion.

The server numbers step commands itself (worker-plane §12.2): a dense per-run counter that
starts at 1 and gives one number to each step (activity, timer, child, side effect, marker,
upsert, wait); continue-as-new, like the other terminal commands, takes none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from durable_workflow.protocol import Command, Event, RunStatus
from durable_workflow_server.engine import _activities, _cancel, _children, _continue, _messages
from durable_workflow_server.engine._core import Core, close_run, event
from durable_workflow_server.engine._errors import EngineError, invalid
from durable_workflow_server.engine._ids import new_id
from durable_workflow_server.engine._limits import INT64_MAX, INT64_MIN, MAX_ATTEMPTS, MAX_DURATION_SECONDS
from durable_workflow_server.engine._payloads import PayloadInvalid, stored_from_command
from durable_workflow_server.engine._search_index import index_search_attributes
from durable_workflow_server.engine._time import iso
from durable_workflow_server.storage import Insert, Mutation, Patch, RunRow, TimerRow, Wake, WorkflowTaskRow

ACTIVITY_TIMEOUTS = (
    "start_to_close_timeout",
    "schedule_to_start_timeout",
    "schedule_to_close_timeout",
    "heartbeat_timeout",
)
PARALLEL_KEYS = (
    "parallel_group_id",
    "parallel_group_kind",
    "parallel_group_base_sequence",
    "parallel_group_size",
    "parallel_group_index",
    "parallel_group_path",
)

#: type -> (required fields, optional fields); "type" and the parallel keys are handled apart.
SUPPORTED: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    Command.SCHEDULE_ACTIVITY: (
        frozenset({"activity_type"}),
        frozenset(
            {
                "arguments",
                "queue",
                "connection",
                "retry_policy",
                "payload_codec",
                *ACTIVITY_TIMEOUTS,
                "worker_session",
                "cancellation_policy",
                "observability_context",
                "activity_class",
            }
        ),
    ),
    Command.START_TIMER: (frozenset({"delay_seconds"}), frozenset({"timer_kind"})),
    Command.COMPLETE_WORKFLOW: (frozenset(), frozenset({"result", "payload_codec"})),
    Command.FAIL_WORKFLOW: (
        frozenset({"message"}),
        frozenset(
            {
                "exception_type",
                "exception_class",
                "exception",
                "non_retryable",
                "failed_step_sequence",
                "failed_activity_execution_id",
            }
        ),
    ),
    Command.RECORD_SIDE_EFFECT: (frozenset({"result"}), frozenset({"payload_codec", "workflow_stream"})),
    Command.RECORD_VERSION_MARKER: (
        frozenset({"change_id", "version", "min_supported", "max_supported"}),
        frozenset(),
    ),
    Command.UPSERT_SEARCH_ATTRIBUTES: (frozenset({"attributes"}), frozenset({"attribute_types"})),
    Command.START_CHILD_WORKFLOW: (
        frozenset({"workflow_type"}),
        frozenset(
            {
                "arguments",
                "queue",
                "connection",
                "parent_close_policy",
                "retry_policy",
                "execution_timeout_seconds",
                "run_timeout_seconds",
                "payload_codec",
                "cancellation_policy",
                "observability_context",
            }
        ),
    ),
    Command.CONTINUE_AS_NEW: (
        frozenset(),
        frozenset({"arguments", "workflow_type", "queue", "payload_codec", "observability_context"}),
    ),
    Command.OPEN_CONDITION_WAIT: (
        frozenset(),
        frozenset({"condition_key", "condition_definition_fingerprint", "timeout_seconds"}),
    ),
    Command.COMPLETE_UPDATE: (frozenset({"update_id"}), frozenset({"result", "payload_codec"})),
    Command.FAIL_UPDATE: (
        frozenset({"update_id", "message"}),
        frozenset({"exception_type", "exception_class", "non_retryable"}),
    ),
}

#: Known to the protocol, planned for the next issue; the schema already has room for them.
NOT_YET = frozenset(
    {
        "open_signal_wait",
        "start_service_operation",
        "record_local_activity",
        "upsert_memo",
        "cancel_selection_operation",
    }
)

#: Fields that belong only to some commands (worker-plane §5 "Field scope").
SCOPED: dict[str, frozenset[str]] = {
    "retry_policy": frozenset({Command.SCHEDULE_ACTIVITY, Command.START_CHILD_WORKFLOW}),
    **{t: frozenset({Command.SCHEDULE_ACTIVITY}) for t in ACTIVITY_TIMEOUTS},
    "execution_timeout_seconds": frozenset({Command.START_CHILD_WORKFLOW}),
    "run_timeout_seconds": frozenset({Command.START_CHILD_WORKFLOW}),
    "non_retryable": frozenset({Command.FAIL_WORKFLOW, Command.FAIL_UPDATE}),
    "exception": frozenset({Command.FAIL_WORKFLOW}),
    "delay_seconds": frozenset({Command.START_TIMER}),
    "timeout_seconds": frozenset({Command.OPEN_CONDITION_WAIT, "open_signal_wait"}),
    "payload_codec": frozenset(
        {
            Command.SCHEDULE_ACTIVITY,
            Command.COMPLETE_WORKFLOW,
            Command.RECORD_SIDE_EFFECT,
            Command.CONTINUE_AS_NEW,
            Command.START_CHILD_WORKFLOW,
            Command.COMPLETE_UPDATE,
            "start_service_operation",
        }
    ),
}
PARALLEL_ALLOWED = frozenset({Command.SCHEDULE_ACTIVITY, Command.START_TIMER, Command.START_CHILD_WORKFLOW})
STEP_COMMANDS = frozenset(
    {
        Command.SCHEDULE_ACTIVITY,
        Command.START_TIMER,
        Command.RECORD_SIDE_EFFECT,
        Command.RECORD_VERSION_MARKER,
        Command.UPSERT_SEARCH_ATTRIBUTES,
        Command.START_CHILD_WORKFLOW,
        Command.OPEN_CONDITION_WAIT,
    }
)
TERMINAL = frozenset({Command.COMPLETE_WORKFLOW, Command.FAIL_WORKFLOW, Command.CONTINUE_AS_NEW})
_ATTR_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def is_int(value: Any) -> bool:
    """A JSON integer (bools are not integers here)."""
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class Plan:
    """The validated commands with their normalised values."""

    commands: list[dict[str, Any]] = field(default_factory=list)
    sequences: list[int | None] = field(default_factory=list)


def _check_retry_policy(value: Any, where: str, errors: dict[str, list[str]]) -> None:
    if not isinstance(value, dict):
        errors[where] = ["must be an object"]
        return
    max_attempts = value.get("max_attempts")
    if max_attempts is not None and (not is_int(max_attempts) or not 1 <= max_attempts <= MAX_ATTEMPTS):
        errors[f"{where}.max_attempts"] = [f"must be an integer in 1..{MAX_ATTEMPTS}"]
    backoff = value.get("backoff_seconds")
    if backoff is not None and (
        not isinstance(backoff, list)
        or not all(is_int(b) and 0 <= b <= MAX_DURATION_SECONDS for b in backoff)
    ):
        errors[f"{where}.backoff_seconds"] = [f"must be a list of integers in 0..{MAX_DURATION_SECONDS}"]
    types = value.get("non_retryable_error_types")
    if types is not None and (not isinstance(types, list) or not all(isinstance(t, str) for t in types)):
        errors[f"{where}.non_retryable_error_types"] = ["must be a list of strings"]


def _check_payload(cmd: dict[str, Any], key: str, where: str, errors: dict[str, list[str]]) -> None:
    if key not in cmd:
        return
    try:
        cmd[key] = stored_from_command(cmd[key], cmd.get("payload_codec"))
    except PayloadInvalid as exc:
        errors[f"{where}.{key}"] = [str(exc)]


def _check_attribute_value(value: Any) -> bool:
    if value is None or isinstance(value, str | bool | int | float):
        return not isinstance(value, str) or len(value.encode()) <= 2048
    return isinstance(value, list) and all(isinstance(v, str) and len(v.encode()) <= 2048 for v in value)


def _check_one(index: int, cmd: dict[str, Any], errors: dict[str, list[str]]) -> None:
    where = f"commands.{index}"
    ctype = cmd["type"]
    required, _optional = SUPPORTED[ctype]
    for name in required:
        if cmd.get(name) is None:
            errors[f"{where}.{name}"] = ["is required"]
    for name in cmd:
        scope = SCOPED.get(name)
        if scope is not None and ctype not in scope:
            errors[f"{where}.{name}"] = [f"is not allowed on {ctype}"]
        if name in PARALLEL_KEYS and ctype not in PARALLEL_ALLOWED:
            errors[f"{where}.{name}"] = [f"is not allowed on {ctype}"]
    if "payload_codec" in cmd and cmd["payload_codec"] not in (None, "avro"):
        errors[f"{where}.payload_codec"] = ["must be 'avro'"]
    if ctype == Command.SCHEDULE_ACTIVITY:
        _check_activity(cmd, where, errors)
    elif ctype == Command.START_TIMER:
        delay = cmd.get("delay_seconds")
        if delay is not None and (not is_int(delay) or not 0 <= delay <= MAX_DURATION_SECONDS):
            errors[f"{where}.delay_seconds"] = [f"must be an integer in 0..{MAX_DURATION_SECONDS}"]
    elif ctype == Command.COMPLETE_WORKFLOW:
        _check_payload(cmd, "result", where, errors)
    elif ctype == Command.FAIL_WORKFLOW:
        if cmd.get("message") is not None and not isinstance(cmd["message"], str):
            errors[f"{where}.message"] = ["must be a string"]
        for name in ("exception_type", "exception_class"):
            if cmd.get(name) is not None and not isinstance(cmd[name], str):
                errors[f"{where}.{name}"] = ["must be a string"]
        if cmd.get("non_retryable") is not None and not isinstance(cmd["non_retryable"], bool):
            errors[f"{where}.non_retryable"] = ["must be a boolean"]
        if cmd.get("exception") is not None and not isinstance(cmd["exception"], dict):
            errors[f"{where}.exception"] = ["must be an object"]
    elif ctype == Command.RECORD_SIDE_EFFECT:
        _check_payload(cmd, "result", where, errors)
    elif ctype == Command.RECORD_VERSION_MARKER:
        if cmd.get("change_id") is not None and (
            not isinstance(cmd["change_id"], str) or not cmd["change_id"]
        ):
            errors[f"{where}.change_id"] = ["must be a non-empty string"]
        for name in ("version", "min_supported", "max_supported"):
            if cmd.get(name) is not None and not (is_int(cmd[name]) and INT64_MIN <= cmd[name] <= INT64_MAX):
                errors[f"{where}.{name}"] = ["must be an integer"]
        if all(is_int(cmd.get(n)) for n in ("min_supported", "max_supported")) and (
            cmd["min_supported"] > cmd["max_supported"]
        ):
            errors[f"{where}.min_supported"] = ["must not exceed max_supported"]
    elif ctype == Command.START_CHILD_WORKFLOW:
        _check_payload(cmd, "arguments", where, errors)
        if cmd.get("retry_policy") is not None:
            _check_retry_policy(cmd["retry_policy"], f"{where}.retry_policy", errors)
        _children.check_command(cmd, where, errors)
    elif ctype == Command.CONTINUE_AS_NEW:
        _check_payload(cmd, "arguments", where, errors)
        _continue.check_command(cmd, where, errors)
    elif ctype in _messages.COMMANDS:
        _messages.check_command(index, cmd, errors)
        if ctype == Command.COMPLETE_UPDATE:
            _check_payload(cmd, "result", where, errors)
    elif ctype == Command.UPSERT_SEARCH_ATTRIBUTES:
        attrs = cmd.get("attributes")
        if attrs is not None:
            if not isinstance(attrs, dict) or not attrs:
                errors[f"{where}.attributes"] = ["must be a non-empty object"]
            else:
                for key, value in attrs.items():
                    if not _ATTR_KEY.match(key) or len(key.encode()) > 128:
                        errors[f"{where}.attributes.{key}"] = ["invalid search attribute name"]
                    elif not _check_attribute_value(value):
                        errors[f"{where}.attributes.{key}"] = ["unsupported search attribute value"]


def _check_activity(cmd: dict[str, Any], where: str, errors: dict[str, list[str]]) -> None:
    atype = cmd.get("activity_type")
    if atype is not None and (not isinstance(atype, str) or not atype or len(atype) > 255):
        errors[f"{where}.activity_type"] = ["must be a string of 1-255 characters"]
    queue = cmd.get("queue")
    if queue is not None and (not isinstance(queue, str) or not queue or len(queue) > 255):
        errors[f"{where}.queue"] = ["must be a string of 1-255 characters"]
    _check_payload(cmd, "arguments", where, errors)
    if cmd.get("retry_policy") is not None:
        _check_retry_policy(cmd["retry_policy"], f"{where}.retry_policy", errors)
    values: dict[str, int] = {}
    for name in ACTIVITY_TIMEOUTS:
        value = cmd.get(name)
        if value is None:
            continue
        if not is_int(value) or not 1 <= value <= MAX_DURATION_SECONDS:
            errors[f"{where}.{name}"] = [f"must be an integer in 1..{MAX_DURATION_SECONDS}"]
        else:
            values[name] = value
    hb, stc = values.get("heartbeat_timeout"), values.get("start_to_close_timeout")
    sclose, sts = values.get("schedule_to_close_timeout"), values.get("schedule_to_start_timeout")
    if hb is not None and stc is not None and hb > stc:
        errors[f"{where}.heartbeat_timeout"] = ["must not exceed start_to_close_timeout"]
    if stc is not None and sclose is not None and stc > sclose:
        errors[f"{where}.start_to_close_timeout"] = ["must not exceed schedule_to_close_timeout"]
    if hb is not None and sclose is not None and hb > sclose:
        errors[f"{where}.heartbeat_timeout"] = ["must not exceed schedule_to_close_timeout"]
    if sts is not None and sclose is not None and sts > sclose:
        errors[f"{where}.schedule_to_start_timeout"] = ["must not exceed schedule_to_close_timeout"]


def _check_parallel(
    index: int, cmd: dict[str, Any], sequence: int, errors: dict[str, list[str]]
) -> str | None:
    """Field errors go to ``errors``; a numbering mismatch is returned as text (409)."""
    if not any(k in cmd for k in PARALLEL_KEYS):
        return None
    where = f"commands.{index}"
    gid, base = cmd.get("parallel_group_id"), cmd.get("parallel_group_base_sequence")
    size, pos = cmd.get("parallel_group_size"), cmd.get("parallel_group_index")
    if not isinstance(gid, str) or not gid:
        errors[f"{where}.parallel_group_id"] = ["is required with the parallel keys"]
    if not isinstance(base, int) or isinstance(base, bool) or base < 1:
        errors[f"{where}.parallel_group_base_sequence"] = ["must be an integer >= 1"]
        base = None
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        errors[f"{where}.parallel_group_size"] = ["must be an integer >= 1"]
        size = None
    if not isinstance(pos, int) or isinstance(pos, bool) or pos < 0 or (size is not None and pos >= size):
        errors[f"{where}.parallel_group_index"] = ["must be an integer in 0..size-1"]
        pos = None
    path = cmd.get("parallel_group_path")
    if path is not None and not isinstance(path, list):
        errors[f"{where}.parallel_group_path"] = ["must be a list"]
    if base is not None and pos is not None and base + pos != sequence:
        return (
            f"command {index}: parallel_group_base_sequence + parallel_group_index = {base + pos}, "
            f"but the server assigns workflow sequence {sequence}"
        )
    return None


def validate(commands: Any, run: RunRow) -> Plan:
    """Check the whole list; return the plan with normalised payloads and assigned sequences.

    Raises:
        EngineError: 422 ``validation_failed`` or 409 ``invalid_commands``.
    """
    if not isinstance(commands, list) or not commands:
        raise invalid({"commands": ["must be a non-empty list"]})
    errors: dict[str, list[str]] = {}
    plan = Plan()
    structural: list[str] = []
    sequence = run.next_workflow_sequence
    for index, raw in enumerate(commands):
        if not isinstance(raw, dict):
            errors[f"commands.{index}"] = ["must be an object"]
            plan.commands.append({})
            plan.sequences.append(None)
            continue
        cmd = dict(raw)
        plan.commands.append(cmd)
        ctype = cmd.get("type")
        if ctype in NOT_YET:
            errors[f"commands.{index}.type"] = [f"command type {ctype!r} is not supported yet"]
            plan.sequences.append(None)
            continue
        if ctype not in SUPPORTED:
            errors[f"commands.{index}.type"] = ["unknown command type"]
            plan.sequences.append(None)
            continue
        _check_one(index, cmd, errors)
        if ctype in TERMINAL and index != len(commands) - 1:
            structural.append(f"command {index}: {ctype} must be the last command")
        if ctype in STEP_COMMANDS:
            problem = _check_parallel(index, cmd, sequence, errors)
            if problem:
                structural.append(problem)
            plan.sequences.append(sequence)
            sequence += 1
        else:
            plan.sequences.append(None)
    if errors:
        raise invalid(errors, "The workflow task commands are invalid.")
    if structural:
        raise EngineError("conflict", "invalid_commands", "; ".join(structural), outcome="rejected")
    return plan


def parallel_of(cmd: dict[str, Any]) -> dict[str, Any]:
    """The parallel-group keys present on a command."""
    return {k: cmd[k] for k in PARALLEL_KEYS if k in cmd}


async def apply(
    core: Core, run: RunRow, task: WorkflowTaskRow, plan: Plan, m: Mutation, now: float
) -> tuple[str, list[str]]:
    """Add the commands' writes to ``m``; return (the run's new status, created task ids)."""
    created: list[str] = []
    search_attributes = dict(run.search_attributes)
    wait_kind: str | None = None
    last_sequence = run.next_workflow_sequence - 1
    for cmd, sequence in zip(plan.commands, plan.sequences, strict=True):
        ctype = cmd["type"]
        if sequence is not None:
            last_sequence = sequence
        if ctype == Command.SCHEDULE_ACTIVITY:
            assert sequence is not None
            created.append(_activities.schedule(run, cmd, sequence, parallel_of(cmd), m, now, task.task_id))
            wait_kind = "activity"
        elif ctype == Command.START_TIMER:
            assert sequence is not None
            _start_timer(run, cmd, sequence, m, now, task.task_id)
            wait_kind = "timer"
        elif ctype == Command.START_CHILD_WORKFLOW:
            assert sequence is not None
            _children.start(run, cmd, sequence, parallel_of(cmd), m, now, task.task_id)
            wait_kind = "child"
        elif ctype in TERMINAL and run.cancel_requested and _cancel.closes_cancelled(cmd):
            await _cancel.close_cancelled(core, run, cmd, m, now, task.task_id)
        elif ctype == Command.CONTINUE_AS_NEW:
            # The successor inherits the attributes as upserted up to here.
            current = replace(run, search_attributes=dict(search_attributes))
            await _continue.continue_as_new(core, current, cmd, m, now, task.task_id)
        elif ctype in _messages.COMMANDS:
            kind = await _messages.apply_command(
                core, run, task, cmd, sequence, last_sequence, plan.commands, m, now
            )
            wait_kind = kind or wait_kind
        elif ctype == Command.RECORD_SIDE_EFFECT:
            m.events.append(
                event(
                    run.run_id,
                    Event.SIDE_EFFECT_RECORDED,
                    {"sequence": sequence, "result": cmd["result"], "payload_codec": "avro"},
                    now,
                    task.task_id,
                )
            )
        elif ctype == Command.RECORD_VERSION_MARKER:
            m.events.append(
                event(
                    run.run_id,
                    Event.VERSION_MARKER_RECORDED,
                    {
                        "sequence": sequence,
                        "change_id": cmd["change_id"],
                        "version": cmd["version"],
                        "min_supported": cmd["min_supported"],
                        "max_supported": cmd["max_supported"],
                    },
                    now,
                    task.task_id,
                )
            )
        elif ctype == Command.UPSERT_SEARCH_ATTRIBUTES:
            for key, value in cmd["attributes"].items():
                if value is None:
                    search_attributes.pop(key, None)
                else:
                    search_attributes[key] = value
            index_search_attributes(run, cmd["attributes"], m)
            m.events.append(
                event(
                    run.run_id,
                    Event.SEARCH_ATTRIBUTES_UPSERTED,
                    {
                        "sequence": sequence,
                        "attributes": cmd["attributes"],
                        "merged": dict(search_attributes),
                    },
                    now,
                    task.task_id,
                )
            )
        elif ctype == Command.COMPLETE_WORKFLOW:
            output = cmd.get("result")
            m.events.append(
                event(
                    run.run_id,
                    Event.WORKFLOW_COMPLETED,
                    {"output": output, "payload_codec": "avro"},
                    now,
                    task.task_id,
                )
            )
            await close_run(
                core,
                run,
                m,
                now,
                status=RunStatus.COMPLETED,
                closed_reason="completed",
                output=output,
                ending_task=task.task_id,
            )
        elif ctype == Command.FAIL_WORKFLOW:
            failure = {
                "message": cmd["message"],
                "exception_type": cmd.get("exception_type"),
                "exception_class": cmd.get("exception_class"),
                "non_retryable": bool(cmd.get("non_retryable", False)),
            }
            payload: dict[str, Any] = {
                "failure_id": new_id(),
                "source_kind": "workflow_run",
                "source_id": run.run_id,
                "failure_category": "application",
                **failure,
            }
            if cmd.get("exception") is not None:
                payload["exception"] = cmd["exception"]
            m.events.append(event(run.run_id, Event.WORKFLOW_FAILED, payload, now, task.task_id))
            await close_run(
                core,
                run,
                m,
                now,
                status=RunStatus.FAILED,
                closed_reason="failed",
                failure=failure,
                ending_task=task.task_id,
            )
    fields: dict[str, Any] = {"next_workflow_sequence": last_sequence + 1, "last_progress_at": now}
    if search_attributes != run.search_attributes:
        fields["search_attributes"] = search_attributes
    last = plan.commands[-1]
    terminal = last.get("type") in TERMINAL
    status = RunStatus.WAITING
    if terminal:
        status = (
            RunStatus.CANCELLED
            if run.cancel_requested and _cancel.closes_cancelled(last)
            else RunStatus.COMPLETED
            if last["type"] in (Command.COMPLETE_WORKFLOW, Command.CONTINUE_AS_NEW)
            else RunStatus.FAILED
        )
    else:
        fields["status"] = RunStatus.WAITING
        fields["wait_kind"] = wait_kind or run.wait_kind  # side effects alone leave the wait as it was
    m.ops.append(Patch(RunRow, (run.run_id,), fields))
    return status, [c for c in created if c]


def _start_timer(
    run: RunRow, cmd: dict[str, Any], sequence: int, m: Mutation, now: float, task_id: str
) -> None:
    delay = int(cmd["delay_seconds"])
    timer_id = new_id()
    fire_at = now + delay
    parallel = parallel_of(cmd)
    data: dict[str, Any] = {"sequence": sequence, "delay_seconds": delay, "parallel": parallel}
    if cmd.get("timer_kind") is not None:
        data["timer_kind"] = cmd["timer_kind"]
    m.ops.append(
        Insert(
            TimerRow(
                timer_id=timer_id,
                namespace=run.namespace,
                run_id=run.run_id,
                kind="user",
                fire_at=fire_at,
                status="pending",
                data=data,
            )
        )
    )
    payload: dict[str, Any] = {
        "timer_id": timer_id,
        "sequence": sequence,
        "delay_seconds": delay,
        "fire_at": iso(fire_at),
        **parallel,
    }
    if cmd.get("timer_kind") is not None:
        payload["timer_kind"] = cmd["timer_kind"]
    m.events.append(event(run.run_id, Event.TIMER_SCHEDULED, payload, now, task_id))
    m.wakes.append(Wake(("timers",)))
