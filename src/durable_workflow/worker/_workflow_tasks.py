"""Workflow tasks: fetch the whole history, replay it, report the new commands.

Replay is the SDK's pure function (``durable_workflow.workflow.replay``); this module only
moves data between it and the server and decides which report a task gets:

- new commands: ``complete`` with them;
- nothing new (history ended on a step still in flight): ``fail`` with type
  ``WorkflowTaskWaitingForHistory``, which the server releases quietly (the protocol has no
  empty completion);
- non-determinism, an unknown type, undecodable input, any other error: ``fail`` with the
  error's type and message, so an operator sees why the run is stuck.

A task taken away meanwhile (lease expired, run closed...) is dropped without a report.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from durable_workflow import serializer, workflow
from durable_workflow.errors import NonDeterministicReplayError, ServerError, UnsupportedPayloadCodec
from durable_workflow.protocol import PAYLOAD_CODEC
from durable_workflow.worker._polling import TaskPoller, is_drop
from durable_workflow.worker._updates import replay_task

__all__ = ["WAITING_FOR_HISTORY", "WorkflowTaskPoller"]

logger = logging.getLogger("durable_workflow.worker")

#: ``failure.type`` for "replay produced nothing new" (worker-plane §4.5).
WAITING_FOR_HISTORY = "WorkflowTaskWaitingForHistory"
#: Events per history page requested (the protocol's maximum, so long histories need few calls).
HISTORY_PAGE_SIZE = 1000
_MAX_STACK_CHARS = 128 * 1024


class _Dropped(Exception):
    """The task was taken away while its history was being fetched."""


class _TaskFailure(Exception):
    """A reason to report the task as failed, with the failure body to send."""

    def __init__(self, failure: dict[str, Any]) -> None:
        super().__init__(failure.get("message"))
        self.failure = failure


class WorkflowTaskPoller(TaskPoller):
    """Polls workflow tasks and replays them with the registered workflow classes.

    Args:
        workflows: workflow type name -> ``@workflow.defn`` class.
        **kwargs: see :class:`TaskPoller`.
    """

    kind = "workflow"

    def __init__(self, *, workflows: dict[str, type], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workflows = workflows

    def poll_body(self, poll_request_id: str) -> dict[str, Any]:
        body = super().poll_body(poll_request_id)
        body["history_page_size"] = HISTORY_PAGE_SIZE
        return body

    async def handle(self, task: dict[str, Any]) -> None:
        task_id = str(task["task_id"])
        lease = {
            "lease_owner": task.get("lease_owner") or self.worker_id,
            "workflow_task_attempt": task.get("workflow_task_attempt", 1),
        }
        base = f"/worker/workflow-tasks/{task_id}"
        try:
            commands = await self._commands_for(task, base, lease)
        except _Dropped:
            return
        except _TaskFailure as failed:
            await self._fail(base, lease, failed.failure, task)
            return
        if not commands:
            await self._fail(
                base,
                lease,
                {
                    "message": "replay produced no new commands; waiting for more history",
                    "type": WAITING_FOR_HISTORY,
                },
                task,
            )
            return
        body: dict[str, Any] = {**lease, "commands": commands}
        peer = self.eager_peer
        scheduled = sum(1 for c in commands if c.get("type") == "schedule_activity")
        reserved = await peer.reserve_slots(min(scheduled, 1000)) if peer is not None and scheduled else 0
        if reserved:
            body["eager_activity_slots"] = reserved  # our extension: run them without a poll
        reply: dict[str, Any] | None = None
        try:
            reply = await self.deliver(
                f"{base}/complete", body, lease_expires_at=task.get("lease_expires_at")
            )
        except ServerError as exc:
            # The server refused the commands themselves (invalid_commands, a limit): report it
            # as a task failure so the run shows why it is stuck instead of timing out silently.
            logger.error("workflow task %s: completion refused: %s", task_id, exc)
            await self._fail(base, lease, {"message": str(exc), "type": type(exc).__name__}, task)
        finally:
            if peer is not None and reserved:
                peer.take_eager((reply or {}).get("eager_activity_tasks"), reserved)

    async def _commands_for(
        self, task: dict[str, Any], base: str, lease: dict[str, Any]
    ) -> list[dict[str, Any]]:
        workflow_type = str(task.get("workflow_type") or "")
        cls = self.workflows.get(workflow_type)
        if cls is None:
            raise _TaskFailure({"message": f"no workflow registered for type {workflow_type!r}"})
        try:
            codec = task.get("payload_codec")
            if codec != PAYLOAD_CODEC:
                # 2.x fails closed on a missing, null or foreign task codec (worker-plane §10).
                raise UnsupportedPayloadCodec(
                    f"workflow task payload_codec must be {PAYLOAD_CODEC!r}, got {codec!r}"
                )
            start_input = serializer.decode_envelope(task.get("arguments"), allowed_codecs=(PAYLOAD_CODEC,))
            if start_input is None:
                start_input = []
            elif not isinstance(start_input, list):
                start_input = [start_input]
        except Exception as exc:
            raise _TaskFailure(_failure(exc)) from exc
        history = await self._full_history(task, base, lease)
        try:
            # An update task runs the update's handler (and validator) instead of the code.
            outcome = replay_task(cls, history, start_input, task, codec)
            return list(workflow.commands_to_server_commands(outcome.commands, self.task_queue))
        except NonDeterministicReplayError as exc:
            logger.error("workflow task %s (%s): %s", task.get("task_id"), workflow_type, exc)
            raise _TaskFailure(
                {"message": str(exc), "type": "NonDeterministicReplayError", "stack_trace": _stack(exc)}
            ) from exc
        except Exception as exc:
            logger.exception("workflow task %s (%s) failed in replay", task.get("task_id"), workflow_type)
            raise _TaskFailure(_failure(exc)) from exc

    async def _full_history(
        self, task: dict[str, Any], base: str, lease: dict[str, Any]
    ) -> list[dict[str, Any]]:
        events = [e for e in task.get("history_events") or [] if isinstance(e, dict)]
        token = task.get("next_history_page_token")
        seen: set[str] = set()
        while token:
            if token in seen:
                raise _TaskFailure(
                    {"message": f"history paging repeated token {token!r}", "type": "ReplayError"}
                )
            seen.add(token)
            try:
                page = await self.deliver(
                    f"{base}/history",
                    {**lease, "next_history_page_token": token, "history_page_size": HISTORY_PAGE_SIZE},
                    lease_expires_at=task.get("lease_expires_at"),
                )
            except ServerError as exc:
                raise _TaskFailure({"message": str(exc), "type": type(exc).__name__}) from exc
            if page is None:
                raise _Dropped
            events.extend(e for e in page.get("history_events") or [] if isinstance(e, dict))
            token = page.get("next_history_page_token")
        return events

    async def _fail(
        self, base: str, lease: dict[str, Any], failure: dict[str, Any], task: dict[str, Any]
    ) -> None:
        try:
            await self.deliver(
                f"{base}/fail", {**lease, "failure": failure}, lease_expires_at=task.get("lease_expires_at")
            )
        except ServerError as exc:
            if not is_drop(exc):
                logger.error("workflow task %s: failure report refused: %s", task.get("task_id"), exc)


def _stack(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))[-_MAX_STACK_CHARS:]


def _failure(exc: BaseException) -> dict[str, Any]:
    return {"message": str(exc) or type(exc).__name__, "type": type(exc).__name__, "stack_trace": _stack(exc)}
