"""Hundreds of hostile frames at a real server while a healthy producer keeps producing.

Every frame goes over a fresh socket and must be answered (an error code) or have its
connection closed within FRAME_BOUND_S. Afterwards the server is alive, its RSS has
not jumped, ApiVersions still works, and the healthy producer (acks=all) saw no error
and had every record acknowledged. Decompression bombs also go to a second server
with --entry-format pulsar, the one that decompresses what it stores.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time

import pytest

from kop_fast import codec
from tests import wire_properties as wp
from tests.support import KopServer, kafka_request

pytestmark = pytest.mark.interop

FRAME_BOUND_S = 10
RSS_SLACK_KB = 100 * 1024
MAX_REQUEST = 100 * 1024 * 1024  # the default --max-request-size
CORRUPT_MESSAGE = 2
MESSAGE_TOO_LARGE = 10
UNSUPPORTED_VERSION = 35


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))


def send_hostile(port: int, data: bytes, *, then_close: bool = False) -> str:
    """'answered' (with the frame), 'closed', or 'sent' (we closed first); raises on a hang."""
    with socket.create_connection(("127.0.0.1", port), timeout=FRAME_BOUND_S) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return "closed"
        if then_close:
            return "sent"
        got = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
                if len(got) >= 4 and len(got) >= 4 + struct.unpack(">i", got[:4])[0]:
                    return "answered:" + got[4:].hex()
        except ConnectionResetError:
            pass
        except socket.timeout:
            raise AssertionError(f"no answer and no close within {FRAME_BOUND_S} s for {data[:40].hex()}")
        return "closed"


def framed(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def produce_frame(topic: str, batch: bytes, version: int = 7) -> bytes:
    body = struct.pack(">hhi", -1, -1, 30000) + struct.pack(">ih", 1, len(topic)) + topic.encode()
    body += struct.pack(">ii", 1, 0) + struct.pack(">i", len(batch)) + batch
    return framed(wp.request_header(0, version) + body)


def produce_error(answer: str) -> int:
    """The one partition error code of a Produce v7 response."""
    frame = bytes.fromhex(answer.split(":", 1)[1])
    pos = 4 + 4  # correlation id, topic count
    (name_len,) = struct.unpack_from(">h", frame, pos)
    pos += 2 + name_len + 4 + 4  # name, partition count, partition index
    return struct.unpack_from(">h", frame, pos)[0]


def bombs() -> dict[str, bytes]:
    """Batches of one or two small compressed records that expand to > 100 MB."""
    half = bytes(55 << 20)
    return {c: codec.encode_batch([(0, 1_700_000_000_000, None, half, ()), (1, 1_700_000_000_000, None, half, ())],
                                  compression=c) for c in ("gzip", "zstd", "lz4", "snappy")}


def lying_count_batch() -> bytes:
    """A compressed batch whose header claims 20000 records (more than one entry holds) but holds 2:
    batch_infos cannot see it (the records are compressed), split_batch does."""
    import crc32c

    b = bytearray(codec.encode_batch([(0, 1, None, b"a", ()), (1, 1, None, b"b", ())], compression="gzip"))
    struct.pack_into(">i", b, 23, 19999)  # last offset delta
    struct.pack_into(">i", b, 57, 20000)  # record count
    struct.pack_into(">I", b, 17, crc32c.crc32c(bytes(b[21:])))
    return bytes(b)


def hostile_frames(rng: random.Random):
    """(label, bytes, then_close) of every kind."""
    yield "size 0", b"\0\0\0\0", False
    for size in (-1, -(2**31), MAX_REQUEST + 1, 2**31 - 1):
        yield f"size {size}", struct.pack(">i", size) + b"\0" * 16, False
    for declared in (10, 1000, 70000, 1 << 20):
        yield f"truncated {declared}", struct.pack(">i", declared) + b"\x00\x03\x00\x01" + b"x" * 5, True
    for key in (-1, 99, 1000, 32767):
        yield f"unknown key {key}", framed(struct.pack(">hhih", key, 0, 1, -1)), False
    for key, version in ((3, 99), (0, 0), (0, 2), (1, 3), (3, -1)):
        yield f"unknown version {key} v{version}", framed(struct.pack(">hhih", key, version, 1, -1) + b"\0" * 8), False
    yield "ApiVersions v99", framed(struct.pack(">hhih", 18, 99, 1, -1)), False
    for n in (32767, 100, -2):
        yield f"client_id length {n}", framed(struct.pack(">hhih", 3, 1, 1, n) + b"ab"), False
    yield "flexible header, huge tag count", framed(struct.pack(">hhih", 3, 12, 1, -1) + b"\xff\xff\xff\xff\x0f"), False
    fillers = (b"\xff", b"\x7f", b"\x80", b"\x00\x00\x7f\xff\xff\xff", b"\xff\xff\xff\xff\x0f")
    for key, version in wp.API_VERSIONS:  # every API and version, bodies of lying lengths
        filler = rng.choice(fillers)
        yield f"lying body {key} v{version}", framed(wp.request_header(key, version) + filler * 12), False
    for key, version in rng.sample(wp.API_VERSIONS, 60):  # truncated bodies
        yield f"short body {key} v{version}", framed(wp.request_header(key, version) + b"\x00\x01"), False
    for i in range(120):
        payload = rng.randbytes(rng.randrange(0, 300))
        if i % 2:  # a real API key and version in front of the garbage
            key, version = rng.choice(wp.API_VERSIONS)
            payload = struct.pack(">hh", key, version) + payload
        yield "garbage", framed(payload), False
    for i in range(20):
        yield "garbage without framing", rng.randbytes(rng.randrange(1, 200)), rng.random() < 0.5


class HealthyProducer(threading.Thread):
    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        from confluent_kafka import Producer

        self.producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                                  "message.timeout.ms": 60000})
        self.topic = topic
        self.sent = self.acked = 0
        self.errors: list = []
        self.stopping = threading.Event()

    def _delivered(self, err, msg) -> None:
        if err is not None:
            self.errors.append(err)
        else:
            self.acked += 1

    def run(self) -> None:
        while not self.stopping.is_set():
            self.producer.produce(self.topic, b"healthy-%d" % self.sent, on_delivery=self._delivered)
            self.sent += 1
            self.producer.poll(0.002)

    def finish(self) -> int:
        self.stopping.set()
        self.join(10)
        return self.producer.flush(60)


@pytest.mark.timeout(420)
def test_hostile_frames_leave_the_server_and_other_clients_alone(tmp_path):
    rng = random.Random(20240501)
    kafka = KopServer(tmp_path / "kafka-format")
    native = KopServer(tmp_path / "pulsar-format", "--entry-format", "pulsar")
    producer = None
    try:
        kafka.start()
        native.start()
        producer = HealthyProducer(kafka.bootstrap, "healthy")
        producer.start()
        deadline = time.monotonic() + 60
        while producer.acked < 50 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert producer.acked >= 50, producer.errors
        bomb_batches = bombs()
        # warm both servers up with one bomb each, so RSS "before" includes the one-off buffers
        for server in (kafka, native):
            send_hostile(server.port, produce_frame("bombs", bomb_batches["gzip"]))
        rss_before = {s.port: rss_kb(s.process.pid) for s in (kafka, native)}

        outcomes: dict[str, int] = {}
        sent = 0
        for label, data, then_close in hostile_frames(rng):
            for server in (kafka, native) if sent % 5 == 0 else (kafka,):
                outcome = send_hostile(server.port, data, then_close=then_close)
                outcomes[outcome.split(":")[0]] = outcomes.get(outcome.split(":")[0], 0) + 1
                sent += 1
                if label == "ApiVersions v99":
                    frame = bytes.fromhex(outcome.split(":", 1)[1])
                    assert struct.unpack_from(">h", frame, 4)[0] == UNSUPPORTED_VERSION
                elif label.startswith(("size", "unknown", "client_id")):
                    assert outcome == "closed", (label, outcome)
        for compression, batch in bomb_batches.items():
            for _ in range(2):
                # opaque in the kafka entry format (stored as sent); decompressed and refused in pulsar's
                answer = send_hostile(native.port, produce_frame("bombs", batch))
                assert produce_error(answer) == CORRUPT_MESSAGE, (compression, answer)
                answer = send_hostile(kafka.port, produce_frame("bombs", batch))
                # snappy's ~5 MB does not fit in one Pulsar message: MESSAGE_TOO_LARGE, also fine
                assert produce_error(answer) in (0, MESSAGE_TOO_LARGE), (compression, answer)
                sent += 2
        # More records claimed than a compressed batch holds. The pulsar entry format decodes
        # every record and refuses it; the kafka entry format keeps batches opaque (as sent,
        # never decompressed on the produce path) and stores it: its offsets span the
        # claimed count, as the batch's header says.
        answer = send_hostile(native.port, produce_frame("bombs", lying_count_batch()))
        assert produce_error(answer) == CORRUPT_MESSAGE, answer
        answer = send_hostile(kafka.port, produce_frame("bombs", lying_count_batch()))
        assert produce_error(answer) == 0, answer
        sent += 2

        unacked = producer.finish()
        rss_after = {s.port: rss_kb(s.process.pid) for s in (kafka, native)}
        print(f"hostile frames sent: {sent}, outcomes: {outcomes}")
        print(f"RSS before/after (kB): {rss_before} -> {rss_after}")
        print(f"healthy producer: {producer.sent} sent, {producer.acked} acked, errors {producer.errors}")
        assert sent >= 300
        for server in (kafka, native):
            assert server.process.poll() is None, server.log_text()[-3000:]
            assert rss_after[server.port] - rss_before[server.port] < RSS_SLACK_KB
            frame = kafka_request(server.port, 18, 0, b"")
            assert struct.unpack_from(">h", frame, 4)[0] == 0
        assert unacked == 0 and not producer.errors
        assert producer.acked == producer.sent
    finally:
        if producer is not None and producer.is_alive():
            producer.stopping.set()
        kafka.stop()
        native.stop()
