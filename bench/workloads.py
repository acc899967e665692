"""The throughput workloads of the end-to-end benchmark: produce N records as fast as the client
goes, then consume them back, with confluent-kafka (librdkafka) against the Kafka systems and with
pulsar-client against pulsar-lite directly (pulsar-direct). Each returns a dict of the phase's
numbers (records, seconds, rps, mbps, ...) or raises SystemError_."""

from __future__ import annotations

import logging
import os
import threading
import time

from bench.systems import SystemError_, pulsar_client

STALL_S = 15.0  # a phase with no progress for this long has failed (e.g. a hung server)
READER_STALL_S = 2.0  # pulsar-direct: a Reader silent this long while messages remain is replaced
MAX_READER_RESTARTS = 3


# -- Kafka workload (confluent-kafka) ---------------------------------------------------------------

def kafka_common(bootstrap: str, errors: list | None = None) -> dict:
    """Settings of every confluent-kafka client of the benchmark; librdkafka's errors go to `errors`."""
    conf = {
        "bootstrap.servers": bootstrap,
        "broker.address.family": "v4",
        "log_level": 0,  # librdkafka's own log lines would interleave with the progress line
    }
    if errors is not None:
        conf["error_cb"] = lambda err: errors.append(str(err))
    return conf


def flush_with_stall(producer, deadline: float, what: str, errors: list, stall_s: float = STALL_S) -> None:
    """producer.flush(), failing after STALL_S without progress or at the deadline."""
    last, last_progress = len(producer), time.monotonic()
    while True:
        left = producer.flush(0.5)
        now = time.monotonic()
        if not left:
            return
        if left < last:
            last, last_progress = left, now
        if now - last_progress > stall_s or now > deadline:
            raise SystemError_(f"{what}: {left} records undelivered, no progress for "
                               f"{now - last_progress:.0f} s; {errors[:3]}")


def kafka_produce(bootstrap: str, topic: str, n: int, size: int, linger_ms: int, timeout: float) -> dict:
    from confluent_kafka import Producer
    errors: list = []
    failed = [0]

    def on_delivery(err, msg):
        if err is not None:
            failed[0] += 1
            if len(errors) < 5:
                errors.append(str(err))

    producer = Producer({**kafka_common(bootstrap, errors), "acks": "all", "linger.ms": linger_ms,
                         "enable.idempotence": False, "compression.type": "none",
                         "queue.buffering.max.messages": 500_000,
                         "delivery.report.only.error": True, "on_delivery": on_delivery})
    producer.list_topics(topic, timeout=10)  # connect and learn the layout before the clock starts
    payload = os.urandom(size)
    produce, poll = producer.produce, producer.poll
    deadline = time.monotonic() + timeout
    t0, busy0 = time.perf_counter(), time.thread_time()
    for i in range(n):
        while True:
            try:
                produce(topic, payload)
                break
            except BufferError:
                poll(0.005)
                if time.monotonic() > deadline:
                    raise SystemError_(f"produce did not finish within {timeout:.0f} s")
        if i & 0x3FFF == 0:
            poll(0)
    flush_with_stall(producer, deadline, "produce", errors)
    elapsed = time.perf_counter() - t0
    busy = time.thread_time() - busy0
    if failed[0]:
        raise SystemError_(f"produce: {failed[0]} records failed: {errors[:3]}")
    return {"records": n, "seconds": elapsed, "rps": n / elapsed, "mbps": n * size / elapsed / 1e6,
            "client_thread_busy": busy / elapsed}


# Consumer settings that differ from librdkafka's defaults, the same for every system.
# librdkafka stops fetching a partition once its local queue holds queued.min.messages
# (100,000) and then waits fetch.queue.backoff.ms (default 1000 ms) before it looks again,
# even if the application has drained the queue meanwhile. A broker that answers faster
# than the Python loop consumes trips this and is paid with a whole idle second (measured,
# 500k x 100 B: kop-fast 290k rec/s with the default, 650k with 10 ms; Tansu, whose ~5 MB
# answers take ~12 ms each, never fills the queue and is unaffected). The benchmark
# measures servers, not that client timer; `--librdkafka-defaults` measures with it.
CONSUMER_TUNING = {"fetch.queue.backoff.ms": 10}
# A read whose longest wait between two batches is at least this lost a fetch.queue.backoff.ms
# second (half of librdkafka's default of 1000 ms; with CONSUMER_TUNING the waits are ~10 ms).
STALL_GAP_MS = 500.0


def kafka_consume(bootstrap: str, topic: str, partitions: int, n: int, size: int, timeout: float,
                  tuning: dict | None = None) -> dict:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
    errors: list = []
    consumer = Consumer({**kafka_common(bootstrap, errors), "group.id": "kop-fast-bench",
                         "enable.auto.commit": False, "enable.auto.offset.store": False,
                         "auto.offset.reset": "earliest",
                         **(CONSUMER_TUNING if tuning is None else tuning)})
    try:
        # Learn the partition leaders before the clock starts, as the producer does: an
        # assignment made before librdkafka knows the leader waits for its 500 ms offset
        # query timer, which would be most of a 500k-record consume.
        consumer.list_topics(topic, timeout=10)
        t0, busy0 = time.perf_counter(), time.thread_time()
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        # librdkafka drops records below its fetch position, so within one assignment a
        # record cannot arrive twice: counting deliveries is enough (and keeps the client cheap).
        got = 0
        deadline = time.monotonic() + timeout
        last_progress = time.monotonic()
        consume = consumer.consume
        t_first = t_last = None
        max_gap = 0.0  # the longest wait between two batches (a fetch.queue.backoff.ms stall shows here)
        while got < n:
            now = time.monotonic()
            if now > deadline or now - last_progress > STALL_S:
                raise SystemError_(f"consume: {got} of {n} records; no progress for "
                                   f"{now - last_progress:.0f} s; {errors[:3]}")
            # consume(n, timeout) waits until n records are there (or the timeout), so ask
            # for small batches: the first records come back as soon as they arrive.
            msgs = consume(min(1000, n - got), 0.1)
            if not msgs:
                continue
            t_batch = time.perf_counter()
            if t_first is None:
                t_first = t_batch
            else:
                max_gap = max(max_gap, t_batch - t_last)
            t_last = t_batch
            got += len(msgs)
            for msg in msgs:
                if msg.error() is not None:
                    got -= 1
                    if len(errors) < 5:
                        errors.append(str(msg.error()))
            last_progress = time.monotonic()
        t_end = time.perf_counter()
        busy = time.thread_time() - busy0
    finally:
        consumer.close()
    if got != n:
        raise SystemError_(f"consume: {got} records, produced {n}")
    return {**consume_result(n, size, t0, t_first, t_end), "client_thread_busy": busy / (t_end - t0),
            "max_gap_ms": max_gap * 1e3}


def consume_result(n: int, size: int, t0: float, t_first: float, t_end: float) -> dict:
    """Rate over the whole phase, from assign (or reader creation) to the last record; the
    time to the first record (connection, offset lookup, first fetch) is also reported."""
    elapsed = t_end - t0
    return {"records": n, "seconds": elapsed, "first_record_ms": (t_first - t0) * 1e3,
            "rps": n / elapsed, "mbps": n * size / elapsed / 1e6}


# -- Pulsar workload (pulsar-client, direct) --------------------------------------------------------

def open_pulsar_client(url: str):
    """The pulsar-client Client of the workloads (and of the latency consumer): only its critical
    log lines are shown."""
    return pulsar_client(url, operation_timeout_seconds=30, level=logging.CRITICAL)


def pulsar_partition(topic: str, i: int) -> str:
    return f"persistent://public/default/{topic}-partition-{i}"


def message_key(msg) -> tuple:
    """What identifies a Pulsar message (readers may deliver one twice)."""
    mid = msg.message_id()
    return mid.ledger_id(), mid.entry_id(), mid.batch_index()


def pulsar_producer(client, topic: str, linger_ms: int):
    import pulsar
    return client.create_producer(
        topic, batching_enabled=True, batching_max_messages=10_000,
        batching_max_allowed_size_in_bytes=1_000_000, batching_max_publish_delay_ms=linger_ms,
        max_pending_messages=100_000, max_pending_messages_across_partitions=500_000,
        block_if_queue_full=True, compression_type=pulsar.CompressionType.NONE)


def pulsar_produce(url: str, topic: str, partitions: int, n: int, size: int, linger_ms: int,
                   timeout: float) -> dict:
    """Per-message send_async with a callback (batching on), switching partition every 10 ms like
    librdkafka's sticky partitioner. Uses the low-level _pulsar API, as kop_fast does."""
    import _pulsar
    client = open_pulsar_client(url)
    try:
        producers = [pulsar_producer(client, pulsar_partition(topic, i), linger_ms) for i in range(partitions)]
        raw = [p._producer for p in producers]
        acked = [0]
        failed = []
        done = threading.Event()
        ok = _pulsar.Result.Ok

        def callback(res, _msg_id):
            if res != ok:
                failed.append(str(res))
            acked[0] += 1
            if acked[0] == n:
                done.set()

        payload = os.urandom(size)
        counts = [0] * partitions
        perf = time.perf_counter
        t0 = perf()
        switch_at = t0 + 0.01
        p = 0
        target = raw[0]
        for _ in range(n):
            builder = _pulsar.MessageBuilder()
            builder.content(payload)
            target.send_async(builder.build(), callback)
            counts[p] += 1
            if partitions > 1 and perf() >= switch_at:
                p = (p + 1) % partitions
                target = raw[p]
                switch_at = perf() + 0.01
        for prod in producers:
            prod.flush()
        wait_acks(done, acked, n, timeout, "pulsar produce")
        elapsed = perf() - t0
        if failed:
            raise SystemError_(f"pulsar produce: {len(failed)} failed: {failed[:3]}")
        for prod in producers:
            prod.close()
    finally:
        client.close()
    return {"records": n, "seconds": elapsed, "rps": n / elapsed, "mbps": n * size / elapsed / 1e6,
            "per_partition": counts}


def wait_acks(done: threading.Event, acked: list, n: int, timeout: float, what: str,
              stall_s: float = STALL_S) -> None:
    deadline = time.monotonic() + timeout
    last, last_progress = acked[0], time.monotonic()
    while not done.wait(0.5):
        now = time.monotonic()
        if acked[0] > last:
            last, last_progress = acked[0], now
        if now - last_progress > stall_s or now > deadline:
            raise SystemError_(f"{what}: {acked[0]} of {n} acknowledged, no progress for {now - last_progress:.0f} s")


def pulsar_consume(url: str, topic: str, partitions: int, counts: list, size: int, timeout: float) -> dict:
    """A Reader per partition from the earliest message; distinct message ids are counted
    (pulsar-lite readers may deliver a message twice)."""
    import pulsar
    n = sum(counts)
    client = open_pulsar_client(url)
    dupes = 0
    try:

        def open_reader(i: int):
            # A receiver queue of 10,000: with the default 1,000, pulsar-lite 0.2 redelivers the
            # same messages over and over (millions of duplicates, GBs of RSS).
            return client.create_reader(pulsar_partition(topic, i), pulsar.MessageId.earliest,
                                        receiver_queue_size=10_000)

        t0 = time.perf_counter()
        readers = [open_reader(i) for i in range(partitions)]
        deadline = time.monotonic() + timeout
        t_first = None
        restarts = 0
        for i, reader in enumerate(readers):
            raw = reader._reader
            seen = set()
            want = counts[i]
            last_progress = time.monotonic()
            while len(seen) < want:
                now = time.monotonic()
                if now > deadline or now - last_progress > STALL_S:
                    raise SystemError_(f"pulsar consume: partition {i}: {len(seen)} of {want}; "
                                       f"no progress for {now - last_progress:.0f} s")
                if now - last_progress > READER_STALL_S and restarts < MAX_READER_RESTARTS:
                    # pulsar-lite 0.2 now and then stops delivering to a reader (kop_fast
                    # replaces such readers too): read again from the start, `seen` drops
                    # what was already counted. Reported as `reader_restarts`.
                    restarts += 1
                    reader.close()
                    reader = readers[i] = open_reader(i)
                    raw = reader._reader
                    last_progress = time.monotonic()
                try:
                    msg = raw.read_next(1000)
                except Exception:  # noqa: BLE001 - timeout: go round and check the deadline
                    continue
                if t_first is None:
                    t_first = time.perf_counter()
                last_progress = time.monotonic()
                key = message_key(msg)
                if key in seen:
                    dupes += 1
                seen.add(key)
        t_end = time.perf_counter()
        for reader in readers:
            reader.close()
    finally:
        client.close()
    return {**consume_result(n, size, t0, t_first, t_end), "duplicates": dupes, "reader_restarts": restarts}
