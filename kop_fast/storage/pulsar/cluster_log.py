"""The Pulsar side of cluster membership: a log of membership changes and a heartbeat stream.

Two system topics per Kafka cluster id, in the system namespace:

* `__kop_fast_members-{cluster}`: the changes (join / leave / expire, JSON), read by
  every proxy from the start, so every proxy applies the same changes in the same
  order (`kop_fast.cluster.view`). A writer waits until its own reader has applied
  its record, so after `append_change` the caller's view includes it. The replay
  at start ends at a marker of the starting process (as in `topic_registry.py`).
* `__kop_fast_heartbeats-{cluster}`: every proxy's heartbeat, read from the moment
  the reader starts; only recent heartbeats matter. A heartbeat's send timeout is
  short, so a proxy that cannot reach Pulsar learns it quickly (its lease runs out).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Callable

import _pulsar
import orjson

from kop_fast.storage.pulsar.bridge import (
    CompletionBridge,
    DuplicateFilter,
    PulsarError,
    close_quietly,
    id_position,
    keep_every_message,
    release_waiters,
)

log = logging.getLogger("kop_fast.cluster")

CHANGE_SEND_TIMEOUT_MS = 10_000
HEARTBEAT_SEND_TIMEOUT_MS = 3_000
# Every proxy reads its own heartbeat each second: this long without any heartbeat means the
# reader is stalled (pulsar-lite stalls readers now and then), so it is replaced.
HEARTBEAT_READER_STALL_S = 3.0
# A change this process wrote and its reader has not delivered after this long: replace the
# changes reader (from after the last change applied).
CHANGE_READER_STALL_S = 5.0
_MARKER = "replay"


def cluster_topics(system_namespace: str, cluster_id: str) -> tuple[str, str]:
    """(changes topic, heartbeats topic) of one Kafka cluster id."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", cluster_id)[:100] or "_"
    base = f"persistent://{system_namespace}/__kop_fast_"
    return f"{base}members-{safe}", f"{base}heartbeats-{safe}"


class PulsarClusterLog:
    def __init__(self, client: _pulsar.Client, bridge: CompletionBridge, changes_topic: str,
                 heartbeats_topic: str) -> None:
        self._client = client
        self._bridge = bridge
        self.changes_topic = changes_topic
        self.heartbeats_topic = heartbeats_topic
        self._handles: list = []  # producers and readers, closed on close()
        self._tasks: list[asyncio.Task] = []
        self._change_producer = self._heartbeat_producer = None
        self._dedup = DuplicateFilter()
        self._waiters: list[tuple[tuple, asyncio.Future]] = []

    async def start(self, on_change: Callable[[dict], None], on_heartbeat: Callable[[dict], None]) -> None:
        """Replay every change written so far into `on_change`, then follow both topics."""
        self._on_change = on_change
        await keep_every_message(self._client, self._bridge, self.changes_topic)
        self._change_producer = await self._producer(self.changes_topic, CHANGE_SEND_TIMEOUT_MS)
        self._heartbeat_producer = await self._producer(self.heartbeats_topic, HEARTBEAT_SEND_TIMEOUT_MS)
        self._on_heartbeat = on_heartbeat
        self._changes_reader = await self._reader(self.changes_topic, _pulsar.MessageId.earliest)
        self._last_change_id = None
        self._tasks.append(asyncio.create_task(self._follow_changes(), name="cluster-changes"))
        self._tasks.append(asyncio.create_task(self._follow_heartbeats(), name="cluster-heartbeats"))
        await self.append_change({"op": _MARKER})

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks.clear()
        for handle in reversed(self._handles):
            await close_quietly(self._bridge, handle)
        self._handles.clear()
        for _, waiter in self._waiters:
            if not waiter.done():
                waiter.cancel()

    async def append_change(self, change: dict) -> None:
        """Persist a change; returns once this process has applied it (and everything before it)."""
        message_id = await self._send(self._change_producer, change)
        position = id_position(message_id)
        while self._dedup.last < position:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append((position, waiter))
            try:
                await asyncio.wait_for(asyncio.shield(waiter), CHANGE_READER_STALL_S)
            except asyncio.TimeoutError:
                log.warning("the reader of %s is stalled; replacing it", self.changes_topic)
                await self._replace_changes_reader()

    async def publish_heartbeat(self, heartbeat: dict) -> None:
        """Persist a heartbeat (raises PulsarError when Pulsar did not take it in time)."""
        await self._send(self._heartbeat_producer, heartbeat)

    # -- internals ------------------------------------------------------------------------------
    async def _producer(self, topic: str, send_timeout_ms: int):
        conf = _pulsar.ProducerConfiguration()
        conf.batching_enabled(False)
        conf.send_timeout_millis(send_timeout_ms)
        fut, cb = self._bridge.value_future()
        self._client.create_producer_async_v2(topic, conf, cb)
        producer = await fut
        self._handles.append(producer)
        return producer

    async def _reader(self, topic: str, start):
        conf = _pulsar.ReaderConfiguration()
        conf.receiver_queue_size(100)
        fut, cb = self._bridge.value_future()
        self._client.create_reader_async_v2(topic, start, conf, cb)
        reader = await fut
        self._handles.append(reader)
        return reader

    async def _drop(self, handle) -> None:
        if handle in self._handles:
            self._handles.remove(handle)
        await close_quietly(self._bridge, handle)

    async def _send(self, producer, record: dict):
        builder = _pulsar.MessageBuilder()
        builder.content(orjson.dumps(record))
        fut, cb = self._bridge.result_future()
        producer.send_async(builder.build(), cb)
        return await fut

    async def _read(self, reader, timeout: float | None = None):
        fut, cb = self._bridge.result_future()
        reader.read_next_async(cb)
        return await asyncio.wait_for(fut, timeout)

    async def _follow_changes(self) -> None:
        while True:
            reader = self._changes_reader
            try:
                message = await self._read(reader)
            except PulsarError as exc:
                if reader is self._changes_reader:  # (a replaced reader fails when it is closed)
                    log.warning("reading %s failed (%s); retrying", self.changes_topic, exc)
                    await asyncio.sleep(0.5)
                continue
            if reader is self._changes_reader:  # not from a reader replaced meanwhile
                self._apply_change(message)

    async def _replace_changes_reader(self) -> None:
        old = self._changes_reader
        start = self._last_change_id if self._last_change_id is not None else _pulsar.MessageId.earliest
        self._changes_reader = await self._reader(self.changes_topic, start)
        await self._drop(old)

    async def _follow_heartbeats(self) -> None:
        reader = None
        while True:
            if reader is None:
                try:
                    reader = await self._reader(self.heartbeats_topic, _pulsar.MessageId.latest)
                except PulsarError as exc:
                    log.warning("cannot read %s (%s); retrying", self.heartbeats_topic, exc)
                    await asyncio.sleep(1)
                    continue
            try:
                message = await self._read(reader, HEARTBEAT_READER_STALL_S)
            except asyncio.TimeoutError:
                log.info("no heartbeat read from %s for %.0f s; replacing the reader",
                         self.heartbeats_topic, HEARTBEAT_READER_STALL_S)
                await self._drop(reader)
                reader = None
                continue
            except PulsarError as exc:
                log.warning("reading %s failed (%s); retrying", self.heartbeats_topic, exc)
                await asyncio.sleep(0.5)
                continue
            _deliver(self._on_heartbeat, message)

    def _apply_change(self, message) -> None:
        position = id_position(message.message_id())
        if not self._dedup.fresh_position(position):
            return  # pulsar-lite may deliver a message again
        self._last_change_id = message.message_id()
        _deliver(self._on_change, message)
        self._waiters = release_waiters(self._waiters, position)


def _deliver(callback: Callable[[dict], None], message) -> None:
    try:
        record = orjson.loads(message.data())
    except orjson.JSONDecodeError:
        log.warning("ignoring a malformed record at %s", message.message_id())
        return
    if not isinstance(record, dict) or record.get("op") == _MARKER:
        return
    try:
        callback(record)
    except Exception:  # noqa: BLE001 - one bad record must not stop the follower
        log.exception("applying %r failed", record)
