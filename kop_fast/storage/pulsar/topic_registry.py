"""Kafka topics' metadata, kept in a Pulsar system topic so every kop_fast agrees.

Without Pulsar's admin REST API (pulsar-lite has none, and the binary protocol
cannot create partitioned-topic metadata), what Kafka knows of a topic lives in a
log: `persistent://{system-namespace}/__kop_fast_topics`. Each message is one JSON
record; every kop_fast replays the log at start and follows it afterwards:

    {"op": "create", "topic": T, "partitions": N, "id": UUID, "configs": {...}, "floors": {"i": [l, e]}}
    {"op": "delete", "topic": T, "id": UUID}
    {"op": "grow", "topic": T, "id": UUID, "partitions": N}
    {"op": "configs", "topic": T, "id": UUID, "configs": {...}}
    {"op": "truncate", "topic": T, "id": UUID, "partition": i, "offset": O}
    {"op": "cluster", "topic": "", "id": CLUSTER_ID}    (the first one wins)
    {"op": "offsets", "topic": "", "mode": "consecutive"|"packed"}    (the first one wins)
    {"op": "ledger", "topic": "", "partition_topic": P, "ledger": L, "first_entry": E, "offset": O,
     "previous": [L0, E0]}

The offset mode is the cluster's (`claim_offset_mode`): a registry that has topics
but no "offsets" record was made before the mode existed and is "packed". A
"ledger" record says that entry (L, E) of Pulsar topic P, the first one the
partition's owner saw in ledger L, starts at consecutive offset O, and that
(L0, E0) was the last entry it saw in the ledger before (consecutive mode's
offset index starts its binary searches from these: see offsets_consecutive.py).

The first "create" of a name in log order wins, so concurrent creators on several
processes agree without any other coordination; every other op applies only to the
incarnation its id names, so a late op for a deleted topic changes nothing. A
writer writes its record, waits until its own reader has passed it, and then
reports the state that resulted. `floors` are the last entries an earlier
incarnation left in each partition's Pulsar topic: the new incarnation starts after
them. A record without an id (written before ids existed) gets the id derived from
the name, as those topics always had.

The replay at start ends at a record of the starting process's own,
{"op": "replay", "topic": ""}, which every reader ignores (an op for no topic):
once its reader has passed it, everything written before the start is applied. Asking Pulsar where the log ends instead (has_message_available,
i.e. getLastMessageId) fails on pulsar-lite while the log is empty, and
pulsar-client logs that failure as an ERROR on every first start. The markers
cost one small entry per start.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field, replace

import _pulsar
import orjson

from kop_fast.storage.pulsar.bridge import (
    CompletionBridge,
    DuplicateFilter,
    PulsarError,
    close_quietly,
    has_message_available,
    id_position,
    keep_every_message,
    release_waiters,
)

log = logging.getLogger("kop_fast.topics")

REPLAY_MARKER = {"op": "replay", "topic": ""}

# Topic ids of records without one: the same name gives the same id in every process.
_LEGACY_ID_NAMESPACE = uuid.UUID("0b7e4a53-7f4c-4a35-9d55-6b6f0e2a9c11")


def legacy_topic_id(pulsar_topic: str) -> uuid.UUID:
    return uuid.uuid5(_LEGACY_ID_NAMESPACE, pulsar_topic)


@dataclass(frozen=True)
class TopicRecord:
    """One incarnation of a topic, as the registry's log says."""

    partitions: int
    topic_id: uuid.UUID
    position: tuple  # of its create record
    configs: dict = field(default_factory=dict)
    floors: dict = field(default_factory=dict)  # partition -> (ledger, entry) of the last earlier entry
    log_starts: dict = field(default_factory=dict)  # partition -> offset moved by DeleteRecords


class TopicRegistry:
    def __init__(self, client: _pulsar.Client, bridge: CompletionBridge, topic: str) -> None:
        self._client = client
        self._bridge = bridge
        self.topic = topic
        self._topics: dict[str, TopicRecord] = {}
        # Pulsar topic -> the most partitions any deleted incarnation had (their Pulsar
        # topics may still hold its entries).
        self.deleted: dict[str, int] = {}
        self.cluster_id: str | None = None
        self.offset_mode: str | None = None
        self._had_topic_ops = False  # any create op in the log (a registry from before offset modes)
        # Pulsar partition topic -> [(ledger, first entry, offset, previous (ledger, entry) or None)]
        self.ledgers: dict[str, list[tuple]] = {}
        self.on_ledger = None  # called with (partition topic, ledger record) for each ledger op
        # Called with (Pulsar topic, the record before, the record after) for every applied op.
        self.on_change = None
        self._producer = None
        self._reader = None
        self._follow_task: asyncio.Task | None = None
        self._dedup = DuplicateFilter()  # its `last` is the position this process has applied
        self._waiters: list[tuple[tuple, asyncio.Future]] = []

    async def start(self) -> None:
        await keep_every_message(self._client, self._bridge, self.topic)
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
            try:
                self._apply_record(op, name, record, position)
            except (KeyError, TypeError, ValueError):
                log.warning("ignoring malformed %r record at %s in %s", op, position, self.topic)
        self._waiters = release_waiters(self._waiters, position)

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

    def _apply_record(self, op: str, name: str, record: dict, position: tuple) -> None:
        if op == "cluster":
            if self.cluster_id is None:
                self.cluster_id = str(record["id"])
            return
        if op == "offsets":
            if self.offset_mode is None and record["mode"] in ("consecutive", "packed"):
                self.offset_mode = str(record["mode"])
            return
        if op == "ledger":
            previous = record.get("previous")
            entry = (int(record["ledger"]), int(record["first_entry"]), int(record["offset"]),
                     tuple(int(x) for x in previous) if previous else None)
            topic = str(record["partition_topic"])
            self.ledgers.setdefault(topic, []).append(entry)
            if self.on_ledger is not None:
                try:
                    self.on_ledger(topic, entry)
                except Exception:  # noqa: BLE001 - a listener's failure must not stop the registry
                    log.exception("applying a ledger record of %s failed", topic)
            return
        if op == "create":
            self._had_topic_ops = True
        before = self._topics.get(name)
        if op == "create":
            if before is not None:
                return
            topic_id = uuid.UUID(record["id"]) if "id" in record else legacy_topic_id(name)
            floors = {int(i): tuple(f) for i, f in (record.get("floors") or {}).items()}
            after = TopicRecord(int(record["partitions"]), topic_id, position, dict(record.get("configs") or {}),
                                floors)
        elif before is None or ("id" in record and uuid.UUID(record["id"]) != before.topic_id):
            return  # an op for an incarnation that is gone
        elif op == "delete":
            self.deleted[name] = max(self.deleted.get(name, 0), before.partitions)
            del self._topics[name]
            self._changed(name, before, None)
            return
        elif op == "grow":
            if int(record["partitions"]) <= before.partitions:
                return
            after = replace(before, partitions=int(record["partitions"]))
        elif op == "configs":
            after = replace(before, configs={str(k): str(v) for k, v in record["configs"].items()})
        elif op == "truncate":
            partition, offset = int(record["partition"]), int(record["offset"])
            if offset <= before.log_starts.get(partition, -1):
                return
            after = replace(before, log_starts={**before.log_starts, partition: offset})
        else:
            return
        self._topics[name] = after
        self._changed(name, before, after)

    def _changed(self, name: str, before: TopicRecord | None, after: TopicRecord | None) -> None:
        if self.on_change is not None:
            try:
                self.on_change(name, before, after)
            except Exception:  # noqa: BLE001 - a listener's failure must not stop the registry
                log.exception("applying a change of %s failed", name)

    def get(self, topic: str) -> TopicRecord | None:
        """The current incarnation of a Pulsar topic, or None when it is not registered."""
        return self._topics.get(topic)

    def all(self) -> dict[str, TopicRecord]:
        return dict(self._topics)

    async def _has_more(self) -> bool:
        # Never asked before the start marker is written: on an empty log pulsar-lite fails it.
        return await has_message_available(self._bridge, self._reader)

    async def catch_up(self, tries: int = 20) -> None:
        """Wait until every record written before this call is applied (bounded)."""
        for _ in range(tries):
            if not await self._has_more():
                for _ in range(3):  # a delivered record may still be on its way to _apply
                    await asyncio.sleep(0)
                return
            await asyncio.sleep(0.005)

    async def create(self, topic: str, partitions: int, configs: dict | None = None,
                     floors: dict | None = None) -> tuple[TopicRecord, bool]:
        """(the winner's record, True if it is this call's record)."""
        existing = self.get(topic)
        if existing is not None:
            return existing, False
        record = {"op": "create", "topic": topic, "partitions": partitions, "id": str(uuid.uuid4())}
        if configs:
            record["configs"] = dict(configs)
        if floors:
            record["floors"] = {str(i): list(f) for i, f in floors.items()}
        position = await self._append(record)
        winner = self._topics[topic]
        return winner, winner.position == position

    async def _update(self, op: str, topic: str, topic_id: uuid.UUID, **fields) -> TopicRecord | None:
        """Write an op for one incarnation; the record that resulted (None: it is gone)."""
        await self._append({"op": op, "topic": topic, "id": str(topic_id), **fields})
        current = self._topics.get(topic)
        return current if current is not None and current.topic_id == topic_id else None

    async def claim_cluster_id(self, proposed: str) -> str:
        """The cluster id of everything in front of this Pulsar: the first one written wins."""
        if self.cluster_id is None:
            await self._append({"op": "cluster", "topic": "", "id": proposed})
        return self.cluster_id

    async def claim_offset_mode(self, proposed: str | None) -> str:
        """The cluster's offset mode: the first "offsets" record wins. Without one, a registry
        with topics was made before offset modes existed ("packed"); a new one takes
        `proposed` (or "consecutive")."""
        if self.offset_mode is None:
            mode = "packed" if self._had_topic_ops else (proposed or "consecutive")
            await self._append({"op": "offsets", "topic": "", "mode": mode})
        return self.offset_mode

    async def record_ledger(self, partition_topic: str, ledger: int, first_entry: int, offset: int,
                            previous: tuple[int, int] | None) -> None:
        record = {"op": "ledger", "topic": "", "partition_topic": partition_topic, "ledger": ledger,
                  "first_entry": first_entry, "offset": offset}
        if previous is not None:
            record["previous"] = list(previous)
        await self._append(record)

    async def delete(self, topic: str, topic_id: uuid.UUID) -> None:
        await self._update("delete", topic, topic_id)

    async def grow(self, topic: str, topic_id: uuid.UUID, partitions: int) -> TopicRecord | None:
        return await self._update("grow", topic, topic_id, partitions=partitions)

    async def set_configs(self, topic: str, topic_id: uuid.UUID, configs: dict) -> TopicRecord | None:
        return await self._update("configs", topic, topic_id, configs=dict(configs))

    async def truncate(self, topic: str, topic_id: uuid.UUID, partition: int, offset: int) -> TopicRecord | None:
        return await self._update("truncate", topic, topic_id, partition=partition, offset=offset)
