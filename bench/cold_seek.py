"""Cold seeks with consecutive offsets: Pulsar reads and time to place a fetch in a partition of N entries.

    python -m bench.cold_seek --entries 1000000 [--data-dir DIR] [--seeks 20]

Writes N one-record entries through `PulsarStorage` (the path Produce takes: the
owner stamps offsets and records ledger starts) into an embedded pulsar-lite, then,
in a fresh `PulsarStorage` (nothing in memory but what the registry replay gives),
opens fetches at random offsets and reports, per seek, the one-off Pulsar reads the
offset -> position mapping made and the time until the first record was taken. A
second round forgets the owners' ledger records first (the worst case: ledgers
found by probing).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

from kop_fast import codec
from kop_fast.config import build_settings
from kop_fast.embedded import EmbeddedPulsar
from kop_fast.storage.pulsar.storage import PulsarStorage

IN_FLIGHT = 20_000


async def fill(url: str, topic: str, entries: int) -> None:
    storage = PulsarStorage(build_settings({}, environ={}), url)
    await storage.start()
    try:
        info = await storage.create_topic(topic, 1)
        partition = storage.partition_log(info, 0)
        batch = codec.encode_batch([codec.Record(0, 1_700_000_000_000, None, b"x" * 16, ())])
        pending: set = set()
        started = time.monotonic()
        for i in range(entries):
            fut = partition.append_batch(batch, 1)
            pending.add(fut)
            fut.add_done_callback(pending.discard)
            if len(pending) >= IN_FLIGHT:
                await asyncio.wait(list(pending)[:1])
                while len(pending) >= IN_FLIGHT:
                    await asyncio.sleep(0.005)
            if i % 100_000 == 0 and i:
                print(f"  {i} entries, {i / (time.monotonic() - started):.0f}/s", flush=True)
        await asyncio.gather(*pending)
        print(f"wrote {entries} entries in {time.monotonic() - started:.1f} s; ledgers "
              f"{sorted({p[0] for p in partition.index._positions})[:3]}...; ledger records "
              f"{len(storage.topics.ledgers.get(storage.partition_name(info, 0), []))}", flush=True)
    finally:
        await storage.close()


async def seeks(url: str, topic: str, entries: int, count: int, forget_ledgers: bool) -> list[tuple]:
    storage = PulsarStorage(build_settings({}, environ={}), url)
    await storage.start()
    results = []
    try:
        info = await storage.describe_topic(topic)
        rng = random.Random(7)
        for target in [entries - 1, 0, entries // 2] + [rng.randrange(entries) for _ in range(count - 3)]:
            # A new partition log each time: a cold index (the registry's records only).
            storage._partitions.clear()
            partition = storage.partition_log(info, 0)
            if forget_ledgers:
                partition.index = type(partition.index)()
            started = time.monotonic()
            await partition.bounds()
            bounds_reads = partition.pulsar_reads
            t_bounds = time.monotonic() - started
            cursor = await partition.open_fetch(target)
            t_open = time.monotonic() - started
            while True:
                parts, size = cursor.take(1 << 16)
                if size:
                    break
                await asyncio.wait(cursor.wait(), timeout=5, return_when=asyncio.FIRST_COMPLETED)
            elapsed = time.monotonic() - started
            print(f"    {target}: bounds {t_bounds * 1000:.1f} ms, open {t_open * 1000:.1f} ms, first take {elapsed * 1000:.1f} ms")
            first = codec.decode_batches(b"".join(bytes(p) for p in parts))[0].records
            got = next(r.offset for r in first if r.offset >= target)
            assert got == target, (got, target)
            cursor.release()
            results.append((target, bounds_reads, partition.pulsar_reads - bounds_reads, elapsed))
            await partition.close()
    finally:
        await storage.close()
    return results


def report(label: str, results: list[tuple]) -> None:
    print(f"\n{label}")
    print("  offset      bounds reads  seek reads  ms (bounds + seek + first fetch)")
    for target, b, r, t in results:
        print(f"  {target:>9}  {b:>12}  {r:>10}  {t * 1000:8.1f}")
    reads = [r for _, _, r, _ in results]
    times = [t * 1000 for *_, t in results]
    print(f"  seek reads: max {max(reads)}, median {statistics.median(reads)}; "
          f"time: median {statistics.median(times):.1f} ms, max {max(times):.1f} ms")


async def main(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data_dir or tmp)
        broker = EmbeddedPulsar(data / "pulsar")
        url = broker.start()
        try:
            topic = f"cold-seek-{args.entries}"
            await fill(url, topic, args.entries)
            report(f"cold seeks into {args.entries} entries, owners' ledger records known",
                   await seeks(url, topic, args.entries, args.seeks, False))
            report(f"cold seeks into {args.entries} entries, ledger records forgotten (ledgers found by probing)",
                   await seeks(url, topic, args.entries, args.seeks, True))
        finally:
            broker.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--seeks", type=int, default=12)
    parser.add_argument("--data-dir")
    asyncio.run(main(parser.parse_args()))
