"""The Pulsar storage's topic administration on a real pulsar-lite, seen by two storages (two proxies).

Topic ids, partition counts, config overrides and log starts live in the registry
topic in Pulsar, so a second storage (another proxy) agrees right after a call
returns; a topic deleted and made again starts empty, also for a storage that
starts later and replays everything.
"""

from __future__ import annotations

import asyncio

import pytest

from kop_fast import codec
from kop_fast.config import build_settings
from kop_fast.embedded import EmbeddedPulsar
from kop_fast.storage.api import InvalidPartitions, TopicExists, UnknownTopic
from kop_fast.storage.pulsar import PulsarStorage

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def pulsar_url(tmp_path_factory):
    broker = EmbeddedPulsar(tmp_path_factory.mktemp("storage") / "pulsar")
    url = broker.start()
    yield url
    broker.stop()


def batch(*values: bytes) -> bytes:
    return codec.encode_batch([codec.Record(i, 1_000 + i, None, v, ()) for i, v in enumerate(values)])


async def storage(url: str) -> PulsarStorage:
    s = PulsarStorage(build_settings({}, environ={}), url)
    await s.start()
    return s


async def read_all(partition, offset: int) -> list[bytes]:
    """Every record value from `offset` to the current end."""
    _, hwm = await partition.bounds(refresh=True)
    cursor = await partition.open_fetch(offset)
    values: list[bytes] = []
    try:
        while cursor.offset < hwm:
            parts, size = cursor.take(1 << 20)
            if not size:
                done, pending = await asyncio.wait(cursor.wait(), timeout=5)
                for w in pending:
                    w.cancel()
                assert done, f"nothing arrived at {cursor.offset} of {hwm}"
                continue
            for b in codec.decode_batches(b"".join(bytes(p) for p in parts)):
                values += [r.value for r in b.records if r.offset >= offset]
    finally:
        cursor.release()
    return values


def run(coro):
    asyncio.run(asyncio.wait_for(coro, 60))


def test_two_storages_agree_on_create_grow_configs_truncate_and_delete(pulsar_url):
    async def scenario():
        a, b = await storage(pulsar_url), await storage(pulsar_url)
        try:
            created = await a.create_topic("admin-t", 2, {"retention.ms": "60000"})
            seen = await b.describe_topic("admin-t")
            assert (seen.partitions, seen.topic_id) == (2, created.topic_id)
            assert b.topic_configs(seen) == {"retention.ms": "60000"}
            with pytest.raises(TopicExists):
                await b.create_topic("admin-t", 5)

            grown = await a.grow_topic(created, 4)
            assert grown.partitions == 4 and (await b.describe_topic("admin-t")).partitions == 4
            with pytest.raises(InvalidPartitions):
                await b.grow_topic(grown, 3)

            await b.set_topic_configs(grown, {"max.message.bytes": "1000"})
            await a.topics.catch_up()
            assert a.topic_configs(grown) == {"max.message.bytes": "1000"}

            writer = a.partition_log(grown, 3)
            offsets = [await writer.append_batch(batch(b"v%d" % i), 1) for i in range(3)]
            assert await read_all(b.partition_log(grown, 3), 0) == [b"v0", b"v1", b"v2"]
            assert await b.partition_log(grown, 3).delete_records(offsets[2]) == offsets[2]
            await a.topics.catch_up()
            assert (await writer.bounds())[0] == offsets[2]
            assert await writer.earliest_offset() == offsets[2]

            await a.delete_topic(grown)
            assert await b.describe_topic("admin-t") is None
            assert "admin-t" not in [t.name for t in await b.list_topics()]
            with pytest.raises(UnknownTopic):
                await b.set_topic_configs(grown, {})
        finally:
            await a.close()
            await b.close()

    run(scenario())


def test_a_topic_made_again_starts_empty_everywhere(pulsar_url):
    async def scenario():
        a, b = await storage(pulsar_url), await storage(pulsar_url)
        try:
            first = await a.create_topic("again", 1)
            for i in range(3):
                await a.partition_log(first, 0).append_batch(batch(b"old%d" % i), 1)
            await b.delete_topic(await b.describe_topic("again"))

            second = await b.create_topic("again", 2)
            assert second.topic_id != first.topic_id
            for s in (a, b):
                info = await s.describe_topic("again")
                assert info.topic_id == second.topic_id
                log_start, hwm = await s.partition_log(info, 0).bounds(refresh=True)
                assert log_start == hwm, "the old incarnation's records are visible"
                assert await s.partition_log(info, 0).earliest_offset() == log_start
            new = await a.partition_log(second, 0).append_batch(batch(b"new"), 1)
            start = await b.partition_log(second, 0).earliest_offset()
            assert start <= new
            assert await read_all(b.partition_log(second, 0), start) == [b"new"]
        finally:
            await a.close()
            await b.close()

        later = await storage(pulsar_url)  # replays the registry from the start
        try:
            info = await later.describe_topic("again")
            assert info.topic_id == second.topic_id
            partition = later.partition_log(info, 0)
            assert await read_all(partition, await partition.earliest_offset()) == [b"new"]
        finally:
            await later.close()

    run(scenario())
