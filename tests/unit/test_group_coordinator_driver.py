"""The asyncio driver of the group coordinator, on a storage whose offsets log the test controls.

Checks what the state machine's tests cannot: waiters resolved only from
completions, responses held until the write is persisted, timers armed from
next_deadline_ms without polling, replay after a restart, NOT_COORDINATOR when
ownership cannot be taken or is lost, and shutdown (parked requests answered,
in-flight writes drained).
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

from kop_fast.storage.api import StorageError
from kop_fast.protocol.errors import ErrorCode
from kop_fast.coordinator import (
    HeartbeatRequest,
    JoinRequest,
    OffsetCommitPartition,
    OffsetCommitRequest,
    OffsetFetchRequest,
    SyncRequest,
)
from kop_fast.server.group_coordinator import GroupCoordinator


class FakeLog:
    def __init__(self, topic: "FakeTopic", index: int) -> None:
        self.name = f"offsets-partition-{index}"
        self.owner = topic
        self.index = index
        self.connected = True
        self.released = False

    async def acquire_and_replay(self):
        if self.owner.fail_acquire:
            raise StorageError("held elsewhere")
        self.owner.acquired.append(self)
        return list(self.owner.store.setdefault(self.index, []))

    def owned(self) -> bool:
        return self.connected

    def append(self, records):
        fut = asyncio.get_running_loop().create_future()
        self.owner.appends.append((self.index, list(records), fut))
        if self.owner.auto_persist:
            self.owner.persist_all()
        return fut

    async def release(self) -> None:
        self.released = True


class FakeTopic:
    def __init__(self, store=None, auto_persist: bool = True) -> None:
        self.store: dict[int, list] = store if store is not None else {}
        self.auto_persist = auto_persist
        self.fail_acquire = False
        self.appends: list = []
        self.acquired: list[FakeLog] = []

    # -- the parts of the storage interface the coordinator uses --------------------------------
    def offsets_log(self, index: int) -> FakeLog:
        return FakeLog(self, index)

    def cached_topic(self, name: str):
        return None

    def mirror_commit(self, group_id, topic, partition, offset) -> None:
        raise AssertionError("nothing is mirrored for unknown topics")

    def persist_all(self) -> None:
        for index, records, fut in self.appends:
            if not fut.done():
                self.store.setdefault(index, []).extend(records)
                fut.set_result(None)


async def make_coordinator(topic: FakeTopic, *, delay_ms: int = 0, min_session_ms: int = 0) -> GroupCoordinator:
    settings = SimpleNamespace(offsets_topic_num_partitions=4, offsets_topic="persistent://public/kafka/offsets",
                               group_min_session_timeout_ms=min_session_ms,
                               group_initial_rebalance_delay_ms=delay_ms,
                               kafka_tenant="public", kafka_namespace="default")
    coordinator = GroupCoordinator(settings, topic)
    await coordinator.start()
    return coordinator


def join_request(group: str, member_id: str = "", session_ms: int = 10_000) -> JoinRequest:
    return JoinRequest(group_id=group, member_id=member_id, client_id="c", client_host="/127.0.0.1",
                       session_timeout_ms=session_ms, rebalance_timeout_ms=session_ms, protocol_type="consumer",
                       protocols=[("range", b"")])


def commit_request(group: str, offset: int, **member) -> OffsetCommitRequest:
    return OffsetCommitRequest(group_id=group, partitions=[OffsetCommitPartition("t", 0, offset)], **member)


async def eventually(predicate, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_commit_waits_for_persistence_and_survives_restart():
    async def scenario():
        topic = FakeTopic(auto_persist=False)
        coordinator = await make_coordinator(topic)
        assert await coordinator.find_coordinator("g") == ErrorCode.none
        task = asyncio.ensure_future(coordinator.commit_offsets(commit_request("g", 42)))
        await eventually(lambda: topic.appends)
        await asyncio.sleep(0.05)
        assert not task.done(), "answered before the write was persisted"
        fetch = await coordinator.fetch_offsets(OffsetFetchRequest("g", [("t", 0)]))
        assert fetch.partitions[0].offset == -1  # staged, not visible yet
        topic.persist_all()
        response = await task
        assert [(p.topic, p.partition, p.error_code) for p in response.partitions] == [("t", 0, ErrorCode.none)]
        fetch = await coordinator.fetch_offsets(OffsetFetchRequest("g", [("t", 0)]))
        assert fetch.partitions[0].offset == 42
        await coordinator.stop()
        assert all(log.released for log in topic.acquired)

        # A new process on the same log: the commit is replayed.
        again = await make_coordinator(FakeTopic(store=topic.store))
        fetch = await again.fetch_offsets(OffsetFetchRequest("g", [("t", 0)]))
        assert fetch.partitions[0].offset == 42
        await again.stop()

    run(scenario())


def test_session_timeout_fires_from_the_timer():
    async def scenario():
        coordinator = await make_coordinator(FakeTopic())
        first = await coordinator.join(join_request("g", session_ms=300))
        assert first.error_code == ErrorCode.none
        member = first.member_id
        sync = await coordinator.sync(SyncRequest("g", first.generation_id, member, [(member, b"a")]))
        assert sync.error_code == ErrorCode.none and sync.assignment == b"a"
        [described] = await coordinator.describe_groups(["g"], 5)
        assert described.state == "Stable"
        # Heartbeats keep it alive past one session timeout...
        for _ in range(4):
            await asyncio.sleep(0.1)
            assert coordinator.heartbeat(HeartbeatRequest("g", first.generation_id, member)).error_code == 0
        # ...and without them the timer removes the member (nobody polls the manager).
        await asyncio.sleep(0.5)
        [described] = await coordinator.describe_groups(["g"], 5)
        assert described.state == "Empty" and not described.members
        await coordinator.stop()

    run(scenario())


def test_partition_held_elsewhere_is_not_coordinated_then_retried():
    async def scenario():
        topic = FakeTopic()
        topic.fail_acquire = True
        coordinator = await make_coordinator(topic)
        assert await coordinator.find_coordinator("g") == ErrorCode.coordinator_not_available
        assert (await coordinator.join(join_request("g"))).error_code == ErrorCode.not_coordinator
        response = await coordinator.commit_offsets(commit_request("g", 1))
        assert response.partitions[0].error_code == ErrorCode.not_coordinator
        # Not retried before LOAD_RETRY_S...
        assert await coordinator.find_coordinator("g") == ErrorCode.coordinator_not_available
        # ...then taken once the other holder is gone.
        topic.fail_acquire = False
        coordinator.offsets_partition_of("g").retry_at = 0
        assert await coordinator.find_coordinator("g") == ErrorCode.none
        await coordinator.stop()

    run(scenario())


def test_stop_answers_parked_join_and_drains_in_flight_commits():
    async def scenario():
        topic = FakeTopic(auto_persist=False)
        coordinator = await make_coordinator(topic, delay_ms=60_000)
        join = asyncio.ensure_future(coordinator.join(join_request("parked")))
        commit = asyncio.ensure_future(coordinator.commit_offsets(commit_request("other", 7)))
        await eventually(lambda: topic.appends)
        await asyncio.sleep(0.05)
        assert not join.done() and not commit.done()
        stop = asyncio.ensure_future(coordinator.stop())
        assert (await join).error_code == ErrorCode.not_coordinator
        await asyncio.sleep(0.05)
        assert not stop.done(), "stop must wait for the in-flight commit"
        topic.persist_all()
        await stop
        assert (await commit).partitions[0].error_code == ErrorCode.none
        assert await coordinator.find_coordinator("x") == ErrorCode.coordinator_not_available

    run(scenario())


class SwitchableCluster:
    """The cluster's answer for every offsets partition: owned and served, or neither."""

    def __init__(self) -> None:
        self.owner = True
        self.listeners = []

    def owns(self, key: str) -> bool:
        return self.owner

    serving = owns

    def move_away(self):
        self.owner = False
        return [listener() for listener in self.listeners]


def test_a_partition_moved_away_unloads_and_reloads_from_the_log_when_back():
    async def scenario():
        topic = FakeTopic()
        coordinator = await make_coordinator(topic)
        cluster = SwitchableCluster()
        coordinator.attach(cluster)
        ok = await coordinator.commit_offsets(commit_request("g", 5))
        assert ok.partitions[0].error_code == ErrorCode.none
        drains = [d for d in cluster.move_away() if d is not None]
        assert drains, "the epoch listener must hand back the release to wait for"
        await asyncio.gather(*drains)
        assert topic.acquired[0].released
        lost = await coordinator.commit_offsets(commit_request("g", 6))
        assert lost.partitions[0].error_code == ErrorCode.not_coordinator
        assert await coordinator.find_coordinator("g") == ErrorCode.coordinator_not_available
        # Back here: the next use loads it again from what was persisted.
        cluster.owner = True
        assert await coordinator.find_coordinator("g") == ErrorCode.none
        fetch = await coordinator.fetch_offsets(OffsetFetchRequest("g", [("t", 0)]))
        assert fetch.partitions[0].offset == 5
        await coordinator.stop()

    run(scenario())


@pytest.mark.parametrize("failure", [StorageError("boom"), asyncio.TimeoutError()])
def test_failed_write_answers_an_error_and_is_completed_once(failure):
    async def scenario():
        topic = FakeTopic(auto_persist=False)
        coordinator = await make_coordinator(topic)
        task = asyncio.ensure_future(coordinator.commit_offsets(commit_request("g", 9)))
        await eventually(lambda: topic.appends)
        topic.appends[0][2].set_exception(failure)
        response = await task
        assert response.partitions[0].error_code != ErrorCode.none
        fetch = await coordinator.fetch_offsets(OffsetFetchRequest("g", [("t", 0)]))
        assert fetch.partitions[0].offset == -1
        await coordinator.stop()

    run(scenario())
