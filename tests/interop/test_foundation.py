"""The foundation over real sockets: ApiVersions, Metadata, malformed input, pipelining, shutdown."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

from tests.support import KopServer, children_of, kafka_request, pid_alive, recv_frame

pytestmark = pytest.mark.interop


def parse_api_versions_v3(frame: bytes):
    """Response header v0 then ApiVersions v3 body (compact arrays, tagged fields)."""
    correlation_id, error_code = struct.unpack_from(">ih", frame, 0)
    pos = 6
    n = frame[pos] - 1  # compact array length + 1 (fits one byte here)
    pos += 1
    keys = []
    for _ in range(n):
        key, lo, hi = struct.unpack_from(">hhh", frame, pos)
        pos += 6
        assert frame[pos] == 0  # no tagged fields per entry
        pos += 1
        keys.append((key, lo, hi))
    return correlation_id, error_code, keys


def test_api_versions_v3_lists_only_implemented_apis(kop_server):
    from kop_fast.server.handlers import api_versions  # noqa: F401 - registers handlers
    from kop_fast.server.registry import REGISTRY

    body = b"\x09kop-test\x060.0.1\x00"  # client software name/version, compact strings
    frame = kafka_request(kop_server.port, 18, 3, body, correlation_id=7, flexible=True)
    correlation_id, error_code, keys = parse_api_versions_v3(frame)
    assert correlation_id == 7
    assert error_code == 0
    assert keys == REGISTRY.supported()
    # Produce and Fetch from v0 (legacy message sets; Produce v0 also for KAFKA-18659)
    assert (0, 0, REGISTRY.get(0).max_version) in keys and (1, 0, REGISTRY.get(1).max_version) in keys
    assert all(lo <= hi for _, lo, hi in keys)
    advertised = {k for k, _, _ in keys}
    assert {18, 3} <= advertised
    # Nothing we do not implement: e.g. EndTxn (26) or AddPartitionsToTxn (24) are absent.
    assert 26 not in advertised and 24 not in advertised
    assert {17, 36} <= advertised  # SaslHandshake, SaslAuthenticate (answered on SASL listeners)


def test_api_versions_unsupported_version_gets_v0_answer(kop_server):
    frame = kafka_request(kop_server.port, 18, 99, b"", correlation_id=11)
    correlation_id, error_code, count = struct.unpack_from(">ihi", frame, 0)
    assert correlation_id == 11
    assert error_code == 35  # UNSUPPORTED_VERSION
    assert count == 1
    key, lo, hi = struct.unpack_from(">hhh", frame, 10)
    assert (key, lo) == (18, 0) and hi >= 3


def test_confluent_admin_lists_this_broker(kop_server):
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": kop_server.bootstrap})
    md = admin.list_topics(timeout=20)
    assert [(b.id, b.host, b.port) for b in md.brokers.values()] == [(0, "127.0.0.1", kop_server.port)]
    assert md.cluster_id
    assert md.controller_id == 0
    md = admin.list_topics(topic="foundation-auto", timeout=20)
    topic = md.topics["foundation-auto"]
    assert topic.error is None
    assert list(topic.partitions) == [0]
    assert topic.partitions[0].leader == 0


def test_kafka_python_metadata(kop_server):
    from confluent_kafka.admin import AdminClient
    from kafka import KafkaConsumer

    # Auto-created by a Metadata request naming it; kafka-python then sees it in "all topics".
    AdminClient({"bootstrap.servers": kop_server.bootstrap}).list_topics(topic="foundation-kp", timeout=20)
    consumer = KafkaConsumer(bootstrap_servers=kop_server.bootstrap, request_timeout_ms=20000)
    try:
        assert "foundation-kp" in consumer.topics()
        assert consumer.partitions_for_topic("foundation-kp") == {0}
    finally:
        consumer.close()


def test_kcat_lists_this_broker(kop_server):
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if kcat is None:
        if os.environ.get("CI"):
            pytest.fail("kcat is not installed; .ci/run should install it")
        pytest.skip("kcat is not installed")
    out = subprocess.run([kcat, "-b", kop_server.bootstrap, "-L", "-m", "20"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"broker 0 at 127.0.0.1:{kop_server.port}" in out.stdout


def test_pipelined_requests_answered_in_order(kop_server):
    body = b"\x09kop-test\x060.0.1\x00"
    metadata_v1 = struct.pack(">i", 0)  # v1: empty topic list = no topics
    requests = b""
    order = []
    for i in range(40):
        if i % 2:
            header = struct.pack(">hhih", 18, 3, i, 4) + b"test" + b"\x00"
            payload = header + body
        else:
            header = struct.pack(">hhih", 3, 1, i, 4) + b"test"
            payload = header + metadata_v1
        requests += struct.pack(">i", len(payload)) + payload
        order.append(i)
    with socket.create_connection(("127.0.0.1", kop_server.port), timeout=20) as s:
        s.sendall(requests)
        got = [struct.unpack_from(">i", recv_frame(s), 0)[0] for _ in order]
    assert got == order


@pytest.mark.parametrize("bad", [
    struct.pack(">i", -5),  # negative size
    struct.pack(">i", 200 * 1024 * 1024),  # above max request size
    struct.pack(">i", 3) + b"\x00\x03\x00",  # shorter than a header
    struct.pack(">ihhih", 10, 9999, 0, 1, -1),  # unknown API key
    struct.pack(">ihhih", 10, 3, 77, 1, -1),  # unsupported Metadata version
    struct.pack(">ihhih", 14, 3, 9, 1, -1) + b"\x05\x00\x00\x00",  # truncated Metadata v9 body
])
def test_malformed_input_closes_connection(kop_server, bad):
    with socket.create_connection(("127.0.0.1", kop_server.port), timeout=10) as s:
        s.sendall(bad)
        assert s.recv(100) == b""  # closed by the server, nothing sent
    # The server is still fine for others.
    frame = kafka_request(kop_server.port, 18, 0, b"", correlation_id=3)
    assert struct.unpack_from(">ih", frame, 0) == (3, 0)


def run_cli(*args, env=None, timeout=30):
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "kop_fast", *args], capture_output=True,
                          text=True, timeout=timeout, env=full_env)


@pytest.mark.parametrize("args,env,needle", [
    (["serve", "--bogus"], {}, "unrecognized arguments: --bogus"),
    (["serve", "--entry-format", "xml"], {}, "entry-format must be one of kafka, pulsar"),
    (["serve", "--default-num-partitions", "0"], {}, "default-num-partitions must be a positive integer"),
    (["serve", "--listen", "nohost"], {}, "is not [PROTOCOL://]HOST:PORT"),
    (["serve", "--listen", "SSL://127.0.0.1:9093"], {}, "need --tls-cert and --tls-key"),
    (["serve", "--pulsar-url", "http://x"], {}, "pulsar-url must look like"),
    (["serve"], {"KOP_FAST_LOG_LEVEL": "chatty"}, "log-level must be one of"),
    (["serve", "--config", "/nonexistent/kop.toml"], {}, "not found"),
    (["frobnicate"], {}, "invalid choice"),
])
def test_invalid_options_one_line_exit_2(args, env, needle):
    out = run_cli(*args, env=env)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert needle in lines[0]


def test_unknown_config_key_is_an_error(tmp_path):
    cfg = tmp_path / "kop.toml"
    cfg.write_text('entry_format = "kafka"\nlisten_backlog = 5\n')
    out = run_cli("serve", "--config", str(cfg))
    assert out.returncode == 2
    assert "unknown key 'listen_backlog'" in out.stderr


def test_sigterm_stops_server_and_embedded_broker(tmp_path):
    server = KopServer(tmp_path / "data").start()
    pid = server.process.pid
    pulsar_pid = int((tmp_path / "data" / "pulsar-lite.pid").read_text())
    assert pulsar_pid in children_of(pid)
    assert pid_alive(pulsar_pid)
    # A client connection open during shutdown does not hold it up.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10):
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(10)
    assert time.monotonic() - started < 10
    assert code == 0
    deadline = time.monotonic() + 5
    while pid_alive(pulsar_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pulsar_pid)
    server.stop()


def test_topics_survive_restart_with_same_data_dir(tmp_path):
    from confluent_kafka.admin import AdminClient

    with KopServer(tmp_path / "data") as server:
        md = AdminClient({"bootstrap.servers": server.bootstrap}).list_topics(topic="survivor", timeout=20)
        assert md.topics["survivor"].error is None
    with KopServer(tmp_path / "data") as server:
        md = AdminClient({"bootstrap.servers": server.bootstrap}).list_topics(timeout=20)
        assert "survivor" in md.topics


def test_kill_9_leaves_no_embedded_broker(tmp_path):
    server = KopServer(tmp_path / "data").start()
    pulsar_pid = int((tmp_path / "data" / "pulsar-lite.pid").read_text())
    server.kill9()
    deadline = time.monotonic() + 5
    while pid_alive(pulsar_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pulsar_pid)
    server.stop()
