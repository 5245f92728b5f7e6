"""The PostgreSQL backend's announcer: wake-ups for other nodes, sent after commit in batches.

No database here: ``send`` is a fake. That the payloads reach another node is covered by
``test_storage_postgres_nodes.py``.
"""

from __future__ import annotations

import asyncio

from durable_workflow_server.storage import Wake
from durable_workflow_server.storage._pg_listen import Announcer, decode


async def test_one_batch_in_flight_while_the_next_gathers_deduplicated() -> None:
    sent: list[list[Wake]] = []
    release = asyncio.Event()

    async def send(payloads: list[str]) -> None:
        wakes = [wake for payload in payloads for wake in decode(payload)[1]]
        sent.append(wakes)
        if len(sent) == 1:
            await release.wait()  # the first batch is slow: later announcements must gather

    announcer = Announcer("node-a", send)
    announcer.announce([Wake(("run", "r1"))])
    await asyncio.sleep(0)
    for i in range(50):
        announcer.announce([Wake(("workflow_task", "default", "q"), "t"), Wake(("run", f"r{i % 5}"))])
    await asyncio.sleep(0.01)
    assert len(sent) == 1  # nothing else is sent while the first batch is on its way
    release.set()
    await announcer.drain()
    assert announcer.batches == 2
    assert sent[0] == [Wake(("run", "r1"))]
    assert sent[1] == [
        Wake(("workflow_task", "default", "q"), "t"),
        *(Wake(("run", f"r{i}")) for i in range(5)),
    ]


async def test_payloads_name_the_sending_node() -> None:
    got: list[str] = []

    async def send(payloads: list[str]) -> None:
        got.extend(payloads)

    announcer = Announcer("node-a", send)
    announcer.announce([Wake(("run", "r1"))])
    await announcer.drain()
    assert [decode(p) for p in got] == [("node-a", [Wake(("run", "r1"))])]


async def test_a_failed_send_is_dropped_and_later_ones_still_go() -> None:
    calls: list[int] = []

    async def send(payloads: list[str]) -> None:
        calls.append(len(payloads))
        if len(calls) == 1:
            raise OSError("connection lost")

    announcer = Announcer("node-a", send)
    announcer.announce([Wake(("run", "r1"))])
    await announcer.drain()
    announcer.announce([Wake(("run", "r2"))])
    await announcer.drain()
    assert calls == [1, 1] and announcer.batches == 2


async def test_nothing_to_announce_sends_nothing() -> None:
    async def send(payloads: list[str]) -> None:
        raise AssertionError("nothing should be sent")

    announcer = Announcer("node-a", send)
    announcer.announce([])
    await announcer.drain()
    assert announcer.batches == 0
