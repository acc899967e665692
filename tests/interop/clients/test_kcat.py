"""kcat (librdkafka's command-line client, Debian `kcat`) against kop-fast.

Metadata (-L, -J), the producer with keys and headers (-P -K -H), the consumer reading what
confluent-kafka (the reference, tests/interop/clients/canonical.py) wrote, `-o -N` (the last N
records, exactly), and the balanced consumer group (-G) with its commits. Other kcat uses:
test_foundation.py (-L text), test_first_run.py (a quiet round trip), test_admin.py (-L -J across
proxies after CreatePartitions); test_consecutive_offsets.py checks OFFSET_TAIL through confluent-kafka.

What kcat can represent: -J prints keys, values and header values as JSON strings whose control
characters are \\u-escaped and whose other bytes are written raw (so read as bytes, binary data and
null comes back exactly), and headers as a flat [name, value, ...] list (null for a null value).
The -f text format cannot delimit binary data, so the tests print only lengths, offsets and
timestamps with it. On the producer side -H takes header values from the command line: any bytes
but NUL, never null, the same headers on every record; kcat cannot set a record's timestamp.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME
from confluent_kafka.admin import AdminClient, NewTopic

from tests.interop.clients.canonical import (
    committed,
    Record,
    assert_same_records,
    canonical_records,
    confluent_write,
)
from tests.interop.test_produce_fetch import (
    BASE_TS,
    build_batch,
    consume,
    create_topic,
    raw_produce,
    unique,
    watermarks,
)
from tests.support import fetch_v4

pytestmark = pytest.mark.interop

TIMEOUT_S = 40


@pytest.fixture(scope="module")
def kcat() -> str:
    found = shutil.which("kcat") or shutil.which("kafkacat")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("kcat is not installed; .ci/run should install it")
        pytest.skip("kcat is not installed")
    return found


def run_kcat(kcat: str, bootstrap: str, *args, stdin: bytes = b"", timeout: float = TIMEOUT_S) -> bytes:
    """kcat's stdout (bytes); a non-zero exit fails the test with kcat's stderr. `-m 20`: metadata
    requests time out after 20 s."""
    out = subprocess.run([kcat, "-b", bootstrap, "-m", "20", *args], input=stdin, capture_output=True,
                         timeout=timeout)
    stderr = out.stderr.decode(errors="replace")
    assert out.returncode == 0, f"kcat {args} exited {out.returncode}:\n{stderr[-3000:]}"
    return out.stdout


def unraw(s: str | None) -> bytes | None:
    """A -J string back to the bytes kcat printed (raw bytes survive as surrogate escapes)."""
    return None if s is None else s.encode("utf-8", "surrogateescape")


def json_envelopes(stdout: bytes) -> list[dict]:
    return [json.loads(line.decode("utf-8", "surrogateescape")) for line in stdout.split(b"\n") if line.strip()]


def as_record(envelope: dict) -> Record:
    flat = envelope.get("headers") or []
    headers = tuple((flat[i], unraw(flat[i + 1])) for i in range(0, len(flat), 2))
    assert envelope["tstype"] == "create", envelope
    return Record(unraw(envelope["key"]), unraw(envelope["payload"]), headers, envelope["ts"])


def create_topics(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})  # alive until its future is done
    admin.create_topics([NewTopic(topic, partitions)])[topic].result(20)


# -- metadata ---------------------------------------------------------------------------------------

@pytest.mark.compat("kcat", "metadata (-L -J, all topics and -t one): the broker, controller, partitions, "
                            "leaders, replicas, ISR")
def test_kcat_metadata_json(kcat, kop_server):
    topic = unique("kcat-meta")
    create_topics(kop_server.bootstrap, topic, 3)
    one = json.loads(run_kcat(kcat, kop_server.bootstrap, "-L", "-J", "-t", topic))
    assert one["brokers"] == [{"id": 0, "name": f"127.0.0.1:{kop_server.port}"}]
    assert one["controllerid"] == 0
    [listed] = one["topics"]
    assert listed["topic"] == topic and listed.get("error") is None
    assert sorted((p["partition"], p["leader"], p["replicas"], p["isrs"]) for p in listed["partitions"]) == [
        (i, 0, [{"id": 0}], [{"id": 0}]) for i in range(3)]
    assert all(p.get("error") is None for p in listed["partitions"])
    every = json.loads(run_kcat(kcat, kop_server.bootstrap, "-L", "-J"))
    assert {t["topic"]: len(t["partitions"]) for t in every["topics"]}.get(topic) == 3


# -- producer ---------------------------------------------------------------------------------------

@pytest.mark.compat("kcat", "producer (-P -D -K -Z -H): binary keys and values, a null key and value (-Z), "
                            "header values from the command line (any bytes but NUL, never null, the same on "
                            "every record; repeated names kept in order); confluent-kafka reads them back "
                            "identical, with librdkafka's create times")
def test_kcat_producer_keys_and_headers_read_back_by_confluent(kcat, kop_server):
    topic = unique("kcat-produce")
    create_topic(kop_server.bootstrap, topic)
    # Delimiters that occur in no key or value, so the binary data (newlines, NUL, 0xff) passes as is.
    pairs = [(b"key-a", b"value\x00\xff\nline two"), (b"\x00\xfe\n", b"binary key"), (None, None),
             (b"key only", None), (None, b"value only"), (b"k5", b"")]
    headers = [("trace", b"t1"), ("dup", b"a"), ("dup", b"b"), ("bin", b"\xfe\xff\x01\n\t=")]
    stdin = b"".join((k or b"") + b"<K>" + (v or b"") + b"<E>" for k, v in pairs)
    before = int(time.time() * 1000)
    run_kcat(kcat, kop_server.bootstrap, "-P", "-t", topic, "-p", "0", "-D", "<E>", "-K", "<K>", "-Z",
             *[a for n, v in headers for a in ("-H", n.encode() + b"=" + v)], stdin=stdin)
    after = int(time.time() * 1000)
    # -Z: an empty key or value is sent as null (so b"" cannot be sent: k5's value arrives null).
    want = [(k, v if v else None, headers) for k, v in pairs]
    messages, errors = consume(kop_server.bootstrap, topic, 0, len(pairs))
    assert not errors, errors[:3]
    assert [(m.key(), m.value(), m.headers()) for m in messages] == want
    assert [m.offset() for m in messages] == list(range(len(pairs)))
    for m in messages:
        ts_type, ts = m.timestamp()
        assert ts_type == TIMESTAMP_CREATE_TIME and before <= ts <= after, (m.offset(), ts_type, ts, before, after)


CODECS = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


@pytest.mark.compat("kcat", "producer -z gzip, snappy, lz4, zstd: the compressed batches read back identical by "
                            "confluent-kafka")
def test_kcat_compressed_producer(kcat, kop_server):
    """Debian's kcat runs on librdkafka 2.0.2, which compresses gzip, snappy and lz4 only when the broker
    advertises Produce v0 (fixed in librdkafka 2.11.1); kop-fast advertises it as Kafka 4.0 does
    (kop_fast/server/registry.py). Before that, these batches were stored uncompressed."""
    for codec, code in CODECS.items():
        topic = unique(f"kcat-{codec}")
        create_topic(kop_server.bootstrap, topic)
        # Repetitive values: librdkafka sends a batch uncompressed when compressing would not shrink it.
        values = [b"%s record %d, " % (codec.encode(), i) * 20 for i in range(10)]
        run_kcat(kcat, kop_server.bootstrap, "-P", "-t", topic, "-p", "0", "-z", codec, stdin=b"\n".join(values))
        error, _, raw = fetch_v4(kop_server.port, topic, 0)
        assert error == 0 and int.from_bytes(raw[21:23], "big") & 0x7 == code, (codec, error, raw[:30])
        messages, errors = consume(kop_server.bootstrap, topic, 0, len(values))
        assert [m.value() for m in messages] == values, (codec, errors[:3])


# -- consumer ---------------------------------------------------------------------------------------

@pytest.mark.compat("kcat", "consumer (-C -o beginning -e -J): what confluent-kafka wrote, exactly: text, binary "
                            "and null keys, empty values, binary and null header values, repeated header names, "
                            "create timestamps; -f '%o %T %K %S' prints offsets, timestamps and lengths")
def test_kcat_reads_back_what_confluent_wrote(kcat, kop_server):
    topic = unique("kcat-consume")
    create_topic(kop_server.bootstrap, topic)
    records = canonical_records("kcat-consume")
    assert confluent_write(kop_server.bootstrap, topic, records) == list(range(len(records)))
    envelopes = json_envelopes(run_kcat(kcat, kop_server.bootstrap, "-C", "-t", topic, "-p", "0",
                                        "-o", "beginning", "-e", "-J", "-q"))
    assert [(e["topic"], e["partition"], e["offset"]) for e in envelopes] == [
        (topic, 0, i) for i in range(len(records))]
    assert_same_records([as_record(e) for e in envelopes], records, who="kcat -J reading what confluent wrote")

    text = run_kcat(kcat, kop_server.bootstrap, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-q",
                    "-f", r"%o %T %K %S\n").decode()
    length = lambda b: -1 if b is None else len(b)  # noqa: E731
    assert text.splitlines() == [f"{i} {r.timestamp} {length(r.key)} {length(r.value)}"
                                 for i, r in enumerate(records)]


@pytest.mark.compat("kcat", "offsets by timestamp: -Q (ListOffsets by time, -1 past the last record), and "
                            "-o s@T, -o e@T (start at, stop before a create time)")
def test_kcat_offsets_by_timestamp(kcat, kop_server):
    bootstrap = kop_server.bootstrap
    topic = unique("kcat-times")
    create_topic(bootstrap, topic)
    records = canonical_records("kcat-times")
    confluent_write(bootstrap, topic, records)
    ts3 = records[3].timestamp
    for at, want in ((records[0].timestamp - 1, 0), (ts3, 3), (ts3 + 1, 4), (records[-1].timestamp + 1, -1)):
        out = run_kcat(kcat, bootstrap, "-Q", "-t", f"{topic}:0:{at}").decode()
        assert out.split() == [topic, "[0]", "offset", str(want)], (at, out)

    def offsets(*args) -> list[int]:
        out = run_kcat(kcat, bootstrap, "-C", "-t", topic, "-p", "0", *args, "-e", "-q", "-f", r"%o\n")
        return [int(o) for o in out.split()]

    assert offsets("-o", f"s@{ts3}") == [3, 4, 5]
    assert offsets("-o", "beginning", "-o", f"e@{ts3}") == [0, 1, 2]


# -- -o -N: the last N records ----------------------------------------------------------------------

def tail(kcat: str, bootstrap: str, topic: str, n: int, *partition: str) -> list[tuple[int, int, bytes]]:
    """kcat -o -N: (partition, offset, value) of what it printed. -e exits on the first empty fetch at
    the end, which waits fetch.wait.max.ms (500 ms by default): 20 ms keeps a dozen runs short and
    changes nothing in what is read."""
    out = run_kcat(kcat, bootstrap, "-C", "-t", topic, *partition, "-o", f"-{n}", "-e", "-q",
                   "-X", "fetch.wait.max.ms=20", "-f", r"%p %o %s\n")
    rows = []
    for line in out.decode().splitlines():
        p, o, v = line.split(" ", 2)
        rows.append((int(p), int(o), v.encode()))
    return rows


@pytest.mark.compat("kcat", "-o -N: exactly the last N records, for N from 1 to beyond the partition's size (then "
                            "all of it), over batches of 1 to 30 records, and per partition without -p")
def test_kcat_tail_is_exactly_the_last_n_records(kcat, kop_server):
    bootstrap = kop_server.bootstrap
    topic = unique("kcat-tail")
    create_topic(bootstrap, topic)
    values: list[bytes] = []
    for size in (1, 2, 5, 13, 4, 30, 1, 7):  # one batch each, so record boundaries sit inside batches too
        chunk = [b"b%d-r%d" % (size, len(values) + i) for i in range(size)]
        error, base = raw_produce(kop_server.port, topic, bytes(build_batch(chunk, BASE_TS + len(values))))
        assert (error, base) == (0, len(values))
        values += chunk
    total = len(values)  # 63
    # And one batch from librdkafka itself.
    more = [Record(None, b"librdkafka-%d" % i, (), BASE_TS + 100 + i) for i in range(3)]
    assert confluent_write(bootstrap, topic, more) == [total, total + 1, total + 2]
    values += [r.value for r in more]
    total += len(more)
    for n in (1, 2, 3, 4, 7, 10, 33, 46, total - 1, total, total + 1, 1000):
        got = tail(kcat, bootstrap, topic, n, "-p", "0")
        first = max(0, total - n)
        assert got == [(0, o, values[o]) for o in range(first, total)], f"-o -{n}"

    # Without -p: the last N of each partition, an empty one included.
    topic = unique("kcat-tail-parts")
    create_topics(bootstrap, topic, 3)
    sizes = {1: 3, 2: 12}
    for partition, count in sizes.items():
        confluent_write(bootstrap, topic, [Record(None, b"p%d-%d" % (partition, i), (), BASE_TS + i)
                                           for i in range(count)], partition=partition)
    got = sorted(tail(kcat, bootstrap, topic, 5))
    assert got == [(p, o, b"p%d-%d" % (p, o)) for p, c in sorted(sizes.items()) for o in range(max(0, c - 5), c)]


# -- consumer group ---------------------------------------------------------------------------------

@pytest.mark.compat("kcat", "consumer group (-G, 2 partitions): reads with -c N and commits exactly the N read "
                            "(confluent-kafka sees the commits); the next -G run resumes from them and reads the "
                            "rest, records identical to what confluent-kafka wrote")
def test_kcat_consumer_group_reads_and_commits(kcat, kop_server):
    bootstrap = kop_server.bootstrap
    topic, group = unique("kcat-group"), unique("kcat-group")
    create_topics(bootstrap, topic, 2)
    want = {0: canonical_records("kcat-group-p0", 4), 1: canonical_records("kcat-group-p1", 3)}
    for partition, records in want.items():
        confluent_write(bootstrap, topic, records, partition=partition)

    def group_read(*args) -> list[dict]:
        return json_envelopes(run_kcat(kcat, bootstrap, "-G", group, "-J", "-q", *args, topic))

    # The group has no commit yet: auto.offset.reset=earliest (not -o beginning: in -G mode that
    # would start every run at the beginning, commits or not).
    first = group_read("-X", "auto.offset.reset=earliest", "-c", "5")
    assert len(first) == 5
    read_so_far = {p: [e["offset"] for e in first if e["partition"] == p] for p in (0, 1)}
    for p, offsets in read_so_far.items():
        assert offsets == list(range(len(offsets))), (p, offsets)
    assert committed(bootstrap, group, topic, 2) == [len(read_so_far[0]) or -1001, len(read_so_far[1]) or -1001]

    rest = group_read("-e")  # from the group's commits, to the end of both partitions
    assert len(rest) == 2, rest
    assert committed(bootstrap, group, topic, 2) == [4, 3]
    for p in (0, 1):
        mine = sorted((e for e in first + rest if e["partition"] == p), key=lambda e: e["offset"])
        assert [e["offset"] for e in mine] == list(range(len(want[p])))
        assert_same_records([as_record(e) for e in mine], want[p], who=f"kcat -G, partition {p}")
    assert watermarks(bootstrap, topic, 0) == (0, 4) and watermarks(bootstrap, topic, 1) == (0, 3)
