"""Durable Workflow for Python: durable execution with plain Python generators.

Everything a typical program needs is importable from here::

    from durable_workflow import Client, Worker, activity, workflow

Names are imported on first use, so ``import durable_workflow`` stays cheap: it loads no HTTP
library and never the server. The packages behind the names:

- :mod:`durable_workflow.client`: ``Client``, ``WorkflowHandle`` and result types.
- :mod:`durable_workflow.worker`: ``Worker``.
- :mod:`durable_workflow.workflow`, :mod:`durable_workflow.activity`: authoring APIs.
- :mod:`durable_workflow.errors`, :mod:`durable_workflow.serializer`,
  :mod:`durable_workflow.retry_policy`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from durable_workflow import activity, errors, retry_policy, serializer, workflow
    from durable_workflow.client import Client, WorkflowHandle
    from durable_workflow.retry_policy import (
        ActivityRetryPolicy,
        ChildWorkflowRetryPolicy,
        TransportRetryPolicy,
    )
    from durable_workflow.worker import Worker

# name -> (module, attribute or None for the module itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    "Client": ("durable_workflow.client", "Client"),
    "WorkflowHandle": ("durable_workflow.client", "WorkflowHandle"),
    "Worker": ("durable_workflow.worker", "Worker"),
    "ActivityRetryPolicy": ("durable_workflow.retry_policy", "ActivityRetryPolicy"),
    "ChildWorkflowRetryPolicy": ("durable_workflow.retry_policy", "ChildWorkflowRetryPolicy"),
    "TransportRetryPolicy": ("durable_workflow.retry_policy", "TransportRetryPolicy"),
    "activity": ("durable_workflow.activity", None),
    "errors": ("durable_workflow.errors", None),
    "retry_policy": ("durable_workflow.retry_policy", None),
    "serializer": ("durable_workflow.serializer", None),
    "workflow": ("durable_workflow.workflow", None),
}

__all__ = [
    "ActivityRetryPolicy",
    "ChildWorkflowRetryPolicy",
    "Client",
    "TransportRetryPolicy",
    "Worker",
    "WorkflowHandle",
    "__version__",
    "activity",
    "errors",
    "retry_policy",
    "serializer",
    "workflow",
]


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'durable_workflow' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
