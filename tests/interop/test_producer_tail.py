"""PulsarPartitionLog.recent_producer_batches on a real pulsar-lite, read by a second storage (the
proxy that takes the partition over): idempotent batches among the last entries, with the offsets
append_batch gave, so the new owner's producer table de-duplicates the old owner's retries."""

from __future__ import annotations

import asyncio
import time

import pytest

from kop_fast import codec
from kop_fast.config import build_settings
from kop_fast.embedded import EmbeddedPulsar
from kop_fast.producer_state import ProducerStateTable, SequenceCheck as S
from kop_fast.storage.pulsar import PulsarStorage

pytestmark = pytest.mark.interop

_SEQ = 1 << 31


@pytest.fixture(scope="module")
def pulsar_url(tmp_path_factory):
    broker = EmbeddedPulsar(tmp_path_factory.mktemp("producer-tail") / "pulsar")
    url = broker.start()
    yield url
    broker.stop()


async def storage(url: str, **flags) -> PulsarStorage:
    s = PulsarStorage(build_settings(flags, environ={}), url)
    await s.start()
    return s


def batch(n: int, pid: int = -1, epoch: int = -1, seq: int = -1) -> bytes:
    records = [codec.Record(i, 1_000 + i, None, b"r%d" % i, ()) for i in range(n)]
    return codec.encode_batch(records, producer_id=pid, producer_epoch=epoch, base_sequence=seq)


class Writer:
    """Appends through one storage and remembers, per stored entry, the tuple expected back."""

    def __init__(self, log) -> None:
        self.log = log
        self.entries: list[tuple | None] = []
        self.sequences: dict[tuple[int, int], int] = {}

    async def append(self, specs) -> None:
        """specs: (record count, producer id, epoch); pipelined like a producer with requests in flight."""
        pending = []
        for n, pid, epoch in specs:
            if pid < 0:
                pending.append((self.log.append_batch(batch(n), n), None))
                continue
            seq = self.sequences.get((pid, epoch), 0)
            self.sequences[(pid, epoch)] = (seq + n) % _SEQ
            pending.append((self.log.append_batch(batch(n, pid, epoch, seq), n), (pid, epoch, seq, n)))
        for fut, spec in pending:
            base = await fut
            if spec is None:
                self.entries.append(None)
            else:
                pid, epoch, seq, n = spec
                self.entries.append((pid, epoch, seq, (seq + n - 1) % _SEQ, base))

    def expected(self, max_entries: int) -> list[tuple]:
        return [e for e in self.entries[-max_entries:] if e is not None]


def mixed(count: int, start: int = 0):
    """Idempotent producers (4242 bumps its epoch at entry 750) and a plain one, interleaved."""
    for i in range(start, start + count):
        kind = i % 4
        if kind == 3:
            yield 2, -1, -1
        elif kind == 2:
            yield 1 + i % 5, 4242, 0 if i < 750 else 1
        else:
            yield 3, 1000 + kind, 7


def run(coro, timeout: float = 120):
    asyncio.run(asyncio.wait_for(coro, timeout))


def test_the_next_owner_reads_back_the_idempotent_batches_of_the_last_entries(pulsar_url):
    async def scenario():
        a, b = await storage(pulsar_url), await storage(pulsar_url)
        try:
            topic = await a.create_topic("tail", 2)
            writer = Writer(a.partition_log(topic, 0))
            for chunk in range(6):
                await writer.append(list(mixed(250, chunk * 250)))  # 1500 entries
            # Sequences near the wrap: the last sequence is taken modulo 2**31.
            writer.sequences[(77, 0)] = _SEQ - 2
            await writer.append([(5, 77, 0)])

            info = await b.describe_topic("tail")
            taken_over = b.partition_log(info, 0)
            got = await taken_over.recent_producer_batches()
            assert got == writer.expected(1000)
            assert got[-1] == (77, 0, _SEQ - 2, 2, writer.entries[-1][4])
            assert await taken_over.recent_producer_batches(7) == writer.expected(7)
            assert await taken_over.recent_producer_batches(1) == writer.expected(1)
            assert await taken_over.recent_producer_batches(10_000) == writer.expected(10_000)
            assert len(writer.expected(10_000)) > len(got) > 0
            # The writing process reads the same back.
            assert await writer.log.recent_producer_batches(50) == writer.expected(50)

            # The new owner's table answers the old owner's retries with their stored offsets.
            table = ProducerStateTable()
            table.restore(taken_over.name, got)
            last_of_1001 = [e for e in writer.entries if e and e[0] == 1001][-1]
            pid, epoch, first, last, offset = last_of_1001
            assert table.check(taken_over.name, pid, epoch, first, 3) == (S.DUPLICATE_OF_RECENT, offset)
            assert table.check(taken_over.name, pid, epoch, (last + 1) % _SEQ, 3) == (S.ACCEPT, None)
            assert table.check(taken_over.name, pid, epoch, (last + 4) % _SEQ, 3)[0] == S.OUT_OF_ORDER_SEQUENCE
            assert table.check(taken_over.name, 4242, 0, 0, 1)[0] == S.INVALID_PRODUCER_EPOCH  # bumped to 1

            # An empty partition: nothing, and no error.
            assert await b.partition_log(info, 1).recent_producer_batches() == []
        finally:
            await a.close()
            await b.close()

    run(scenario())


def test_a_batch_split_over_entries_comes_back_as_one(pulsar_url):
    async def scenario():
        a, b = await storage(pulsar_url), await storage(pulsar_url)
        try:
            topic = await a.create_topic("split", 1)
            writer = Writer(a.partition_log(topic, 0))
            capacity = codec.get_offset_layout().max_index + 1
            await writer.append([(3, 5, 0), (capacity + 10, 5, 0), (2, 5, 0)])
            got = await b.partition_log(await b.describe_topic("split"), 0).recent_producer_batches()
            assert got == [e for e in writer.entries if e]  # three batches, although four entries
        finally:
            await a.close()
            await b.close()

    run(scenario())


def test_an_earlier_incarnations_batches_are_not_read(pulsar_url):
    async def scenario():
        a, b = await storage(pulsar_url), await storage(pulsar_url)
        try:
            first = await a.create_topic("reborn", 1)
            await Writer(a.partition_log(first, 0)).append([(2, 9, 0)] * 5)
            await a.delete_topic(first)
            second = await a.create_topic("reborn", 1)
            info = await b.describe_topic("reborn")
            assert await b.partition_log(info, 0).recent_producer_batches() == []  # empty again
            writer = Writer(a.partition_log(second, 0))
            await writer.append([(2, 9, 0)] * 2)
            assert await b.partition_log(info, 0).recent_producer_batches() == writer.expected(1000)
        finally:
            await a.close()
            await b.close()

    run(scenario())


def test_the_pulsar_entry_format_keeps_no_producer_ids(pulsar_url):
    async def scenario():
        s = await storage(pulsar_url, entry_format="pulsar")
        try:
            topic = await s.create_topic("native", 1)
            log = s.partition_log(topic, 0)
            await Writer(log).append([(3, 11, 0), (2, 11, 0)])
            _, hwm = await log.bounds(refresh=True)
            assert hwm > 0  # stored, but as one Pulsar message per record
            assert await log.recent_producer_batches() == []
        finally:
            await s.close()

    run(scenario())


def test_reading_the_last_1000_of_5000_entries_takes_little_time(pulsar_url):
    async def scenario():
        a, b = await storage(pulsar_url), await storage(pulsar_url)
        try:
            topic = await a.create_topic("long", 1)
            writer = Writer(a.partition_log(topic, 0))
            for chunk in range(20):
                await writer.append(list(mixed(250, chunk * 250)))
            assert len(writer.entries) == 5000
            log = b.partition_log(await b.describe_topic("long"), 0)
            timings = []
            for _ in range(3):
                began = time.perf_counter()
                got = await log.recent_producer_batches(1000)
                timings.append(time.perf_counter() - began)
                assert got == writer.expected(1000)
            print(f"\nrecent_producer_batches(1000) of 5000 entries: "
                  f"{', '.join(f'{t * 1000:.0f} ms' for t in timings)}")
            assert min(timings) < 2.0
        finally:
            await a.close()
            await b.close()

    run(scenario(), timeout=300)
