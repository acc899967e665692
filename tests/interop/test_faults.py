"""Faults under load: Pulsar and kop-fast killed (SIGKILL) and restarted while a producer runs, the
embedded broker's supervisor, a broker that cannot come back, and a SIGTERM with requests in flight.

The rule checked everywhere: every value a client was told is stored is read back exactly once;
a value whose delivery failed is there at most once; nothing is acknowledged before Pulsar has it.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import threading
import time
from collections import Counter

import pytest

from kop_fast.embedded import EmbeddedPulsar, free_port
from tests.interop.test_produce_fetch import build_batch, produce_v3_body
from tests.support import KopServer, children_of, pid_alive, recv_frame

pytestmark = pytest.mark.interop

PARTITIONS = 3
# Retriable Produce errors kop-fast may answer while Pulsar is away (storage_errors.py).
RETRIABLE_PRODUCE_ERRORS = {6, 7, 19, 20}  # NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT, NOT_ENOUGH_REPLICAS(_AFTER)


class NumberedProducer(threading.Thread):
    """Produces b"%08d" % i for i = 0, 1, ... (acks=all) until stopped; records every delivery report."""

    def __init__(self, bootstrap: str, topic: str, rate_per_s: int = 2000, **conf) -> None:
        super().__init__(daemon=True, name="numbered-producer")
        self.conf = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "log_level": 2, **conf}
        self.topic = topic
        self.pause_s = 100 / rate_per_s  # per 100 records
        self.acked: set[int] = set()
        self.ack_times: list[float] = []
        self.failed: dict[int, object] = {}
        self.sent = 0
        self.unflushed = None
        self._done = threading.Event()
        self._purge = threading.Event()
        self._lock = threading.Lock()

    def _report(self, err, msg) -> None:
        value = int(msg.value())
        with self._lock:
            if err is None:
                self.acked.add(value)
                self.ack_times.append(time.monotonic())
            else:
                self.failed[value] = err

    def run(self) -> None:
        from confluent_kafka import Producer

        producer = Producer(self.conf)
        while not self._done.is_set():
            try:
                producer.produce(self.topic, value=b"%08d" % self.sent, on_delivery=self._report)
            except BufferError:
                producer.poll(0.1)
                continue
            self.sent += 1
            producer.poll(0)
            if self.sent % 100 == 0:
                time.sleep(self.pause_s)
        if self._purge.is_set():
            producer.purge()  # what is unacknowledged fails now (reported), not at message.timeout.ms
        self.unflushed = producer.flush(120)

    def finish(self, timeout: float = 150, purge: bool = False) -> None:
        if purge:
            self._purge.set()
        self._done.set()
        self.join(timeout)
        assert not self.is_alive(), "the producer did not flush in time"

    def acks(self) -> int:
        with self._lock:
            return len(self.acked)

    def wait_acks(self, more: int, within_s: float) -> float:
        """Seconds until `more` further values are acknowledged."""
        started, target = time.monotonic(), self.acks() + more
        while self.acks() < target:
            assert self.is_alive(), "the producer thread died"
            if time.monotonic() - started > within_s:
                pytest.fail(f"only {self.acks()} of {target} acknowledged within {within_s} s; failed: "
                            f"{Counter(str(e) for e in self.failed.values()).most_common(3)}")
            time.sleep(0.05)
        return time.monotonic() - started

    def longest_gap(self) -> float:
        """The longest time without an acknowledgement (the outage as the client saw it)."""
        times = sorted(self.ack_times)
        return max((b - a for a, b in zip(times, times[1:])), default=0.0)


def read_everything(bootstrap: str, topic: str, want: set[int], idle_s: float = 5.0,
                    within_s: float = 120) -> Counter:
    """Every value in every partition from the beginning, counted."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "faults-reader", "enable.auto.commit": False,
                         "fetch.wait.max.ms": 100})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    seen: Counter = Counter()
    try:
        started = last = time.monotonic()
        while time.monotonic() - started < within_s:
            msgs = consumer.consume(10_000, 0.5)
            good = [m for m in msgs if m.error() is None]
            for m in good:
                seen[int(m.value())] += 1
            now = time.monotonic()
            if good:
                last = now
            elif now - last > (1.0 if want <= seen.keys() else idle_s):
                break
    finally:
        consumer.close()
    return seen


def assert_exactly_once(producer: NumberedProducer, seen: Counter, *, retried_ok: bool = False) -> int:
    """Nothing acknowledged lost or doubled; `retried_ok`: a plain producer's retry of a request whose
    answer was lost may store an acknowledged value twice (never more). The number doubled."""
    assert producer.unflushed == 0
    lost = sorted(v for v in producer.acked if seen[v] == 0)
    doubled = sorted(v for v in producer.acked if seen[v] > (2 if retried_ok else 1))
    failed_doubled = sorted(v for v in producer.failed if seen[v] > 1)
    unknown = sorted(v for v in seen if v >= producer.sent)
    assert not lost, f"{len(lost)} acknowledged values lost, e.g. {lost[:10]}"
    assert not doubled, f"{len(doubled)} acknowledged values stored more than once, e.g. {doubled[:10]}"
    assert not failed_doubled and not unknown
    assert len(producer.acked) + len(producer.failed) == producer.sent
    return sum(1 for v in producer.acked if seen[v] > 1)


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})  # alive until the answer is in
    [future] = admin.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=20).values()
    future.result(30)


def wait_for(predicate, within_s: float, what: str) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > within_s:
            pytest.fail(f"{what} not within {within_s} s")
        time.sleep(0.05)
    return time.monotonic() - started


def embedded_child(server: KopServer) -> int:
    [pid] = children_of(server.process.pid)
    return pid


@pytest.fixture
def stopper():
    """Things to stop at the end of the test, whatever happens."""
    things = []
    yield things.append
    for thing in reversed(things):
        try:
            thing.stop()
        except Exception:  # noqa: BLE001 - stop everything else too
            pass


# -- a: external Pulsar killed and restarted, then kop-fast killed and restarted ----------------------

@pytest.mark.timeout(300)
@pytest.mark.parametrize("idempotent", [False, True], ids=["plain", "idempotent"])
def test_acknowledged_records_survive_pulsar_and_kop_fast_kills(tmp_path, stopper, capsys, idempotent):
    # Pulsar's death alone never duplicated anything (also 6 kills at 30,000 records/s, a 40 s outage):
    # pulsar-client resends only what Pulsar had not acknowledged. kop-fast's death can: a Produce stored
    # just before the SIGKILL is never answered, and a plain producer sends those records again (seen once:
    # 99 records of one stored batch again in the producer's first batch after the restart). Idempotence
    # makes that exact: the restarted kop-fast reads producer state back from the stored tail.
    broker = EmbeddedPulsar(tmp_path / "pulsar")
    broker.start()
    stopper(broker)
    listen = f"127.0.0.1:{free_port()}"
    server = KopServer(tmp_path / "kop", "--pulsar-url", broker.url, listen=listen).start()
    stopper(server)
    topic = "faults-external"
    create_topic(server.bootstrap, topic, PARTITIONS)
    producer = NumberedProducer(server.bootstrap, topic, **{"enable.idempotence": idempotent})
    producer.start()
    stopper(type("S", (), {"stop": lambda self: producer.finish(5)})())
    producer.wait_acks(3000, 60)

    # Pulsar dies. A Produce sent meanwhile must not succeed before Pulsar is back.
    broker.process.kill()
    broker.process.wait(10)
    killed = time.monotonic()
    raw = RawProduce(server.port, topic, [b"%08d" % 99_000_000])
    raw.start()
    time.sleep(3)
    # Pulsar can take the write before restart() has seen it ready (its probe polls), so the
    # answer may precede restart()'s return; it must not precede the restart's start.
    restarting = time.monotonic()
    broker.restart()
    back = time.monotonic()
    resumed_pulsar = producer.wait_acks(3000, 90)
    [(error, offset, answered)] = raw.answers(60)
    assert error in RETRIABLE_PRODUCE_ERRORS or (error == 0 and answered >= restarting), (error, answered - killed)

    # kop-fast dies, and comes back on the same port.
    server.kill9()
    time.sleep(1)
    server = KopServer(tmp_path / "kop", "--pulsar-url", broker.url, listen=listen).start()
    stopper(server)
    resumed_kop = producer.wait_acks(3000, 90)
    producer.finish()
    seen = read_everything(server.bootstrap, topic, producer.acked)
    raw_copies = seen.pop(99_000_000, 0)
    assert raw_copies == 1 if error == 0 else raw_copies <= 1
    doubled = assert_exactly_once(producer, seen, retried_ok=not idempotent)
    mode = "idempotent" if idempotent else "plain"
    with capsys.disabled():
        print(f"\n[a {mode}] sent {producer.sent}, acknowledged {len(producer.acked)}, failed {len(producer.failed)}, "
              f"read {sum(seen.values())}; Pulsar down {back - killed:.1f} s, 3000 more acks "
              f"{resumed_pulsar:.1f} s after its restart; 3000 acks {resumed_kop:.1f} s after kop-fast's; "
              f"longest gap between acks {producer.longest_gap():.1f} s; raw produce during the outage: "
              f"error {error} after {answered - killed:.1f} s; acknowledged values stored twice: {doubled}")


class RawProduce(threading.Thread):
    """Produce v3 requests (one batch each, partition 0) pipelined on one connection; their answers."""

    def __init__(self, port: int, topic: str, values: list[bytes], per_request: int = 1) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.topic = topic
        self.batches = [values[i:i + per_request] for i in range(0, len(values), per_request)]
        self._answers: list[tuple[int, int, float]] = []
        self.error: BaseException | None = None
        self.sent = threading.Event()

    def run(self) -> None:
        from kio.schema.produce.v3.response import ProduceResponse
        from kio.serial import entity_reader

        try:
            for i, values in enumerate(self.batches):
                body = produce_v3_body(self.topic, bytes(build_batch(values, int(time.time() * 1000))))
                header = struct.pack(">hhih", 0, 3, i, 4) + b"test"
                self.sock.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
            self.sent.set()
            read = entity_reader(ProduceResponse)
            for i in range(len(self.batches)):
                frame = recv_frame(self.sock)
                assert struct.unpack(">i", frame[:4])[0] == i
                response, _ = read(frame, 4)  # after the correlation id
                [part] = response.responses[0].partition_responses
                self._answers.append((int(part.error_code), part.base_offset, time.monotonic()))
        except BaseException as exc:  # noqa: BLE001 - reported by answers()
            self.error = exc
        finally:
            self.sock.close()

    def answers(self, within_s: float) -> list[tuple[int, int, float]]:
        self.join(within_s)
        assert not self.is_alive(), "Produce not answered in time"
        assert self.error is None, repr(self.error)
        return self._answers


# -- b: the embedded broker dies; the supervisor restarts it, or cannot -------------------------------

@pytest.mark.timeout(240)
def test_supervisor_restarts_a_dead_embedded_broker_under_load(tmp_path, stopper, capsys):
    server = KopServer(tmp_path / "kop").start()
    stopper(server)
    topic = "faults-embedded"
    create_topic(server.bootstrap, topic, PARTITIONS)
    producer = NumberedProducer(server.bootstrap, topic, **{"enable.idempotence": True})
    producer.start()
    stopper(type("S", (), {"stop": lambda self: producer.finish(5)})())
    producer.wait_acks(3000, 60)
    restarts = []
    for _ in range(2):  # twice: the restarted broker is supervised too
        child = embedded_child(server)
        os.kill(child, signal.SIGKILL)
        killed = time.monotonic()
        noticed = wait_for(lambda: server.log_text().count("embedded pulsar-lite restarted") > len(restarts), 10,
                           "the restart")
        new_child = embedded_child(server)
        assert new_child != child and pid_alive(new_child)
        resumed = producer.wait_acks(2000, 60)
        restarts.append((noticed, resumed, time.monotonic() - killed))
    producer.finish()
    log = server.log_text()
    assert f"WARNING kop_fast.embedded: embedded pulsar-lite (pid {child}) exited with code -9" in log
    seen = read_everything(server.bootstrap, topic, producer.acked)
    assert_exactly_once(producer, seen)
    assert server.stop() == 0
    assert not pid_alive(new_child)
    with capsys.disabled():
        print(f"\n[b] sent {producer.sent}, acknowledged {len(producer.acked)}, read {sum(seen.values())}; "
              + "; ".join(f"restarted {n:.2f} s after the kill, 2000 more acks {r:.1f} s after"
                          for n, r, _ in restarts) + f"; longest gap between acks {producer.longest_gap():.1f} s")


@pytest.mark.timeout(120)
def test_kop_fast_exits_with_a_reason_when_the_embedded_broker_cannot_come_back(tmp_path, stopper, capsys):
    data = tmp_path / "kop"
    server = KopServer(data).start()
    stopper(server)
    child = embedded_child(server)
    # Its database replaced by a file: every restart fails the way a broken disk would make it.
    db = data / "pulsar.rocksdb"
    os.kill(child, signal.SIGKILL)
    os.rename(db, data / "pulsar.rocksdb.aside")
    db.write_bytes(b"")
    killed = time.monotonic()
    code = server.process.wait(60)
    took = time.monotonic() - killed
    log = server.log_text()
    assert code == 1, log[-2000:]
    [reason] = [line for line in log.splitlines() if line.startswith("kop-fast: error:")]
    assert "the embedded pulsar-lite died and could not be restarted (5 tries): pulsar-lite exited with code 1" \
        in reason
    assert log.count("restarting the embedded pulsar-lite failed") == 5
    assert not any(pid_alive(p) for p in children_of(server.process.pid))
    with capsys.disabled():
        print(f"\n[b'] gave up and exited 1 {took:.1f} s after the broker died: {reason}")


# -- c: kop-fast SIGKILLed on its embedded broker ------------------------------------------------------

@pytest.mark.timeout(240)
def test_kop_fast_killed_mid_stream_keeps_records_and_committed_offsets(tmp_path, stopper, capsys):
    from confluent_kafka import Consumer, TopicPartition

    listen = f"127.0.0.1:{free_port()}"
    server = KopServer(tmp_path / "kop", listen=listen).start()
    stopper(server)
    topic, group = "faults-kop-kill", "faults-group"
    create_topic(server.bootstrap, topic, PARTITIONS)
    producer = NumberedProducer(server.bootstrap, topic, **{"enable.idempotence": True})
    producer.start()
    stopper(type("S", (), {"stop": lambda self: producer.finish(5)})())
    producer.wait_acks(2000, 60)

    consumer_conf = {"bootstrap.servers": server.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                     "enable.auto.commit": False}
    consumer = Consumer(consumer_conf)
    consumer.subscribe([topic])
    try:
        got = 0
        deadline = time.monotonic() + 60
        while got < 1000 and time.monotonic() < deadline:
            got += sum(1 for m in consumer.consume(500, 0.5) if m.error() is None)
        assert got >= 1000
        committed = {tp.partition: tp.offset for tp in consumer.commit(asynchronous=False) if tp.offset >= 0}
    finally:
        consumer.close()
    assert committed
    # As in Kafka, LeaveGroup is answered before the group's new (empty) state is stored: a kill within
    # a few ms of close() leaves the old member in the stored group, and a new one then waits for its
    # session timeout (45 s) — seen 3 times in 7 runs with no pause. The commit itself is stored when answered.
    time.sleep(0.5)
    server.kill9()
    killed = time.monotonic()
    server = KopServer(tmp_path / "kop", listen=listen).start()
    stopper(server)
    up = time.monotonic() - killed
    resumed = producer.wait_acks(2000, 60)

    consumer = Consumer(consumer_conf)
    try:
        started = time.monotonic()
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        after = {tp.partition: tp.offset for tp in consumer.committed(parts, timeout=15)}
        assert {p: o for p, o in after.items() if p in committed} == committed
        consumer.subscribe([topic])
        first = None
        while first is None and time.monotonic() - started < 15:
            for m in consumer.consume(100, 0.5):
                if m.error() is None:
                    first = m
                    break
        assert first is not None, "the group was not usable again within 15 s"
        assert first.offset() >= committed.get(first.partition(), 0)
        usable = time.monotonic() - started
    finally:
        consumer.close()
    producer.finish()
    seen = read_everything(server.bootstrap, topic, producer.acked)
    assert_exactly_once(producer, seen)
    with capsys.disabled():
        print(f"\n[c] sent {producer.sent}, acknowledged {len(producer.acked)}, read {sum(seen.values())}; "
              f"kop-fast ready {up:.1f} s after the kill, 2000 more acks {resumed:.1f} s after; committed "
              f"offsets intact and the group delivering {usable:.1f} s after the restart")


# -- d: SIGTERM with Produce in flight ------------------------------------------------------------------

@pytest.mark.timeout(180)
def test_sigterm_answers_every_request_in_flight_and_exits_0(tmp_path, stopper, capsys):
    data = tmp_path / "kop"
    server = KopServer(data).start()
    stopper(server)
    topic = "faults-sigterm"
    create_topic(server.bootstrap, topic, 1)
    # A confluent producer keeps requests in flight; raw requests show each answer.
    producer = NumberedProducer(server.bootstrap, topic, rate_per_s=20_000, **{"message.timeout.ms": 20000})
    producer.start()
    stopper(type("S", (), {"stop": lambda self: producer.finish(5)})())
    producer.wait_acks(5000, 60)
    values = [b"%08d" % (90_000_000 + i) for i in range(2000)]
    raw = RawProduce(server.port, topic, values, per_request=50)
    raw.start()
    raw.sent.wait(30)
    server.process.send_signal(signal.SIGTERM)
    terminated = time.monotonic()
    code = server.process.wait(10)
    took = time.monotonic() - terminated
    answers = raw.answers(5)
    # The server is gone: what it did not acknowledge would otherwise wait out message.timeout.ms (20 s).
    producer.finish(purge=True)
    assert code == 0
    assert len(answers) == len(raw.batches)
    assert all(e == 0 or e in RETRIABLE_PRODUCE_ERRORS for e, _, _ in answers), Counter(e for e, _, _ in answers)
    stored_raw = {int(v) for (e, _, _), batch in zip(answers, raw.batches) if e == 0 for v in batch}

    server.stop()
    server = KopServer(data).start()
    stopper(server)
    seen = read_everything(server.bootstrap, topic, producer.acked | stored_raw)
    raw_seen = {v: seen.pop(v) for v in list(seen) if v >= 90_000_000}
    assert all(raw_seen.get(v) == 1 for v in stored_raw), "a raw Produce answered with success is not stored"
    assert all(c == 1 for c in raw_seen.values())
    assert_exactly_once(producer, seen)
    with capsys.disabled():
        print(f"\n[d] SIGTERM: exit {code} after {took:.1f} s; raw requests answered {len(answers)}/"
              f"{len(raw.batches)} ({Counter(e for e, _, _ in answers)}); confluent producer: sent {producer.sent}, "
              f"acknowledged {len(producer.acked)}, failed {len(producer.failed)}, read {sum(seen.values())}")
