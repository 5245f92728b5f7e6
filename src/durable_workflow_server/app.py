"""The composition root: settings -> storage backend -> engine -> HTTP application.

This is the only module that picks a storage backend. The application's lifespan starts the
engine, which opens the storage (creating or migrating the schema and seeding the ``default``
namespace) and starts its background loops; on shutdown the engine stops its loops and then
closes the storage, so that no loop writes to a closed database.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from durable_workflow_server.api import build_api
from durable_workflow_server.config import ConfigError, Settings
from durable_workflow_server.engine import Engine, EngineSettings
from durable_workflow_server.storage import Storage

logger = logging.getLogger("durable_workflow_server")


def build_storage(settings: Settings) -> Storage:
    """Return the (unopened) storage backend named by ``settings.db``.

    Args:
        settings: the server settings.

    Returns:
        The backend.

    Raises:
        ConfigError: the DSN names PostgreSQL but its driver (asyncpg) is not installed.
    """
    # Backends are imported here, so that only the chosen one's driver is loaded.
    if settings.is_postgres:
        try:
            from durable_workflow_server.storage.postgres import PostgresStorage
        except ImportError as exc:
            raise ConfigError(
                f"--db/DW_DB names a PostgreSQL database, but its driver is missing ({exc}); "
                "install the postgres extra: pip install 'durable-workflow-python[postgres]'"
            ) from exc
        return PostgresStorage(settings.db)
    from durable_workflow_server.storage.sqlite import SqliteStorage

    return SqliteStorage(settings.db)


def create_app(settings: Settings) -> Starlette:
    """Build the server application; nothing is opened until its lifespan starts.

    Args:
        settings: the server settings.

    Returns:
        The ASGI application (serve it with uvicorn, lifespan on).

    Raises:
        ConfigError: the settings name an unavailable backend.
    """
    storage = build_storage(settings)
    engine = Engine(storage, EngineSettings())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The engine opens the storage (creating or migrating the schema) and, on stop, ends
        # its background loops before it closes the storage.
        await engine.start()
        try:
            yield
        finally:
            await engine.stop()
            logger.info("durable-workflow server stopped; storage closed")

    return build_api(engine, settings, lifespan=lifespan)


async def migrate_database(settings: Settings) -> None:
    """Create or upgrade the schema of ``settings.db`` (and seed ``default``), then close it.

    Args:
        settings: the server settings (only ``db`` is used).

    Raises:
        ConfigError: the settings name an unavailable backend.
    """
    storage = build_storage(settings)
    # Opening a backend applies every missing migration; that is all `migrate` needs.
    await storage.open()
    await storage.close()
