"""`--metrics-listen` on a real kop-fast in front of a separately started pulsar-lite: Prometheus
counters after a confluent-kafka producer and a consumer group, and /ready following the broker."""

from __future__ import annotations

import time

import pytest

from kop_fast.embedded import EmbeddedPulsar, free_port
from tests.support import KopServer
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
