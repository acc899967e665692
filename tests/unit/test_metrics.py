"""The metrics plumbing on a real KafkaNode over the in-memory storage: counters, errors, lag, endpoints."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

from aiokafka import TopicPartition
from kio.schema.fetch.v4.response import FetchResponse
from kio.schema.heartbeat.v0.request import HeartbeatRequest
from kio.schema.heartbeat.v0.response import HeartbeatResponse
from kio.schema.produce.v3.response import ProduceResponse
from prometheus_client.parser import text_string_to_metric_families

from kop_fast.coordinator.group_base import COUNTERS
from kop_fast.protocol.errors import ErrorCode
from kop_fast.server.metrics import _error_codes
from kop_fast.storage.api import StorageError, StorageErrorKind, StorageStats
from tests.unit.memory_node import (batch, fetch_request, memory_node, produce_request, raw_request, run,
                                    started_consumer, take)


def http_get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    """(status, body) of a GET; error statuses too."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of a Prometheus exposition."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def scrape(node) -> dict:
    host, port = node.metrics_address
    status, body = await asyncio.to_thread(http_get, f"http://{host}:{port}/metrics")
    assert status == 200
    return samples(body.decode())


def test_requests_records_errors_groups_and_lag_are_counted():
    async def scenario():
        async with memory_node(metrics_listen="127.0.0.1:0") as (node, bootstrap):
            rebalances = COUNTERS.rebalances
            ok = await raw_request(bootstrap, 0, 3, produce_request("m", batch(b"a", b"b", b"c")), ProduceResponse)
            assert ok.responses[0].partition_responses[0].error_code == 0
            info = node.storage.cached_topic("m")
            node.storage.partition_log(info, 0).fail_appends = StorageError("injected", StorageErrorKind.TIMED_OUT)
            await raw_request(bootstrap, 0, 3, produce_request("m", batch(b"x")), ProduceResponse)
            node.storage.partition_log(info, 0).fail_appends = None
            got = await raw_request(bootstrap, 1, 4, fetch_request("m", 0, 100), FetchResponse)
            assert got.responses[0].partitions[0].records
            await raw_request(bootstrap, 1, 4, fetch_request("m", 99, 100), FetchResponse)  # out of range

            async with started_consumer(bootstrap, group_id="g", auto_offset_reset="earliest",
                                        enable_auto_commit=False) as consumer:
                tp = TopicPartition("m", 0)
                consumer.subscribe(["m"])
                records = await take(consumer, tp, 3)
                await consumer.commit({tp: records[1].offset + 1})
                s = await scrape(node)
                assert s[("kop_fast_group_lag", (("group", "g"), ("partition", "0"), ("topic", "m")))] == 1
                await consumer.commit({tp: records[-1].offset + 1})
                s = await scrape(node)
                assert s[("kop_fast_group_lag", (("group", "g"), ("partition", "0"), ("topic", "m")))] == 0
                assert s[("kop_fast_groups", (("state", "Stable"),))] == 1
                assert s[("kop_fast_connections", ())] >= 1
                assert s[("kop_fast_connections_by_client", (("software", "unknown"), ("version", "unknown")))] >= 1

            # A group API's error: a member the (loaded) group does not know.
            hb = await raw_request(bootstrap, 12, 0, HeartbeatRequest(group_id="g", generation_id=1, member_id="m"),
                                   HeartbeatResponse)
            assert hb.error_code == ErrorCode.unknown_member_id
            s = await scrape(node)
            assert s[("kop_fast_request_errors_total", (("api", "heartbeat"), ("error", "unknown_member_id")))] == 1

            assert s[("kop_fast_requests_total", (("api", "produce"), ("version", "3")))] == 2
            assert s[("kop_fast_records_in_total", (("topic", "m"),))] == 3
            assert s[("kop_fast_bytes_in_total", (("topic", "m"),))] == len(batch(b"a", b"b", b"c"))
            assert s[("kop_fast_bytes_out_total", (("topic", "m"),))] > 0
            assert s[("kop_fast_request_errors_total", (("api", "produce"), ("error", "request_timed_out")))] == 1
            assert s[("kop_fast_request_errors_total", (("api", "fetch"), ("error", "offset_out_of_range")))] == 1
            assert s[("kop_fast_request_seconds_count", (("api", "produce"),))] == 2
            assert s[("kop_fast_request_seconds_bucket", (("api", "produce"), ("le", "+Inf")))] == 2
            assert 0 < s[("kop_fast_request_seconds_sum", (("api", "produce"),))] < 10
            assert s[("kop_fast_response_queue_seconds_count", (("api", "produce"),))] == 2
            assert s[("kop_fast_cluster_members", ())] == 1
            assert s[("kop_fast_storage_handles", (("kind", "partition_logs"),))] >= 1
            assert s[("kop_fast_rebalances_total", ())] >= rebalances + 1
            assert s[("kop_fast_up", ())] == 1

    run(scenario)


STORAGE_FIGURES = ("kop_fast_storage_sends_pending", "kop_fast_storage_appends_waiting", "kop_fast_entry_cache_entries",
                   "kop_fast_entry_cache_bytes", "kop_fast_entry_cache_hits_total", "kop_fast_entry_cache_misses_total")


def test_the_storage_figures_are_exported_as_the_storage_reports_them():
    async def scenario():
        async with memory_node(metrics_listen="127.0.0.1:0") as (node, bootstrap):
            await raw_request(bootstrap, 0, 3, produce_request("s", batch(b"a")), ProduceResponse)
            s = await scrape(node)
            # The in-memory storage: nothing pending, no cache, no broker of its own (no sample).
            assert [s[(name, ())] for name in STORAGE_FIGURES] == [0] * 6
            assert not any(n.startswith("kop_fast_embedded_broker") for n, _ in s)

            node.storage.stats = lambda: StorageStats(3, 4, 5, 6, 7, 8, embedded_up=False, embedded_restarts=2)
            s = await scrape(node)
            assert [s[(name, ())] for name in STORAGE_FIGURES] == [3, 4, 5, 6, 7, 8]
            assert s[("kop_fast_embedded_broker_up", ())] == 0
            assert s[("kop_fast_embedded_broker_restarts_total", ())] == 2
            node.storage.stats = lambda: StorageStats(embedded_up=True, embedded_restarts=3)
            s = await scrape(node)
            assert s[("kop_fast_embedded_broker_up", ())] == 1
            assert s[("kop_fast_embedded_broker_restarts_total", ())] == 3

    run(scenario)


def test_health_ready_and_unknown_paths():
    async def scenario():
        async with memory_node(metrics_listen="127.0.0.1:0") as (node, _bootstrap):
            host, port = node.metrics_address
            base = f"http://{host}:{port}"
            assert await asyncio.to_thread(http_get, base + "/health") == (200, b'{"status":"up"}')
            assert await asyncio.to_thread(http_get, base + "/ready") == (200, b'{"status":"ready"}')
            assert (await asyncio.to_thread(http_get, base + "/nothing"))[0] == 404

            async def down():
                raise StorageError("no broker", StorageErrorKind.UNAVAILABLE)

            node.storage.probe = down
            node._metrics_server._ready = None  # forget the cached answer
            status, body = await asyncio.to_thread(http_get, base + "/ready")
            assert status == 503 and b"no broker" in body

    run(scenario)


def test_metrics_off_by_default_count_nothing():
    async def scenario():
        async with memory_node() as (node, bootstrap):
            assert node.metrics is None
            await raw_request(bootstrap, 0, 3, produce_request("quiet", batch(b"a")), ProduceResponse)

    run(scenario)


def test_error_codes_are_found_at_the_top_and_per_partition():
    from kio.schema.offset_commit.v2.response import (OffsetCommitResponse, OffsetCommitResponsePartition,
                                                      OffsetCommitResponseTopic)

    response = OffsetCommitResponse(topics=(OffsetCommitResponseTopic(name="t", partitions=(
        OffsetCommitResponsePartition(partition_index=0, error_code=0),
        OffsetCommitResponsePartition(partition_index=1, error_code=25))),))
    assert list(_error_codes(response, 3)) == [25]


def test_metrics_listen_from_every_source(tmp_path):
    import pytest

    from kop_fast.config import ConfigError, build_settings

    assert build_settings({}, environ={}).metrics_listen is None
    cfg = tmp_path / "k.toml"
    cfg.write_text('metrics-listen = "127.0.0.1:9404"\n')
    assert build_settings({"config": str(cfg)}, environ={}).metrics_listen == ("127.0.0.1", 9404)
    assert build_settings({}, environ={"KOP_FAST_METRICS_LISTEN": "0.0.0.0:9500"}).metrics_listen == ("0.0.0.0", 9500)
    assert build_settings({"metrics_listen": "127.0.0.1:1"}, environ={}).metrics_listen == ("127.0.0.1", 1)
    with pytest.raises(ConfigError):
        build_settings({"metrics_listen": "nope"}, environ={})


def test_latency_buckets_are_inclusive_upper_bounds_and_cumulative():
    from kop_fast.server.metrics import LATENCY_BUCKETS, _Histogram
    histogram = _Histogram()
    for seconds in (0.0001, LATENCY_BUCKETS[0], 0.003, 0.003, 1000.0):
        histogram.observe(seconds)
    buckets = dict(histogram.cumulative())
    assert buckets["0.0005"] == 2  # a time equal to a bound is counted in that bound's bucket
    assert buckets["0.0025"] == 2 and buckets["0.005"] == 4
    assert buckets[str(LATENCY_BUCKETS[-1])] == 4 and buckets["+Inf"] == 5
    assert list(buckets.values()) == sorted(buckets.values())
    assert abs(histogram.sum - (0.0001 + 0.0005 + 0.006 + 1000.0)) < 1e-9
