"""A Starlette router that finds a route by path segments instead of trying each regex.

Starlette's ``Router`` matches routes one by one; with our thirty-odd routes that costs more
than all the protocol checks of a request. This router walks a segment tree (static segments
before ``{param}`` ones) to the single candidate, confirms it with that route's own
``matches`` (so path parameters and methods behave exactly as in Starlette) and hands over.
Anything the tree cannot settle (unknown path, wrong verb, lifespan) falls back to the
ordinary linear scan, which produces the usual 404/405.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import BaseRoute, Match, Route, Router
from starlette.types import Receive, Scope, Send

_WILDCARD = "*"


class _Node:
    __slots__ = ("children", "route")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.route: Route | None = None


class IndexedRouter(Router):
    """``Router`` with an exact-path index in front of the linear scan."""

    def __init__(self, routes: list[BaseRoute], **kwargs: Any) -> None:
        """Index the plain ``Route`` objects among ``routes``.

        Args:
            routes: the route table (order is kept for the fallback scan).
            **kwargs: passed to :class:`starlette.routing.Router`.
        """
        super().__init__(routes, **kwargs)
        self._root = _Node()
        for route in routes:
            if isinstance(route, Route):
                node = self._root
                for segment in _segments(route.path):
                    key = _WILDCARD if segment.startswith("{") else segment
                    node = node.children.setdefault(key, _Node())
                if node.route is None:
                    node.route = route

    def lookup(self, scope: Scope) -> Route | None:
        """The route that fully matches an HTTP ``scope`` (path and verb), filled into ``scope``.

        None when the index cannot settle it (unknown path, wrong verb): ``Router`` answers.
        """
        route = _find(self._root, _segments(scope["path"]), 0)
        if route is None:
            return None
        match, child_scope = route.matches(scope)
        if match is not Match.FULL:
            return None
        scope.setdefault("router", self)
        scope["route"] = route
        scope.update(child_scope)
        return route

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Dispatch an HTTP request through the index, anything else through ``Router``."""
        if scope["type"] == "http":
            route = self.lookup(scope)
            if route is not None:
                await route.handle(scope, receive, send)
                return
        await super().app(scope, receive, send)


def _segments(path: str) -> list[str]:
    return path.split("/")


def _find(node: _Node, segments: list[str], index: int) -> Route | None:
    if index == len(segments):
        return node.route
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
