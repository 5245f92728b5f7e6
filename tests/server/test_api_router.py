"""The route index settles exactly what Starlette's own matching would, or defers to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Match, Route

from durable_workflow_server.api._router import IndexedRouter
from durable_workflow_server.app import create_app
from durable_workflow_server.config import Settings


@pytest.fixture
def router(tmp_path: Path) -> IndexedRouter:
    app = create_app(Settings(db=str(tmp_path / "router.db")))
    assert isinstance(app.router, IndexedRouter)
    return app.router


def scope(method: str, path: str) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}


def concrete(path: str) -> str:
    """The route path with each ``{param}`` replaced by a value naming it."""
    return "/".join(f"v-{s[1:-1]}.%x" if s.startswith("{") else s for s in path.split("/"))


def test_every_route_and_verb_matches_as_in_starlette(router: IndexedRouter) -> None:
    checked = 0
    for route in router.routes:
        assert isinstance(route, Route)
        for method in route.methods or ():
            ours = scope(method, concrete(route.path))
            endpoint = router.lookup(ours)
            assert endpoint is not None, (method, route.path)
            theirs = scope(method, concrete(route.path))
            match, child = route.matches(theirs)
            assert match is Match.FULL
            assert ours["path_params"] == child["path_params"]
            assert ours["route"] is route
            checked += 1
    assert checked > 30


def test_merged_paths_call_the_endpoint_of_the_verb(router: IndexedRouter) -> None:
    start = router.lookup(scope("POST", "/api/workflows"))
    listing = router.lookup(scope("GET", "/api/workflows"))
    assert start is not None and listing is not None and start is not listing
    assert start.__name__ == "start" and listing.__name__ == "list_workflows"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/api/workflows"),  # wrong verb: Starlette answers 405
        ("GET", "/api/nowhere"),
        ("GET", "/api/workflows/"),  # a trailing slash is another route
        ("GET", "/api/workflows//runs"),  # an empty segment never fills a parameter
        ("POST", "/api/worker/workflow-tasks/t1/complete/extra"),
    ],
)
def test_what_the_index_cannot_settle_goes_to_starlette(
    router: IndexedRouter, method: str, path: str
) -> None:
    assert router.lookup(scope(method, path)) is None


def test_existing_path_params_are_kept(router: IndexedRouter) -> None:
    filled = scope("GET", "/api/workflows/wf-1/runs/run-2")
    filled["path_params"] = {"outer": "x"}
    assert router.lookup(filled) is not None
    assert filled["path_params"] == {"outer": "x", "workflow_id": "wf-1", "run_id": "run-2"}
