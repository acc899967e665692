"""End-to-end benchmark: the same confluent-kafka (librdkafka) workload against
kop-fast (kafka and pulsar entry formats), Tansu, and pulsar-client writing
to pulsar-lite directly (the floor of the Pulsar path).

    python -m bench.e2e                 # full run (~7 min on 2 cores with 3 rounds)
    python -m bench.e2e --quick         # short run for the CI gate (~2 min)
    python -m bench.e2e --systems kop-fast-kafka tansu --records 50000 --out /tmp/b

Per system and round (systems alternate: A B C D A B C D ...; every system is
started fresh for each round and always stopped):

produce   N records of 100 B / 1 KiB into 1 / 8 partitions as fast as the
          client goes (acks=all, linger.ms=5, batch.num.messages default);
          records/s, MB/s of payload, server CPU seconds per million records
consume   the same N records back (assign-based consumer from the beginning,
          no group); records/s, MB/s, server CPU s per million records
latency   100-byte records at a fixed rate (10,000 records/s) for a few
          seconds, linger.ms=1: the delivery-report latency of every record
          (produce latency) and, in a separate consumer process, the time from
          send to receipt (end-to-end latency); p50 / p99 / p99.9
resources peak RSS of the server processes (VmHWM summed over the tree)

Results (Markdown table, JSON, PNG chart) go to bench/results/ (or --out):
e2e-<timestamp>.{md,json,png} and copies named e2e-latest.*. The table is also
printed on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import select
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.systems import ALL_SYSTEMS, INJECT_DELAY_ENV, SystemError_, make_system

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TS = struct.Struct(">Q")

# Ratios the report (and bench/check.py) compares; each is "higher is better for kop-fast".
KOP_SYSTEMS = ("kop-fast-kafka", "kop-fast-pulsar")
REFERENCES = ("tansu", "pulsar-direct")
# The systems whose records go through a Pulsar producer per record (see Config.records).
PULSAR_PATH = ("kop-fast-pulsar", "pulsar-direct")


@dataclass
class Config:
    # Records per 100-byte workload (1 KiB workloads use a quarter). The systems that take
    # the Kafka wire format at client speed (kop-fast kafka format, Tansu) move 100 B records
    # at 1-2 M/s: 500,000 of them made 0.3 s phases, and one scheduler hiccup on a shared
    # 2-core machine moved a ratio by 25%. The Pulsar-path pair (kop-fast pulsar format,
    # pulsar-client direct) runs at 30-40 k/s, where 500,000 is already a 12 s phase.
    # Throughputs are rates, so ratios across the pairs stay comparable.
    records: int = 2_000_000
    pulsar_path_records: int = 500_000
    workloads: list = field(default_factory=lambda: [(100, 1), (100, 8), (1024, 1), (1024, 8)])
    rounds: int = 2
    systems: list = field(default_factory=lambda: list(ALL_SYSTEMS))
    linger_ms: int = 5
    latency_rate: int = 10_000
    latency_seconds: float = 5.0
    latency_size: int = 100
    latency_linger_ms: int = 1
    phase_timeout_s: float = 120.0
    quick: bool = False
    librdkafka_defaults: bool = False  # consume without CONSUMER_TUNING

    @classmethod
    def quick_config(cls) -> "Config":
        # 300,000 records: a 100-byte produce phase of ~0.2 s. With 100,000 (~0.07 s) the
        # kafka-format produce ratio to Tansu moved by 30% between two gate runs of the same code.
        return cls(records=300_000, pulsar_path_records=300_000, workloads=[(100, 1), (1024, 8)], rounds=3,
                   latency_seconds=2.0, phase_timeout_s=60.0, quick=True)

    def records_for(self, size: int, system: str = "") -> int:
        n = self.pulsar_path_records if system in PULSAR_PATH else self.records
        return n if size <= 100 else max(1, n // 4)


def workload_name(size: int, partitions: int) -> str:
    return f"{'1KiB' if size == 1024 else f'{size}B'} x{partitions}p"


# -- progress ---------------------------------------------------------------------------------------

class Progress:
    def __init__(self, total_steps: int) -> None:
        self.total = total_steps
        self.done = 0
        self.start = time.monotonic()
        self.tty = sys.stderr.isatty()

    def __call__(self, text: str, step: bool = False) -> None:
        if step:
            self.done += 1
        elapsed = time.monotonic() - self.start
        line = f"[{elapsed:6.1f}s {self.done}/{self.total}] {text}"
        if self.tty:
            sys.stderr.write("\r\033[K" + line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def finish(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


# -- Kafka workload (confluent-kafka) ---------------------------------------------------------------

def _kafka_common(bootstrap: str, errors: list) -> dict:
    return {
        "bootstrap.servers": bootstrap,
        "broker.address.family": "v4",
        "log_level": 0,  # librdkafka's own log lines would interleave with the progress line
        "error_cb": lambda err: errors.append(str(err)),
    }


STALL_S = 15.0  # a phase with no progress for this long has failed (e.g. a hung server)


READER_STALL_S = 2.0  # pulsar-direct: a Reader silent this long while messages remain is replaced
MAX_READER_RESTARTS = 3

LATENCY_STALL_S = 8.0  # at 10,000 records/s, 8 s without a single delivery is a hang


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

    producer = Producer({**_kafka_common(bootstrap, errors), "acks": "all", "linger.ms": linger_ms,
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


def kafka_consume(bootstrap: str, topic: str, partitions: int, n: int, size: int, timeout: float,
                  tuning: dict | None = None) -> dict:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
    errors: list = []
    consumer = Consumer({**_kafka_common(bootstrap, errors), "group.id": "kop-fast-bench",
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
        t_first = None
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
            if t_first is None:
                t_first = time.perf_counter()
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
    return {**_consume_result(n, size, t0, t_first, t_end), "client_thread_busy": busy / (t_end - t0)}


def _consume_result(n: int, size: int, t0: float, t_first: float, t_end: float) -> dict:
    """Rate over the whole phase, from assign (or reader creation) to the last record; the
    time to the first record (connection, offset lookup, first fetch) is also reported."""
    elapsed = t_end - t0
    return {"records": n, "seconds": elapsed, "first_record_ms": (t_first - t0) * 1e3,
            "rps": n / elapsed, "mbps": n * size / elapsed / 1e6}


def kafka_latency(bootstrap: str, topic: str, cfg: Config, timeout: float) -> dict:
    from confluent_kafka import Producer
    errors: list = []
    lat_ns: list = []
    clock = time.monotonic_ns
    unpack = TS.unpack_from

    def on_delivery(err, msg):
        now = clock()
        if err is not None:
            errors.append(str(err))
            return
        ts = unpack(msg.value())[0]
        if ts:
            lat_ns.append(now - ts)

    n = int(cfg.latency_rate * cfg.latency_seconds)
    consumer = LatencyConsumer("kafka", bootstrap, topic, 1, n, timeout)
    producer = Producer({**_kafka_common(bootstrap, errors), "acks": "all", "linger.ms": cfg.latency_linger_ms,
                         "enable.idempotence": False, "on_delivery": on_delivery})
    try:
        consumer.start()
        warm = TS.pack(0) + bytes(cfg.latency_size - TS.size)
        for _ in range(100):
            producer.produce(topic, warm)
        producer.flush(10)
        consumer.wait_ready()
        stop = threading.Event()

        def poller():
            while not stop.is_set():
                producer.poll(0.05)

        thread = threading.Thread(target=poller, daemon=True)
        thread.start()
        try:
            padding = bytes(cfg.latency_size - TS.size)
            paced(n, cfg.latency_rate, lambda: producer.produce(topic, TS.pack(clock()) + padding))
            flush_with_stall(producer, time.monotonic() + timeout, "latency", errors, stall_s=LATENCY_STALL_S)
        finally:
            stop.set()
            thread.join(5)
        producer.poll(0)
        e2e = consumer.result()
    finally:
        consumer.close()
    if errors and len(lat_ns) < n:
        raise SystemError_(f"latency: {n - len(lat_ns)} of {n} deliveries missing: {errors[:3]}")
    return {"records": n, "rate": cfg.latency_rate, "produce": percentiles(lat_ns), "e2e": percentiles(e2e),
            "produce_samples": len(lat_ns), "e2e_samples": len(e2e)}


def paced(n: int, rate: float, send) -> None:
    """Call send() n times at `rate` per second, in small bursts of what is due (sleeping between)."""
    start = time.perf_counter()
    sent = 0
    perf = time.perf_counter
    while sent < n:
        due = min(n, int((perf() - start) * rate) + 1)
        while sent < due:
            send()
            sent += 1
        next_at = start + sent / rate
        pause = next_at - perf()
        if pause > 0:
            time.sleep(pause)


def percentiles(samples_ns: list) -> dict:
    if not samples_ns:
        return {"p50": None, "p99": None, "p99.9": None, "max": None}
    s = sorted(samples_ns)

    def pct(q):
        return s[min(len(s) - 1, int(math.ceil(q * len(s))) - 1)] / 1e6  # ms

    return {"p50": pct(0.50), "p99": pct(0.99), "p99.9": pct(0.999), "max": s[-1] / 1e6}


# -- Pulsar workload (pulsar-client, direct) --------------------------------------------------------

def _pulsar_client(url: str):
    import logging

    import pulsar
    logger = logging.getLogger("bench.pulsar-client")
    logger.setLevel(logging.CRITICAL)
    logger.propagate = False
    return pulsar.Client(url, operation_timeout_seconds=30, logger=logger)


def pulsar_partition(topic: str, i: int) -> str:
    return f"persistent://public/default/{topic}-partition-{i}"


def _pulsar_producer(client, topic: str, linger_ms: int):
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
    client = _pulsar_client(url)
    try:
        producers = [_pulsar_producer(client, pulsar_partition(topic, i), linger_ms) for i in range(partitions)]
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
    client = _pulsar_client(url)
    dupes = 0
    try:
        t0 = time.perf_counter()
        # A receiver queue of 10,000: with the default 1,000, pulsar-lite 0.2 redelivers the
        # same messages over and over (millions of duplicates, GBs of RSS).
        readers = [client.create_reader(pulsar_partition(topic, i), pulsar.MessageId.earliest,
                                        receiver_queue_size=10_000)
                   for i in range(partitions)]
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
                    reader = readers[i] = client.create_reader(
                        pulsar_partition(topic, i), pulsar.MessageId.earliest, receiver_queue_size=10_000)
                    raw = reader._reader
                    last_progress = time.monotonic()
                try:
                    msg = raw.read_next(1000)
                except Exception:  # noqa: BLE001 - timeout: go round and check the deadline
                    continue
                if t_first is None:
                    t_first = time.perf_counter()
                last_progress = time.monotonic()
                mid = msg.message_id()
                key = (mid.ledger_id(), mid.entry_id(), mid.batch_index())
                if key in seen:
                    dupes += 1
                seen.add(key)
        t_end = time.perf_counter()
        for reader in readers:
            reader.close()
    finally:
        client.close()
    return {**_consume_result(n, size, t0, t_first, t_end), "duplicates": dupes, "reader_restarts": restarts}


def pulsar_latency(url: str, topic: str, cfg: Config, timeout: float) -> dict:
    import _pulsar
    clock = time.monotonic_ns
    lat_ns: list = []
    failed: list = []
    ok = _pulsar.Result.Ok
    n = int(cfg.latency_rate * cfg.latency_seconds)
    consumer = LatencyConsumer("pulsar", url, topic, 1, n, timeout)
    client = _pulsar_client(url)
    try:
        producer = _pulsar_producer(client, pulsar_partition(topic, 0), cfg.latency_linger_ms)
        raw = producer._producer
        consumer.start()
        warm = TS.pack(0) + bytes(cfg.latency_size - TS.size)
        for _ in range(100):
            b = _pulsar.MessageBuilder()
            b.content(warm)
            raw.send_async(b.build(), lambda res, mid: None)
        producer.flush()
        consumer.wait_ready()
        padding = bytes(cfg.latency_size - TS.size)
        done = threading.Event()
        acked = [0]

        def send():
            t = clock()
            b = _pulsar.MessageBuilder()
            b.content(TS.pack(t) + padding)

            def cb(res, _mid, t=t):
                now = clock()
                if res != ok:
                    failed.append(str(res))
                else:
                    lat_ns.append(now - t)
                acked[0] += 1
                if acked[0] == n:
                    done.set()

            raw.send_async(b.build(), cb)

        paced(n, cfg.latency_rate, send)
        producer.flush()
        wait_acks(done, acked, n, timeout, "pulsar latency", LATENCY_STALL_S)
        e2e = consumer.result()
        producer.close()
    finally:
        consumer.close()
        client.close()
    if failed:
        raise SystemError_(f"pulsar latency: {len(failed)} sends failed: {failed[:3]}")
    return {"records": n, "rate": cfg.latency_rate, "produce": percentiles(lat_ns), "e2e": percentiles(e2e),
            "produce_samples": len(lat_ns), "e2e_samples": len(e2e)}


# -- the end-to-end latency consumer (a separate process, so it never waits for our GIL) -----------

def _child_env() -> dict:
    """The environment of a `python -m bench.e2e` child: this checkout importable from anywhere."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


class LatencyConsumer:
    def __init__(self, protocol: str, address: str, topic: str, partitions: int, n: int, timeout: float):
        self.args = {"protocol": protocol, "address": address, "topic": topic, "partitions": partitions,
                     "n": n, "timeout": timeout}
        self.proc: subprocess.Popen | None = None
        self.timeout = timeout

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.e2e", "--latency-consumer",
                                      json.dumps(self.args)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_child_env())

    def wait_ready(self, timeout: float = 30.0) -> None:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else b""
        if line.strip() != b"READY":
            err = self.proc.stderr.read1(4000).decode(errors="replace") if self.proc.poll() is not None else ""
            raise SystemError_(f"latency consumer not ready: {line!r} {err}")

    def result(self) -> list:
        try:
            out, err = self.proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise SystemError_("latency consumer did not finish") from None
        if self.proc.returncode != 0:
            raise SystemError_(f"latency consumer failed ({self.proc.returncode}): {err.decode()[-2000:]}")
        return json.loads(out)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def latency_consumer_main(args: dict) -> int:
    clock = time.monotonic_ns
    unpack = TS.unpack_from
    n, timeout = args["n"], args["timeout"]
    lat: list = []
    deadline = time.monotonic() + timeout
    if args["protocol"] == "kafka":
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
        consumer = Consumer({"bootstrap.servers": args["address"], "group.id": "kop-fast-bench-latency",
                             "broker.address.family": "v4", "log_level": 0, "enable.auto.commit": False,
                             "enable.auto.offset.store": False})
        consumer.assign([TopicPartition(args["topic"], p, OFFSET_BEGINNING) for p in range(args["partitions"])])
        seen = set()
        first = True
        try:
            while len(lat) < n and time.monotonic() < deadline:
                # poll() returns each record as soon as librdkafka has it (consume(n, t) would
                # wait for n records and add that wait to the latency).
                msg = consumer.poll(0.1)
                now = clock()
                if first:
                    first = False
                    print("READY", flush=True)
                if msg is None or msg.error() is not None:
                    continue
                ts = unpack(msg.value())[0]
                key = (msg.partition(), msg.offset())
                if ts and key not in seen:
                    seen.add(key)
                    lat.append(now - ts)
        finally:
            consumer.close()
    else:
        import pulsar
        client = _pulsar_client(args["address"])
        try:
            readers = [client.create_reader(pulsar_partition(args["topic"], i), pulsar.MessageId.earliest)
                       for i in range(args["partitions"])]
            print("READY", flush=True)
            raw = readers[0]._reader
            seen = set()
            while len(lat) < n and time.monotonic() < deadline:
                try:
                    msg = raw.read_next(200)
                except Exception:  # noqa: BLE001 - timeout
                    continue
                now = clock()
                ts = unpack(msg.data())[0]
                mid = msg.message_id()
                key = (mid.ledger_id(), mid.entry_id(), mid.batch_index())
                if ts and key not in seen:
                    seen.add(key)
                    lat.append(now - ts)
        finally:
            client.close()
    json.dump(lat, sys.stdout)
    return 0


# -- one system, one round --------------------------------------------------------------------------

def run_system(name: str, round_no: int, cfg: Config, workdir: Path, progress: Callable[..., None],
               logs_dir: Path | None = None) -> dict:
    system = make_system(name, workdir / f"r{round_no}")
    out: dict = {"system": name, "round": round_no, "workloads": {}, "errors": []}
    t_start = time.monotonic()
    progress(f"{name} round {round_no}: starting")
    try:
        with system:
            out["startup_s"] = time.monotonic() - t_start
            for size, partitions in cfg.workloads:
                wl = workload_name(size, partitions)
                n = cfg.records_for(size, name)
                topic = f"bench-{size}-{partitions}p-r{round_no}"
                res: dict = {"size": size, "partitions": partitions, "records": n}
                out["workloads"][wl] = res
                try:
                    system.create_topic(topic, partitions)
                    progress(f"{name} round {round_no}: produce {wl}, {n} records")
                    cpu0 = system.cpu_seconds()
                    if system.protocol == "kafka":
                        res["produce"] = kafka_produce(system.bootstrap, topic, n, size, cfg.linger_ms,
                                                       cfg.phase_timeout_s)
                    else:
                        res["produce"] = pulsar_produce(system.pulsar_url, topic, partitions, n, size,
                                                        cfg.linger_ms, cfg.phase_timeout_s)
                    cpu1 = system.cpu_seconds()
                    res["produce"]["server_cpu_s_per_M"] = (cpu1 - cpu0) / n * 1e6
                    progress(f"{name} round {round_no}: produce {wl}: {res['produce']['rps']:,.0f} rec/s; consume")
                    if system.protocol == "kafka":
                        res["consume"] = kafka_consume(system.bootstrap, topic, partitions, n, size,
                                                       cfg.phase_timeout_s,
                                                       tuning={} if cfg.librdkafka_defaults else None)
                    else:
                        res["consume"] = pulsar_consume(system.pulsar_url, topic, partitions,
                                                        res["produce"]["per_partition"], size, cfg.phase_timeout_s)
                    cpu2 = system.cpu_seconds()
                    res["consume"]["server_cpu_s_per_M"] = (cpu2 - cpu1) / n * 1e6
                    progress(f"{name} round {round_no}: consume {wl}: {res['consume']['rps']:,.0f} rec/s")
                except Exception as exc:  # noqa: BLE001 - record it, go on with the next workload
                    res["error"] = f"{type(exc).__name__}: {exc}"
                    out["errors"].append(f"{wl}: {res['error']}")
                    progress(f"{name} round {round_no}: {wl} FAILED: {exc}")
                    system.check_alive()
            topic = f"bench-latency-r{round_no}"
            progress(f"{name} round {round_no}: latency at {cfg.latency_rate:,} records/s for {cfg.latency_seconds:g} s")
            try:
                system.create_topic(topic, 1)
                if system.protocol == "kafka":
                    out["latency"] = kafka_latency(system.bootstrap, topic, cfg, cfg.phase_timeout_s)
                else:
                    out["latency"] = pulsar_latency(system.pulsar_url, topic, cfg, cfg.phase_timeout_s)
            except Exception as exc:  # noqa: BLE001
                out["errors"].append(f"latency: {type(exc).__name__}: {exc}")
                progress(f"{name} round {round_no}: latency FAILED: {exc}")
            out["peak_rss_bytes"] = system.peak_rss()
            out["peak_rss_by_process"] = system.peak_rss_by_process()
    except Exception as exc:  # noqa: BLE001 - a system that cannot start is reported, not fatal
        out["errors"].append(f"{type(exc).__name__}: {exc}")
        progress(f"{name} round {round_no}: FAILED: {exc}")
    out["seconds"] = time.monotonic() - t_start
    if out["errors"] and logs_dir is not None:
        # Keep the server logs of a failed run (the work directory is removed at the end).
        logs_dir.mkdir(parents=True, exist_ok=True)
        for path in system.log_files():
            if path.exists():
                target = logs_dir / f"r{round_no}-{path.name}"
                shutil.copyfile(path, target)
                out.setdefault("logs", []).append(str(target))
    progress(f"{name} round {round_no}: done in {out['seconds']:.1f} s", step=True)
    return out


# Each system's client side runs in a process of its own. Measured: after one pulsar-direct
# run inside the benchmark process, librdkafka in that same process produced 0.8-1.0 M
# records/s to Tansu where a fresh process reached 1.3-1.4 M (malloc_trim did not help),
# so every system that followed pulsar-direct was measured with a slowed client, and the
# rounds after the first were worth nothing to the best-of.
ROUND_CHILD_GRACE_S = 120.0


def _child_progress(text: str, step: bool = False) -> None:
    """Progress of a --run-system child: lines on stdout for the parent's Progress."""
    print(json.dumps({"progress": text, "step": step}), flush=True)


def run_system_isolated(name: str, round_no: int, cfg: Config, workdir: Path, progress,
                        logs_dir: Path | None = None) -> dict:
    """run_system() in a fresh Python process; its result, or a failed run saying why."""
    args = {"name": name, "round": round_no, "config": asdict(cfg), "workdir": str(workdir),
            "logs_dir": str(logs_dir) if logs_dir is not None else None}
    # Bounded: every phase has its own timeout; this only catches a child that hangs past them.
    limit = (2 * len(cfg.workloads) + 1) * cfg.phase_timeout_s + ROUND_CHILD_GRACE_S
    failed = {"system": name, "round": round_no, "workloads": {}, "errors": []}
    proc = subprocess.Popen([sys.executable, "-m", "bench.e2e", "--run-system", json.dumps(args)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=_child_env())
    result = None
    deadline = time.monotonic() + limit
    fd, pending = proc.stdout.fileno(), b""
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(proc.args, limit)
            if not select.select([fd], [], [], min(left, 5.0))[0]:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue  # a stray print from a library
                if "progress" in msg:
                    progress(msg["progress"], step=msg.get("step", False))
                elif "result" in msg:
                    result = msg["result"]
        proc.wait(max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        failed["errors"].append(f"client process for {name} did not finish within {limit:.0f} s")
    finally:
        if proc.poll() is None:
            # SIGTERM first: the child turns it into SystemExit and stops its servers.
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        proc.stdout.close()
    if result is None:
        if not failed["errors"]:
            failed["errors"].append(f"client process for {name} exited with code {proc.returncode} "
                                    "and no result")
        progress(f"{name} round {round_no}: FAILED: {failed['errors'][0]}", step=True)
        return failed
    return result


def run_system_main(args: dict) -> int:
    """--run-system: one system, one round, in this process; the result as a JSON line."""
    import signal

    def stop(_signo, _frame):
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, stop)
    cfg = Config(**args["config"])
    cfg.workloads = [tuple(w) for w in cfg.workloads]
    logs_dir = Path(args["logs_dir"]) if args.get("logs_dir") else None
    result = run_system(args["name"], args["round"], cfg, Path(args["workdir"]), _child_progress, logs_dir)
    print(json.dumps({"result": result}), flush=True)
    return 0


# -- aggregation, ratios, report --------------------------------------------------------------------

def _best(values, higher_is_better: bool = True):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return max(values) if higher_is_better else min(values)


def _spread(values):
    values = [v for v in values if v is not None]
    if len(values) < 2:
        return None
    hi = max(values)
    return (hi - min(values)) / hi if hi else None


def aggregate(runs: list, cfg: Config) -> dict:
    """Best over rounds of every metric (noise from a shared machine only makes things
    slower), with the relative spread (max-min)/max and the per-round values."""
    systems: dict = {}
    for name in cfg.systems:
        mine = [r for r in runs if r["system"] == name]
        s: dict = {"workloads": {}, "errors": [e for r in mine for e in r["errors"]], "rounds": len(mine)}
        for size, partitions in cfg.workloads:
            wl = workload_name(size, partitions)
            w: dict = {}
            for phase in ("produce", "consume"):
                for metric in ("rps", "mbps", "server_cpu_s_per_M"):
                    vals = [r["workloads"].get(wl, {}).get(phase, {}).get(metric) for r in mine]
                    w[f"{phase}_{metric}"] = _best(vals, metric != "server_cpu_s_per_M")
                    if metric == "rps":
                        w[f"{phase}_rps_spread"] = _spread(vals)
                        w[f"{phase}_rps_rounds"] = vals
                        # How busy the client's own loop was in the round that is reported.
                        busy = [r["workloads"].get(wl, {}).get(phase, {}).get("client_thread_busy") for r in mine]
                        best = max(((v, b) for v, b in zip(vals, busy) if v is not None), default=(None, None))
                        w[f"{phase}_client_busy"] = best[1]
            s["workloads"][wl] = w
        for kind in ("produce", "e2e"):
            for q in ("p50", "p99", "p99.9"):
                vals = [(r.get("latency") or {}).get(kind, {}).get(q) for r in mine]
                s[f"{kind}_latency_{q}_ms"] = _best(vals, higher_is_better=False)
                if q == "p99":
                    s[f"{kind}_latency_p99_rounds"] = vals
                    s[f"{kind}_latency_p99_spread"] = _spread(vals)
        by_process: dict = {}
        for r in mine:
            for role, mb in (r.get("peak_rss_by_process") or {}).items():
                by_process[role] = max(by_process.get(role, 0), mb)
        s["peak_rss_by_process_mb"] = by_process
        rss = [r.get("peak_rss_bytes") for r in mine]
        s["peak_rss_mb"] = (max(v for v in rss if v) / 1e6) if any(rss) else None
        for phase in ("produce", "consume"):
            vals = [s["workloads"][workload_name(*w)][f"{phase}_server_cpu_s_per_M"] for w in cfg.workloads]
            vals = [v for v in vals if v is not None]
            s[f"{phase}_cpu_s_per_M_mean"] = sum(vals) / len(vals) if vals else None
        s["startup_s"] = _best([r.get("startup_s") for r in mine], higher_is_better=False)
        systems[name] = s
    return systems


def _geomean(values):
    values = [v for v in values if v]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def compute_ratios(systems: dict, cfg: Config) -> dict:
    """Ratios of kop-fast to the references, each oriented so that higher is better for kop-fast:
    throughput ours/theirs (geometric mean over the workloads), latency theirs/ours."""
    ratios: dict = {}
    for ours in KOP_SYSTEMS:
        if ours not in systems:
            continue
        for ref in REFERENCES:
            if ref not in systems:
                continue
            a, b = systems[ours], systems[ref]
            for phase in ("produce", "consume"):
                per = []
                for w in cfg.workloads:
                    wl = workload_name(*w)
                    x, y = a["workloads"][wl][f"{phase}_rps"], b["workloads"][wl][f"{phase}_rps"]
                    per.append(x / y if x and y else None)
                ratios[f"{phase}_throughput:{ours}/{ref}"] = _geomean(per) if all(per) else None
            for kind in ("produce", "e2e"):
                for q in ("p50", "p99"):
                    x, y = a[f"{kind}_latency_{q}_ms"], b[f"{kind}_latency_{q}_ms"]
                    ratios[f"{kind}_{q}_latency:{ref}/{ours}"] = (y / x) if x and y else None
    return ratios


# The pairs whose per-round ratios are reported: each ratio is taken within one round,
# where the two systems ran minutes apart, so a slow spell of the machine that spans a
# round cancels out; the best-of figures above compare each system's luckiest round.
PAIRS = (("kop-fast-kafka", "tansu"), PULSAR_PATH)


def paired_ratios(systems: dict, cfg: Config) -> dict:
    """{"ours/ref": {workload: {phase: {"rounds": [ratio per round], "median": m}}}}."""
    out: dict = {}
    for ours, ref in PAIRS:
        if ours not in systems or ref not in systems:
            continue
        pair: dict = {}
        for w in cfg.workloads:
            wl = workload_name(*w)
            for phase in ("produce", "consume"):
                a = systems[ours]["workloads"][wl][f"{phase}_rps_rounds"]
                b = systems[ref]["workloads"][wl][f"{phase}_rps_rounds"]
                per = [x / y if x and y else None for x, y in zip(a, b)]
                valid = [v for v in per if v is not None]
                pair.setdefault(wl, {})[phase] = {"rounds": per,
                                                  "median": statistics.median(valid) if valid else None}
        out[f"{ours}/{ref}"] = pair
    return out


def _fmt(v, spec=",.0f", none="—"):
    return none if v is None else format(v, spec)


def _records_text(cfg: dict) -> str:
    def counts(n):
        return f"{n:,} records (100 B), {max(1, n // 4):,} (1 KiB)"
    # Results written before the split have only "records".
    slow = cfg.get("pulsar_path_records", cfg["records"])
    if slow == cfg["records"]:
        return counts(cfg["records"])
    return (f"{counts(cfg['records'])} for kop-fast-kafka and tansu; {counts(slow)} for the Pulsar-path "
            "pair kop-fast-pulsar and pulsar-direct (about 40 k records/s: 12 s phases)")


def markdown(result: dict) -> str:
    cfg = result["config"]
    systems = result["systems"]
    names = list(systems)
    wls = [workload_name(*w) for w in cfg["workloads"]]
    lines = [f"# kop_fast end-to-end benchmark ({'quick' if cfg['quick'] else 'full'} run)", "",
             f"{result['started']}, {result['machine']}, {cfg['rounds']} round(s) per system, alternating. "
             f"Produce/consume: {_records_text(cfg)}; "
             f"acks=all, linger.ms={cfg['linger_ms']}. Latency: {cfg['latency_size']} B records at "
             f"{cfg['latency_rate']:,}/s for {cfg['latency_seconds']:g} s, linger.ms={cfg['latency_linger_ms']}. "
             "Consumers: " + ("librdkafka defaults" if cfg.get("librdkafka_defaults") else
                              ", ".join(f"{k}={v}" for k, v in CONSUMER_TUNING.items()) +
                              " (see CONSUMER_TUNING in bench/e2e.py)") + ", metadata known before the clock starts. "
             "Best of the rounds (highest throughput, lowest latency and CPU); ± is the spread between rounds, "
             "(max-min)/max.", ""]
    for phase in ("produce", "consume"):
        lines += [f"## {phase.capitalize()} throughput (records/s, MB/s)", "",
                  "| system | " + " | ".join(wls) + " |", "|---|" + "---:|" * len(wls)]
        for name in names:
            cells = []
            for wl in wls:
                w = systems[name]["workloads"][wl]
                rps, mbps, spread = w[f"{phase}_rps"], w[f"{phase}_mbps"], w[f"{phase}_rps_spread"]
                cell = "failed" if rps is None else f"{rps:,.0f} ({mbps:,.1f} MB/s)"
                if spread is not None:
                    cell += f" ±{spread * 100:.0f}%"
                cells.append(cell)
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    busy_rows = []
    for name in names:
        cells = []
        for wl in wls:
            w = systems[name]["workloads"][wl]
            p, c = w.get("produce_client_busy"), w.get("consume_client_busy")
            cells.append(f"{_fmt(p and p * 100, '.0f')}% / {_fmt(c and c * 100, '.0f')}%")
        busy_rows.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["## Client saturation (produce / consume)", "",
              "CPU time of the benchmark's own thread (the Python loop calling produce() or consume()) "
              "as a share of the phase's wall time, in the reported round. Near 100% the client, not "
              "the server, sets the rate: a faster server cannot show.", "",
              "| system | " + " | ".join(wls) + " |", "|---|" + "---:|" * len(wls)] + busy_rows + [""]
    lines += ["## Latency (ms) and server resources", "",
              "| system | produce p50 | produce p99 | produce p99.9 | e2e p50 | e2e p99 | e2e p99.9 "
              "| server CPU s/M rec produce | consume | peak RSS MB |",
              "|---|" + "---:|" * 9]
    for name in names:
        s = systems[name]
        cells = []
        for k in ("produce", "e2e"):
            for q in ("p50", "p99", "p99.9"):
                cell = _fmt(s[f"{k}_latency_{q}_ms"], ".2f")
                if q == "p99" and s[f"{k}_latency_p99_spread"] is not None:
                    cell += f" ±{s[f'{k}_latency_p99_spread'] * 100:.0f}%"
                cells.append(cell)
        rss = _fmt(s["peak_rss_mb"], ".0f")
        if len(s.get("peak_rss_by_process_mb") or {}) > 1:
            rss += " (" + " + ".join(f"{k} {v:.0f}" for k, v in s["peak_rss_by_process_mb"].items()) + ")"
        cells += [_fmt(s["produce_cpu_s_per_M_mean"], ".2f"), _fmt(s["consume_cpu_s_per_M_mean"], ".2f"), rss]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "CPU: utime+stime of the server process tree (kop-fast + its pulsar-lite; Tansu; pulsar-lite) "
              "per million records, mean over the workloads. Latency: produce = delivery report, "
              "e2e = send to receipt in a separate consumer process.", ""]
    acc = systems.get("kop-fast-kafka", {}).get("produce_latency_p99_ms")
    if acc is not None:
        lines += [f"Acceptance: p99 produce latency at {cfg['latency_rate']:,} records/s for kop-fast "
                  f"(kafka format) = {acc:.2f} ms: {'PASS' if acc <= 5 else 'FAIL'} (<= 5 ms)", ""]
    paired = result.get("paired_ratios") or {}
    if paired:
        lines += ["## Paired ratios, round by round", "",
                  "Throughput of kop-fast over its reference within each round (the two ran minutes "
                  "apart), median over the rounds, and the rounds in order. A slow spell of the "
                  "machine cancels out here; the best-of figures above compare each system's "
                  "luckiest round.", "",
                  "| pair | phase | " + " | ".join(wls) + " |", "|---|---|" + "---:|" * len(wls)]
        for pair, by_wl in paired.items():
            for phase in ("produce", "consume"):
                cells = []
                for wl in wls:
                    r = (by_wl.get(wl) or {}).get(phase) or {}
                    rounds = " ".join(_fmt(v, ".2f") for v in r.get("rounds") or [])
                    cells.append(f"**{_fmt(r.get('median'), '.2f')}** ({rounds})")
                lines.append(f"| {pair} | {phase} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Ratios (higher is better for kop-fast)", "", "| ratio | value |", "|---|---:|"]
    for key, value in result["ratios"].items():
        lines.append(f"| {key} | {_fmt(value, '.3f')} |")
    errors = [(n, e) for n in names for e in systems[n]["errors"]]
    if errors:
        lines += ["", "## Errors", ""] + [f"- {n}: {e}" for n, e in errors]
    return "\n".join(lines) + "\n"


def chart(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = result["systems"]
    names = list(systems)
    wls = [workload_name(*w) for w in result["config"]["workloads"]]
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    width = 0.8 / max(1, len(names))
    for ax, phase in zip(axes[0], ("produce", "consume")):
        for i, name in enumerate(names):
            vals = [systems[name]["workloads"][wl][f"{phase}_rps"] or 0 for wl in wls]
            ax.bar([x + i * width for x in range(len(wls))], vals, width, label=name)
        ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(wls))], wls)
        ax.set_ylabel("records/s")
        ax.set_title(f"{phase} throughput")
        ax.legend(fontsize=8)
    ax = axes[1][0]
    keys = [("produce", "p50"), ("produce", "p99"), ("e2e", "p50"), ("e2e", "p99"), ("e2e", "p99.9")]
    for i, name in enumerate(names):
        vals = [systems[name][f"{k}_latency_{q}_ms"] or 0 for k, q in keys]
        ax.bar([x + i * width for x in range(len(keys))], vals, width, label=name)
    ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(keys))], [f"{k} {q}" for k, q in keys])
    ax.set_yscale("log")
    ax.set_ylabel("ms (log)")
    ax.set_title(f"latency at {result['config']['latency_rate']:,} records/s")
    ax.legend(fontsize=8)
    ax = axes[1][1]
    metrics = [("produce_cpu_s_per_M_mean", "CPU s/M rec produce"), ("consume_cpu_s_per_M_mean", "CPU s/M rec consume")]
    for i, name in enumerate(names):
        vals = [systems[name][k] or 0 for k, _ in metrics]
        ax.bar([x + i * width for x in range(len(metrics))], vals, width, label=name)
    ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(metrics))], [t for _, t in metrics])
    ax.set_ylabel("server CPU seconds per million records")
    ax.set_title("server CPU\npeak RSS MB: " + ", ".join(
        f"{n} {_fmt(systems[n]['peak_rss_mb'], '.0f')}" for n in names), fontsize=9)
    ax.legend(fontsize=8)
    fig.suptitle(f"kop_fast e2e benchmark — {result['started']}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run(cfg: Config, out_dir: Path | None = None, write: bool = True, echo: bool = True) -> dict:
    """Run the benchmark; returns the result dict (and writes the files when `write`)."""
    out_dir = Path(out_dir or RESULTS_DIR)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    progress = Progress(cfg.rounds * len(cfg.systems))
    tmp_root = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    workdir = Path(tempfile.mkdtemp(prefix="kop-fast-bench-", dir=tmp_root))
    runs = []
    t0 = time.monotonic()
    try:
        for round_no in range(1, cfg.rounds + 1):
            # Alternate systems (A B C D A B C D), reversing the order on even rounds so that
            # no system always runs first or last on a warming machine.
            order = cfg.systems if round_no % 2 else list(reversed(cfg.systems))
            for name in order:
                runs.append(run_system_isolated(name, round_no, cfg, workdir, progress, out_dir / "logs"))
    finally:
        progress.finish()
        shutil.rmtree(workdir, ignore_errors=True)
    systems = aggregate(runs, cfg)
    result = {
        "kind": "kop_fast-e2e",
        "started": started,
        "seconds": time.monotonic() - t0,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "inject_delay_ms": float(os.environ.get(INJECT_DELAY_ENV) or 0),
        "config": asdict(cfg),
        "systems": systems,
        "ratios": compute_ratios(systems, cfg),
        "paired_ratios": paired_ratios(systems, cfg),
        "runs": runs,
    }
    text = markdown(result)
    if echo:
        print(text)
    if write:
        out_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = out_dir / f"e2e-{'quick-' if cfg.quick else ''}{stamp}"
        base.with_suffix(".json").write_text(json.dumps(result, indent=1))
        base.with_suffix(".md").write_text(text)
        try:
            chart(result, base.with_suffix(".png"))
        except Exception as exc:  # noqa: BLE001 - the chart is a nicety; the numbers are written
            print(f"bench.e2e: no chart: {exc}", file=sys.stderr)
        for suffix in (".json", ".md", ".png"):
            src = base.with_suffix(suffix)
            if src.exists():
                shutil.copyfile(src, out_dir / f"e2e-latest{suffix}")
        result["files"] = [str(base.with_suffix(s)) for s in (".md", ".json", ".png")]
        print(f"bench.e2e: {result['seconds']:.0f} s; wrote {base}.{{md,json,png}}", file=sys.stderr)
    return result


def parse_args(argv=None) -> tuple[Config, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m bench.e2e", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="short run for the CI gate: 300,000 records, 2 workloads, 2 s latency, 3 rounds")
    parser.add_argument("--records", type=int,
                        help="records per 100-byte workload for kop-fast-kafka and tansu (1 KiB: a quarter)")
    parser.add_argument("--pulsar-path-records", type=int,
                        help="records per 100-byte workload for kop-fast-pulsar and pulsar-direct")
    parser.add_argument("--rounds", type=int, help="rounds per system (systems alternate within a round)")
    parser.add_argument("--systems", nargs="+", choices=ALL_SYSTEMS, metavar="SYSTEM",
                        help=f"systems to run (default all: {' '.join(ALL_SYSTEMS)})")
    parser.add_argument("--latency-seconds", type=float, help="duration of the fixed-rate latency phase")
    parser.add_argument("--latency-rate", type=int, help="records/s of the latency phase (default 10000)")
    parser.add_argument("--latency-linger-ms", type=int, help="linger.ms of the latency phase (default 1)")
    parser.add_argument("--librdkafka-defaults", action="store_true",
                        help="consume with librdkafka's default fetch.queue.backoff.ms (see CONSUMER_TUNING)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for the results (default bench/results)")
    parser.add_argument("--latency-consumer", help=argparse.SUPPRESS)
    parser.add_argument("--run-system", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cfg = Config.quick_config() if args.quick else Config()
    if args.records:
        cfg.records = args.records
    if args.pulsar_path_records:
        cfg.pulsar_path_records = args.pulsar_path_records
    if args.rounds:
        cfg.rounds = args.rounds
    if args.systems:
        cfg.systems = list(dict.fromkeys(args.systems))
    if args.latency_seconds:
        cfg.latency_seconds = args.latency_seconds
    if args.latency_rate:
        cfg.latency_rate = args.latency_rate
    if args.latency_linger_ms is not None:
        cfg.latency_linger_ms = args.latency_linger_ms
    cfg.librdkafka_defaults = args.librdkafka_defaults
    return cfg, args


def main(argv=None) -> int:
    cfg, args = parse_args(argv)
    if args.latency_consumer:
        return latency_consumer_main(json.loads(args.latency_consumer))
    if args.run_system:
        return run_system_main(json.loads(args.run_system))
    result = run(cfg, args.out)
    return 1 if any(s["errors"] for s in result["systems"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
