"""A first run as the README shows it: quiet when healthy, `--version`, usage, and JSON log lines."""

from __future__ import annotations

import json
import re
import shutil
import socket
import struct
import subprocess
import time

import pytest

from tests.interop.test_foundation import run_cli
from tests.support import KopServer

pytestmark = pytest.mark.interop

# pulsar-client's own lines say WARN / ERROR, Python's logging WARNING / ERROR / CRITICAL.
LOUD = re.compile(r"\b(WARN|WARNING|ERROR|CRITICAL|FATAL)\b")


def round_trip(bootstrap: str, topic: str, group: str, count: int = 5) -> None:
    """A group consumer that subscribes before anything is produced (so the new partition is
    first probed while empty), then a producer, then the records back and a commit."""
    from confluent_kafka import Consumer, Producer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([topic])
    try:
        consumer.poll(1)  # joins; the topic is auto-created and still empty
        producer = Producer({"bootstrap.servers": bootstrap})
        for i in range(count):
            producer.produce(topic, key=b"k%d" % i, value=b"v%d" % i, headers=[("trace", b"\x01")])
        assert producer.flush(30) == 0
        got = []
        deadline = time.monotonic() + 30
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got.append(msg.value())
        assert got == [b"v%d" % i for i in range(count)]
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()


def kcat_round_trip(kcat: str, bootstrap: str, topic: str) -> None:
    out = subprocess.run([kcat, "-b", bootstrap, "-L", "-m", "20"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    out = subprocess.run([kcat, "-b", bootstrap, "-P", "-t", topic, "-m", "20"], input="one\ntwo\n",
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    out = subprocess.run([kcat, "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-m", "20"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["one", "two"]


def loud_lines(server: KopServer) -> list[str]:
    return [line for line in server.log_text().splitlines() if LOUD.search(line)]


def test_healthy_start_and_round_trip_print_no_warning(tmp_path):
    """Everything the process prints (kop-fast's log, pulsar-client's C++ lines, pulsar-lite)
    goes to the same output: a fresh start, a round trip, a stop, then a restart on the same
    data with another round trip, and not one WARN or ERROR line."""
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    data = tmp_path / "data"
    for run in ("first", "restart"):
        server = KopServer(data)
        with server:
            round_trip(server.bootstrap, f"quiet-{run}", f"quiet-{run}")
            if kcat is not None:
                kcat_round_trip(kcat, server.bootstrap, f"quiet-kcat-{run}")
        assert "kop-fast ready" in server.log_text()
        assert loud_lines(server) == [], f"{run}:\n" + server.log_text()[-4000:]
    # pulsar-client's own output went to its file under --data-dir.
    assert (data / "pulsar-client.log").exists()


def test_version_and_bare_invocation():
    from importlib import metadata

    import kop_fast

    out = run_cli("--version")
    assert out.returncode == 0, out.stderr
    try:
        expected = metadata.version("kop_fast")
    except metadata.PackageNotFoundError:
        expected = kop_fast.__version__
    assert out.stdout.strip() == f"kop-fast {expected}"

    out = run_cli()
    assert out.returncode == 2
    assert out.stderr.startswith("usage: kop-fast")
    assert "serve" in out.stderr or "COMMAND" in out.stderr


def test_json_log_lines_name_the_connection_and_its_client(tmp_path):
    from confluent_kafka.admin import AdminClient

    with KopServer(tmp_path / "data", "--log-format", "json") as server:
        admin = AdminClient({"bootstrap.servers": server.bootstrap, "client.id": "json-test"})
        assert admin.list_topics(timeout=20).brokers
        del admin  # closes its connections
        # A protocol error closes the connection: a WARNING naming the peer.
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            bad_peer = "%s:%d" % s.getsockname()
            s.sendall(struct.pack(">i", -5))
            assert s.recv(100) == b""
    lines = [json.loads(line) for line in server.log_text().splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert any("kop-fast ready" in line["message"] for line in lines)
    ours = [line for line in lines if line.get("client_id") == "json-test"]
    opened = [line for line in ours if "opened" in line["message"]]
    closed = [line for line in ours if "closed" in line["message"]]
    assert opened and closed
    assert opened[0]["level"] == "INFO"
    assert opened[0]["client_software_name"] == "confluent-kafka-python"
    assert opened[0]["client_software_version"]
    assert opened[0]["peer"].startswith("127.0.0.1:")
    assert {line["peer"] for line in closed} <= {line["peer"] for line in opened}
    [warning] = [line for line in lines if line.get("peer") == bad_peer]
    assert warning["level"] == "WARNING" and "closing connection" in warning["message"]
