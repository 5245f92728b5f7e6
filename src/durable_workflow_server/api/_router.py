"""A Starlette router that finds a route by path segments instead of trying each regex.

Starlette's ``Router`` matches routes one by one; with our thirty-odd routes that costs more
than all the protocol checks of a request. This router walks a segment tree (static segments
before ``{param}`` ones) to the single candidate and picks its endpoint by verb, filling the
path parameters from the segments it walked: every parameter is a plain ``{name}`` (Starlette's
``str`` convertor, one non-empty segment, taken as is), so that is exactly what
``Route.matches`` would produce, without its regex. Anything the tree cannot settle (unknown
path, wrong verb, lifespan) falls back to the ordinary linear scan, which produces the usual
404/405.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.convertors import StringConvertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, Router
from starlette.types import Receive, Scope, Send

__all__ = ["Endpoint", "IndexedRouter"]

Endpoint = Callable[[Request], Awaitable[Response]]

_WILDCARD = "*"


class _Target:
    """What a full path leads to: its route, the parameter names by segment, the endpoints."""

    __slots__ = ("endpoints", "params", "route")

    def __init__(self, route: Route, params: tuple[tuple[int, str], ...], endpoints: dict[str, Endpoint]):
        self.route = route
        self.params = params
        self.endpoints = endpoints


class _Node:
    __slots__ = ("children", "target")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.target: _Target | None = None


class IndexedRouter(Router):
    """``Router`` with an exact-path index in front of the linear scan."""

    def __init__(
        self,
        routes: list[BaseRoute],
        *,
        endpoints: Mapping[str, Mapping[str, Endpoint]] | None = None,
        **kwargs: Any,
    ) -> None:
        """Index the plain ``Route`` objects among ``routes``.

        Args:
            routes: the route table (order is kept for the fallback scan).
            endpoints: per path, the endpoint of each verb when a route serves several verbs
                through one dispatching endpoint; the index then calls them directly.
            **kwargs: passed to :class:`starlette.routing.Router`.
        """
        super().__init__(routes, **kwargs)
        self._root = _Node()
        for route in routes:
            if not isinstance(route, Route) or not _plain_params(route):
                continue
            node = self._root
            params: list[tuple[int, str]] = []
            for index, segment in enumerate(_segments(route.path)):
                if segment.startswith("{"):
                    params.append((index, segment[1:-1].partition(":")[0]))
                    segment = _WILDCARD
                node = node.children.setdefault(segment, _Node())
            if node.target is None:
                by_verb = dict((endpoints or {}).get(route.path) or {})
                for method in route.methods or ():
                    by_verb.setdefault(method, route.endpoint)
                node.target = _Target(route, tuple(params), by_verb)

    def lookup(self, scope: Scope) -> Endpoint | None:
        """The endpoint for an HTTP ``scope`` (path and verb), with the scope filled in as by
        ``Route.matches``.

        None when the index cannot settle it (unknown path, wrong verb): ``Router`` answers.
        """
        segments = _segments(scope["path"])
        target = _find(self._root, segments, 0)
        if target is None:
            return None
        endpoint = target.endpoints.get(scope["method"])
        if endpoint is None:
            return None
        path_params = dict(scope.get("path_params") or ())
        for index, name in target.params:
            path_params[name] = segments[index]
        scope.setdefault("router", self)
        scope["route"] = target.route
        scope["endpoint"] = target.route.endpoint
        scope["path_params"] = path_params
        return endpoint

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Dispatch an HTTP request through the index, anything else through ``Router``."""
        if scope["type"] == "http":
            endpoint = self.lookup(scope)
            if endpoint is not None:
                response = await endpoint(Request(scope, receive, send))
                await response(scope, receive, send)
                return
        await super().app(scope, receive, send)


def _plain_params(route: Route) -> bool:
    # Only `{name}` parameters (str convertor) can be filled from one segment as is.
    whole_segments = all(
        segment.startswith("{") and segment.endswith("}") and segment.count("{") == 1
        for segment in _segments(route.path)
        if "{" in segment
    )
    return whole_segments and all(type(c) is StringConvertor for c in route.param_convertors.values())


def _segments(path: str) -> list[str]:
    return path.split("/")


def _find(node: _Node, segments: list[str], index: int) -> _Target | None:
    if index == len(segments):
        return node.target
    child = node.children.get(segments[index])
    if child is not None:
        found = _find(child, segments, index + 1)
        if found is not None:
            return found
    # An empty segment ("//", a trailing "/") never fills a parameter, as in Starlette.
    wildcard = node.children.get(_WILDCARD)
    if wildcard is not None and segments[index]:
        return _find(wildcard, segments, index + 1)
    return None
