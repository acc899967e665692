"""The membership driver on the in-memory storage: joining, node ids, hand-over, leases, expiry."""

from __future__ import annotations

import asyncio
import time

import pytest

from kop_fast.cluster.placement import partition_key
from kop_fast.server import cluster as cluster_module
from kop_fast.server.cluster import ClusterJoinError, ClusterMembership
from kop_fast.storage.api import StorageError
from kop_fast.storage.memory import MemoryEngine, MemoryStorage

KEYS = [partition_key("t", i) for i in range(60)]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def eventually(check, within=5.0):
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def proxy(engine, port, node_id=None):
    return ClusterMembership(MemoryStorage(engine), "c1", "127.0.0.1", port, node_id)


def test_proxies_pick_free_ids_agree_and_split_the_partitions():
    async def scenario():
        engine = MemoryEngine()
        a, b, c = proxy(engine, 1), proxy(engine, 2), proxy(engine, 3)
        for p in (a, b, c):
            await p.join()
        assert [a.node_id, b.node_id, c.node_id] == [0, 1, 2]
        for p in (a, b, c):
            assert [m.node_id for m in p.members()] == [0, 1, 2]
        await eventually(lambda: all(sum(p.serving(k) for p in (a, b, c)) == 1 for k in KEYS))
        assert {a.owner(k)[0].node_id for k in KEYS} == {0, 1, 2}
        for p in (c, b, a):
            await p.leave()

    run(scenario())


def test_an_explicit_node_id_held_elsewhere_is_refused():
    async def scenario():
        engine = MemoryEngine()
        a = proxy(engine, 1, node_id=5)
        await a.join()
        with pytest.raises(ClusterJoinError, match="node id 5"):
            await proxy(engine, 2, node_id=5).join()
        again = proxy(engine, 1, node_id=5)  # same address: a restart that replaces a
        await again.join()
        assert again.node_id == 5 and a.view.members[5].instance == again.instance
        await eventually(lambda: not a.owns(KEYS[0]) and again.serving(KEYS[0]))
        await again.leave()
        await a.leave()

    run(scenario())


def test_a_graceful_leave_hands_over_and_a_newcomer_waits_for_the_old_owner():
    async def scenario():
        engine = MemoryEngine()
        a = proxy(engine, 1)
        await a.join()
        assert all(a.serving(k) for k in KEYS)
        b = proxy(engine, 2)
        await b.join()
        moved = [k for k in KEYS if b.owns(k)]
        assert moved
        # b owns them at once, but serves them only after a confirmed the epoch.
        await eventually(lambda: all(b.serving(k) for k in moved) and not any(a.owns(k) for k in moved))
        await b.leave()
        await eventually(lambda: all(a.serving(k) for k in KEYS))
        await a.leave()

    run(scenario())


def test_a_silent_member_is_expired_and_its_partitions_move(monkeypatch):
    monkeypatch.setattr(cluster_module, "LEASE_S", 0.6)
    monkeypatch.setattr(cluster_module, "SELF_LEASE_S", 0.4)
    monkeypatch.setattr(cluster_module, "HEARTBEAT_S", 0.1)

    async def scenario():
        engine = MemoryEngine()
        a, b = proxy(engine, 1), proxy(engine, 2)
        await a.join()
        await b.join()
        await eventually(lambda: any(b.serving(k) for k in KEYS))
        b._log.cut_off = StorageError("cut off")  # b can no longer reach the engine
        # b stops serving on its own lease before a takes over ...
        await eventually(lambda: not any(b.serving(k) for k in KEYS))
        assert 1 in a.view.members
        # ... and a expires it and serves everything.
        await eventually(lambda: all(a.serving(k) for k in KEYS))
        assert 1 not in a.view.members
        # Back in touch: b sees it was removed, joins again, and gets its partitions back.
        b._log.cut_off = None
        await eventually(lambda: any(b.serving(k) for k in KEYS))
        await b.leave()
        await a.leave()

    run(scenario())
