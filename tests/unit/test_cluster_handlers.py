"""Two nodes on one in-memory engine as one cluster: partition ownership seen through Produce,
and idempotent producers whose partition moves to the other node mid-stream."""

from __future__ import annotations

import asyncio
import time

from kio.schema.produce.v3.response import ProduceResponse

from kop_fast import codec
from kop_fast.cluster.placement import owner_id
from kop_fast.protocol.errors import ErrorCode
from kop_fast.storage.memory import MemoryEngine
from tests.unit.memory_node import memory_node, produce_request, raw_request, run

PRODUCER_ID, EPOCH = 4242, 0


def idempotent_batch(sequence: int, value: bytes) -> bytes:
    return codec.encode_batch([codec.Record(0, 1_000, None, value, ())], producer_id=PRODUCER_ID,
                              producer_epoch=EPOCH, base_sequence=sequence)


async def produce(bootstrap: str, topic: str, records: bytes) -> tuple[int, int]:
    response = await raw_request(bootstrap, 0, 3, produce_request(topic, records), ProduceResponse)
    result = response.responses[0].partition_responses[0]
    return result.error_code, result.base_offset


async def produce_retrying(bootstrap: str, topic: str, records: bytes, within_s: float = 5) -> tuple[int, int]:
    """As a client does: NOT_LEADER_OR_FOLLOWER (e.g. while the producers' state is read) is retried."""
    deadline = time.monotonic() + within_s
    while True:
        error, offset = await produce(bootstrap, topic, records)
        if error != ErrorCode.not_leader_or_follower or time.monotonic() > deadline:
            return error, offset
        await asyncio.sleep(0.01)


def topic_that_moves_to_node_1() -> str:
    """A topic whose partition 0 node 0 owns alone, and node 1 once it joins (memory names: `t-0`)."""
    return next(t for t in (f"moving-{i}" for i in range(100)) if owner_id([0, 1], f"{t}-0") == 1)


def test_retries_across_a_move_are_deduplicated_and_the_old_owner_refuses():
    async def scenario():
        engine = MemoryEngine()
        topic = topic_that_moves_to_node_1()
        async with memory_node(engine) as (a, at_a):
            assert await produce_retrying(at_a, topic, idempotent_batch(0, b"r0")) == (ErrorCode.none, 0)
            assert await produce_retrying(at_a, topic, idempotent_batch(1, b"r1")) == (ErrorCode.none, 1)
            async with memory_node(engine) as (b, at_b):
                assert b.node_id == 1
                deadline = time.monotonic() + 5
                while not b.cluster.serving(f"{topic}-0"):
                    assert time.monotonic() < deadline, "node 1 never served the partition it got"
                    await asyncio.sleep(0.01)
                # The old owner writes nothing any more.
                assert (await produce(at_a, topic, idempotent_batch(2, b"r2")))[0] == ErrorCode.not_leader_or_follower
                # A retry of batch 1 (its answer lost in the move) gets its original offset back ...
                assert await produce_retrying(at_b, topic, idempotent_batch(1, b"r1")) == (ErrorCode.none, 1)
                # ... the next batch goes on, a gap is refused.
                assert await produce_retrying(at_b, topic, idempotent_batch(2, b"r2")) == (ErrorCode.none, 2)
                assert (await produce(at_b, topic, idempotent_batch(4, b"r4")))[0] == \
                    ErrorCode.out_of_order_sequence_number
                info = b.storage.cached_topic(topic)
                assert (await b.storage.partition_log(info, 0).bounds()) == (0, 3)  # r0, r1, r2: once each

    run(scenario)


def test_leader_epoch_in_a_request_is_checked_against_the_partitions():
    from types import SimpleNamespace

    from kop_fast.server.leaders import leader_error

    async def scenario():
        engine = MemoryEngine()
        async with memory_node(engine) as (a, _):
            key = "t-0"
            _, epoch = a.cluster.owner(key)
            assert epoch == 1
            assert leader_error(a, key) == ErrorCode.none
            assert leader_error(a, key, epoch) == ErrorCode.none
            assert leader_error(a, key, epoch - 1) == ErrorCode.fenced_leader_epoch
            assert leader_error(a, key, epoch + 1) == ErrorCode.unknown_leader_epoch
            async with memory_node(engine) as (b, _):
                moved = next(f"t{i}-0" for i in range(100) if b.cluster.owns(f"t{i}-0"))
                assert leader_error(a, moved) == ErrorCode.not_leader_or_follower
                assert leader_error(b, moved) == ErrorCode.none
                assert b.cluster.owner(moved)[1] == 2  # it moved at the second epoch
        lone = SimpleNamespace(cluster=None)
        assert leader_error(lone, key, 99) == ErrorCode.none  # no cluster (not joined): no check

    run(scenario)
