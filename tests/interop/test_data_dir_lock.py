"""A second kop-fast on a data directory in use stops at once and leaves the running one alone."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kop_fast.embedded import free_port
from tests.support import KopServer

pytestmark = pytest.mark.interop


def round_trip(bootstrap: str, topic: str, value: bytes) -> bytes:
    from confluent_kafka import Consumer, Producer, TopicPartition

    producer = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 15000})
    errors = []
    producer.produce(topic, value=value, on_delivery=lambda err, msg: errors.append(err))
    assert producer.flush(20) == 0 and errors == [None]
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "lock", "auto.offset.reset": "earliest"})
    try:
        consumer.assign([TopicPartition(topic, 0, -2)])  # from the beginning
        for _ in range(40):
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                return msg.value()
    finally:
        consumer.close()
    raise AssertionError("nothing read back")


def test_a_second_server_on_the_same_data_dir_refuses_and_the_first_keeps_working(tmp_path):
    data = tmp_path / "data"
    with KopServer(data) as first:
        assert round_trip(first.bootstrap, "lock-a", b"one") == b"one"
        second = subprocess.run(
            [sys.executable, "-m", "kop_fast", "serve", "--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(data)],
            capture_output=True, text=True, timeout=30)
        assert second.returncode == 1
        assert f"data directory {data} is in use by another kop-fast (pid {first.process.pid})" in second.stderr
        # Its embedded broker was not touched: produce and fetch still work.
        assert round_trip(first.bootstrap, "lock-b", b"two") == b"two"
    # Released when the first stops (and by a SIGKILL: flock locks die with the process).
    with KopServer(data) as again:
        assert round_trip(again.bootstrap, "lock-a", b"three") in (b"one", b"three")
