"""The PostgreSQL backend's announcer: wake-ups for other nodes, sent after commit in batches,
and only while another node listens (presence notes).

No database here: ``send`` is a fake. That the payloads reach another node is covered by
``test_storage_postgres_nodes.py``.
"""

from __future__ import annotations

import asyncio

from durable_workflow_server.storage import Wake
from durable_workflow_server.storage._pg_announce import Announcer, Peers
from durable_workflow_server.storage._pg_listen import decode, decode_note


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def with_peer(node: str = "node-b") -> Peers:
    peers = Peers(ttl=15.0)
    peers.saw(node)
    return peers


async def test_one_batch_in_flight_while_the_next_gathers_deduplicated() -> None:
    sent: list[list[Wake]] = []
    release = asyncio.Event()

    async def send(payloads: list[str]) -> None:
        wakes = [wake for payload in payloads for wake in decode(payload)[1]]
        sent.append(wakes)
        if len(sent) == 1:
            await release.wait()  # the first batch is slow: later announcements must gather

    announcer = Announcer("node-a", send, with_peer())
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
    runs = [Wake(("run", f"r{i}")) for i in range(5)]
    assert sent[1] == [Wake(("workflow_task", "default", "q"), "t"), *runs]


async def test_payloads_name_the_sending_node() -> None:
    got: list[str] = []

    async def send(payloads: list[str]) -> None:
        got.extend(payloads)

    announcer = Announcer("node-a", send, with_peer())
    announcer.announce([Wake(("run", "r1"))])
    await announcer.drain()
    assert [decode(p) for p in got] == [("node-a", [Wake(("run", "r1"))])]


async def test_a_failed_send_is_dropped_and_later_ones_still_go() -> None:
    calls: list[int] = []

    async def send(payloads: list[str]) -> None:
        calls.append(len(payloads))
        if len(calls) == 1:
            raise OSError("connection lost")

    announcer = Announcer("node-a", send, with_peer())
    announcer.announce([Wake(("run", "r1"))])
    await announcer.drain()
    announcer.announce([Wake(("run", "r2"))])
    await announcer.drain()
    assert calls == [1, 1] and announcer.batches == 2


async def test_a_node_alone_announces_nothing() -> None:
    async def send(payloads: list[str]) -> None:
        raise AssertionError("nothing should be sent")

    announcer = Announcer("node-a", send, Peers())
    announcer.announce([Wake(("run", "r1"))])
    announcer.announce([])
    await announcer.drain()
    assert announcer.batches == 0


async def test_presence_hello_here_bye_and_silence() -> None:
    got: list[tuple[str, str | None]] = []

    async def send(payloads: list[str]) -> None:
        got.extend((node, note) for node, _, note in map(decode_note, payloads))

    clock = Clock()
    peers = Peers(ttl=15.0, clock=clock)
    announcer = Announcer("node-a", send, peers)
    announcer.listening()  # says hello, and waits for its echo
    await announcer.drain()
    assert got == [("node-a", "hello")]
    assert not await announcer.introduced(timeout=0.01)
    announcer.heard("node-a", "hello")  # our own hello came back through the database
    assert await announcer.introduced(timeout=0.01)
    assert peers.alive() == []  # our own notes make no peer

    announcer.heard("node-b", "hello")  # a newcomer: it becomes a peer and gets an answer
    await announcer.drain()
    assert peers.alive() == ["node-b"] and got[-1] == ("node-a", "here")
    clock.now += 10
    announcer.heard("node-c", None)  # any payload is a sign of life
    clock.now += 10
    assert peers.alive() == ["node-c"]  # node-b was silent for 20 s > 15 s
    announcer.heard("node-c", "bye")
    assert peers.alive() == []

    await announcer.stop()
    assert got[-1] == ("node-a", "bye")


async def test_the_heartbeat_says_here() -> None:
    got: list[str | None] = []

    async def send(payloads: list[str]) -> None:
        got.extend(decode_note(p)[2] for p in payloads)

    announcer = Announcer("node-a", send, Peers())
    announcer.listening()
    announcer.start_heartbeat(every=0.01)
    await asyncio.sleep(0.05)
    await announcer.stop()
    assert got[0] == "hello" and got.count("here") >= 2 and got[-1] == "bye"


async def test_a_node_that_never_listened_says_no_bye() -> None:
    async def send(payloads: list[str]) -> None:
        raise AssertionError("nothing should be sent")

    announcer = Announcer("node-a", send, Peers())
    await announcer.stop()
    assert announcer.batches == 0
