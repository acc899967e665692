"""Prometheus metrics, `/health` and `/ready` on `--metrics-listen` (off by default).

Served by a small asyncio HTTP handler in the event loop itself, so a scrape reads
the node's state (connections, groups, committed offsets) without locks, and `/health`
answering proves the loop runs. Metrics live in a registry of their own (never
prometheus-client's global one).

Cost on the request path, only when enabled: about 2 us per request (plain dict and list
updates, no prometheus-client objects; `_RequestCollector` builds the families when
scraped). Everything derived from state (connections, groups, lag) is computed at
scrape time too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from bisect import bisect_left
from collections import defaultdict
from dataclasses import fields, is_dataclass
from time import perf_counter

import orjson
from prometheus_client import CollectorRegistry, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.utils import floatToGoString

from kop_fast.coordinator.group_base import COUNTERS
from kop_fast.protocol.errors import ErrorCode

log = logging.getLogger("kop_fast.metrics")

# /ready: how long the storage probe may take, and how long its answer is reused.
PROBE_TIMEOUT_S = 2.0
READY_CACHE_S = 1.0
HTTP_READ_TIMEOUT_S = 5.0
# Request handling times: from well under a millisecond (Metadata) to long polls (Fetch).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_NESTING = 3  # how deep error codes are looked for in a response (topics -> partitions)


class Metrics:
    """The metrics of one KafkaNode, and the calls its request path makes.

    The request path only adds to plain ints and lists here (no locks: everything runs on
    the event loop); `_RequestCollector` turns them into Prometheus families when scraped.
    prometheus-client's own Counter and Histogram take a lock and walk the buckets in Python
    on every update, about 10 us per Produce, a tenth of what serving it costs.
    """

    def __init__(self, node) -> None:
        self.node = node
        disable_created_metrics()  # no `_created` twin of every counter and histogram series
        self.registry = registry = CollectorRegistry(auto_describe=False)
        self.requests: defaultdict[tuple[int, int], int] = defaultdict(int)  # (api key, version) -> count
        self.errors: defaultdict[tuple[int, int], int] = defaultdict(int)  # (api key, error code) -> count
        self.handling: defaultdict[int, _Histogram] = defaultdict(_Histogram)  # api key -> handling time
        self.queueing: defaultdict[int, _Histogram] = defaultdict(_Histogram)  # api key -> time behind others
        self.bytes_in: defaultdict[str, int] = defaultdict(int)  # topic -> record batch bytes stored by Produce
        self.records_in: defaultdict[str, int] = defaultdict(int)  # topic -> records stored by Produce
        self.bytes_out: defaultdict[str, int] = defaultdict(int)  # topic -> record batch bytes returned by Fetch
        registry.register(_RequestCollector(self))
        registry.register(_StateCollector(node))

    # -- the request path -----------------------------------------------------------------------
    def request(self, entry, api_version: int) -> float:
        """A request was dispatched; the start time `completed` takes."""
        self.requests[entry.api_key, api_version] += 1
        return perf_counter()

    def completed(self, api_key: int, started: float, response) -> float:
        """Its response is ready: the handling time, and the error codes in a kio response
        (pre-encoded responses report theirs through `error`). Returns the time it was ready."""
        now = perf_counter()
        self.handling[api_key].observe(now - started)
        if response is not None and is_dataclass(response):
            for code in _error_codes(response, _NESTING):
                self.error(api_key, code)
        return now

    def written(self, api_key: int, ready: float) -> None:
        """A ready response left for the socket: how long it queued behind earlier ones."""
        self.queueing[api_key].observe(perf_counter() - ready)

    def error(self, api_key: int, code: int) -> None:
        self.errors[api_key, int(code)] += 1

    def stored(self, topic: str, size: int, records: int) -> None:
        self.bytes_in[topic] += size
        self.records_in[topic] += records

    def fetched(self, topic: str, size: int) -> None:
        self.bytes_out[topic] += size

    def api_name(self, api_key: int) -> str:
        entry = self.node.registry.get(api_key)
        return entry.name if entry is not None else str(api_key)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


_BUCKET_LABELS = (*map(floatToGoString, LATENCY_BUCKETS), "+Inf")  # the `le` label of each bucket


class _Histogram:
    """Counts per LATENCY_BUCKETS bucket (the last one: above them all) and their sum."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        # Prometheus buckets are upper bounds, inclusive: the first bound >= seconds.
        self.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.sum += seconds

    def cumulative(self) -> list[tuple[str, int]]:
        """The buckets as Prometheus exposes them: counts at or below each bound, then +Inf."""
        out, running = [], 0
        for bound, count in zip(_BUCKET_LABELS, self.counts):
            running += count
            out.append((bound, running))
        return out


class _RequestCollector:
    """The request path's counts (`Metrics`) as Prometheus families, built when scraped."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self):
        return []

    def collect(self):
        m = self.metrics
        name = m.api_name
        family = CounterMetricFamily("kop_fast_requests", "Kafka requests received", labels=("api", "version"))
        for (api_key, version), n in sorted(m.requests.items()):
            family.add_metric((name(api_key), str(version)), n)
        yield family
        family = CounterMetricFamily("kop_fast_request_errors",
                                     "responses with a top-level or per-partition error code other than NONE "
                                     "(one per error code found)", labels=("api", "error"))
        for (api_key, code), n in sorted(m.errors.items()):
            family.add_metric((name(api_key), _error_name(code)), n)
        yield family
        yield _histogram_family("kop_fast_request_seconds",
                                "request handling time, from dispatch to the response ready to be written",
                                m.handling, name)
        yield _histogram_family("kop_fast_response_queue_seconds",
                                "time a ready response waits behind earlier responses of its connection "
                                "(Kafka answers in request order); requests are dispatched as soon as their "
                                "frame is read, so there is no request queue", m.queueing, name)
        yield _topic_family("kop_fast_bytes_in", "record batch bytes stored by Produce", m.bytes_in)
        yield _topic_family("kop_fast_records_in", "records stored by Produce", m.records_in)
        yield _topic_family("kop_fast_bytes_out", "record batch bytes returned by Fetch", m.bytes_out)


def _topic_family(metric: str, documentation: str, by_topic: dict) -> CounterMetricFamily:
    family = CounterMetricFamily(metric, documentation, labels=("topic",))
    for topic, n in sorted(by_topic.items()):
        family.add_metric((topic,), n)
    return family


def _histogram_family(metric: str, documentation: str, histograms: dict, name) -> HistogramMetricFamily:
    family = HistogramMetricFamily(metric, documentation, labels=("api",))
    for api_key, histogram in sorted(histograms.items()):
        family.add_metric((name(api_key),), histogram.cumulative(), histogram.sum)
    return family


def _error_name(code: int) -> str:
    try:
        return ErrorCode(int(code)).name
    except ValueError:
        return str(int(code))


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _error_codes(entity, depth: int):
    """Non-zero `error_code`s of a kio entity and of the entities in its tuple fields."""
    code = getattr(entity, "error_code", None)
    if code:
        yield code
    if depth <= 0:
        return
    cls = type(entity)
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    for name in names:
        value = getattr(entity, name, None)
        if isinstance(value, tuple):
            for item in value:
                if is_dataclass(item):
                    yield from _error_codes(item, depth - 1)


def _limit_metrics(limits):
    """The connection limits' own counters (server/limits.py), read at scrape time."""
    family = CounterMetricFamily("kop_fast_connections_refused",
                                 "connections closed at once, over --max-connections or --max-connections-per-ip",
                                 labels=("limit",))
    for limit, n in sorted(limits.refused.items()):
        family.add_metric((limit,), n)
    yield family
    yield CounterMetricFamily("kop_fast_connections_idle_closed", "connections closed by --connections-max-idle-ms",
                              value=limits.idle_closed)
    yield GaugeMetricFamily("kop_fast_pending_produce_bytes",
                            "Produce request bytes waiting on the storage, over all connections",
                            value=limits.pending_produce)
    yield GaugeMetricFamily("kop_fast_connections_held",
                            "connections not read while --max-pending-produce-bytes is reached",
                            value=len(limits.held))


def _storage_metrics(stats):
    """The storage's own figures (`Storage.stats`), read at scrape time."""
    yield GaugeMetricFamily("kop_fast_storage_sends_pending",
                            "Pulsar messages of Produce handed to pulsar-client and not yet acknowledged, over all "
                            "partitions (one per stored Kafka batch with --entry-format kafka, one per record with "
                            "pulsar)", value=stats.sends_pending)
    yield GaugeMetricFamily("kop_fast_storage_appends_waiting",
                            "Produce appends (Kafka batches) waiting in kop_fast, in order, before they go to "
                            "pulsar-client: no producer yet, pulsar-client full, or the partition's next offset "
                            "being read from Pulsar", value=stats.appends_waiting)
    yield GaugeMetricFamily("kop_fast_entry_cache_entries",
                            "stored entries kept in memory for fetches right behind the producer (--read-cache-mb)",
                            value=stats.cache_entries)
    yield GaugeMetricFamily("kop_fast_entry_cache_bytes", "bytes of the entries the entry cache holds",
                            value=stats.cache_bytes)
    yield CounterMetricFamily("kop_fast_entry_cache_hits",
                              "reads of a partition by Fetch that returned data (a long poll may read a partition "
                              "more than once), served from the entry cache", value=stats.cache_hits)
    yield CounterMetricFamily("kop_fast_entry_cache_misses",
                              "reads of a partition by Fetch that returned data, served by a Pulsar reader "
                              "(every read with --read-cache-mb 0)", value=stats.cache_misses)
    up = GaugeMetricFamily("kop_fast_embedded_broker_up",
                           "1 while the embedded pulsar-lite runs, 0 from its death until it is restarted; "
                           "no sample with --pulsar-url (kop_fast runs no broker)")
    restarts = CounterMetricFamily("kop_fast_embedded_broker_restarts",
                                   "times the embedded pulsar-lite died on its own and was restarted; "
                                   "no sample with --pulsar-url")
    if stats.embedded_up is not None:
        up.add_metric((), int(stats.embedded_up))
        restarts.add_metric((), stats.embedded_restarts)
    yield up
    yield restarts


class _StateCollector:
    """What is computed from the node's state when scraped."""

    def __init__(self, node) -> None:
        self.node = node

    def describe(self):
        return []

    def collect(self):
        node = self.node
        yield GaugeMetricFamily("kop_fast_up", "1 while this kop-fast process serves", value=1)
        yield GaugeMetricFamily("kop_fast_connections", "open Kafka client connections",
                                value=len(node.connections))
        by_client: dict[tuple[str, str], int] = {}
        for conn in list(node.connections):
            identity = conn.identity or {}
            key = (identity.get("client_software_name") or "unknown",
                   identity.get("client_software_version") or "unknown")
            by_client[key] = by_client.get(key, 0) + 1
        family = GaugeMetricFamily("kop_fast_connections_by_client",
                                   "open connections by client software (ApiVersions v3+; unknown before it)",
                                   labels=("software", "version"))
        for (software, version), n in sorted(by_client.items()):
            family.add_metric((software, version), n)
        yield family
        yield from _limit_metrics(node.limits)

        groups = list(node.group_coordinator.groups())
        by_state: dict[str, int] = {}
        for group in groups:
            by_state[group.state.value] = by_state.get(group.state.value, 0) + 1
        family = GaugeMetricFamily("kop_fast_groups", "consumer groups this process coordinates, by state",
                                   labels=("state",))
        for state, n in sorted(by_state.items()):
            family.add_metric((state,), n)
        yield family
        family = GaugeMetricFamily("kop_fast_storage_handles", "what this process holds open in the storage, by kind",
                                   labels=("kind",))
        for kind, n in sorted(node.storage.resources().items()):
            family.add_metric((kind,), n)
        yield family
        yield from _storage_metrics(node.storage.stats())
        cluster = node.cluster
        if cluster is not None:
            yield GaugeMetricFamily("kop_fast_cluster_members", "live proxies in this proxy's cluster view",
                                    value=len(cluster.view.members))
            yield GaugeMetricFamily("kop_fast_cluster_epoch", "membership changes applied (the view's epoch)",
                                    value=cluster.view.epoch)
        yield CounterMetricFamily("kop_fast_rebalances", "group rebalances started (into PreparingRebalance)",
                                  value=COUNTERS.rebalances)
        yield self._lag(groups)

    def _lag(self, groups) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "kop_fast_group_lag",
            "log end (as this process last saw it) minus the group's committed offset: the records the group "
            "has not consumed (with --offset-mode packed, offsets are packed Pulsar positions and this is in "
            "offset units, larger than the records behind when it spans entries)",
            labels=("group", "topic", "partition"))
        storage = self.node.storage
        for group in groups:
            for (topic, partition), committed in group.offsets.items():
                info = storage.cached_topic(topic)
                if info is None or not 0 <= partition < info.partitions:
                    continue
                end = storage.partition_log(info, partition).high_watermark
                if end is None:
                    continue
                family.add_metric((group.group_id, topic, str(partition)), max(end - committed.offset, 0))
        return family


# -- HTTP: /metrics, /health, /ready --------------------------------------------------------------
class MetricsServer:
    def __init__(self, node, metrics: Metrics) -> None:
        self.node = node
        self.metrics = metrics
        self._server: asyncio.Server | None = None
        self._ready: tuple[float, str | None] | None = None  # (when, why not ready) of the last check
        self._check: asyncio.Future | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        try:
            self._server = await asyncio.start_server(self._serve, host, port, reuse_address=True)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen on {host}:{port} for metrics: {exc.strerror}") from exc
        return self._server.sockets[0].getsockname()[:2]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), HTTP_READ_TIMEOUT_S)
            while True:  # the headers: nothing in them matters here
                header = await asyncio.wait_for(reader.readline(), HTTP_READ_TIMEOUT_S)
                if header in (b"\r\n", b"\n", b""):
                    break
            parts = line.split()
            path = parts[1].split(b"?", 1)[0] if len(parts) >= 2 else b""
            method = parts[0] if parts else b""
            status, content_type, body = await self._route(method, path)
            writer.write(b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                         % (status, content_type.encode(), len(body)) + (b"" if method == b"HEAD" else body))
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()

    async def _route(self, method: bytes, path: bytes) -> tuple[bytes, str, bytes]:
        if method not in (b"GET", b"HEAD"):
            return b"405 Method Not Allowed", "text/plain", b"GET only\n"
        if path == b"/metrics":
            return b"200 OK", CONTENT_TYPE_LATEST, self.metrics.exposition()
        if path == b"/health":
            return b"200 OK", "application/json", orjson.dumps({"status": "up"})
        if path == b"/ready":
            reason = await self.not_ready()
            if reason is None:
                return b"200 OK", "application/json", orjson.dumps({"status": "ready"})
            return b"503 Service Unavailable", "application/json", orjson.dumps(
                {"status": "not ready", "reason": reason})
        return b"404 Not Found", "text/plain", b"/metrics, /health, /ready\n"

    async def not_ready(self) -> str | None:
        """Why this process is not ready (None: ready); one storage probe per READY_CACHE_S."""
        cached = self._ready
        if cached is not None and time.monotonic() - cached[0] < READY_CACHE_S:
            return cached[1]
        if self._check is None or self._check.done():
            self._check = asyncio.ensure_future(self._readiness())
        return await asyncio.shield(self._check)

    async def _readiness(self) -> str | None:
        reason = None
        if not self.node.listening:
            reason = "Kafka listeners are not up"
        else:
            try:
                await asyncio.wait_for(self.node.storage.probe(), PROBE_TIMEOUT_S)
            except asyncio.TimeoutError:
                reason = f"storage did not answer within {PROBE_TIMEOUT_S:g} s"
            except Exception as exc:  # noqa: BLE001 - any failure means not ready; say which
                reason = f"storage: {exc}"
        self._ready = (time.monotonic(), reason)
        return reason
