"""Health, readiness and cluster info (control-plane §5).

``/api/health`` and ``/api/ready`` are public and need no version header; ``/api/cluster/info``
accepts any role, needs no version header, and does not require the namespace to exist.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from starlette.routing import Route

from durable_workflow_server.api._auth import ANY_ROLE
from durable_workflow_server.api._checks import route
from durable_workflow_server.api._context import DEFAULT_NAMESPACE, Api, Call, Plane, Reply, RouteSpec

logger = logging.getLogger("durable_workflow_server.api")

_PUBLIC = RouteSpec(Plane.PUBLIC, check_namespace=False)
_CLUSTER = RouteSpec(Plane.CLUSTER, ANY_ROLE, check_namespace=False)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


async def health(call: Call) -> Reply:
    """``GET /api/health``: 200 ``serving`` when storage answers, else 503 ``unavailable``."""
    try:
        checks = await call.engine.health()
    except Exception:  # any failure to answer means "not serving", never a 500
        logger.warning("health check failed", exc_info=True)
        return 503, {"status": "unavailable", "timestamp": _now(), "checks": {"database": "unavailable"}}
    return 200, {"status": "serving", "timestamp": _now(), "checks": dict(checks)}


async def ready(call: Call) -> Reply:
    """``GET /api/ready``: 200 when storage, schema, default namespace and auth are all ok."""
    checks: dict[str, dict[str, str]] = {}
    try:
        reported = await call.engine.health()
        database_ok = reported.get("database") == "ok"
        checks["database"] = {"status": "ok" if database_ok else "unavailable"}
        # The schema is applied before the engine starts; a healthy engine implies migrations ran.
        checks["migrations"] = {"status": "ok" if database_ok else "unavailable"}
        has_default = await call.engine.namespace_exists(DEFAULT_NAMESPACE)
        checks["default_namespace"] = (
            {"status": "ok"}
            if has_default
            else {"status": "missing", "remediation": "Run `dw server migrate` to seed it."}
        )
    except Exception:  # any failure to answer means "not ready", never a 500
        logger.warning("readiness check failed", exc_info=True)
        checks["database"] = {"status": "unavailable"}
        checks["migrations"] = {"status": "unavailable"}
        checks["default_namespace"] = {"status": "unavailable"}
    # Settings refuse token auth without a token at startup, so a running server's auth is ok.
    checks["auth"] = {"status": "ok"}
    is_ready = all(check["status"] == "ok" for check in checks.values())
    return (200 if is_ready else 503), {
        "status": "ready" if is_ready else "not_ready",
        "timestamp": _now(),
        "checks": checks,
    }


async def cluster_info(call: Call) -> Reply:
    """``GET /api/cluster/info``: the server's protocol manifests and capabilities."""
    # A shallow copy: the document is shared, and the renderer may add keys to the top level.
    return 200, dict(call.api.cluster_info)


def routes(api: Api) -> list[Route]:
    """Return this resource's routes."""
    return [
        route(api, "/api/health", "GET", _PUBLIC, health),
        route(api, "/api/ready", "GET", _PUBLIC, ready),
        route(api, "/api/cluster/info", "GET", _CLUSTER, cluster_info),
    ]
