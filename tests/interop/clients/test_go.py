"""Go clients against kop-fast: Sarama, segmentio kafka-go and confluent-kafka-go, as Debian ships them.

Each client is a small program under `go/<client>/main.go`, built with Debian's Go toolchain from the
packages' sources (`GOPATH=/usr/share/gocode GO111MODULE=off`, no module downloads), once per session
and cached by a hash of its inputs. The programs exchange the canonical records (canonical.py) as
JSON lines: (a) the Go client produces them and confluent-kafka reads them back, (b) confluent-kafka
writes them and the Go client reads them in a consumer group and commits, and confluent-kafka's
`Consumer.committed()` must then show the commit.

Sarama below `Version = V0_11_0_0` (its default is V0_8_2_0: Produce v0 and Fetch v0, magic 0
messages) and kafka-go 0.2.1 (Produce v2 and Fetch v2, magic 1 messages) use the legacy message
formats, which kop-fast converts (README, "Old clients"; kop_fast/protocol/legacy_records.py): their
tests check what each format carries. Magic 0 and 1 have no headers (Sarama refuses to produce them
below V0_11_0_0; kafka-go 0.2.1 has none; a legacy fetch drops them), magic 0 has no timestamps
(kop-fast stores the receive time as CreateTime; Sarama reads none), magic 1 keeps the client's.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.interop.clients.canonical import (
    assert_same_records,
    canonical_records,
    confluent_read,
    confluent_write,
    read_json_lines,
    write_json_lines,
)
from tests.interop.test_produce_fetch import unique, watermarks

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent / "go"
GOPATH = Path("/usr/share/gocode")
# client -> (the import path its program builds from, the Debian package that ships it)
PACKAGES = {
    "sarama": ("github.com/Shopify/sarama", "golang-github-shopify-sarama-dev"),
    "kafka-go": ("github.com/segmentio/kafka-go", "golang-github-segmentio-kafka-go-dev"),
    "confluent-kafka-go": ("github.com/confluentinc/confluent-kafka-go/kafka",
                           "golang-github-confluentinc-confluent-kafka-go-dev"),
}
BUILD_TIMEOUT_S = 300
RUN_TIMEOUT_S = 45
# The newest Kafka version Sarama 1.22.1 knows (its MaxVersion); most programs set one like it.
SARAMA_MODERN = "2.2.0"

_built: dict[str, Path] = {}
_failed: dict[str, str] = {}  # a build that failed fails every test of that client, built once


# -- building and running the programs --------------------------------------------------------------

def _cache_root() -> Path:
    for base in (os.environ.get("KOP_FAST_TEST_CACHE"), os.environ.get("XDG_CACHE_HOME"),
                 Path.home() / ".cache"):
        if base:
            root = Path(base) / "kop-fast-tests" / "go"
            try:
                root.mkdir(parents=True, exist_ok=True)
                if os.access(root, os.W_OK):
                    return root
            except OSError:
                pass
    root = Path(tempfile.gettempdir()) / "kop-fast-tests" / "go"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _inputs_hash(go: str, source: Path) -> str:
    """The program's source, the toolchain and the package sources it builds from (by size and mtime)."""
    h = hashlib.sha256(source.read_bytes())
    h.update(subprocess.run([go, "version"], capture_output=True, timeout=30).stdout)
    for path in sorted((GOPATH / "src").rglob("*.go")) + sorted(Path("/usr/include/librdkafka").glob("*.h")):
        st = path.stat()
        h.update(f"{path}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def go_program(client: str) -> Path:
    """The built program of `client` (built once per session, cached across sessions).

    No `go`: the test is skipped. A missing package source or a failed build fails it."""
    if client in _built:
        return _built[client]
    if client in _failed:
        pytest.fail(_failed[client], pytrace=False)
    go = shutil.which("go")
    if go is None:
        pytest.skip("the Go toolchain is not installed (Debian: apt-get install golang-go)")
    import_path, package = PACKAGES[client]
    if not (GOPATH / "src" / import_path).is_dir():
        pytest.fail(f"{client}: {GOPATH / 'src' / import_path} is missing: "
                    f"install the Debian package {package} (apt-get install -y {package})", pytrace=False)
    source = HERE / client / "main.go"
    root = _cache_root()
    binary = root / f"{client}-{_inputs_hash(go, source)}"
    if not binary.exists():
        # GOPATH mode on the packages' sources; nothing is downloaded.
        env = {**os.environ, "GOPATH": str(GOPATH), "GO111MODULE": "off", "GOFLAGS": "", "GOPROXY": "off",
               "GOCACHE": str(root / "gocache")}
        tmp = binary.with_name(f"{binary.name}.tmp{os.getpid()}")
        try:
            proc = subprocess.run([go, "build", "-o", str(tmp), "main.go"], cwd=source.parent, env=env,
                                  capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            tmp.unlink(missing_ok=True)
            output = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
            _failed[client] = f"{client}: go build did not finish within {BUILD_TIMEOUT_S} s:\n{output}"
            pytest.fail(_failed[client], pytrace=False)
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            _failed[client] = f"{client}: go build failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}"
            pytest.fail(_failed[client], pytrace=False)
        os.replace(tmp, binary)
    _built[client] = binary
    return binary


def run(client: str, *args: str, stdin: str = "", timeout: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run the client's program; it stops itself a little before `timeout` (status 2)."""
    env = {**os.environ, "GO_CLIENT_TIMEOUT_S": str(int(timeout) - 5)}
    return subprocess.run([str(go_program(client)), *args], input=stdin, capture_output=True, text=True,
                          env=env, timeout=timeout)


def ok(proc: subprocess.CompletedProcess, who: str) -> list[dict]:
    assert proc.returncode == 0, f"{who} exited with {proc.returncode}:\n{proc.stderr[-4000:]}"
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def refused(proc: subprocess.CompletedProcess, who: str) -> str:
    """The program's own error line (it failed, as expected)."""
    assert proc.returncode == 1, f"{who}: expected a client error (status 1), got {proc.returncode}:\n" \
                                 f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert errors, proc.stderr[-4000:]
    return errors[-1]


def committed(bootstrap: str, group: str, topic: str, partition: int = 0) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        [tp] = consumer.committed([TopicPartition(topic, partition)], timeout=15)
    finally:
        consumer.close()
    assert tp.error is None, tp.error
    return tp.offset


def as_records(lines: list[dict]):
    return read_json_lines("".join(json.dumps(line) + "\n" for line in lines))


def without_headers(records):
    return [replace(r, headers=()) for r in records]


def legacy(records, *, magic: int):
    """What a consumer gets of `records` as magic 0/1 messages: no headers; magic 0 no timestamp
    either (the programs print -1)."""
    return [replace(r, headers=(), timestamp=r.timestamp if magic else -1) for r in records]


def now_ms() -> int:
    return int(time.time() * 1000)


def read_back(bootstrap: str, client: str, *extra: str, expect=lambda records: records) -> None:
    """(b): confluent-kafka writes, `client` reads the records in a new group and commits;
    `expect`: what of the records the client can see."""
    go_program(client)
    topic, group = unique(f"go-{client}-in"), unique(f"go-{client}-group")
    records = canonical_records(topic)
    offsets = confluent_write(bootstrap, topic, records)
    lines = ok(run(client, "consume-group", "-bootstrap", bootstrap, "-topic", topic, "-group", group,
                   "-count", str(len(records)), *extra), client)
    assert_same_records(as_records(lines), expect(records), who=client)
    assert [line["offset"] for line in lines] == offsets
    assert committed(bootstrap, group, topic) == offsets[-1] + 1


def written_then_read(bootstrap: str, client: str, *extra: str) -> None:
    """(a): `client` produces, confluent-kafka reads back the same records at the offsets it was told."""
    go_program(client)
    topic = unique(f"go-{client}-out")
    records = canonical_records(topic)
    lines = ok(run(client, "produce", "-bootstrap", bootstrap, "-topic", topic, "-partition", "0", *extra,
                   stdin=write_json_lines(records)), client)
    offsets = [line["offset"] for line in lines]
    assert len(offsets) == len(records) and offsets == sorted(set(offsets)), offsets
    assert_same_records(confluent_read(bootstrap, topic, len(records), start=offsets[0]), records, who=client)


# -- Sarama -----------------------------------------------------------------------------------------

@pytest.mark.compat("sarama", "produce with the default configuration (Version V0_8_2_0: Produce v0, magic 0 "
                              "messages): keys and values, read back by confluent-kafka with kop-fast's receive "
                              "time as CreateTime (magic 0 has no timestamps; Kafka would store none), and by a "
                              "default-config Sarama Consumer (Fetch v0)")
def test_sarama_default_config_produce_read_back(kop_server):
    go_program("sarama")
    topic = unique("go-sarama-default-out")
    records = without_headers(canonical_records(topic))  # with headers, see the next test
    before = now_ms()
    lines = ok(run("sarama", "produce", "-bootstrap", kop_server.bootstrap, "-topic", topic, "-partition", "0",
                   stdin=write_json_lines(records)), "sarama")
    after = now_ms()
    offsets = [line["offset"] for line in lines]
    assert offsets == list(range(len(records))), offsets
    got = confluent_read(kop_server.bootstrap, topic, len(records))
    assert all(before <= r.timestamp <= after for r in got), ([r.timestamp for r in got], before, after)
    assert_same_records([replace(r, timestamp=0) for r in got], [replace(r, timestamp=0) for r in records],
                        who="confluent-kafka reading what Sarama wrote as magic 0")
    back = ok(run("sarama", "consume", "-bootstrap", kop_server.bootstrap, "-topic", topic,
                  "-count", str(len(records))), "sarama")
    assert [line["offset"] for line in back] == offsets
    assert_same_records(as_records(back), legacy(records, magic=0), who="Sarama reading back with Fetch v0")


@pytest.mark.compat("sarama", "produce records with headers with the default configuration (Version V0_8_2_0)",
                    result="not supported by Sarama itself: the messages with headers fail in Sarama before any "
                           "request, `kafka: invalid configuration (Producing headers requires Kafka at least "
                           "v0.11)` (SendMessages: `kafka: Failed to deliver 4 messages.`); set Version >= "
                           "V0_11_0_0 for headers")
def test_sarama_default_config_refuses_headers_itself(kop_server):
    go_program("sarama")
    topic = unique("go-sarama-default-headers")
    records = [r for r in canonical_records(topic) if r.headers]
    error = refused(run("sarama", "produce", "-bootstrap", kop_server.bootstrap, "-topic", topic, "-partition", "0",
                        stdin=write_json_lines(records)), "sarama")
    assert error == (f"error: send: kafka: Failed to deliver {len(records)} messages.; errors: kafka: invalid "
                     "configuration (Producing headers requires Kafka at least v0.11)"), error


@pytest.mark.compat("sarama", "a Consumer (no group) with the default configuration (Fetch v0, magic 0 messages): "
                              "reads what confluent-kafka wrote, from the first offset and from inside the stored "
                              "batch: keys and values (no headers and no timestamps, magic 0 carries neither)")
def test_sarama_default_config_consumer_reads_what_confluent_wrote(kop_server):
    go_program("sarama")
    topic = unique("go-sarama-default-in")
    records = canonical_records(topic)
    offsets = confluent_write(kop_server.bootstrap, topic, records)
    for start in (0, 3):
        lines = ok(run("sarama", "consume", "-bootstrap", kop_server.bootstrap, "-topic", topic,
                       "-offset", str(offsets[start]), "-count", str(len(records) - start)), "sarama")
        assert [line["offset"] for line in lines] == offsets[start:]
        assert_same_records(as_records(lines), legacy(records[start:], magic=0), who="Sarama (Fetch v0)")


@pytest.mark.compat("sarama", "consumer group with the default configuration (Version V0_8_2_0)",
                    result="not supported by Sarama itself: `kafka: invalid configuration (consumer groups "
                           "require Version to be >= V0_10_2_0)`; V0_10_2_0 works (next row)")
def test_sarama_default_config_consumer_group_is_refused_by_sarama(kop_server):
    error = refused(run("sarama", "consume-group", "-bootstrap", kop_server.bootstrap, "-topic",
                        unique("go-sarama-default"), "-group", unique("g"), "-count", "1"), "sarama")
    assert error == ("error: new consumer group: kafka: invalid configuration "
                     "(consumer groups require Version to be >= V0_10_2_0)"), error


@pytest.mark.compat("sarama", "consumer group with Version V0_10_2_0, the oldest Sarama allows for groups (Fetch "
                              "v3, magic 1 messages): reads what confluent-kafka wrote, keys, values and "
                              "timestamps (no headers: magic 1 has none), the marked offsets committed on "
                              "leaving, seen by committed()")
def test_sarama_v0_10_consumer_group_reads_and_commits(kop_server):
    read_back(kop_server.bootstrap, "sarama", "-version", "0.10.2.0",
              expect=lambda records: legacy(records, magic=1))


@pytest.mark.parametrize("version", ["0.11.0.0", SARAMA_MODERN])
@pytest.mark.compat("sarama", "produce with Version V0_11_0_0 or V2_2_0_0 (its newest): keys, binary and null "
                              "header values, timestamps, read back by confluent-kafka")
def test_sarama_produce_read_back_by_confluent(kop_server, version):
    written_then_read(kop_server.bootstrap, "sarama", "-version", version)


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
@pytest.mark.compat("sarama", "produce compressed (gzip, snappy, lz4, zstd) with Version V2_2_0_0, read back by "
                              "confluent-kafka (Sarama 1.22 sends zstd in Produce v3; kop-fast takes it, Kafka "
                              "wants v7+)")
def test_sarama_compressed_produce_read_back_by_confluent(kop_server, codec):
    written_then_read(kop_server.bootstrap, "sarama", "-version", SARAMA_MODERN, "-compression", codec)


@pytest.mark.compat("sarama", "idempotent produce (Producer.Idempotent, acks all, one open request) with Version "
                              "V2_2_0_0, read back by confluent-kafka")
def test_sarama_idempotent_produce_read_back_by_confluent(kop_server):
    # Sarama 1.22 resends an idempotent batch answered with a retriable error at once (a metadata
    # refresh, no backoff), Producer.Retry.Max (3) times, then fails it, or hangs when it held more
    # than one message (retryBatch answers only the first). kop-fast therefore holds the batches that
    # arrive while it reads a partition's producer state instead of answering them
    # NOT_LEADER_OR_FOLLOWER (kop_fast/server/producer_recovery.py), as a Kafka broker leading the
    # partition never has to: this runs with Sarama's default retry settings.
    written_then_read(kop_server.bootstrap, "sarama", "-version", SARAMA_MODERN, "-idempotent")


@pytest.mark.compat("sarama", "consumer group with Version V2_2_0_0 and Offsets.Initial OffsetOldest: reads "
                              "what confluent-kafka wrote (keys, binary and null header values, timestamps), "
                              "the marked offsets committed on leaving, seen by committed()")
def test_sarama_consumer_group_reads_and_commits(kop_server):
    read_back(kop_server.bootstrap, "sarama", "-version", SARAMA_MODERN)


# -- segmentio kafka-go 0.2.1 -----------------------------------------------------------------------

@pytest.mark.compat("kafka-go", "produce with a default Writer (Produce v2, magic 1 messages): keys, values and "
                                "timestamps (kafka-go 0.2.1 has no headers), read back by confluent-kafka")
def test_kafka_go_produce_read_back_by_confluent(kop_server):
    go_program("kafka-go")
    topic = unique("go-kafka-go-out")
    records = without_headers(canonical_records(topic))
    assert ok(run("kafka-go", "produce", "-bootstrap", kop_server.bootstrap, "-topic", topic,
                  stdin=write_json_lines(records)), "kafka-go") == [{"written": len(records)}]
    assert_same_records(confluent_read(kop_server.bootstrap, topic, len(records)), records,
                        who="confluent-kafka reading what kafka-go wrote as magic 1")
    assert watermarks(kop_server.bootstrap, topic) == (0, len(records))


@pytest.mark.compat("kafka-go", "consumer group with a default Reader (Fetch v2, magic 1 messages): reads what "
                                "confluent-kafka wrote, keys, values and timestamps (no headers: magic 1 has "
                                "none; kafka-go reads an empty value as nil), CommitMessages seen by committed()")
def test_kafka_go_consumer_group_reads_and_commits(kop_server):
    def seen(records):
        # kafka-go 0.2.1 decodes an empty value (length 0 on the wire) as nil, like a null one.
        return [replace(r, value=r.value or None) for r in legacy(records, magic=1)]

    # -fail-fast: the Reader retries any error forever; its first one ends the run. The run takes
    # ~10 s more than the reading: Reader.Close waits for its partition reader's pending long-poll
    # Fetch (MaxWait, 10 s by default), as it would against Kafka.
    read_back(kop_server.bootstrap, "kafka-go", "-fail-fast", expect=seen)


@pytest.mark.compat("kafka-go", "consumer group membership and CommitMessages (JoinGroup v1, SyncGroup v0, "
                                "OffsetCommit v2), seen by confluent-kafka's committed()")
def test_kafka_go_group_commit_is_visible(kop_server):
    go_program("kafka-go")
    topic, group = unique("go-kafka-go-commit"), unique("go-kafka-go-group")
    confluent_write(kop_server.bootstrap, topic, canonical_records(topic))
    assert ok(run("kafka-go", "commit", "-bootstrap", kop_server.bootstrap, "-topic", topic, "-group", group,
                  "-offset", "4"), "kafka-go") == [{"committed": 4}]
    assert committed(kop_server.bootstrap, group, topic) == 4


# -- confluent-kafka-go 0.11.6 (librdkafka) ---------------------------------------------------------

@pytest.mark.compat("confluent-kafka-go", "produce with the default configuration: keys, binary and null "
                                          "header values, timestamps, read back by confluent-kafka")
def test_confluent_go_produce_read_back_by_confluent(kop_server):
    written_then_read(kop_server.bootstrap, "confluent-kafka-go")


@pytest.mark.compat("confluent-kafka-go", "consumer group (default configuration, auto.offset.reset earliest): "
                                          "reads what confluent-kafka wrote, Commit() seen by committed()")
def test_confluent_go_consumer_group_reads_and_commits(kop_server):
    read_back(kop_server.bootstrap, "confluent-kafka-go")
