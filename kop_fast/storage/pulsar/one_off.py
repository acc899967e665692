"""One-off reads of a partition's Pulsar topic: its last entry, its first entry, the entry at an offset.

Each opens a short-lived reader (or, for the last entry, a probe subscription),
reads one or two entries and closes it again. pulsar-lite now and then stalls a
reader (seen: 1 of 8 first-offset reads opened at once), so every read is hedged
(a second reader beside a silent one; the first answer wins) and retried with a
fresh reader after a timeout that grows.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import _pulsar

from kop_fast import codec
from kop_fast.storage.pulsar.bridge import CompletionBridge, DuplicateFilter, PulsarError, close_quietly, has_message_available
from kop_fast.storage.pulsar.entries import NativeMessage, convert_message, message_id

log = logging.getLogger("kop_fast.partition")

ONE_OFF_RECEIVER_QUEUE = 1
# A read normally takes 1-2 ms, so the first wait is short; later ones grow, so a
# slow machine still gets its answer.
ONE_OFF_READ_TIMEOUTS_S = (0.25, 0.5, 1.0, 2.0, 2.0)
# A reader still silent after this long gets a second one beside it. A stall cost a
# consumer's ListOffsets (and the Fetch behind it) the whole first timeout: 250 ms of a
# 0.4 s benchmark phase, in 2 of 6 runs of 8 partitions.
ONE_OFF_HEDGE_S = 0.05
ONE_OFF_ROLE_PREFIX = "kop-fast-one-off"


async def hedged(attempt, timeout: float, hedge_after: float):
    """attempt(timeout); if it has not finished after `hedge_after` seconds, a second
    attempt(timeout) runs beside it. The first to succeed wins and the other is cancelled
    (attempts close their readers on the way out); if both fail, the later error is raised."""
    tasks = [asyncio.ensure_future(attempt(timeout))]
    try:
        done, _ = await asyncio.wait(tasks, timeout=hedge_after)
        if not done:
            tasks.append(asyncio.ensure_future(attempt(timeout)))
        pending, error = set(tasks), None
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.exception() is None:
                    return task.result()
                error = task.exception()
        raise error
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()


class OneOffReads:
    def __init__(self, client: _pulsar.Client, bridge: CompletionBridge, topic: str) -> None:
        self.client = client
        self.bridge = bridge
        self.topic = topic

    async def last_entry(self) -> tuple[int, int] | None:
        """Ledger and entry of the topic's last entry (a short-lived probe subscription asks Pulsar)."""
        conf = _pulsar.ConsumerConfiguration()
        conf.consumer_type(_pulsar.ConsumerType.Exclusive)
        conf.receiver_queue_size(1)
        name = f"__kop_fast_probe_{uuid.uuid4().hex[:12]}"
        fut, cb = self.bridge.value_future()
        self.client.subscribe_async_v2(self.topic, name, conf, cb)
        consumer = await fut
        try:
            fut, cb = self.bridge.result_future()
            consumer.get_last_message_id_async(cb)
            try:
                mid = await fut
            except PulsarError as exc:
                if exc.result == _pulsar.Result.UnknownError:  # pulsar-lite: "Topic has no messages"
                    return None
                raise
            if mid.ledger_id() < 0 or mid.entry_id() < 0:
                return None
            return mid.ledger_id(), mid.entry_id()
        finally:
            # Never leave a durable subscription behind: it would pin the backlog.
            fut, cb = self.bridge.result_future()
            consumer.unsubscribe_async(cb)
            try:
                await asyncio.wait_for(fut, 10)
            except (PulsarError, asyncio.TimeoutError):
                log.warning("could not remove probe subscription %s on %s", name, self.topic)

    async def end_of_entries_from(self, ledger: int, entry: int) -> int:
        """Offset after the last record, reading from entry (ledger, entry) to the end."""
        async def attempt(timeout: float):
            reader = await self._open_reader(message_id(ledger, entry))
            dedup = DuplicateFilter()
            try:
                end = 0
                while True:
                    msg = await self._read(reader, timeout)
                    if dedup.fresh(msg):
                        end = max(end, convert_message(msg).next_offset)
                    if not await has_message_available(self.bridge, reader):
                        # pulsar-lite gives the last message id of a Pulsar batch without its batch
                        # index, so after the batch's first message the client says there is no more;
                        # the rest of the batch came in the same entry and waits in the client's queue.
                        return max(end, _queued_end(reader, dedup))
            finally:
                await close_quietly(self.bridge, reader)
        return await self._with_retries(attempt)

    async def first_offset(self) -> int | None:
        """Base offset of the topic's first entry; None while it is empty."""
        async def attempt(timeout: float):
            reader = await self._open_reader(_pulsar.MessageId.earliest)
            try:
                if not await has_message_available(self.bridge, reader):
                    return None
                return convert_message(await self._read(reader, timeout)).base_offset
            finally:
                await close_quietly(self.bridge, reader)
        return await self._with_retries(attempt)

    async def item_at_or_after(self, offset: int):
        """The first stored item (KafkaEntry or NativeMessage) holding an offset >= `offset`."""
        return await self._with_retries(lambda timeout: self._probe(offset, timeout))

    async def _probe(self, offset: int, timeout: float):
        ledger, entry, index = codec.unpack_offset(offset)
        reader = await self._open_reader(message_id(ledger, entry))
        dedup = DuplicateFilter()
        try:
            first = True
            while True:
                msg = await self._read(reader, timeout)
                if not dedup.fresh(msg):
                    continue
                item = convert_message(msg)
                if item.next_offset > offset:
                    return item
                if first and type(item) is NativeMessage and item.entry == entry and index > 0:
                    # Inside a Pulsar batch: let the client skip to the index instead of
                    # handing us every message before it.
                    await close_quietly(self.bridge, reader)
                    reader = await self._open_reader(message_id(ledger, entry, index))
                    dedup = DuplicateFilter()
                first = False
        finally:
            await close_quietly(self.bridge, reader)

    async def _open_reader(self, start):
        conf = _pulsar.ReaderConfiguration()
        # One-off reads take one or two entries: a deeper queue would make pulsar-lite push
        # entries nobody reads (measured: the first-offset lookup on a topic of 1 MB
        # entries took 19 ms with queue 10).
        conf.receiver_queue_size(ONE_OFF_RECEIVER_QUEUE)
        conf.start_message_id_inclusive(True)
        # Named apart from the fetch readers' `reader-*` subscriptions in Pulsar's metadata.
        conf.subscription_role_prefix(ONE_OFF_ROLE_PREFIX)
        fut, cb = self.bridge.value_future()
        self.client.create_reader_async_v2(self.topic, start, conf, cb)
        return await fut

    async def _read(self, reader, timeout_s: float):
        fut, cb = self.bridge.result_future()
        reader.read_next_async(cb)
        return await asyncio.wait_for(fut, timeout_s)

    async def _with_retries(self, attempt):
        """Run a one-off read, attempt(timeout), hedged; a stalled reader is replaced by a fresh one."""
        for n, timeout in enumerate(ONE_OFF_READ_TIMEOUTS_S):
            try:
                return await hedged(attempt, timeout, ONE_OFF_HEDGE_S)
            except (asyncio.TimeoutError, PulsarError):
                if n == len(ONE_OFF_READ_TIMEOUTS_S) - 1:
                    raise
                log.info("a read on %s stalled; retrying with a new reader", self.topic)


def _queued_end(reader, dedup: DuplicateFilter) -> int:
    """Offset after the last of the messages already in the reader's queue (0 if none); no waiting."""
    end = 0
    while True:
        try:
            msg = reader.read_next(0)
        except _pulsar.Timeout:
            return end
        if dedup.fresh(msg):
            end = max(end, convert_message(msg).next_offset)
