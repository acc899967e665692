"""The composition root: embedded Pulsar (if needed), the Pulsar storage, the Kafka node, signals.

The only module that picks the storage engine: `kop_fast.server` knows storage
only through `kop_fast.storage.api`.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import hashlib
import logging
import signal
import sys
import tracemalloc

import uvloop

from kop_fast.allocator import tune_allocator
from kop_fast.config import Settings
from kop_fast.data_dir import DataDirInUse, lock_data_dir
from kop_fast.embedded import EmbeddedPulsar, EmbeddedPulsarError
from kop_fast.embedded_supervisor import BrokerSupervisor
from kop_fast.logs import setup_logging

log = logging.getLogger("kop_fast")

GC_GEN0_THRESHOLD = 20_000


def run(settings: Settings) -> int:
    setup_logging(settings.log_level, settings.log_format)
    tune_allocator(cache_bytes=settings.read_cache_mb << 20)
    try:
        data_dir_lock = lock_data_dir(settings.data_dir)  # held until the process exits
    except (DataDirInUse, OSError) as exc:
        fatal(settings, str(exc))
        return 1
    embedded = None
    pulsar_url = settings.pulsar_url
    if pulsar_url is None:
        embedded = EmbeddedPulsar(settings.data_dir)
        try:
            embedded.launch()
            _import_server()  # while pulsar-lite opens its database
            pulsar_url = embedded.wait_ready()
        except (EmbeddedPulsarError, OSError) as exc:
            embedded.stop()
            fatal(settings, f"cannot start the embedded Pulsar: {exc}")
            return 1
        log.info("embedded pulsar-lite at %s, data in %s", pulsar_url, settings.data_dir)
    try:
        return uvloop.run(serve(settings, pulsar_url, embedded))
    except KeyboardInterrupt:
        return 0
    finally:
        if embedded is not None:
            embedded.stop()  # the supervisor was stopped first: this exit is expected
            log.info("embedded pulsar-lite stopped")
        data_dir_lock.close()


def _import_server() -> None:
    """The server's modules (most of kop-fast's start-up); not at the top, so `kop-fast --help`
    stays fast."""
    # kio registers hypothesis strategies for its types when hypothesis can be imported (it can
    # wherever kop_fast's test extra is installed); the server never uses them, and importing
    # hypothesis was ~0.12 s of every start.
    sys.modules.setdefault("hypothesis", None)
    import kop_fast.server.handlers  # noqa: F401 - every handler, and the kio schemas they use
    import kop_fast.server.node  # noqa: F401
    import kop_fast.storage.pulsar  # noqa: F401


async def serve(settings: Settings, pulsar_url: str, embedded: EmbeddedPulsar | None = None) -> int:
    _import_server()  # done already with the embedded broker (then free: the modules are loaded)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if tracemalloc.is_tracing():  # PYTHONTRACEMALLOC=1: SIGUSR1 logs where memory grew
        loop.add_signal_handler(signal.SIGUSR1, _log_allocation_growth)
    broker_lost: list[str] = []  # why the embedded broker is gone for good

    def give_up(reason: str) -> None:
        broker_lost.append(reason)
        stop.set()

    supervisor = None
    if embedded is not None:
        supervisor = BrokerSupervisor(embedded, lambda reason: loop.call_soon_threadsafe(give_up, reason))
        supervisor.start()
    try:
        return await _serve(settings, pulsar_url, stop, broker_lost, supervisor)
    finally:
        if supervisor is not None:
            supervisor.stop()


async def _serve(settings: Settings, pulsar_url: str, stop: asyncio.Event, broker_lost: list[str],
                 supervisor: BrokerSupervisor | None = None) -> int:
    from kop_fast.server.cluster import ClusterJoinError
    from kop_fast.server.node import KafkaNode
    from kop_fast.storage.pulsar import PulsarStorage

    from kop_fast.storage.pulsar.storage import OffsetModeMismatch

    storage = PulsarStorage(settings, pulsar_url, embedded=supervisor)  # its up/restarts go to the metrics
    try:
        await storage.start()
    except OffsetModeMismatch as exc:
        fatal(settings, str(exc))
        await storage.close()
        return 1
    except Exception as exc:  # noqa: BLE001 - say why in one line, whatever it is
        fatal(settings, f"cannot use Pulsar at {pulsar_url}: {exc}")
        await storage.close()
        return 1

    try:
        cluster_id = settings.cluster_id or await storage.cluster_id(
            default_cluster_id(pulsar_url, settings.kafka_tenant, settings.kafka_namespace))
    except Exception as exc:  # noqa: BLE001 - say why in one line
        print(f"kop-fast: error: cannot agree on a cluster id through Pulsar at {pulsar_url}: {exc}", file=sys.stderr)
        await storage.close()
        return 1
    try:
        node = KafkaNode(settings, storage, cluster_id)  # reads the TLS files and token keys
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        fatal(settings, f"cannot read the TLS certificate or token key: {exc}")
        await storage.close()
        return 1
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, node.reload_tls)  # new certificates, new connections
    try:
        bound = await node.start()  # listens, then joins the cluster
    except OSError as exc:
        fatal(settings, exc.strerror)
        await storage.close()
        return 1
    except ClusterJoinError as exc:
        fatal(settings, f"cannot join Kafka cluster {cluster_id}: {exc}")
        await storage.close()
        return 1
    # Everything built at start-up (schemas, handlers, clients) lives for the whole run:
    # move it out of the collector's sight, and collect young objects less often, so
    # full collections stay short and rare (they show up as p99.9 request latency).
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 20)
    log.info("kop-fast ready: listening on %s, advertised as %s:%d, node %d of cluster %s, pulsar %s",
             ", ".join(f"{h}:{p} ({listener.listener_name})" for (h, p), listener in zip(bound, settings.listen)),
             node.host, node.port, node.node_id, cluster_id, pulsar_url)

    await stop.wait()
    if broker_lost:
        # Nothing can be stored any more: stop at once (clients get errors and go elsewhere),
        # not after a drain that could only time out against a dead broker.
        fatal(settings, broker_lost[0])
        return 1
    log.info("shutting down")
    await node.stop()
    await storage.close()
    log.info("stopped")
    return 0


_last_snapshot = None


def _log_allocation_growth() -> None:
    """The 15 source lines whose live allocations grew most since the last SIGUSR1 (leak hunts)."""
    global _last_snapshot
    snapshot = tracemalloc.take_snapshot()
    if _last_snapshot is None:
        stats = snapshot.statistics("lineno")[:15]
    else:
        stats = snapshot.compare_to(_last_snapshot, "lineno")[:15]
    _last_snapshot = snapshot
    for stat in stats:
        log.info("allocations: %s", stat)


def fatal(settings: Settings, message: str) -> None:
    """Why the server cannot run: one line on stderr, in the log's format."""
    if settings.log_format == "json":
        log.critical("%s", message)
    else:
        print(f"kop-fast: error: {message}", file=sys.stderr)


def default_cluster_id(pulsar_url: str, tenant: str, namespace: str) -> str:
    """The cluster id this process proposes; the first one stored in Pulsar is everybody's."""
    digest = hashlib.sha256(f"{pulsar_url}|{tenant}/{namespace}".encode()).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")
