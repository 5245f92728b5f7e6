"""Entry points over the driver: ``replay`` (workflow tasks), ``query_state``, ``apply_update``
and the offline :class:`Replayer` for captured histories.

The worker fetches a task's history and calls :func:`replay`; a non-empty
``ReplayOutcome.commands`` goes to :func:`commands_to_server_commands` and completes the task,
an empty one means "nothing new until history grows" and the task is released with a fail of
type ``WorkflowTaskWaitingForHistory``.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from durable_workflow.errors import QueryFailed, UnsupportedPayloadCodec, WorkflowDefinitionError
from durable_workflow.protocol import PAYLOAD_CODEC
from durable_workflow.workflow import _history as h
from durable_workflow.workflow._commands import CompleteUpdate, FailUpdate
from durable_workflow.workflow._context import WorkflowContext
from durable_workflow.workflow._definition import definition_of
from durable_workflow.workflow._failures import exception_class_name
from durable_workflow.workflow._replay import Driver


@dataclass
class ReplayOutcome:
    """What one replay decided.

    Attributes:
        commands: New commands in order (a terminal command, if any, is last).
        completed: The run ended: the code returned, raised, or continued as new.
        waiting: The code is blocked on a step, wait or update step with no result yet.
        result: The value ``run`` returned, when it returned normally.
        last_sequence: The highest workflow sequence used, recorded or new.
        workflow_type: The replayed workflow type.
    """

    commands: list[Any] = field(default_factory=list)
    completed: bool = False
    waiting: bool = False
    result: Any = None
    last_sequence: int = 0
    workflow_type: str = ""


def _check_codec(payload_codec: str | None) -> None:
    # None means "the v2 default": Avro. The worker rejects a task with a missing codec itself.
    if payload_codec is not None and payload_codec != PAYLOAD_CODEC:
        raise UnsupportedPayloadCodec(f"payload codec {payload_codec!r} is not supported; only 'avro' is")


def _events_of(history: Any) -> list[Mapping[str, Any]]:
    if isinstance(history, Mapping):
        if "history_events" in history:
            # A task root: the v2 wire requires its codec to be named, and to be Avro.
            codec = history.get("payload_codec")
            if codec != PAYLOAD_CODEC:
                raise UnsupportedPayloadCodec(f"task payload_codec must be 'avro', got {codec!r}")
            events = history["history_events"]
        else:
            events = history.get("events")
        if not isinstance(events, list):
            raise WorkflowDefinitionError("history dict has no 'events' (or 'history_events') list")
        return events
    if isinstance(history, list):
        return history
    if isinstance(history, Sequence) and not isinstance(history, str | bytes):
        return list(history)
    raise WorkflowDefinitionError(
        f"history must be a list of events or a dict with 'events', not {type(history)!r}"
    )


def _arguments(start_input: Any) -> list[Any]:
    """Normalise start input: decoded list/tuple, None, an Avro envelope or a bare blob."""
    if start_input is None:
        return []
    if isinstance(start_input, list | tuple):
        return list(start_input)
    if isinstance(start_input, str) or (isinstance(start_input, Mapping) and "codec" in start_input):
        return h.decode_arguments(start_input)
    return [start_input]


def _start(
    workflow_cls: type,
    history_events: Any,
    start_input: Any,
    *,
    workflow_id: str | None,
    run_id: str,
    payload_codec: str | None,
    record_new: bool,
) -> Driver:
    _check_codec(payload_codec)
    definition = definition_of(workflow_cls)
    history = h.parse_history(_events_of(history_events))
    started = history.started or {}
    ctx = WorkflowContext(
        run_id=run_id or str(started.get("workflow_run_id") or ""),
        current_time=h.started_time(history),
    )
    ctx._workflow_id = workflow_id if workflow_id is not None else started.get("workflow_instance_id")
    ctx._workflow_type = definition.name
    driver = Driver(definition, history, ctx, record_new=record_new)
    driver.start(_arguments(start_input))
    return driver


def _outcome(driver: Driver) -> ReplayOutcome:
    return ReplayOutcome(
        commands=list(driver.commands),
        completed=driver.completed,
        waiting=driver.waiting,
        result=driver.result,
        last_sequence=driver.seq,
        workflow_type=driver.definition.name,
    )


def replay(
    workflow_cls: type,
    history_events: Any,
    start_input: Any,
    *,
    workflow_id: str | None = None,
    run_id: str = "",
    payload_codec: str | None = None,
    external_storage: Any = None,
    external_storage_cache: Any = None,
) -> ReplayOutcome:
    """Replay a workflow task: run the code over history and return the new commands.

    Args:
        workflow_cls: The ``@defn`` class.
        history_events: The run's history, as a list of events (or a dict with ``events``).
        start_input: The start arguments: a decoded list, an Avro envelope, a bare blob or None.
        workflow_id: The workflow id, for ``ctx.workflow_id``.
        run_id: The run id; it seeds ``ctx.random()``. Taken from WorkflowStarted when empty.
        payload_codec: The task's codec; ``None`` or ``"avro"``.
        external_storage: Reserved for external payload storage; not used yet.
        external_storage_cache: Reserved, as above.

    Returns:
        The :class:`ReplayOutcome`.

    Raises:
        NonDeterministicReplayError: the code and the history disagree.
        PayloadError: a history value cannot be decoded (``UnsupportedPayloadCodec`` for JSON).
        WorkflowDefinitionError: the class is not registered properly or cannot take the input.
    """
    driver = _start(
        workflow_cls,
        history_events,
        start_input,
        workflow_id=workflow_id,
        run_id=run_id,
        payload_codec=payload_codec,
        record_new=True,
    )
    return _outcome(driver)


def _as_list(args: Any) -> list[Any]:
    if args is None:
        return []
    if isinstance(args, list | tuple):
        return list(args)
    return [args]


def query_state(
    workflow_cls: type,
    history_events: Any,
    start_input: Any,
    query_name: str,
    args: Any = None,
    *,
    workflow_id: str | None = None,
    run_id: str = "",
    payload_codec: str | None = None,
    external_storage: Any = None,
    external_storage_cache: Any = None,
) -> Any:
    """Replay a workflow to current state and invoke a registered query.

    The code runs only as far as history goes; no command is produced and no side-effect
    function runs for the first time.

    Args:
        workflow_cls: The ``@defn`` class.
        history_events: The run's history.
        start_input: The start arguments (as for :func:`replay`).
        query_name: The ``@query`` name.
        args: The query arguments (a list, or one value).
        workflow_id: The workflow id.
        run_id: The run id.
        payload_codec: ``None`` or ``"avro"``.
        external_storage: Reserved; not used yet.
        external_storage_cache: Reserved; not used yet.

    Returns:
        The handler's return value.

    Raises:
        QueryFailed: the name is unknown (``reason="rejected_unknown_query"``) or the handler
            raised (``reason="query_rejected"``).
    """
    definition = definition_of(workflow_cls)
    attr = definition.queries.get(query_name)
    if attr is None:
        raise QueryFailed(
            f"workflow {definition.name!r} has no query {query_name!r}",
            query_name=query_name,
            reason="rejected_unknown_query",
        )
    driver = _start(
        workflow_cls,
        history_events,
        start_input,
        workflow_id=workflow_id,
        run_id=run_id,
        payload_codec=payload_codec,
        record_new=False,
    )
    try:
        return getattr(driver.instance, attr)(*_as_list(args))
    except Exception as exc:
        raise QueryFailed(
            f"query {query_name!r} of workflow {definition.name!r} raised {type(exc).__name__}: {exc}",
            query_name=query_name,
            reason="query_rejected",
        ) from exc


def apply_update(
    workflow_cls: type,
    history_events: Any,
    start_input: Any,
    update_id: str,
    *,
    workflow_id: str | None = None,
    run_id: str = "",
    payload_codec: str | None = None,
    external_storage: Any = None,
    external_storage_cache: Any = None,
) -> ReplayOutcome:
    """Replay current workflow state and run one accepted update handler.

    The arguments come from the ``UpdateAccepted`` event for ``update_id``. The outcome holds
    one ``CompleteUpdate`` or ``FailUpdate``, except when a generator handler yields a step
    that history has not resolved yet: then it holds that step's command(s) and ``waiting``
    is True, and the next update task for the same id continues it.

    Args:
        workflow_cls: The ``@defn`` class.
        history_events: The run's history, including the ``UpdateAccepted`` event.
        start_input: The start arguments.
        update_id: The accepted update to run.
        workflow_id: The workflow id.
        run_id: The run id.
        payload_codec: ``None`` or ``"avro"``.
        external_storage: Reserved; not used yet.
        external_storage_cache: Reserved; not used yet.

    Returns:
        The :class:`ReplayOutcome` of the update task.
    """
    driver = _start(
        workflow_cls,
        history_events,
        start_input,
        workflow_id=workflow_id,
        run_id=run_id,
        payload_codec=payload_codec,
        record_new=False,
    )
    definition = driver.definition
    driver.commands = []
    driver.record_new = True
    outcome = _outcome(driver)
    outcome.completed = False
    outcome.waiting = False
    accepted = driver.history.accepted_updates.get(update_id)
    if accepted is None or update_id in driver.history.applied_updates:
        outcome.commands = [
            FailUpdate(update_id, f"no open accepted update {update_id!r} in this history", "UpdateNotFound")
        ]
        return outcome
    attr = definition.updates.get(accepted.name)
    if attr is None:
        outcome.commands = [
            FailUpdate(
                update_id, f"workflow {definition.name!r} has no update {accepted.name!r}", "UnknownUpdate"
            )
        ]
        return outcome
    args = h.decode_arguments(accepted.arguments)
    validator = definition.validators.get(accepted.name)
    if validator is not None:
        try:
            getattr(driver.instance, validator)(*args)
        except Exception as exc:
            outcome.commands = [FailUpdate(update_id, str(exc), "InvalidUpdate", exception_class_name(exc))]
            return outcome
    try:
        produced = getattr(driver.instance, attr)(*args)
        if inspect.isgenerator(produced):
            finished, produced = driver.drive_handler(produced)
            if not finished:
                outcome.commands = driver.commands
                outcome.waiting = True
                outcome.last_sequence = driver.seq
                return outcome
    except Exception as exc:
        driver._raise_fatal()
        outcome.commands = [
            FailUpdate(
                update_id, str(exc) or type(exc).__name__, type(exc).__name__, exception_class_name(exc)
            )
        ]
        return outcome
    outcome.commands = [*driver.commands, CompleteUpdate(update_id, produced)]
    outcome.last_sequence = driver.seq
    return outcome


class Replayer:
    """Replay captured workflow history without a live server.

    Register workflow classes, then call :meth:`replay` with a server-exported history list
    or a dict holding an ``events`` list (or a task root with ``history_events``). The
    workflow type and start input are read from ``WorkflowStarted`` unless given.

    Args:
        workflows: ``@defn`` classes.
    """

    def __init__(self, *, workflows: Iterable[type]) -> None:
        self._workflows: dict[str, type] = {}
        for cls in workflows:
            self._workflows[definition_of(cls).name] = cls

    def replay(
        self,
        history: Any,
        *,
        workflow_type: str | None = None,
        start_input: Any = None,
        workflow_id: str | None = None,
        run_id: str = "",
    ) -> ReplayOutcome:
        """Replay one history and return the outcome.

        Args:
            history: A list of events, a dict with ``events``, or a task root with
                ``history_events`` (whose ``payload_codec`` must be ``"avro"``).
            workflow_type: Overrides ``WorkflowStarted.workflow_type``.
            start_input: Overrides the input in ``WorkflowStarted`` (``arguments`` or ``input``).
            workflow_id: The workflow id for ``ctx.workflow_id``.
            run_id: The run id; taken from the history when empty.

        Returns:
            The :class:`ReplayOutcome`.

        Raises:
            WorkflowDefinitionError: no type can be found, or it is not registered here.
            NonDeterministicReplayError: the code and the history disagree.
        """
        events = _events_of(history)
        started: Mapping[str, Any] = {}
        for event in events:
            if (event.get("event_type") or event.get("type")) == "WorkflowStarted":
                started = event.get("payload") or {}
                break
        name = workflow_type or started.get("workflow_type")
        if not isinstance(name, str) or not name:
            raise WorkflowDefinitionError(
                "no workflow type given and the history has no WorkflowStarted type"
            )
        cls = self._workflows.get(name)
        if cls is None:
            raise WorkflowDefinitionError(f"workflow type {name!r} is not registered with this Replayer")
        if start_input is None:
            start_input = started["arguments"] if "arguments" in started else started.get("input")
            start_input = h.decode_arguments(start_input)
        return replay(
            cls,
            history,
            start_input,
            workflow_id=workflow_id,
            run_id=run_id,
        )
