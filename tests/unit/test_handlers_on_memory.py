"""The Kafka side end to end on the in-memory storage: a real Kafka client (aiokafka) over a real
socket to a real `KafkaNode`, no Pulsar process.

Fast checks of the handlers' behaviour (Produce, Fetch with long polls, ListOffsets,
the group flow, storage errors as Kafka codes); the same flows run against the real
pulsar-lite in tests/interop. The memory storage numbers offsets 0, 1, 2, ...
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from kio.schema.fetch.v4.response import FetchResponse
from kio.schema.produce.v3.response import ProduceResponse

from kop_fast import codec
from kop_fast.protocol.errors import ErrorCode
from kop_fast.storage.api import StorageError, StorageErrorKind
from tests.unit.memory_node import (batch, fetch_request, memory_node, produce, produce_request, raw_request, run,
                                   started_consumer, take)


def test_produced_records_come_back_with_keys_headers_and_consecutive_offsets():
    async def scenario():
        async with memory_node() as (_node, bootstrap):
            sent = await produce(bootstrap, "orders", [b"v%d" % i for i in range(5)], trace=b"\x00\xff")
            assert [m.offset for m in sent] == [0, 1, 2, 3, 4]
            async with started_consumer(bootstrap, auto_offset_reset="earliest") as consumer:
                tp = TopicPartition("orders", 0)
                consumer.assign([tp])
                got = await take(consumer, tp, 5)
            assert [(m.offset, m.key, m.value, list(m.headers)) for m in got] == [
                (i, b"k%d" % i, b"v%d" % i, [("trace", b"\x00\xff")]) for i in range(5)]

    run(scenario)


def test_a_long_poll_is_answered_by_the_next_produce_and_an_idle_one_by_its_deadline():
    async def scenario():
        async with memory_node() as (_node, bootstrap):
            await produce(bootstrap, "tail", [b"first"])
            idle = await raw_request(bootstrap, 1, 4, fetch_request("tail", 1, 100), FetchResponse)
            [part] = idle.responses[0].partitions
            assert (part.error_code, part.high_watermark, part.records or b"") == (ErrorCode.none, 1, b"")

            # Waits up to 20 s: only the produce can answer it within the test's time limit.
            poll = asyncio.ensure_future(raw_request(bootstrap, 1, 4, fetch_request("tail", 1, 20_000), FetchResponse))
            await asyncio.sleep(0.2)
            assert not poll.done()
            await produce(bootstrap, "tail", [b"second"])
            response = await asyncio.wait_for(poll, 10)
            [part] = response.responses[0].partitions
            assert part.error_code == ErrorCode.none and part.high_watermark == 2
            [decoded] = codec.decode_batches(bytes(part.records))
            assert [(r.offset, r.value) for r in decoded.records] == [(1, b"second")]

    run(scenario)


def test_fetch_errors_unknown_partition_and_out_of_range():
    async def scenario():
        async with memory_node() as (_node, bootstrap):
            await produce(bootstrap, "small", [b"a", b"b"])
            unknown = await raw_request(bootstrap, 1, 4, fetch_request("never-made", 0, 10), FetchResponse)
            assert unknown.responses[0].partitions[0].error_code == ErrorCode.unknown_topic_or_partition
            beyond = await raw_request(bootstrap, 1, 4, fetch_request("small", 3, 10), FetchResponse)
            [part] = beyond.responses[0].partitions
            assert (part.error_code, part.high_watermark) == (ErrorCode.offset_out_of_range, 2)

    run(scenario)


def test_list_offsets_earliest_latest_and_by_time():
    async def scenario():
        async with memory_node() as (_node, bootstrap):
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
            await producer.start()
            try:
                for i, ts in enumerate((1_000, 2_000, 3_000)):
                    await producer.send_and_wait("timed", value=b"%d" % i, timestamp_ms=ts)
            finally:
                await producer.stop()
            consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
            await consumer.start()
            try:
                tp = TopicPartition("timed", 0)
                assert await consumer.beginning_offsets([tp]) == {tp: 0}
                assert await consumer.end_offsets([tp]) == {tp: 3}
                found = await consumer.offsets_for_times({tp: 1_500})
                assert (found[tp].offset, found[tp].timestamp) == (1, 2_000)
                assert (await consumer.offsets_for_times({tp: 9_000}))[tp] is None
            finally:
                await consumer.stop()

    run(scenario)


def test_a_group_commits_and_a_new_member_resumes_after_the_commit():
    async def scenario():
        async with memory_node() as (node, bootstrap):
            await produce(bootstrap, "jobs", [b"j%d" % i for i in range(6)])

            async def member():
                consumer = AIOKafkaConsumer("jobs", bootstrap_servers=bootstrap, group_id="workers",
                                            auto_offset_reset="earliest", enable_auto_commit=False,
                                            session_timeout_ms=6000, heartbeat_interval_ms=500)
                await consumer.start()
                return consumer

            first = await member()
            try:
                got = []
                while len(got) < 3:
                    batches = await first.getmany(timeout_ms=1000, max_records=3 - len(got))
                    got += [m for records in batches.values() for m in records]
                tp = TopicPartition("jobs", 0)
                await first.commit({tp: got[-1].offset + 1})
            finally:
                await first.stop()
            assert [m.value for m in got] == [b"j0", b"j1", b"j2"]
            assert node.storage.engine.mirrored == {("workers", "jobs", 0): 3}

            second = await member()
            try:
                resumed = []
                while len(resumed) < 3:
                    batches = await second.getmany(timeout_ms=1000)
                    resumed += [m for records in batches.values() for m in records]
            finally:
                await second.stop()
            assert [m.value for m in resumed] == [b"j3", b"j4", b"j5"]

    run(scenario)


@pytest.mark.parametrize("kind, code", [
    (StorageErrorKind.UNAVAILABLE, ErrorCode.not_leader_or_follower),
    (StorageErrorKind.TIMED_OUT, ErrorCode.request_timed_out),
    (StorageErrorKind.TOO_LARGE, ErrorCode.message_too_large),
    (StorageErrorKind.FAILED, ErrorCode.kafka_storage_error),
])
def test_storage_failures_are_answered_with_kafka_error_codes(kind, code):
    async def scenario():
        async with memory_node() as (node, bootstrap):
            ok = await raw_request(bootstrap, 0, 3, produce_request("fragile", batch(b"a")), ProduceResponse)
            assert ok.responses[0].partition_responses[0].error_code == ErrorCode.none
            info = node.storage.cached_topic("fragile")
            node.storage.partition_log(info, 0).fail_appends = StorageError("injected", kind)
            failed = await raw_request(bootstrap, 0, 3, produce_request("fragile", batch(b"b")), ProduceResponse)
            [part] = failed.responses[0].partition_responses
            assert (part.error_code, part.base_offset) == (code, -1)

    run(scenario)


def test_a_corrupt_batch_is_refused_and_nothing_is_stored():
    async def scenario():
        async with memory_node() as (node, bootstrap):
            good = batch(b"x")
            corrupt = good[:-1] + bytes([good[-1] ^ 0xFF])
            response = await raw_request(bootstrap, 0, 3, produce_request("strict", corrupt), ProduceResponse)
            assert response.responses[0].partition_responses[0].error_code == ErrorCode.corrupt_message
            info = node.storage.cached_topic("strict")
            assert await node.storage.partition_log(info, 0).bounds() == (0, 0)

    run(scenario)


# -- idempotent producers while the partition's producer state is read ----------------------------

PRODUCER_ID = 4242


def idempotent_batch(sequence: int, value: bytes) -> bytes:
    return codec.encode_batch([codec.Record(0, 1_000, None, value, ())], producer_id=PRODUCER_ID,
                              producer_epoch=0, base_sequence=sequence)


async def pipelined_produce(bootstrap: str, topic: str, batches: list[bytes]) -> asyncio.Future:
    """The batches as Produce v3 requests sent back to back on one connection (as a client with
    several requests in flight sends them); a future of their (error, base offset) in order."""
    import io
    import struct

    from kio.serial import entity_reader, entity_writer

    from tests.unit.memory_node import produce_request

    host, port = bootstrap.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    for i, records in enumerate(batches):
        body = io.BytesIO()
        entity_writer(type(produce_request(topic, records)))(body, produce_request(topic, records))
        payload = struct.pack(">hhih", 0, 3, i, 4) + b"test" + body.getvalue()
        writer.write(struct.pack(">i", len(payload)) + payload)
    await writer.drain()

    async def answers():
        try:
            out = []
            for i in range(len(batches)):
                frame = await reader.readexactly(struct.unpack(">i", await reader.readexactly(4))[0])
                assert struct.unpack(">i", frame[:4])[0] == i
                response, _ = entity_reader(ProduceResponse)(frame, 4)
                part = response.responses[0].partition_responses[0]
                out.append((part.error_code, part.base_offset))
            return out
        finally:
            writer.close()

    return asyncio.ensure_future(answers())


def test_the_first_idempotent_batch_of_a_new_partition_is_stored_at_once():
    # A Kafka broker leading a new partition has its (empty) producer state at hand: the first
    # idempotent batch is stored, not answered NOT_LEADER_OR_FOLLOWER while the state is read
    # (Sarama 1.22 resends those at once, 3 times, and then fails the batch).
    async def scenario():
        async with memory_node() as (_node, bootstrap):
            assert await (await pipelined_produce(bootstrap, "fresh", [idempotent_batch(0, b"r0")])) == [
                (ErrorCode.none, 0)]
            assert await (await pipelined_produce(bootstrap, "fresh", [
                idempotent_batch(1, b"r1"), idempotent_batch(0, b"r0")])) == [
                (ErrorCode.none, 1), (ErrorCode.none, 0)]  # a retry of batch 0 gets its offset back

    run(scenario)


def test_idempotent_batches_wait_for_a_slow_producer_state_read_and_keep_their_order(monkeypatch):
    from kop_fast.storage.memory import MemoryPartitionLog

    release = asyncio.Event()
    original = MemoryPartitionLog.recent_producer_batches

    async def slow(self, max_entries=1000):
        await release.wait()
        return await original(self, max_entries)

    monkeypatch.setattr(MemoryPartitionLog, "recent_producer_batches", slow)

    async def scenario():
        async with memory_node() as (node, bootstrap):
            waiting = await pipelined_produce(bootstrap, "slow", [idempotent_batch(i, b"r%d" % i) for i in range(3)])
            # A plain producer's batch does not wait; the idempotent ones do.
            assert await (await pipelined_produce(bootstrap, "slow", [batch(b"plain")])) == [(ErrorCode.none, 0)]
            await asyncio.sleep(0.3)
            assert not waiting.done()
            # A batch that arrives later, on another connection, queues behind them.
            later = await pipelined_produce(bootstrap, "slow", [idempotent_batch(3, b"r3")])
            await asyncio.sleep(0.05)
            release.set()
            assert await waiting == [(ErrorCode.none, 1), (ErrorCode.none, 2), (ErrorCode.none, 3)]
            assert await later == [(ErrorCode.none, 4)]
            info = node.storage.cached_topic("slow")
            assert (await node.storage.partition_log(info, 0).bounds()) == (0, 5)

    run(scenario)


def test_a_retry_of_a_batch_stored_but_answered_with_an_error_gets_its_offset_not_a_second_copy(monkeypatch):
    # Pulsar killed after it persisted an entry, before its receipt arrived: the write fails,
    # yet the batch is stored. The producer's retry must find it (CI found 100 records stored
    # twice when the failure only made the proxy forget the producer).
    from kop_fast.storage.memory import MemoryPartitionLog

    original = MemoryPartitionLog.append_batch
    lose_receipt = {"next": False}

    def append_batch(self, batch, record_count):
        stored = original(self, batch, record_count)
        if not lose_receipt["next"]:
            return stored
        lose_receipt["next"] = False
        failed = asyncio.get_running_loop().create_future()
        failed.set_exception(StorageError("receipt lost", StorageErrorKind.UNAVAILABLE))
        return failed

    monkeypatch.setattr(MemoryPartitionLog, "append_batch", append_batch)

    async def scenario():
        async with memory_node() as (node, bootstrap):
            assert await (await pipelined_produce(bootstrap, "lost", [idempotent_batch(0, b"r0")])) == [
                (ErrorCode.none, 0)]
            lose_receipt["next"] = True
            assert await (await pipelined_produce(bootstrap, "lost", [idempotent_batch(1, b"r1")])) == [
                (ErrorCode.not_leader_or_follower, -1)]
            assert await (await pipelined_produce(bootstrap, "lost", [idempotent_batch(1, b"r1")])) == [
                (ErrorCode.none, 1)]  # the retry: the offset the first attempt got
            assert await (await pipelined_produce(bootstrap, "lost", [idempotent_batch(2, b"r2")])) == [
                (ErrorCode.none, 2)]
            info = node.storage.cached_topic("lost")
            assert (await node.storage.partition_log(info, 0).bounds()) == (0, 3)

    run(scenario)


def test_a_producer_state_read_that_fails_or_takes_too_long_answers_not_leader(monkeypatch):
    from kop_fast.storage.memory import MemoryPartitionLog

    original = MemoryPartitionLog.recent_producer_batches
    mode = {"now": "fail"}

    async def flaky(self, max_entries=1000):
        if mode["now"] == "fail":
            raise StorageError("down", StorageErrorKind.UNAVAILABLE)
        if mode["now"] == "hang":
            await asyncio.sleep(3600)
        return await original(self, max_entries)

    monkeypatch.setattr(MemoryPartitionLog, "recent_producer_batches", flaky)

    async def scenario():
        async with memory_node() as (node, bootstrap):
            node.producer_recovery.wait_s = 0.2
            not_ready = (ErrorCode.not_leader_or_follower, -1)
            assert await (await pipelined_produce(bootstrap, "sick", [idempotent_batch(0, b"r0")])) == [not_ready]
            mode["now"] = "hang"
            started = asyncio.get_running_loop().time()
            assert await (await pipelined_produce(bootstrap, "sick", [idempotent_batch(0, b"r0")])) == [not_ready]
            assert 0.15 < asyncio.get_running_loop().time() - started < 2
            # The read still hangs (answering the batch did not start another); it ends, the engine recovers.
            node.producer_recovery._loading.pop("sick-0").cancel()
            mode["now"] = "ok"
            assert await (await pipelined_produce(bootstrap, "sick", [idempotent_batch(0, b"r0")])) == [
                (ErrorCode.none, 0)]

    run(scenario)
