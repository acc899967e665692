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

import uvloop

from kop_fast.config import Settings
from kop_fast.embedded import EmbeddedPulsar, EmbeddedPulsarError
from kop_fast.allocator import tune_allocator

log = logging.getLogger("kop_fast")

GC_GEN0_THRESHOLD = 20_000


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def run(settings: Settings) -> int:
    setup_logging(settings.log_level)
    embedded = None
    pulsar_url = settings.pulsar_url
    if pulsar_url is None:
        embedded = EmbeddedPulsar(settings.data_dir)
        try:
            pulsar_url = embedded.start()
        except (EmbeddedPulsarError, OSError) as exc:
            print(f"kop-fast: error: cannot start the embedded Pulsar: {exc}", file=sys.stderr)
            return 1
        log.info("embedded pulsar-lite at %s, data in %s", pulsar_url, settings.data_dir)
    # After the fork of the embedded broker: pages touched before a fork stay write-protected
    # in the parent, and the first write to each costs a fault all the same.
    tune_allocator(reserve_bytes=settings.read_cache_mb << 20)
    try:
        return uvloop.run(serve(settings, pulsar_url))
    except KeyboardInterrupt:
        return 0
    finally:
        if embedded is not None:
            embedded.stop()
            log.info("embedded pulsar-lite stopped")


async def serve(settings: Settings, pulsar_url: str) -> int:
    # Imported here so `kop-fast --help` stays fast.
    from kop_fast.server.node import KafkaNode
    from kop_fast.storage.pulsar import PulsarStorage

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    storage = PulsarStorage(settings, pulsar_url)
    try:
        await storage.start()
    except Exception as exc:  # noqa: BLE001 - say why in one line, whatever it is
        print(f"kop-fast: error: cannot use Pulsar at {pulsar_url}: {exc}", file=sys.stderr)
        await storage.close()
        return 1

    try:
        cluster_id = settings.cluster_id or await storage.cluster_id(
            default_cluster_id(pulsar_url, settings.kafka_tenant, settings.kafka_namespace))
    except Exception as exc:  # noqa: BLE001 - say why in one line
        print(f"kop-fast: error: cannot agree on a cluster id through Pulsar at {pulsar_url}: {exc}", file=sys.stderr)
        await storage.close()
        return 1
    node = KafkaNode(settings, storage, cluster_id)
    try:
        bound = await node.start()
    except OSError as exc:
        print(f"kop-fast: error: {exc.strerror}", file=sys.stderr)
        await storage.close()
        return 1
    # Everything built at start-up (schemas, handlers, clients) lives for the whole run:
    # move it out of the collector's sight, and collect young objects less often, so
    # full collections stay short and rare (they show up as p99.9 request latency).
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 20)
    log.info("kop-fast ready: listening on %s, advertised as %s:%d, pulsar %s",
             ", ".join(f"{h}:{p}" for h, p in bound), node.host, node.port, pulsar_url)

    await stop.wait()
    log.info("shutting down")
    await node.stop()
    await storage.close()
    log.info("stopped")
    return 0


def default_cluster_id(pulsar_url: str, tenant: str, namespace: str) -> str:
    """The cluster id this process proposes; the first one stored in Pulsar is everybody's."""
    digest = hashlib.sha256(f"{pulsar_url}|{tenant}/{namespace}".encode()).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")
