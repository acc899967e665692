"""Partition counts of Kafka topics, kept in a Pulsar system topic so every kop_fast agrees.

Without Pulsar's admin REST API (pulsar-lite has none, and the binary protocol
cannot create partitioned-topic metadata), the layout of a topic lives in a
compact log: `persistent://{system-namespace}/__kop_fast_topics`. Each message
is one JSON record {"op": "create"|"delete", "topic": ..., "partitions": N}.
Every kop_fast replays the log at start and follows it afterwards; the first
"create" of a name in log order wins, so concurrent creators on several
processes agree without any other coordination. A creator writes its record,
waits until its own reader has passed that record, and then reports the
winner's layout.

The replay at start ends at a record of the starting process's own,
{"op": "replay", "topic": ""}, which every reader ignores (any op but create and
delete is): once its reader has passed it, everything written before the start
is applied. Asking Pulsar where the log ends instead (has_message_available,
i.e. getLastMessageId) fails on pulsar-lite while the log is empty, and
pulsar-client logs that failure as an ERROR on every first start. The markers
cost one small entry per start.
"""

from __future__ import annotations

import asyncio
import logging

import _pulsar
import orjson

from kop_fast.storage.pulsar.bridge import CompletionBridge, DuplicateFilter, PulsarError, close_quietly, id_position

log = logging.getLogger("kop_fast.topics")

REPLAY_MARKER = {"op": "replay", "topic": ""}


class TopicRegistry:
    def __init__(self, client: _pulsar.Client, bridge: CompletionBridge, topic: str) -> None:
        self._client = client
        self._bridge = bridge
        self.topic = topic
        self._topics: dict[str, tuple[int, tuple]] = {}  # Pulsar topic -> (partitions, position)
        self._producer = None
        self._reader = None
        self._follow_task: asyncio.Task | None = None
        self._dedup = DuplicateFilter()  # its `last` is the position this process has applied
        self._waiters: list[tuple[tuple, asyncio.Future]] = []

    async def start(self) -> None:
        conf = _pulsar.ProducerConfiguration()
        conf.batching_enabled(False)
        conf.send_timeout_millis(30000)
        fut, cb = self._bridge.value_future()
        self._client.create_producer_async_v2(self.topic, conf, cb)
        self._producer = await fut
        rconf = _pulsar.ReaderConfiguration()
        rconf.receiver_queue_size(10)  # larger queues stall on pulsar-lite (see tail_reader.py)
        fut, cb = self._bridge.value_future()
        self._client.create_reader_async_v2(self.topic, _pulsar.MessageId.earliest, rconf, cb)
        self._reader = await fut
        self._follow_task = asyncio.create_task(self._follow(), name="topic-registry-follow")
        # Caught up with everything written before we started once the follower has passed this.
        await self._append(REPLAY_MARKER)

    async def close(self) -> None:
        if self._follow_task is not None:
            self._follow_task.cancel()
            try:
                await self._follow_task
            except (asyncio.CancelledError, Exception):
                pass
        for handle in (self._reader, self._producer):
            if handle is not None:
                await close_quietly(self._bridge, handle)
        for _, waiter in self._waiters:
            if not waiter.done():
                waiter.cancel()

    async def _read_next(self):
        fut, cb = self._bridge.result_future()
        self._reader.read_next_async(cb)
        return await fut

    async def _follow(self) -> None:
        while True:
            try:
                message = await self._read_next()
            except PulsarError as exc:
                log.warning("reading %s failed (%s); retrying", self.topic, exc)
                await asyncio.sleep(1)
                continue
            self._apply(message)

    def _apply(self, message) -> None:
        position = id_position(message.message_id())
        if not self._dedup.fresh_position(position):
            return  # pulsar-lite may deliver a message again
        try:
            record = orjson.loads(message.data())
            op = record["op"]
            name = record["topic"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("ignoring malformed record at %s in %s", position, self.topic)
            record = None
        if record is not None:
            if op == "create" and name not in self._topics:
                partitions = int(record["partitions"])
                self._topics[name] = (partitions, position)
            elif op == "delete":
                self._topics.pop(name, None)
        remaining = []
        for wanted, waiter in self._waiters:
            if wanted <= position:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                remaining.append((wanted, waiter))
        self._waiters = remaining

    async def _append(self, record: dict) -> tuple:
        builder = _pulsar.MessageBuilder()
        builder.content(orjson.dumps(record))
        builder.partition_key(record["topic"])
        msg = builder.build()
        fut, cb = self._bridge.result_future()
        self._producer.send_async(msg, cb)
        message_id = await fut
        position = id_position(message_id)
        if self._dedup.last < position:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append((position, waiter))
            await waiter
        return position

    def get(self, topic: str) -> int | None:
        """The partition count of a Pulsar topic, or None when it is not registered."""
        entry = self._topics.get(topic)
        return entry[0] if entry else None

    def all(self) -> dict[str, int]:
        return {topic: partitions for topic, (partitions, _) in self._topics.items()}

    async def create(self, topic: str, partitions: int) -> tuple[int, bool]:
        """(the winner's partition count, True if it is this call's record)."""
        existing = self.get(topic)
        if existing is not None:
            return existing, False
        position = await self._append({"op": "create", "topic": topic, "partitions": partitions})
        winner_partitions, winner = self._topics[topic]
        return winner_partitions, winner == position

    async def delete(self, topic: str) -> None:
        await self._append({"op": "delete", "topic": topic})
