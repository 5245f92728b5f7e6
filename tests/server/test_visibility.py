"""The visibility query language: parsing (with positions of errors), binding to typed
attributes, the render/parse round trip (hypothesis), and queries answered by the storage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from durable_workflow_server.engine import Engine, EngineError, ManualClock
from durable_workflow_server.engine._visibility import bind, is_language, parse, render
from durable_workflow_server.storage import And, Attr, Compare, Expr, In, Or, Storage

NS = "default"


def error_of(text: str, custom: dict[str, str] | None = None) -> EngineError:
    with pytest.raises(EngineError) as caught:
        bind(parse(text), custom or {}, text)
    assert caught.value.kind == "bad_request" and caught.value.reason == "invalid_query"
    return caught.value


def test_parse_the_documented_example() -> None:
    text = (
        "WorkflowType = 'orders' AND Status = 'running' AND CustomerId = 'c-1' "
        "AND StartTime > '2026-01-01T00:00:00Z'"
    )
    assert parse(text) == And(
        (
            Compare("WorkflowType", "=", "orders"),
            Compare("Status", "=", "running"),
            Compare("CustomerId", "=", "c-1"),
            Compare("StartTime", ">", "2026-01-01T00:00:00Z"),
        )
    )


def test_precedence_parentheses_in_and_literals() -> None:
    assert parse("a = 1 OR b = 2 and c = 3") == Or(
        (Compare("a", "=", 1), And((Compare("b", "=", 2), Compare("c", "=", 3))))
    )
    assert parse("(a = 1 OR b = 2) AND c <> 'x'") == And(
        (Or((Compare("a", "=", 1), Compare("b", "=", 2))), Compare("c", "!=", "x"))
    )
    assert parse("k NOT IN ('it''s', 2.5, -3, true)") == In("k", ("it's", 2.5, -3, True), negated=True)
    assert parse("k in (false)") == In("k", (False,))


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("", 0),
        ("a = 'open", 4),
        ("a = 1 AND", 9),
        ("a 1", 2),
        ("a = 1 b = 2", 6),
        ("a = @", 4),
        ("(a = 1", 6),
        ("a IN 1", 5),
        ("a = 1 AND (b = 2 OR)", 19),
        ("(" * 40 + "a = 1" + ")" * 40, 32),
    ],
)
def test_syntax_errors_point_at_the_problem(text: str, position: int) -> None:
    assert error_of(text).extra["position"] == position


def test_binding() -> None:
    custom = {"CustomerId": "keyword", "Amount": "int", "Vip": "bool", "Due": "datetime", "Score": "double"}
    bound = bind(parse("Status = 'running' AND Amount >= 3 AND Due < '2026-01-01T00:00:00Z'"), custom, "")
    assert bound == And(
        (
            In(Attr("Status", "text", True), ("pending", "running", "waiting")),
            Compare(Attr("Amount", "int"), ">=", 3),
            Compare(Attr("Due", "time"), "<", 1767225600.0),
        )
    )
    assert bind(parse("Status != 'running'"), {}, "") == In(
        Attr("Status", "text", True), ("pending", "running", "waiting"), negated=True
    )
    assert error_of("Colour = 'red'").extra["position"] == 0
    assert error_of("WorkflowType = 'x' AND Amount = 'many'", custom).extra["position"] == 23
    assert error_of("Amount = 1.5", custom).reason == "invalid_query"
    assert error_of("Vip > true", custom).reason == "invalid_query"
    assert error_of("StartTime > 'yesterday'").reason == "invalid_query"
    assert error_of("Status > 'a'").reason == "invalid_query"


def test_plain_words_are_substrings() -> None:
    assert not is_language("order-42") and not is_language("foo AND bar")
    assert is_language("WorkflowId = 'x'") and is_language("a IN ('x')")


_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(
    lambda n: n.upper() not in {"AND", "OR", "IN", "NOT", "TRUE", "FALSE"}
)
_values = st.one_of(
    st.text(max_size=8),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.booleans(),
)
_leaves = st.one_of(
    st.builds(Compare, _names, st.sampled_from(["=", "!=", "<", ">", "<=", ">="]), _values),
    st.builds(In, _names, st.lists(_values, min_size=1, max_size=4).map(tuple), st.booleans()),
)


def _trees(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    items = st.lists(children, min_size=2, max_size=4).map(tuple)
    return st.one_of(st.builds(And, items), st.builds(Or, items))


@given(st.recursive(_leaves, _trees, max_leaves=12))
def test_parse_render_round_trip(tree: Expr) -> None:
    assert parse(render(tree)) == tree


# --- answered by the storage backend -----------------------------------------------------------


@pytest.fixture
async def engine(engine_storage: Storage) -> AsyncIterator[Engine]:
    eng = Engine(engine_storage, clock=ManualClock(1_800_000_000.0))
    await eng.start(background=False)
    yield eng
    await eng.stop()


async def ids(engine: Engine, query: str, **kw: Any) -> set[str]:
    page = await engine.list_workflows(NS, query=query, **kw)
    return {row["workflow_id"] for row in page["workflows"]}


async def test_queries_on_system_and_custom_attributes(engine: Engine) -> None:
    await engine.register_search_attribute(NS, {"name": "Tier", "type": "keyword"})
    await engine.register_search_attribute(NS, {"name": "Score", "type": "double"})
    await engine.register_search_attribute(NS, {"name": "Tags", "type": "keyword_list"})
    rows = [("v1", "gold", 1.5, ["a", "b"]), ("v2", "silver", 2, ["b"]), ("v3", "gold", 9.25, [])]
    for wid, tier, score, tags in rows:
        await engine.start_workflow(
            NS,
            {"workflow_id": wid, "workflow_type": "vis", "task_queue": "q",
             "search_attributes": {"Tier": tier, "Score": score, "Tags": tags}},
        )  # fmt: skip
    await engine.terminate_workflow(NS, "v3", None, reason="x")
    assert await ids(engine, "Tier = 'gold'") == {"v1", "v3"}
    assert await ids(engine, "Tier = 'gold' AND Status = 'running'") == {"v1"}
    assert await ids(engine, "Score > 1.9 AND Score < 3") == {"v2"}
    assert await ids(engine, "Tags = 'b'") == {"v1", "v2"}
    assert await ids(engine, "Tags IN ('a') OR Status = 'terminated'") == {"v1", "v3"}
    assert await ids(engine, "Tier != 'gold' AND WorkflowType = 'vis'") == {"v2"}
    page = await engine.list_workflows(NS, query="WorkflowType = 'vis'", page_size=2)
    assert page["workflow_count"] == 3 and page["next_page_token"] is not None
    rest = await engine.list_workflows(
        NS, query="WorkflowType = 'vis'", page_size=2, page_token=page["next_page_token"]
    )
    assert len(rest["workflows"]) == 1 and rest["next_page_token"] is None
    assert await ids(engine, "v2") == {"v2"}  # a plain word stays a substring match


async def test_registration_rules(engine: Engine) -> None:
    assert (await engine.register_search_attribute(NS, {"name": "A1", "type": "int"}))["outcome"] == "created"
    for body, reason in [
        ({"name": "A1", "type": "int"}, "attribute_already_exists"),
        ({"name": "StartTime", "type": "datetime"}, "name_reserved"),
        ({"name": "1bad", "type": "int"}, "validation_failed"),
        ({"name": "Ok", "type": "float"}, "validation_failed"),
    ]:
        with pytest.raises(EngineError) as err:
            await engine.register_search_attribute(NS, body)
        assert err.value.reason == reason
    listed = await engine.list_search_attributes(NS)
    assert (
        listed["custom_attributes"] == {"A1": "int"}
        and listed["system_attributes"]["WorkflowId"] == "keyword"
    )
    with pytest.raises(EngineError) as err:
        await engine.delete_search_attribute(NS, "RunId")
    assert err.value.reason == "system_attribute"
    assert (await engine.delete_search_attribute(NS, "A1"))["outcome"] == "deleted"
    with pytest.raises(EngineError) as err:
        await engine.delete_search_attribute(NS, "A1")
    assert err.value.reason == "attribute_not_found"
    await engine.register_search_attribute(NS, {"name": "A1", "type": "keyword"})  # the name is free again


async def test_upserts_and_deletes_are_reindexed(engine: Engine) -> None:
    await engine.register_worker(NS, {"worker_id": "w1", "task_queue": "q", "runtime": "python"})
    await engine.register_search_attribute(NS, {"name": "Stage", "type": "keyword"})
    await engine.start_workflow(
        NS,
        {
            "workflow_id": "u1",
            "workflow_type": "vis",
            "task_queue": "q",
            "search_attributes": {"Stage": "new"},
        },
    )

    async def upsert(attributes: dict[str, Any]) -> None:
        task = (await engine.poll_workflow_task(NS, worker_id="w1", task_queue="q", timeout_seconds=0))[
            "task"
        ]
        assert task is not None
        await engine.complete_workflow_task(
            NS,
            task["task_id"],
            lease_owner="w1",
            attempt=task["workflow_task_attempt"],
            commands=[{"type": "upsert_search_attributes", "attributes": attributes},
                      {"type": "start_timer", "delay_seconds": 60}],
        )  # fmt: skip
        await engine.signal_workflow(NS, "u1", None, "poke", input=[], request_id=None)

    assert await ids(engine, "Stage = 'new'") == {"u1"}
    await upsert({"Stage": "paid"})
    assert await ids(engine, "Stage = 'new'") == set() and await ids(engine, "Stage = 'paid'") == {"u1"}
    await upsert({"Stage": None})
    assert await ids(engine, "Stage = 'paid'") == set() and await ids(engine, "Stage != 'paid'") == {"u1"}
