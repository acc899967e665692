"""The fixed-rate phases of the end-to-end benchmark: 100-byte records at a fixed rate, each starting
with its send time (CLOCK_MONOTONIC). Produce latency is the delivery report (or the pulsar-client
callback); end-to-end latency is the receipt in a separate consumer process (`python -m bench.e2e
--latency-consumer ...`), so that it never waits for the producing process's GIL. The consumer has
librdkafka's default settings (no fetch tuning) and poll()s one record at a time.

Two phases use it (a `Pace` each, bench/config.py): the latency phase (10,000 records/s for a few
seconds) and the steady-rate probe (5,000 records/s for a minute, Kafka systems only), whose
end-to-end latency is also given per third of the run: a last third much slower than the first
means the system falls behind at that rate.
"""

from __future__ import annotations

import json
import select
import struct
import subprocess
import sys
import threading
import time

from bench.config import Pace
from bench.stats import percentiles
from bench.systems import SystemError_, repo_env
from bench.workloads import (
    flush_with_stall,
    kafka_common,
    message_key,
    open_pulsar_client,
    pulsar_partition,
    pulsar_producer,
    wait_acks,
)

TS = struct.Struct(">Q")
LATENCY_STALL_S = 8.0  # at 10,000 records/s, 8 s without a single delivery is a hang


def thirds(samples: list) -> list:
    """The samples (in the order they were received) cut into the first, middle and last third."""
    k = len(samples) // 3
    return [samples[:k], samples[k:len(samples) - k], samples[len(samples) - k:]] if k else [[], [], []]


def latency_result(pace: Pace, produce_ns: list, e2e_ns: list) -> dict:
    """Percentiles (ms) of the phase; the end-to-end ones also per third of the run (receipt order)."""
    return {"records": pace.records, "rate": pace.rate, "seconds": pace.seconds,
            "produce": percentiles(produce_ns), "e2e": percentiles(e2e_ns),
            "e2e_thirds": [percentiles(t) for t in thirds(e2e_ns)],
            "produce_samples": len(produce_ns), "e2e_samples": len(e2e_ns)}


def kafka_latency(bootstrap: str, topic: str, pace: Pace, timeout: float) -> dict:
    """`pace.records` records at `pace.rate`/s through confluent-kafka (acks=all). `timeout` bounds
    each wait (the flush, the consumer) beyond the paced sending itself."""
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

    n = pace.records
    consumer = LatencyConsumer("kafka", bootstrap, topic, 1, n, pace.seconds + timeout)
    producer = Producer({**kafka_common(bootstrap, errors), "acks": "all", "linger.ms": pace.linger_ms,
                         "enable.idempotence": False, "on_delivery": on_delivery})
    try:
        consumer.start()
        warm = TS.pack(0) + bytes(pace.size - TS.size)
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
            padding = bytes(pace.size - TS.size)
            paced(n, pace.rate, lambda: producer.produce(topic, TS.pack(clock()) + padding))
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
    return latency_result(pace, lat_ns, e2e)


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


def pulsar_latency(url: str, topic: str, pace: Pace, timeout: float) -> dict:
    import _pulsar
    clock = time.monotonic_ns
    lat_ns: list = []
    failed: list = []
    ok = _pulsar.Result.Ok
    n = pace.records
    consumer = LatencyConsumer("pulsar", url, topic, 1, n, pace.seconds + timeout)
    client = open_pulsar_client(url)
    try:
        producer = pulsar_producer(client, pulsar_partition(topic, 0), pace.linger_ms)
        raw = producer._producer
        consumer.start()
        warm = TS.pack(0) + bytes(pace.size - TS.size)
        for _ in range(100):
            b = _pulsar.MessageBuilder()
            b.content(warm)
            raw.send_async(b.build(), lambda res, mid: None)
        producer.flush()
        consumer.wait_ready()
        padding = bytes(pace.size - TS.size)
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

        paced(n, pace.rate, send)
        producer.flush()
        wait_acks(done, acked, n, timeout, "pulsar latency", LATENCY_STALL_S)
        e2e = consumer.result()
        producer.close()
    finally:
        consumer.close()
        client.close()
    if failed:
        raise SystemError_(f"pulsar latency: {len(failed)} sends failed: {failed[:3]}")
    return latency_result(pace, lat_ns, e2e)


# -- the end-to-end latency consumer (a separate process, so it never waits for our GIL) -----------

class LatencyConsumer:
    """The end-to-end consumer process. It prints READY once it has received its first record (one
    of the warm-up records, send time 0, sent before the paced ones): from then on it is connected,
    knows its offsets and fetches, so the paced records do not measure its start-up. (It used to say
    READY after its first, empty, poll: the first paced records then waited for its start-up, up to
    0.4-0.5 s measured for kop-fast and Tansu alike, and at 5,000-10,000 records/s that start-up
    was the e2e p99 of every Kafka system.)"""

    def __init__(self, protocol: str, address: str, topic: str, partitions: int, n: int, timeout: float):
        self.args = {"protocol": protocol, "address": address, "topic": topic, "partitions": partitions,
                     "n": n, "timeout": timeout}
        self.proc: subprocess.Popen | None = None
        self.timeout = timeout

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.e2e", "--latency-consumer",
                                      json.dumps(self.args)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=repo_env())

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
        consumer = Consumer({**kafka_common(args["address"]), "group.id": "kop-fast-bench-latency",
                             "enable.auto.commit": False, "enable.auto.offset.store": False})
        consumer.assign([TopicPartition(args["topic"], p, OFFSET_BEGINNING) for p in range(args["partitions"])])
        seen = set()
        first = True
        try:
            while len(lat) < n and time.monotonic() < deadline:
                # poll() returns each record as soon as librdkafka has it (consume(n, t) would
                # wait for n records and add that wait to the latency).
                msg = consumer.poll(0.1)
                now = clock()
                if msg is None or msg.error() is not None:
                    continue
                if first:
                    first = False
                    print("READY", flush=True)
                ts = unpack(msg.value())[0]
                key = (msg.partition(), msg.offset())
                if ts and key not in seen:
                    seen.add(key)
                    lat.append(now - ts)
        finally:
            consumer.close()
    else:
        import pulsar
        client = open_pulsar_client(args["address"])
        try:
            readers = [client.create_reader(pulsar_partition(args["topic"], i), pulsar.MessageId.earliest)
                       for i in range(args["partitions"])]
            raw = readers[0]._reader
            seen = set()
            first = True
            while len(lat) < n and time.monotonic() < deadline:
                try:
                    msg = raw.read_next(200)
                except Exception:  # noqa: BLE001 - timeout
                    continue
                now = clock()
                if first:
                    first = False
                    print("READY", flush=True)
                ts = unpack(msg.data())[0]
                key = message_key(msg)
                if ts and key not in seen:
                    seen.add(key)
                    lat.append(now - ts)
        finally:
            client.close()
    json.dump(lat, sys.stdout)
    return 0
