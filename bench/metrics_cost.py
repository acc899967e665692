"""What `--metrics-listen` costs where it costs most: one record per request.

    python -m bench.metrics_cost [--records 40000] [--rounds 4]

The e2e benchmark's throughput workloads move thousands of records per request and
their client is the bottleneck (its thread 80-95% busy), so a per-request cost
hides in their round-to-round spread. Here every Produce carries one record
(batch.num.messages=1, linger.ms=0, acks=1) and every Fetch returns one
(max.partition.fetch.bytes=1: Kafka still returns the first batch), so the server
does the most requests per record it ever does. Per round, with metrics off and on
(ABBA order, a fresh server each, scraped every second while on): kop-fast's own CPU
per request and the requests per second.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from bench.systems import free_port, proc_cpu_seconds
from tests.interop.test_produce_fetch import create_topic, unique
from tests.support import KopServer

def scraper(port: int, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            answer.read()


def one_round(metrics: bool, n: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="kop-metrics-cost-"))
    port = free_port()
    args = ["--metrics-listen", f"127.0.0.1:{port}"] if metrics else []
    server = KopServer(work / "data", *args).start()
    stop = threading.Event()
    if metrics:
        threading.Thread(target=scraper, args=(port, stop), daemon=True).start()
    try:
        pid = server.process.pid
        topic = unique("metrics-cost")
        create_topic(server.bootstrap, topic)
        producer = Producer({"bootstrap.servers": server.bootstrap, "linger.ms": 0, "acks": 1,
                             "batch.num.messages": 1, "enable.idempotence": False})
        producer.list_topics(topic, timeout=10)
        c0, t0 = proc_cpu_seconds(pid), time.perf_counter()
        for _ in range(n):
            while True:
                try:
                    producer.produce(topic, b"x" * 100, partition=0)
                    break
                except BufferError:
                    producer.poll(0.005)
            producer.poll(0)
        if producer.flush(120):
            raise RuntimeError("produce did not finish")
        c1, t1 = proc_cpu_seconds(pid), time.perf_counter()
        consumer = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "metrics-cost",
                             "enable.auto.commit": False, "max.partition.fetch.bytes": 1,
                             "fetch.queue.backoff.ms": 10})
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        got, deadline = 0, time.monotonic() + 300
        while got < n and time.monotonic() < deadline:
            got += sum(1 for m in consumer.consume(1000, 0.5) if m.error() is None)
        c2, t2 = proc_cpu_seconds(pid), time.perf_counter()
        consumer.close()
        if got < n:
            raise RuntimeError(f"consumed {got} of {n}")
        return {"produce_us": (c1 - c0) / n * 1e6, "produce_rps": n / (t1 - t0),
                "fetch_us": (c2 - c1) / n * 1e6, "fetch_rps": n / (t2 - t1)}
    finally:
        stop.set()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=40_000, help="records (= Produce and Fetch requests) per phase")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    results: dict[bool, list[dict]] = {False: [], True: []}
    for round_no in range(args.rounds):
        order = (False, True) if round_no % 2 == 0 else (True, False)
        for metrics in order:
            r = one_round(metrics, args.records)
            results[metrics].append(r)
            print(f"round {round_no + 1} metrics {'on ' if metrics else 'off'}: produce {r['produce_us']:.1f} us "
                  f"CPU/request, {r['produce_rps']:,.0f} requests/s; fetch {r['fetch_us']:.1f} us, "
                  f"{r['fetch_rps']:,.0f} requests/s", flush=True)
    print("\nmedian, metrics on over off (CPU: above 1 costs; rate: below 1 costs):")
    for key in ("produce_us", "produce_rps", "fetch_us", "fetch_rps"):
        ratios = [on[key] / off[key] for off, on in zip(results[False], results[True])]
        print(f"  {key:12s} {statistics.median(ratios):.3f}  ({' '.join(f'{x:.3f}' for x in ratios)})")


if __name__ == "__main__":
    main()
