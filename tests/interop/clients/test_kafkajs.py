"""KafkaJS (Node.js) against kop-fast: producer, consumer group with commits, admin.

The Node scripts are in tests/interop/clients/js/ (package.json pins kafkajs 2.x); the first test
that needs them installs kafkajs there with `npm install --no-audit --no-fund`. Records cross the
language boundary as canonical JSON lines (tests/interop/clients/canonical.py) and confluent-kafka
is the reference reader and writer. Every client runs with KafkaJS's default configuration unless
the test is about an option. The tests skip only when `node` or `npm` is missing (and fail in CI,
whose .ci/run installs them); a failed `npm install` fails them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from tests.interop.clients.canonical import (
    committed,
    Record,
    assert_same_records,
    canonical_records,
    confluent_read,
    confluent_write,
    write_json_lines,
)
from tests.interop.test_produce_fetch import create_topic, produce, unique, watermarks
from tests.support import fetch_v4

pytestmark = pytest.mark.interop

JS_DIR = Path(__file__).resolve().parent / "js"
NPM_INSTALL_TIMEOUT_S = 300
SCRIPT_TIMEOUT_S = 60
GZIP = 1


# -- running the Node scripts -----------------------------------------------------------------------

def _installed_kafkajs() -> str | None:
    manifest = JS_DIR / "node_modules" / "kafkajs" / "package.json"
    try:
        version = json.loads(manifest.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None
    return version if version.startswith("2.") else None


@pytest.fixture(scope="module")
def node() -> str:
    """The `node` to run the scripts with, kafkajs installed beside them."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(n for n, p in (("node", node), ("npm", npm)) if p is None)
        if os.environ.get("CI"):
            pytest.fail(f"{missing} not installed; .ci/run should install it")
        pytest.skip(f"{missing} not installed")
    if _installed_kafkajs() is None:
        try:
            out = subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=JS_DIR, capture_output=True,
                                 text=True, timeout=NPM_INSTALL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"npm install of kafkajs in {JS_DIR} took more than {NPM_INSTALL_TIMEOUT_S} s")
        if out.returncode != 0:
            pytest.fail(f"npm install of kafkajs in {JS_DIR} failed ({out.returncode}):\n"
                        f"{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
        if _installed_kafkajs() is None:
            pytest.fail(f"npm install succeeded but no kafkajs 2.x under {JS_DIR / 'node_modules'}")
    return node


def run_js(node: str, script: str, *args, stdin: str = "", check: bool = True,
           timeout: float = SCRIPT_TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run one script; the script gives up by itself 10 s before the subprocess timeout."""
    env = dict(os.environ, KAFKAJS_NO_PARTITIONER_WARNING="1", KOP_JS_DEADLINE_MS=str(int((timeout - 10) * 1000)))
    out = subprocess.run([node, str(JS_DIR / script), *map(str, args)], input=stdin, capture_output=True,
                         text=True, timeout=timeout, env=env, cwd=JS_DIR)
    if check:
        assert out.returncode == 0, f"{script} exited {out.returncode}:\n{out.stderr[-4000:]}"
    return out


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def admin_steps(node: str, bootstrap: str, *steps) -> list[dict]:
    out = run_js(node, "admin.js", bootstrap, json.dumps(steps))
    results = json_lines(out.stdout)
    assert [r["step"] for r in results] == [s[0] for s in steps], out.stderr[-3000:]
    return results


def stored_codec(port: int, topic: str) -> int:
    """The compression codec of the first batch in partition 0, as a raw Fetch returns it."""
    error, _, raw = fetch_v4(port, topic, 0)
    assert error == 0 and len(raw) > 22, (error, raw[:40])
    return int.from_bytes(raw[21:23], "big") & 0x7  # attributes follow offset, length, epoch, magic, crc


def without_null_headers(record: Record) -> Record:
    return replace(record, headers=tuple((n, v) for n, v in record.headers if v is not None))


# -- producer ---------------------------------------------------------------------------------------

@pytest.mark.compat("kafkajs", "producer, default configuration: text, binary and null keys, binary and empty "
                               "values, binary header values, a repeated header name, create timestamps; "
                               "confluent-kafka reads them back identical, KafkaJS's admin finds them by timestamp")
def test_kafkajs_producer_records_read_back_identical_by_confluent(node, kop_server):
    topic = unique("js-produce")
    create_topic(kop_server.bootstrap, topic)
    # KafkaJS cannot send a null header value (see the next test): the canonical records less those.
    records = [without_null_headers(r) for r in canonical_records("js-produce")]
    assert any(v is not None and not v.isascii() for r in records for _, v in r.headers)
    out = run_js(node, "produce.js", kop_server.bootstrap, topic, stdin=write_json_lines(records))
    [sent] = json_lines(out.stdout)
    assert (sent["topicName"], sent["partition"], sent["errorCode"], sent["baseOffset"]) == (topic, 0, 0, "0")
    assert_same_records(confluent_read(kop_server.bootstrap, topic, len(records)), records,
                        who="confluent-kafka reading what KafkaJS wrote")
    assert watermarks(kop_server.bootstrap, topic) == (0, len(records))
    # KafkaJS's own admin finds records by the timestamps its producer set (ListOffsets by time;
    # past the last record it falls back to the high watermark).
    times = [records[0].timestamp - 1, records[3].timestamp, records[3].timestamp + 1, records[-1].timestamp + 1]
    found = admin_steps(node, kop_server.bootstrap, *(["offsets-by-time", topic, t] for t in times))
    assert [s["result"] for s in found] == [[{"partition": 0, "offset": o}] for o in ("0", "3", "4", "6")]


@pytest.mark.compat("kafkajs", "producer, gzip (the one codec KafkaJS has built in): confluent-kafka reads the "
                               "records back identical")
def test_kafkajs_gzip_producer(node, kop_server):
    topic = unique("js-gzip")
    create_topic(kop_server.bootstrap, topic)
    records = [without_null_headers(r) for r in canonical_records("js-gzip", 12)]
    out = run_js(node, "produce.js", kop_server.bootstrap, topic, json.dumps({"compression": "GZIP"}),
                 stdin=write_json_lines(records))
    [sent] = json_lines(out.stdout)
    assert (sent["errorCode"], sent["baseOffset"]) == (0, "0")
    assert stored_codec(kop_server.port, topic) == GZIP
    assert_same_records(confluent_read(kop_server.bootstrap, topic, len(records)), records,
                        who="confluent-kafka reading KafkaJS's gzip batch")


@pytest.mark.compat("kafkajs", "producer: a null header value",
                    result="a KafkaJS limitation, not kop-fast's: 2.2.4's record encoder throws `TypeError "
                           "[ERR_INVALID_ARG_TYPE]: The \"string\" argument must be of type string or an instance "
                           "of Buffer or ArrayBuffer. Received null` before any request leaves "
                           "(tulios/kafkajs#1789); null header values are read fine")
def test_kafkajs_cannot_produce_a_null_header_value(node, kop_server):
    topic = unique("js-null-header")
    create_topic(kop_server.bootstrap, topic)
    [record] = canonical_records("js-null-header", 1)
    assert ("nul", None) in record.headers
    out = run_js(node, "produce.js", kop_server.bootstrap, topic, stdin=write_json_lines([record]), check=False)
    if out.returncode == 0:
        pytest.fail("KafkaJS now sends null header values: update this compat mark, and let the producer "
                    "test (test_kafkajs_producer_records_read_back_identical_by_confluent) send the canonical "
                    "records whole")
    assert "Received null" in out.stderr and "sizeOfHeaders" in out.stderr, out.stderr[-3000:]
    assert watermarks(kop_server.bootstrap, topic) == (0, 0)


@pytest.mark.compat("kafkajs", "idempotent producer (`idempotent: true`): the records stored once, in order")
def test_kafkajs_idempotent_producer(node, kop_server):
    topic = unique("js-idempotent")
    create_topic(kop_server.bootstrap, topic)
    records = [without_null_headers(r) for r in canonical_records("js-idempotent")]
    # The partition's first idempotent batch waits while kop-fast reads its producers' state
    # (kop_fast/server/producer_recovery.py).
    out = run_js(node, "produce.js", kop_server.bootstrap, topic, json.dumps({"idempotent": True}),
                 stdin=write_json_lines(records))
    [sent] = json_lines(out.stdout)
    assert (sent["errorCode"], sent["baseOffset"]) == (0, "0")
    assert_same_records(confluent_read(kop_server.bootstrap, topic, len(records)), records,
                        who="confluent-kafka reading what the idempotent KafkaJS producer wrote")
    assert watermarks(kop_server.bootstrap, topic) == (0, len(records))


@pytest.mark.compat("kafkajs", "transactional producer (`transactionalId`, `producer.transaction()`)",
                    result="not supported: kop-fast has no transaction coordinator; FindCoordinator for the "
                           "transactional id answers COORDINATOR_NOT_AVAILABLE and KafkaJS throws "
                           "`KafkaJSGroupCoordinatorNotFound: Failed to find group coordinator` once its retries "
                           "are spent; nothing is written")
def test_kafkajs_transactions_are_not_supported(node, kop_server):
    topic = unique("js-txn")
    create_topic(kop_server.bootstrap, topic)
    records = [without_null_headers(r) for r in canonical_records("js-txn", 2)]
    # One retry instead of KafkaJS's five (a client option), so the test takes 1 s rather than 9.
    config = {"transactionalId": unique("txn"), "kafka": {"retry": {"retries": 1}}}
    out = run_js(node, "produce.js", kop_server.bootstrap, topic, json.dumps(config),
                 stdin=write_json_lines(records), check=False)
    assert out.returncode == 1, out.stderr[-3000:]
    assert "KafkaJSGroupCoordinatorNotFound: Failed to find group coordinator" in out.stderr, out.stderr[-3000:]
    assert watermarks(kop_server.bootstrap, topic) == (0, 0)


# -- consumer group ---------------------------------------------------------------------------------

@pytest.mark.compat("kafkajs", "consumer group, default settings, 2 partitions: reads what confluent-kafka wrote "
                               "(keys, binary and null header values, timestamps; one partition gzip-compressed) "
                               "in order per partition, commits; the commit is seen by confluent-kafka, by "
                               "KafkaJS's admin, and by the group's next consumer, which reads only the newer "
                               "records")
def test_kafkajs_consumer_group_reads_commits_and_resumes(node, kop_server):
    bootstrap = kop_server.bootstrap
    topic, group = unique("js-group"), unique("js-group")
    admin = AdminClient({"bootstrap.servers": bootstrap})  # alive until its future is done
    admin.create_topics([NewTopic(topic, 2)])[topic].result(20)
    want = {0: canonical_records("js-group-p0"), 1: canonical_records("js-group-p1", 4)}
    produce(bootstrap, topic, [(r.key, r.value, list(r.headers), r.timestamp) for r in want[0]],
            {"compression.type": "gzip"}, partition=0)
    assert stored_codec(kop_server.port, topic) == GZIP
    confluent_write(bootstrap, topic, want[1], partition=1)

    def read(count: int) -> tuple[dict[int, list[Record]], dict[int, list[int]]]:
        rows = json_lines(run_js(node, "consume.js", bootstrap, topic, group, count).stdout)
        assert len(rows) == count, rows
        by_partition: dict[int, list[Record]] = {0: [], 1: []}
        offsets: dict[int, list[int]] = {0: [], 1: []}
        for row in rows:
            by_partition[row["partition"]].append(Record.from_json(row))
            offsets[row["partition"]].append(row["offset"])
        return by_partition, offsets

    got, offsets = read(10)
    for partition in (0, 1):
        assert_same_records(got[partition], want[partition], who=f"KafkaJS reading partition {partition}")
    assert offsets == {0: list(range(6)), 1: list(range(4))}
    assert committed(bootstrap, group, topic, 2) == [6, 4]

    # The same group again, with two more records in partition 1: only those are read.
    more = canonical_records("js-group-more", 2)
    confluent_write(bootstrap, topic, more, partition=1)
    got, offsets = read(2)
    assert got[0] == [] and offsets[1] == [4, 5]
    assert_same_records(got[1], more, who="KafkaJS resuming from the group's commit")
    assert committed(bootstrap, group, topic, 2) == [6, 6]
    fetched, groups, described = (s["result"] for s in admin_steps(
        node, bootstrap, ["group-offsets", group, topic], ["groups"], ["describe-group", group]))
    [entry] = fetched
    assert sorted((p["partition"], p["offset"]) for p in entry["partitions"]) == [(0, "6"), (1, "6")]
    assert {"groupId": group, "protocolType": "consumer"} in groups["groups"]
    [state] = described["groups"]
    assert (state["groupId"], state["errorCode"], state["state"], state["members"]) == (group, 0, "Empty", [])


# -- admin ------------------------------------------------------------------------------------------

@pytest.mark.compat("kafkajs", "admin: createTopics (and again: false), listTopics, fetchTopicMetadata, "
                               "createPartitions, fetchTopicOffsets, describeConfigs, alterConfigs, "
                               "describeCluster, deleteTopics")
def test_kafkajs_admin_topic_lifecycle(node, kop_server):
    topic = unique("js-admin")
    steps = admin_steps(
        node, kop_server.bootstrap,
        ["create", topic, 3], ["create", topic, 3], ["list"], ["metadata", topic], ["partitions", topic, 5],
        ["metadata", topic], ["topic-offsets", topic], ["describe-config", topic, "retention.ms"],
        ["alter-config", topic, "retention.ms", "123456"], ["describe-config", topic, "retention.ms"],
        ["cluster"], ["delete", topic], ["list"])
    errors = [s for s in steps if "error" in s]
    assert not errors, errors
    (create, again, listed, meta3, grown, meta5, offsets, default, altered, overridden, cluster, deleted,
     after) = (s["result"] for s in steps)
    assert (create, again, grown, deleted) == (True, False, True, True)
    assert topic in listed and topic not in after

    def partitions(meta):
        [t] = meta["topics"]
        assert t["name"] == topic
        return sorted((p["partitionId"], p["partitionErrorCode"], p["leader"], p["replicas"], p["isr"])
                      for p in t["partitions"])

    assert cluster["brokers"] == [{"nodeId": 0, "host": "127.0.0.1", "port": kop_server.port}]
    assert cluster["controller"] == 0
    assert partitions(meta3) == [(i, 0, 0, [0], [0]) for i in range(3)]
    assert partitions(meta5) == [(i, 0, 0, [0], [0]) for i in range(5)]
    assert sorted((o["partition"], o["low"], o["high"]) for o in offsets) == [(i, "0", "0") for i in range(5)]

    def config(described):
        [resource] = described["resources"]
        assert (resource["resourceName"], resource["errorCode"]) == (topic, 0)
        [entry] = resource["configEntries"]
        return entry["configName"], entry["configValue"], entry["isDefault"]

    assert config(default) == ("retention.ms", "604800000", True)
    assert [(r["resourceName"], r["errorCode"]) for r in altered["resources"]] == [(topic, 0)]
    assert config(overridden) == ("retention.ms", "123456", False)
