"""What signals, updates and condition waits share, and the hooks a workflow-task completion
calls (worker-plane §5 ``open_condition_wait``/``complete_update``/``fail_update``, §9).

Decisions (docs/protocol-decisions.md rows 8, 10-12):

- A wait's ``ConditionWaitSatisfied`` is recorded when the worker shows it moved past the wait:
  a workflow task (not an update task) completes with commands while the wait is open (our
  worker answers "nothing new" while the predicate is false, so commands mean it held), or
  the ``open_condition_wait`` is followed by other commands of the same completion (the
  predicate held at once). The one exception is an update whose handler recorded steps: its
  ``UpdateApplied`` comes after those steps, so the open wait is marked satisfied after the
  update completes, and the worker re-opens the wait if its predicate is still false.
- An update task carries ``workflow_update_id``. Before its first completion the update may be
  only *requested* (not in history): the task then also carries ``update_name`` and
  ``update_arguments``, the worker runs the validator, and a rejection (``fail_update`` of type
  ``InvalidUpdate``) writes nothing to history. Otherwise ``UpdateAccepted`` is written ahead
  of the task's own events.
"""

from __future__ import annotations

import hashlib
from typing import Any

from durable_workflow.protocol import Command, Event
from durable_workflow_server.engine._core import Core, event, resume_info
from durable_workflow_server.engine._errors import EngineError
from durable_workflow_server.engine._ids import new_id
from durable_workflow_server.engine._time import iso
from durable_workflow_server.storage import (
    Insert,
    Mutation,
    Patch,
    RunRow,
    TimerRow,
    Wake,
    WorkflowTaskRow,
)
from durable_workflow_server.storage._messages import MessageRow

#: Command types this module applies.
COMMANDS = frozenset({Command.OPEN_CONDITION_WAIT, Command.COMPLETE_UPDATE, Command.FAIL_UPDATE})
#: fail_update's type when the validator refused: the update is rejected, not failed.
REJECTED_TYPE = "InvalidUpdate"
CONDITION_TIMER = "condition_timeout"
OPEN_UPDATE_STATUSES = ("requested", "accepted", "running")
SETTLED = ("completed", "failed", "rejected")
_MAX_NAME_BYTES = 256
_WAIT_OPENED = frozenset({Event.CONDITION_WAIT_OPENED})


def message_id(workflow_id: str, kind: str, key: str) -> str:
    """A stable row id for a caller-supplied key (request id, update id) of one workflow."""
    return "m" + hashlib.sha256(f"{workflow_id}\x00{kind}\x00{key}".encode()).hexdigest()[:40]


def name_error(value: Any) -> str | None:
    """Why a signal, query or update name is invalid (1-256 bytes, no control characters)."""
    if not isinstance(value, str) or not value:
        return "must be a non-empty string"
    if len(value.encode()) > _MAX_NAME_BYTES:
        return f"must be at most {_MAX_NAME_BYTES} bytes"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "must not contain control characters"
    return None


def update_resume(update: MessageRow) -> dict[str, Any]:
    """The resume keys (plus the pre-acceptance fields) of a task that runs ``update``."""
    info = resume_info(
        workflow_wait_kind="update",
        open_wait_id=f"update:{update.data.get('update_id')}",
        resume_source_kind="workflow_update",
        resume_source_id=update.data.get("update_id"),
        workflow_update_id=update.data.get("update_id"),
        workflow_command_id=update.data.get("command_id"),
        workflow_event_type=Event.UPDATE_ACCEPTED,
    )
    if update.status == "requested":
        info["update_name"] = update.name
        info["update_arguments"] = update.arguments
    return info


# --- condition waits --------------------------------------------------------------------------


def _satisfy(run: RunRow, wait: MessageRow, m: Mutation, now: float, task_id: str | None) -> None:
    data = wait.data
    m.events.append(
        event(
            run.run_id,
            Event.CONDITION_WAIT_SATISFIED,
            {
                "condition_wait_id": wait.message_id,
                "condition_key": data.get("condition_key"),
                "condition_definition_fingerprint": data.get("condition_definition_fingerprint"),
                "sequence": data.get("sequence"),
                "timer_id": data.get("timer_id"),
                "timeout_seconds": data.get("timeout_seconds"),
            },
            now,
            task_id,
        )
    )
    m.ops.append(Patch(MessageRow, (wait.message_id,), {"status": "satisfied"}))
    timer_id = data.get("timer_id")
    if timer_id:
        m.ops.append(Patch(TimerRow, (timer_id,), {"status": "cancelled"}))
        m.events.append(
            event(
                run.run_id,
                Event.TIMER_CANCELLED,
                {
                    "timer_id": timer_id,
                    "sequence": data.get("sequence"),
                    "timer_kind": CONDITION_TIMER,
                    "condition_wait_id": wait.message_id,
                    "cancelled_at": iso(now),
                },
                now,
                task_id,
            )
        )


class Reads:
    """The run's open messages, read at most once per workflow-task report.

    The report's hooks run before its one write, so a second read would return the same rows;
    the write is fenced by the run version, which every change of these rows moves.
    """

    def __init__(self) -> None:
        self._open: dict[str, list[MessageRow]] = {}

    def read_no_updates(self, run_id: str) -> bool:
        """Whether this request read the run's open messages and found no update among them."""
        rows = self._open.get(run_id)
        return rows is not None and not any(row.kind == "update" for row in rows)

    async def open_messages(self, core: Core, run_id: str) -> list[MessageRow]:
        """``Storage.open_messages(run_id)``, read on first use."""
        rows = self._open.get(run_id)
        if rows is None:
            rows = self._open[run_id] = await core.storage.open_messages(run_id)
        return rows


async def satisfy_open_waits(
    core: Core, run: RunRow, m: Mutation, now: float, task_id: str | None, reads: Reads | None = None
) -> None:
    """Record ``ConditionWaitSatisfied`` (and cancel the timer) of every open wait of the run.

    ``run`` is the row the caller's write is fenced on. A run whose history (as this node
    holds it, ``engine._history_cache``) never opened a wait has none: no read.
    """
    if core.history.never_recorded(run.run_id, run.last_history_sequence, _WAIT_OPENED):
        return
    for wait in await (reads or Reads()).open_messages(core, run.run_id):
        if wait.kind == "condition_wait":
            _satisfy(run, wait, m, now, task_id)


def _open_wait(
    run: RunRow, cmd: dict[str, Any], sequence: int, m: Mutation, now: float, task_id: str, at_once: bool
) -> None:
    wait_id = new_id()
    key = cmd.get("condition_key")
    fingerprint = cmd.get("condition_definition_fingerprint")
    timeout = cmd.get("timeout_seconds")
    m.events.append(
        event(
            run.run_id,
            Event.CONDITION_WAIT_OPENED,
            {
                "condition_wait_id": wait_id,
                "condition_key": key,
                "condition_definition_fingerprint": fingerprint,
                "sequence": sequence,
                "timeout_seconds": timeout,
            },
            now,
            task_id,
        )
    )
    data: dict[str, Any] = {
        "sequence": sequence,
        "condition_key": key,
        "condition_definition_fingerprint": fingerprint,
        "timeout_seconds": timeout,
        "timer_id": None,
    }
    wait = MessageRow(
        message_id=wait_id,
        namespace=run.namespace,
        workflow_id=run.workflow_id,
        run_id=run.run_id,
        kind="condition_wait",
        name=key,
        status="open",
        created_at=now,
        data=data,
    )
    if at_once:
        # More commands follow the open: the predicate held in the same task.
        m.ops.append(Insert(wait))
        _satisfy(run, wait, m, now, task_id)
        return
    if isinstance(timeout, int) and timeout > 0:
        timer_id = new_id()
        data["timer_id"] = timer_id
        fire_at = now + timeout
        m.ops.append(
            Insert(
                TimerRow(
                    timer_id=timer_id,
                    namespace=run.namespace,
                    run_id=run.run_id,
                    kind=CONDITION_TIMER,
                    fire_at=fire_at,
                    status="pending",
                    ref_id=wait_id,
                    data=dict(data),
                )
            )
        )
        m.events.append(
            event(
                run.run_id,
                Event.TIMER_SCHEDULED,
                {
                    "timer_id": timer_id,
                    "sequence": sequence,
                    "delay_seconds": timeout,
                    "fire_at": iso(fire_at),
                    "timer_kind": CONDITION_TIMER,
                    "condition_wait_id": wait_id,
                    "condition_key": key,
                    "condition_definition_fingerprint": fingerprint,
                },
                now,
                task_id,
            )
        )
        m.wakes.append(Wake(("timers",)))
    m.ops.append(Insert(wait))


async def fire_condition_timer(core: Core, timer: TimerRow, run: RunRow, m: Mutation, now: float) -> None:
    """A wait's timeout passed first: TimerFired, ConditionWaitTimedOut, and a workflow task."""
    from durable_workflow_server.engine._core import wake_workflow

    wait_id = timer.ref_id or ""
    wait = await core.storage.get_message(wait_id)
    if wait is None or wait.status != "open":
        return
    data = wait.data
    common = {
        "timer_id": timer.timer_id,
        "sequence": data.get("sequence"),
        "condition_wait_id": wait_id,
        "condition_key": data.get("condition_key"),
        "condition_definition_fingerprint": data.get("condition_definition_fingerprint"),
    }
    m.events.append(
        event(
            run.run_id,
            Event.TIMER_FIRED,
            {
                **common,
                "delay_seconds": data.get("timeout_seconds"),
                "fire_at": iso(timer.fire_at),
                "fired_at": iso(now),
                "timer_kind": CONDITION_TIMER,
            },
            now,
        )
    )
    m.events.append(
        event(
            run.run_id,
            Event.CONDITION_WAIT_TIMED_OUT,
            {**common, "timeout_seconds": data.get("timeout_seconds")},
            now,
        )
    )
    m.ops.append(Patch(MessageRow, (wait_id,), {"status": "timed_out"}))
    resume = resume_info(
        workflow_wait_kind="condition",
        open_wait_id=f"condition:{wait_id}",
        resume_source_kind="timer",
        resume_source_id=timer.timer_id,
        timer_id=timer.timer_id,
        workflow_sequence=data.get("sequence"),
        workflow_event_type=Event.CONDITION_WAIT_TIMED_OUT,
        condition_wait_id=wait_id,
        condition_key=data.get("condition_key"),
        condition_definition_fingerprint=data.get("condition_definition_fingerprint"),
    )
    await wake_workflow(core, run, m, now, resume)


# --- workflow-task completion hooks -------------------------------------------------------------


def check_command(index: int, cmd: dict[str, Any], errors: dict[str, list[str]]) -> None:
    """Field checks of the three message commands (the whole-list checks are the caller's)."""
    where = f"commands.{index}"
    ctype = cmd.get("type")
    if ctype == Command.OPEN_CONDITION_WAIT:
        for name in ("condition_key", "condition_definition_fingerprint"):
            value = cmd.get(name)
            if value is not None and (not isinstance(value, str) or len(value) > 1000):
                errors[f"{where}.{name}"] = ["must be a string of at most 1000 characters"]
        timeout = cmd.get("timeout_seconds")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int) or not 0 <= timeout <= 10 * 365 * 86400
        ):
            errors[f"{where}.timeout_seconds"] = ["must be an integer of seconds >= 0"]
        return
    update_id = cmd.get("update_id")
    if not isinstance(update_id, str) or not update_id:
        errors[f"{where}.update_id"] = ["is required: a string"]
    if ctype == Command.FAIL_UPDATE:
        if not isinstance(cmd.get("message"), str):
            errors[f"{where}.message"] = ["is required: a string"]
        for name in ("exception_type", "exception_class"):
            if cmd.get(name) is not None and not isinstance(cmd[name], str):
                errors[f"{where}.{name}"] = ["must be a string"]
        if cmd.get("non_retryable") is not None and not isinstance(cmd["non_retryable"], bool):
            errors[f"{where}.non_retryable"] = ["must be a boolean"]


def _rejects(cmd: dict[str, Any], update: MessageRow) -> bool:
    return (
        cmd.get("type") == Command.FAIL_UPDATE
        and update.status == "requested"
        and cmd.get("exception_type") == REJECTED_TYPE
    )


async def _task_update(core: Core, task: WorkflowTaskRow) -> MessageRow | None:
    update_id = task.resume.get("workflow_update_id")
    if not isinstance(update_id, str):
        return None
    return await core.storage.get_message(message_id(task.workflow_id, "update", update_id))


async def before_commands(
    core: Core,
    run: RunRow,
    task: WorkflowTaskRow,
    commands: list[dict[str, Any]],
    m: Mutation,
    now: float,
    reads: Reads | None = None,
) -> None:
    """Bookkeeping ahead of the commands' own events (see the module notes)."""
    update = await _task_update(core, task)
    if update is None:
        await satisfy_open_waits(core, run, m, now, task.task_id, reads)
        return
    if update.status != "requested":
        return
    if len(commands) == 1 and _rejects(commands[0], update):
        return
    m.events.append(accepted_event(run, update, now, task.task_id))
    m.ops.append(Patch(MessageRow, (update.message_id,), {"status": "accepted"}))
    update.status = "accepted"


def accepted_event(run: RunRow, update: MessageRow, now: float, task_id: str | None) -> Any:
    """The ``UpdateAccepted`` event of an update."""
    return event(
        run.run_id,
        Event.UPDATE_ACCEPTED,
        {
            "update_id": update.data.get("update_id"),
            "update_name": update.name,
            "arguments": update.arguments,
            "payload_codec": "avro",
            "workflow_command_id": update.data.get("command_id"),
        },
        now,
        task_id,
    )


async def apply_command(
    core: Core,
    run: RunRow,
    task: WorkflowTaskRow,
    cmd: dict[str, Any],
    sequence: int | None,
    last_sequence: int,
    commands: list[dict[str, Any]],
    m: Mutation,
    now: float,
) -> str | None:
    """Apply one message command; return the run's new wait kind, if it changes."""
    ctype = cmd["type"]
    if ctype == Command.OPEN_CONDITION_WAIT:
        assert sequence is not None
        _open_wait(run, cmd, sequence, m, now, task.task_id, at_once=cmd is not commands[-1])
        return "condition"
    update = await _task_update(core, task)
    if (
        update is not None
        and update.data.get("update_id") == cmd.get("update_id")
        and update.status in SETTLED
    ):
        return None  # a stale task of an update that already ended: its first outcome stands
    if (
        update is None
        or update.data.get("update_id") != cmd.get("update_id")
        or update.status not in OPEN_UPDATE_STATUSES
    ):
        raise EngineError(
            "conflict",
            "invalid_commands",
            f"{ctype} must name the open update of this task ({task.resume.get('workflow_update_id')!r}).",
            outcome="rejected",
        )
    key = (update.message_id,)
    base = {"update_id": update.data.get("update_id"), "update_name": update.name, "sequence": last_sequence}
    if _rejects(cmd, update):
        m.ops.append(
            Patch(
                MessageRow,
                key,
                {
                    "status": "rejected",
                    "data": {**update.data, "failure": _failure(cmd), "closed_at": now},
                },
            )
        )
        m.wakes.append(Wake(("update", update.message_id)))
        return None
    data = {**update.data, "closed_at": now, "workflow_sequence": last_sequence}
    if ctype == Command.COMPLETE_UPDATE:
        result = cmd.get("result")
        m.events.append(
            event(
                run.run_id,
                Event.UPDATE_APPLIED,
                {**base, "arguments": update.arguments, "payload_codec": "avro"},
                now,
                task.task_id,
            )
        )
        m.events.append(
            event(
                run.run_id, Event.UPDATE_COMPLETED, {**base, "result": result, "payload_codec": "avro"}, now
            )
        )
        data["result"] = result
        m.ops.append(Patch(MessageRow, key, {"status": "completed", "data": data}))
        if update.data.get("had_steps") or any(c.get("type") not in COMMANDS for c in commands):
            # The handler's steps come before UpdateApplied in history, so a workflow parked on
            # an open wait would not replay the update: mark the wait satisfied after it.
            await satisfy_open_waits(core, run, m, now, task.task_id)
    else:
        failure = _failure(cmd)
        m.events.append(
            event(
                run.run_id,
                Event.UPDATE_COMPLETED,
                {
                    **base,
                    "failure_id": new_id(),
                    "failure_category": "application",
                    "non_retryable": True,
                    "exception_type": failure["exception_type"],
                    "exception_class": failure["exception_class"],
                    "message": failure["message"],
                    "terminal_reason": "failed",
                },
                now,
                task.task_id,
            )
        )
        data["failure"] = failure
        m.ops.append(Patch(MessageRow, key, {"status": "failed", "data": data}))
    m.wakes.append(Wake(("update", update.message_id)))
    return None


def _failure(cmd: dict[str, Any]) -> dict[str, Any]:
    return {
        "message": cmd.get("message") or "update failed",
        "exception_type": cmd.get("exception_type"),
        "exception_class": cmd.get("exception_class"),
    }


async def follow_up_resume(
    core: Core,
    run: RunRow,
    task: WorkflowTaskRow,
    commands: list[dict[str, Any]] | None,
    m: Mutation,
    reads: Reads | None = None,
) -> dict[str, Any] | None:
    """The resume of the task that must follow this one, when messages need one.

    Called after a completion that leaves the run open (``commands``) or a quiet release
    (``None``). Requested updates come first, then running updates whose handler may have
    new history to see, then (after an update task ended its update) a regular task so the
    workflow code sees the applied update.
    """
    current = await _task_update(core, task)
    post = run.last_history_sequence + len(m.events)
    ended = commands is not None and any(
        c.get("type") in (Command.COMPLETE_UPDATE, Command.FAIL_UPDATE) for c in commands
    )
    if core.recent.no_updates(run.run_id, run.version):  # known at this very version: no read
        updates: list[MessageRow] = []
    else:
        updates = [u for u in await (reads or Reads()).open_messages(core, run.run_id) if u.kind == "update"]
    for status in ("requested", "accepted"):  # not delivered yet (or not answered yet)
        for update in updates:
            if update.status == status and (current is None or update.message_id != current.message_id):
                return update_resume(update)
    if current is not None and commands is not None and not ended:
        # The handler yielded a step and waits for it: deliver the update again once history grew.
        had_steps = bool(current.data.get("had_steps")) or any(
            c.get("type") not in COMMANDS for c in commands
        )
        data = {**current.data, "had_steps": had_steps, "mark": post}
        m.ops.append(Patch(MessageRow, (current.message_id,), {"status": "running", "data": data}))
        m.wakes.append(Wake(("update", current.message_id)))  # a wait_for="accepted" caller
        return None
    for update in updates:
        if update.status != "running":
            continue
        if ended and current is not None and update.message_id == current.message_id:
            continue  # it just ended in this completion
        mark = update.data.get("mark", 0)
        if current is not None and update.message_id == current.message_id and commands is None:
            # Released quietly: nothing new for the handler yet; wait for more history.
            m.ops.append(Patch(MessageRow, (update.message_id,), {"data": {**update.data, "mark": post}}))
            continue
        if post > mark:
            return update_resume(update)
    if current is not None and ended:
        return resume_info(
            workflow_wait_kind="update",
            resume_source_kind="workflow_update",
            resume_source_id=current.data.get("update_id"),
            workflow_event_type=Event.UPDATE_COMPLETED,
        )
    return None
