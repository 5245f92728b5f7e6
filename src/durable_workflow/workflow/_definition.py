"""Workflow registration: ``@defn`` and the ``@signal``/``@query``/``@update`` receiver marks.

Method decorators only tag the function. ``@defn`` then scans the class once and stores a
:class:`WorkflowDefinition` on it, so dispatch by receiver name never re-inspects the class
while a history is being replayed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast

from durable_workflow.errors import WorkflowDefinitionError

_F = TypeVar("_F", bound=Callable[..., Any])
_T = TypeVar("_T", bound=type)

# Attribute names used to tag methods; private so they never clash with author attributes.
_SIGNAL_MARK = "__dw_signal__"
_QUERY_MARK = "__dw_query__"
_UPDATE_MARK = "__dw_update__"
_VALIDATOR_MARK = "__dw_update_validator__"

DEFINITION_ATTR = "__workflow_definition__"

_registry: dict[str, type] = {}
_registry_lock = threading.Lock()


@dataclass(frozen=True)
class WorkflowDefinition:
    """What ``@defn`` learned about a workflow class.

    Handler maps go from the receiver name to the *method name*, so the replayer binds them
    on the instance it created for one replay.
    """

    name: str
    cls: type
    run: str = "run"
    signals: dict[str, str] = field(default_factory=dict)
    queries: dict[str, str] = field(default_factory=dict)
    updates: dict[str, str] = field(default_factory=dict)
    validators: dict[str, str] = field(default_factory=dict)


class UpdateMethod(Protocol):
    """A method marked with :func:`update`; ``.validator`` marks its validator."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the update handler."""

    def validator(self, fn: _F) -> _F:
        """Mark ``fn`` as the validator of this update."""


def _check_name(kind: str, name: object) -> str:
    if not isinstance(name, str) or not name:
        raise WorkflowDefinitionError(f"@{kind} needs a non-empty string name, got {name!r}")
    return name


def signal(name: str) -> Callable[[_F], _F]:
    """Mark a workflow method as the handler for an external signal.

    The replayer calls the method when a matching ``SignalReceived`` history event is
    reached, with the signal's decoded arguments as positional parameters. Its return value
    is ignored: mutate ``self`` to hand state to ``run``.

    Args:
        name: The signal name used by clients.

    Returns:
        A decorator that tags the method and returns it unchanged.
    """
    checked = _check_name("signal", name)

    def mark(fn: _F) -> _F:
        setattr(fn, _SIGNAL_MARK, checked)
        return fn

    return mark


def query(name: str) -> Callable[[_F], _F]:
    """Mark a workflow method as a read-only query handler.

    Query methods run against replayed state; they must not mutate ``self`` or do I/O.

    Args:
        name: The query name used by clients.

    Returns:
        A decorator that tags the method and returns it unchanged.
    """
    checked = _check_name("query", name)

    def mark(fn: _F) -> _F:
        setattr(fn, _QUERY_MARK, checked)
        return fn

    return mark


def update_validator(name: str) -> Callable[[_F], _F]:
    """Mark a workflow method as the validator for an update name.

    A validator takes the update's arguments and raises to reject them.

    Args:
        name: The update name it validates.

    Returns:
        A decorator that tags the method and returns it unchanged.
    """
    checked = _check_name("update_validator", name)

    def mark(fn: _F) -> _F:
        setattr(fn, _VALIDATOR_MARK, checked)
        return fn

    return mark


def update(name: str) -> Callable[[Callable[..., Any]], UpdateMethod]:
    """Mark a workflow method as an update handler.

    The handler may return a value or be a generator that yields commands (an activity, a
    timer) before returning. The returned function exposes ``.validator`` for the common
    pattern ``@approve.validator``.

    Args:
        name: The update name used by clients.

    Returns:
        A decorator that tags the method and gives it a ``validator`` attribute.
    """
    checked = _check_name("update", name)

    def mark(fn: Callable[..., Any]) -> UpdateMethod:
        setattr(fn, _UPDATE_MARK, checked)
        setattr(fn, "validator", update_validator(checked))  # noqa: B010 - dynamic attribute on a function
        return cast(UpdateMethod, fn)

    return mark


def defn(*, name: str) -> Callable[[_T], _T]:
    """Register a class as a workflow type under a language-neutral name.

    Scans the class (and its bases) for ``@signal``, ``@query``, ``@update`` and
    ``@update_validator`` methods once, stores the result as ``cls.__workflow_definition__``
    and adds the class to the process registry. Registering a name again replaces the earlier
    class, so a redeployed module or a test can redefine a type.

    Args:
        name: The workflow type name used on the wire.

    Returns:
        A class decorator that returns the class unchanged apart from the definition.

    Raises:
        WorkflowDefinitionError: no ``run`` method, or two methods claim one receiver name.
    """
    checked = _check_name("defn", name)

    def register(cls: _T) -> _T:
        if not callable(getattr(cls, "run", None)):
            raise WorkflowDefinitionError(
                f"workflow class {cls.__qualname__} has no run(self, ctx, ...) method"
            )
        tables: dict[str, dict[str, str]] = {
            _SIGNAL_MARK: {},
            _QUERY_MARK: {},
            _UPDATE_MARK: {},
            _VALIDATOR_MARK: {},
        }
        seen: set[str] = set()
        # Walk the MRO from the class itself so an override wins over its base.
        for klass in cls.__mro__:
            for attr, member in vars(klass).items():
                if attr in seen:
                    continue
                seen.add(attr)
                for mark, table in tables.items():
                    receiver = getattr(member, mark, None)
                    if receiver is None:
                        continue
                    if receiver in table and table[receiver] != attr:
                        raise WorkflowDefinitionError(
                            f"workflow {checked!r}: methods {table[receiver]!r} and {attr!r} "
                            f"both handle {receiver!r}"
                        )
                    table[receiver] = attr
        definition = WorkflowDefinition(
            name=checked,
            cls=cls,
            signals=tables[_SIGNAL_MARK],
            queries=tables[_QUERY_MARK],
            updates=tables[_UPDATE_MARK],
            validators=tables[_VALIDATOR_MARK],
        )
        setattr(cls, DEFINITION_ATTR, definition)
        with _registry_lock:
            _registry[checked] = cls
        return cls

    return register


def registry() -> dict[str, type]:
    """Return a copy of workflow types registered in this process.

    Returns:
        A new dict from workflow type name to class.
    """
    with _registry_lock:
        return dict(_registry)


def definition_of(cls: type) -> WorkflowDefinition:
    """The :class:`WorkflowDefinition` of a ``@defn`` class.

    Raises:
        WorkflowDefinitionError: the class was not decorated with ``@defn``.
    """
    definition = cls.__dict__.get(DEFINITION_ATTR)
    if not isinstance(definition, WorkflowDefinition):
        raise WorkflowDefinitionError(f"{getattr(cls, '__qualname__', cls)!r} is not a @workflow.defn class")
    return definition
