"""Search attributes and the visibility query, end to end: registration, start-time and
upserted attributes, memo, AND/OR/parentheses/IN/comparisons, paging, and 400s that point
at the problem."""

from __future__ import annotations

import asyncio

import pytest
from e2e_lifecycle_workflows import LIFECYCLE_ACTIVITIES, LIFECYCLE_WORKFLOWS
from e2e_support import event_types, running_worker, unique

from durable_workflow import Client
from durable_workflow.errors import Conflict, ServerError


async def _ids(client: Client, query: str, page_size: int = 50) -> set[str]:
    found: list[str] = []
    token = None
    while True:
        page = await client.list_workflows(query=query, page_size=page_size, next_page_token=token)
        found.extend(row.workflow_id for row in page.workflows)
        if not page.next_page_token:
            break
        token = page.next_page_token
    assert len(found) == len(set(found))  # paging never repeats a row
    return set(found)


async def test_visibility_queries(client: Client) -> None:
    await client.register_search_attribute("CustomerId", "keyword")
    await client.register_search_attribute("Stage", "keyword")
    await client.register_search_attribute("Amount", "int")
    with pytest.raises(Conflict) as dup:
        await client.register_search_attribute("Amount", "int")
    assert dup.value.reason == "attribute_already_exists"
    listed = await client.list_search_attributes()
    assert listed["custom_attributes"] == {"Amount": "int", "CustomerId": "keyword", "Stage": "keyword"}
    assert listed["system_attributes"]["StartTime"] == "datetime"

    queue, tag = unique("q"), unique("t")
    plan = [("c-1", 10), ("c-1", 30), ("c-2", 20), ("c-3", 40)]
    async with running_worker(client, queue, workflows=LIFECYCLE_WORKFLOWS, activities=LIFECYCLE_ACTIVITIES):
        handles = {}
        for index, (customer, amount) in enumerate(plan):
            handle = await client.start_workflow(
                workflow_type="lc-orders",
                workflow_id=f"{tag}-{index}",
                task_queue=queue,
                input=[customer, 3 if index else 1],
                search_attributes={"Amount": amount},
                memo={"note": f"order {index}"},
            )
            handles[index] = handle
        for handle in handles.values():  # every run has upserted CustomerId and Stage
            for _ in range(100):
                if "SearchAttributesUpserted" in event_types(await handle.history()):
                    break
                await asyncio.sleep(0.05)
        await handles[0].result(timeout=20)  # order 0 is completed, the others still run
        ours = f"WorkflowType = 'lc-orders' AND WorkflowId IN ('{tag}-0', '{tag}-1', '{tag}-2', '{tag}-3')"
        assert await _ids(client, ours, page_size=1) == {f"{tag}-{i}" for i in range(4)}
        running_c1 = (
            f"WorkflowType = 'lc-orders' AND Status = 'running' AND CustomerId = 'c-1' "
            f"AND StartTime > '2026-01-01T00:00:00Z' AND WorkflowId > '{tag}'"
        )
        assert await _ids(client, running_c1) == {f"{tag}-1"}
        assert await _ids(client, f"({ours}) AND (CustomerId = 'c-2' OR Amount > 35)") == {
            f"{tag}-2",
            f"{tag}-3",
        }
        assert await _ids(client, f"({ours}) AND CustomerId NOT IN ('c-1', 'c-2')") == {f"{tag}-3"}
        assert await _ids(client, f"({ours}) AND Amount <= 20 AND Stage = 'placed'") == {
            f"{tag}-0",
            f"{tag}-2",
        }
        assert await _ids(client, f"({ours}) AND Status = 'completed'") == {f"{tag}-0"}
        assert await _ids(client, f"({ours}) AND CustomerId != 'c-1'") == {f"{tag}-2", f"{tag}-3"}
        assert await _ids(client, tag) == {f"{tag}-{i}" for i in range(4)}  # a plain word: substring

        described = await handles[1].describe()
        assert described.raw["memo"] == {"note": "order 1"}
        assert described.raw["search_attributes"] == {"Amount": 30, "CustomerId": "c-1", "Stage": "placed"}

        with pytest.raises(ServerError) as unknown:
            await client.list_workflows(query="Colour = 'red'")
        assert unknown.value.status == 400 and unknown.value.reason == "invalid_query"
        assert unknown.value.body["position"] == 0
        with pytest.raises(ServerError) as syntax:
            await client.list_workflows(query="CustomerId = 'c-1' AND (Amount > ")
        assert syntax.value.status == 400 and syntax.value.body["position"] == 33  # the end
        with pytest.raises(ServerError) as typed:
            await client.list_workflows(query="Amount = 'many'")
        assert typed.value.status == 400 and typed.value.reason == "invalid_query"

        await client.delete_search_attribute("Stage")
        with pytest.raises(ServerError) as gone:
            await client.list_workflows(query="Stage = 'placed'")
        assert gone.value.reason == "invalid_query"
        for handle in handles.values():
            if handle is not handles[0]:
                await handle.terminate(reason="test done")
