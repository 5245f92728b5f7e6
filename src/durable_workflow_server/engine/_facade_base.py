"""What the facade classes share: the core handle and the storage-error translation."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from durable_workflow_server.engine._core import Core
from durable_workflow_server.engine._errors import EngineError
from durable_workflow_server.storage import StorageError

P = ParamSpec("P")
T = TypeVar("T")


def storage_errors(method: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Report a storage failure anywhere below a facade method as ``unavailable`` (503)."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except StorageError as exc:
            raise EngineError("unavailable", "storage_unavailable", f"storage failed: {exc}") from exc

    return wrapper


class FacadeBase:
    """Holds the shared :class:`Core`; the facade mixins call the engine modules with it."""

    _core: Core
