"""`--metrics-listen` on a real kop-fast in front of a separately started pulsar-lite: Prometheus
counters after a confluent-kafka producer and a consumer group, and /ready following the broker;
sends pending and the entry cache while the broker is paused and records are read twice; and the
embedded broker's up/restarts through its deaths."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from kop_fast.embedded import EmbeddedPulsar, free_port
from tests.support import KopServer, children_of, pid_alive
from tests.unit.test_metrics import http_get, samples

pytestmark = pytest.mark.interop

RECORDS = 1000


@pytest.fixture
def pulsar(tmp_path):
    broker = EmbeddedPulsar(tmp_path / "pulsar")
    broker.start()
    yield broker
    broker.stop()


def total(scraped: dict, name: str, **labels) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in scraped.items() if n == name and wanted <= set(ls))


def scrape(base: str) -> dict:
    status, body = http_get(base + "/metrics")
    assert status == 200
    return samples(body.decode())


def wait_status(url: str, status: int, within_s: float) -> float:
    """Seconds until `url` answers `status`; fails after `within_s`."""
    started = time.monotonic()
    last = None
    while time.monotonic() - started < within_s:
        last = http_get(url, timeout=5)
        if last[0] == status:
            return time.monotonic() - started
        time.sleep(0.1)
    pytest.fail(f"{url} did not answer {status} within {within_s} s (last: {last})")


def test_metrics_lag_and_readiness_through_a_broker_outage(tmp_path, pulsar):
    from confluent_kafka import Consumer, Producer

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    topic, group = "metrics-new-topic", "metrics-group"
    with KopServer(tmp_path / "kop", "--pulsar-url", pulsar.url, "--metrics-listen", f"127.0.0.1:{port}") as server:
        assert http_get(base + "/health") == (200, b'{"status":"up"}')
        before = scrape(base)
        producer = Producer({"bootstrap.servers": server.bootstrap, "linger.ms": 5})
        for i in range(RECORDS):
            producer.produce(topic, value=b"v%d" % i)
        assert producer.flush(30) == 0
        after = scrape(base)
        assert total(after, "kop_fast_requests_total", api="produce") > total(before, "kop_fast_requests_total",
                                                                              api="produce")
        assert total(before, "kop_fast_records_in_total", topic=topic) == 0
        assert total(after, "kop_fast_records_in_total", topic=topic) == RECORDS
        assert total(after, "kop_fast_bytes_in_total", topic=topic) > 0

        consumer = Consumer({"bootstrap.servers": server.bootstrap, "group.id": group,
                             "auto.offset.reset": "earliest", "enable.auto.commit": False})
        consumer.subscribe([topic])
        try:
            got = 0
            deadline = time.monotonic() + 60
            while got < RECORDS and time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is not None and msg.error() is None:
                    got += 1
            assert got == RECORDS
            consumer.commit(asynchronous=False)
            scraped = scrape(base)
        finally:
            consumer.close()
        lag = {ls: v for (n, ls), v in scraped.items() if n == "kop_fast_group_lag"}
        key = (("group", group), ("partition", "0"), ("topic", topic))
        assert lag[key] == 0
        # Lag counts records (consecutive offsets): 7 more, in 7 separate batches, are 7 behind.
        for i in range(7):
            producer.produce(topic, value=b"more%d" % i)
            assert producer.flush(30) == 0
        behind = {ls: v for (n, ls), v in scrape(base).items() if n == "kop_fast_group_lag"}
        assert behind[key] == 7
        assert total(scraped, "kop_fast_bytes_out_total", topic=topic) > 0
        assert total(scraped, "kop_fast_rebalances_total") >= 1
        assert total(scraped, "kop_fast_connections_by_client", software="confluent-kafka-python") >= 1

        assert http_get(base + "/ready")[0] == 200
        pulsar.process.kill()
        pulsar.process.wait(10)
        down_s = wait_status(base + "/ready", 503, 10)
        status, body = http_get(base + "/ready")
        assert status == 503 and b"reason" in body
        assert http_get(base + "/health")[0] == 200  # alive all the same
        pulsar.restart()
        up_s = wait_status(base + "/ready", 200, 60)
        print(f"/ready: 503 {down_s:.2f} s after the broker was killed, 200 {up_s:.2f} s after it was back")


def wait_scraped(base: str, predicate, within_s: float, what: str) -> dict:
    """The first scrape for which `predicate(scrape)` holds; fails after `within_s`."""
    deadline = time.monotonic() + within_s
    while True:
        scraped = scrape(base)
        if predicate(scraped):
            return scraped
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not within {within_s} s")
        time.sleep(0.05)


def consume_all(bootstrap: str, topic: str, group: str, n: int) -> None:
    from confluent_kafka import Consumer

    # Small fetches: many reads of the partition, some behind the cached run and some inside it.
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "max.partition.fetch.bytes": 256 * 1024})
    consumer.subscribe([topic])
    try:
        got = 0
        deadline = time.monotonic() + 60
        while got < n and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got += 1
        assert got == n
    finally:
        consumer.close()


SENDS = ("kop_fast_storage_sends_pending", "kop_fast_storage_appends_waiting")
CACHE = ("kop_fast_entry_cache_entries", "kop_fast_entry_cache_bytes", "kop_fast_entry_cache_hits_total",
         "kop_fast_entry_cache_misses_total")


def figures(scraped: dict, names) -> list[float]:
    return [scraped[(name, ())] for name in names]


def test_entry_cache_and_sends_pending_change_for_real(tmp_path, pulsar):
    from confluent_kafka import Producer

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    topic, value = "metrics-cache", b"v" * 10_000
    with KopServer(tmp_path / "kop", "--pulsar-url", pulsar.url, "--metrics-listen", f"127.0.0.1:{port}",
                   "--read-cache-mb", "1") as server:
        before = scrape(base)
        assert figures(before, SENDS + CACHE) == [0] * 6
        # An external broker: kop-fast runs none, so there is nothing to say about one.
        assert not any(n.startswith("kop_fast_embedded_broker") for n, _ in before)

        # 4 MB in batches of 10 records (~100 kB entries): more than the 1 MiB cache holds.
        producer = Producer({"bootstrap.servers": server.bootstrap, "linger.ms": 5, "batch.num.messages": 10})
        for _ in range(400):
            producer.produce(topic, value=value)
        assert producer.flush(30) == 0
        stored = scrape(base)
        entries, size, hits, misses = figures(stored, CACHE)
        assert figures(stored, SENDS) == [0, 0]  # idle: every append acknowledged
        assert 0 < size <= 1 << 20 and entries * len(value) <= size  # the budget, and entries of >= 1 value
        assert entries < 40 and (hits, misses) == (0, 0)  # older entries went; nothing was fetched yet

        consume_all(server.bootstrap, topic, "first", 400)
        read = scrape(base)
        assert figures(read, CACHE[:2]) == [entries, size]  # reads neither add nor drop entries
        _, _, hits, misses = figures(read, CACHE)
        assert hits > 0 and misses > 0  # the oldest records from Pulsar, the newest from memory
        consume_all(server.bootstrap, topic, "again", 400)  # the same records, once more
        again = scrape(base)
        assert again[(CACHE[2], ())] > hits and again[(CACHE[3], ())] > misses

        # The broker paused (SIGSTOP) under a steady producer: its sends stay unacknowledged.
        paced = threading.Event()

        def steady():
            while not paced.is_set():
                producer.produce(topic, value=b"steady")
                producer.poll(0.005)

        thread = threading.Thread(target=steady, daemon=True)
        thread.start()
        try:
            time.sleep(0.5)
            os.kill(pulsar.process.pid, signal.SIGSTOP)
            try:
                paused = wait_scraped(base, lambda s: s[(SENDS[0], ())] > 0, 10, "sends pending")
            finally:
                os.kill(pulsar.process.pid, signal.SIGCONT)
        finally:
            paced.set()
            thread.join(10)
        assert producer.flush(30) == 0
        wait_scraped(base, lambda s: figures(s, SENDS) == [0, 0], 30, "no sends pending after the pause")

        # Idle for longer than an owner trusts its next offset: an append then waits in kop-fast
        # while the end is read from Pulsar, paused again.
        time.sleep(2)
        os.kill(pulsar.process.pid, signal.SIGSTOP)
        try:
            producer.produce(topic, value=b"waits")
            producer.poll(0)
            waiting = wait_scraped(base, lambda s: s[(SENDS[1], ())] > 0, 10, "an append waiting")
        finally:
            os.kill(pulsar.process.pid, signal.SIGCONT)
        assert producer.flush(30) == 0
        wait_scraped(base, lambda s: figures(s, SENDS) == [0, 0], 30, "nothing waiting after the pause")
        print(f"paused: {paused[(SENDS[0], ())]:.0f} sends pending; then {waiting[(SENDS[1], ())]:.0f} waiting; "
              f"cache {entries:.0f} entries, {size:.0f} bytes; hits/misses {hits:.0f}/{misses:.0f}, "
              f"then {again[(CACHE[2], ())]:.0f}/{again[(CACHE[3], ())]:.0f}")


@pytest.mark.timeout(180)
def test_embedded_broker_up_and_restarts_follow_its_deaths(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data = tmp_path / "kop"
    server = KopServer(data, "--metrics-listen", f"127.0.0.1:{port}").start()
    try:
        up, restarts = "kop_fast_embedded_broker_up", "kop_fast_embedded_broker_restarts_total"
        first = scrape(base)
        assert (first[(up, ())], first[(restarts, ())]) == (1, 0)

        [child] = children_of(server.process.pid)
        os.kill(child, signal.SIGKILL)
        back = wait_scraped(base, lambda s: s[(restarts, ())] == 1, 30, "the restart counted")
        assert back[(up, ())] == 1
        [new_child] = children_of(server.process.pid)
        assert new_child != child and pid_alive(new_child)

        # Killed again with its database replaced by a file: every restart fails (~6 s of backoff
        # before kop-fast gives up), and the broker shows down meanwhile.
        db = data / "pulsar.rocksdb"
        os.kill(new_child, signal.SIGKILL)
        os.rename(db, data / "pulsar.rocksdb.aside")
        db.write_bytes(b"")
        down = wait_scraped(base, lambda s: s[(up, ())] == 0, 5, "the broker down")
        assert down[(restarts, ())] == 1
        assert server.process.wait(60) == 1
    finally:
        server.stop()
