"""The process: embedded Pulsar (if needed), backend, listeners, signals, graceful shutdown."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys

import uvloop

from kop_fast.config import Settings, advertised_address
from kop_fast.embedded import EmbeddedPulsar, EmbeddedPulsarError
from kop_fast.server.memory import tune_allocator

log = logging.getLogger("kop_fast")

SHUTDOWN_DRAIN_S = 5.0
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
    # Imported here so `kop-fast --help` stays fast and handler registration happens once.
    import kop_fast.server.handlers  # noqa: F401
    from kop_fast.backend.bridge import PulsarError
    from kop_fast.backend.pulsar import PulsarBackend
    from kop_fast.server.broker import Broker
    from kop_fast.server.connection import KafkaConnection
    from kop_fast.server.group_coordinator import GroupCoordinator

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    backend = PulsarBackend(settings, pulsar_url)
    try:
        await backend.start()
    except (PulsarError, Exception) as exc:  # noqa: B014 - say why in one line, whatever it is
        print(f"kop-fast: error: cannot use Pulsar at {pulsar_url}: {exc}", file=sys.stderr)
        await backend.close()
        return 1

    broker = Broker(settings, backend, advertised_address(settings), pulsar_url=pulsar_url)
    broker.group_coordinator = GroupCoordinator(broker)
    await broker.group_coordinator.start()  # opens nothing yet: partitions load on first use
    servers = []
    try:
        for listener in settings.listen:
            server = await loop.create_server(
                lambda: KafkaConnection(broker), listener.host, listener.port,
                reuse_address=True, backlog=1024)
            servers.append(server)
    except OSError as exc:
        print(f"kop-fast: error: cannot listen on {listener.host}:{listener.port}: {exc.strerror}",
              file=sys.stderr)
        for server in servers:
            server.close()
        await broker.group_coordinator.stop()
        await backend.close()
        return 1
    bound = [s.sockets[0].getsockname()[:2] for s in servers]
    if not settings.advertised_listener:
        # With port 0 the kernel chose the port: advertise the one we really have.
        broker.host, broker.port = advertised_address(settings, bound[0][1])
    # Everything built at start-up (schemas, handlers, clients) lives for the whole run:
    # move it out of the collector's sight, and collect young objects less often, so
    # full collections stay short and rare (they show up as p99.9 request latency).
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 20)
    log.info("kop-fast ready: listening on %s, advertised as %s:%d, pulsar %s",
             ", ".join(f"{h}:{p}" for h, p in bound), broker.host, broker.port, pulsar_url)

    await stop.wait()
    log.info("shutting down")
    for server in servers:
        server.close()
    # Parked JoinGroup/SyncGroup get NOT_COORDINATOR, in-flight commits are persisted and
    # answered, the offsets partitions are handed over: before connections drain.
    await broker.group_coordinator.stop()
    connections = list(broker.connections)
    if connections:
        # Finish what clients already sent (bounded), then close.
        await asyncio.wait([asyncio.ensure_future(c.drain()) for c in connections], timeout=SHUTDOWN_DRAIN_S)
    for conn in connections:
        conn.close()
    for server in servers:
        await server.wait_closed()
    await backend.close()
    log.info("stopped")
    return 0
