"""The durable-execution engine: domain rules over the storage interface, no HTTP, no SQL.

The HTTP layer calls only :class:`Engine` (methods listed in docs/server-internals.md) and
turns :class:`EngineError` into a status and a ``reason``.
"""

from durable_workflow_server.engine._clock import Clock, ManualClock, SystemClock
from durable_workflow_server.engine._engine import Engine
from durable_workflow_server.engine._errors import EngineError
from durable_workflow_server.engine._settings import EngineSettings

__all__ = ["Clock", "Engine", "EngineError", "EngineSettings", "ManualClock", "SystemClock"]
