"""The HTTP API: routes, the protocol's check order, auth, and JSON envelopes.

Only this package knows HTTP. It talks to the domain through
:class:`durable_workflow_server.engine.Engine` and nothing else; ``app.py`` composes them.
"""

from durable_workflow_server.api._app import api_routes, build_api
from durable_workflow_server.api._auth import Authenticator, Principal
from durable_workflow_server.api._context import Api, Plane, RouteSpec
from durable_workflow_server.api._errors import ApiError

__all__ = [
    "Api",
    "ApiError",
    "Authenticator",
    "Plane",
    "Principal",
    "RouteSpec",
    "api_routes",
    "build_api",
]
