"""`KafkaNode`: this process as one Kafka broker, on whatever storage it is given.

It owns what every handler shares (settings, the storage, the node's identity,
the open connections, the idempotent-producer table, the group coordinator) and
its life cycle: listeners up, then a graceful stop. It knows storage only through
`kop_fast.storage.api`; the composition root (`kop_fast.app`) picks the engine.
"""

from __future__ import annotations

import asyncio
import logging

from kop_fast.config import Settings, advertised_addresses
from kop_fast.producer_state import ProducerStateTable
from kop_fast.server.cluster import ClusterMembership
from kop_fast.server.connection import KafkaConnection
from kop_fast.server.producer_recovery import ProducerRecovery
from kop_fast.server.group_coordinator import GroupCoordinator
from kop_fast.server.limits import ConnectionLimits, IdleSweeper, ensure_fd_limit
from kop_fast.server.registry import REGISTRY, HandlerRegistry
from kop_fast.server.retention import start_sweeping, stop_sweeping
from kop_fast.storage.api import Storage

log = logging.getLogger("kop_fast")

SHUTDOWN_DRAIN_S = 5.0


class KafkaNode:
    def __init__(self, settings: Settings, storage: Storage, cluster_id: str,
                 registry: HandlerRegistry = REGISTRY) -> None:
        import kop_fast.server.handlers  # noqa: F401 - registers every handler, once

        self.settings = settings
        self.storage = storage
        self.registry = registry
        self.cluster_id = cluster_id
        # Listener name -> what Metadata tells that listener's clients; host/port: the first.
        self.advertised = advertised_addresses(settings)
        self.host, self.port = next(iter(self.advertised.values()))
        # SSL and SASL_SSL listeners' certificates (reloaded on SIGHUP), None without any.
        self.tls = None
        if any(listener.uses_tls for listener in settings.listen):
            from kop_fast.server.tls import ServerTls
            self.tls = ServerTls(settings)
        # SASL listeners' token verifier, built once (keys read at start).
        self.authenticator = None
        if any(listener.uses_sasl for listener in settings.listen):
            from kop_fast.auth.authenticator import Authenticator
            self.authenticator = Authenticator.from_settings(settings)
        self.connections: set[KafkaConnection] = set()
        self.limits = ConnectionLimits(settings)
        self._idle_sweeper = IdleSweeper(self.limits, self.connections)
        self.producer_state = ProducerStateTable()
        self.producer_recovery = ProducerRecovery(self.producer_state)
        # Appends handed to the storage and not yet settled: a new cluster epoch is confirmed
        # only after the ones under way when it arrived have settled (a partition that moved
        # away must have no write of ours still landing when its new owner starts).
        self.inflight_appends: set[asyncio.Future] = set()
        self.group_coordinator = GroupCoordinator(settings, storage)
        self._servers: list[asyncio.Server] = []
        # Joined in start(), once the advertised address is known.
        self.cluster: ClusterMembership | None = None
        # --metrics-listen: the request path's metrics (None: off, nothing is counted).
        self.metrics = None
        self.metrics_address: tuple[str, int] | None = None  # where they are served (bound)
        self._metrics_server = None

    @property
    def node_id(self) -> int:
        return self.cluster.node_id if self.cluster is not None else (self.settings.node_id or 0)

    @property
    def listening(self) -> bool:
        """Every Kafka listener is up (and stop has not begun)."""
        return bool(self._servers) and all(s.is_serving() for s in self._servers)

    async def start(self) -> list[tuple[str, int]]:
        """Listen on every `--listen` address; returns the bound (host, port) pairs.

        Raises OSError (with the address in its message) when one cannot be bound;
        nothing is left listening then."""
        loop = asyncio.get_running_loop()
        await self.group_coordinator.start()  # opens nothing yet: partitions load on first use
        ensure_fd_limit(self.settings.max_connections)
        for listener in self.settings.listen:
            try:
                server = await loop.create_server(
                    _connection_factory(self, listener), listener.host, listener.port,
                    reuse_address=True, backlog=1024, ssl=self.tls.front if listener.uses_tls else None)
            except OSError as exc:
                await self.stop()
                raise OSError(exc.errno, f"cannot listen on {listener.host}:{listener.port}: {exc.strerror}") from exc
            self._servers.append(server)
        bound = [s.sockets[0].getsockname()[:2] for s in self._servers]
        self._idle_sweeper.start()
        if self.settings.metrics_listen is not None:
            await self._start_metrics(*self.settings.metrics_listen)
        # With port 0 the kernel chose the port: advertise the one we really have.
        self.advertised = advertised_addresses(self.settings, [port for _, port in bound])
        self.host, self.port = next(iter(self.advertised.values()))
        self.cluster = ClusterMembership(self.storage, self.cluster_id, self.host, self.port, self.settings.node_id,
                                         self.advertised)
        try:
            await self.cluster.join()
        except BaseException:
            await self.stop()
            raise
        self.cluster.listeners.append(self._settle_appends)
        self.group_coordinator.attach(self.cluster)
        self.producer_recovery.attach(self.cluster)
        start_sweeping(self)  # retention.ms overrides, enforced by this process
        return bound

    def reload_tls(self) -> None:
        """SIGHUP: new connections use the certificate files as they are now."""
        if self.tls is not None:
            self.tls.reload()

    def _settle_appends(self):
        if self.inflight_appends:
            return asyncio.wait(list(self.inflight_appends))
        return None

    async def _start_metrics(self, host: str, port: int) -> None:
        from kop_fast.server.metrics import Metrics, MetricsServer  # prometheus-client only when asked

        metrics = Metrics(self)
        server = MetricsServer(self, metrics)
        try:
            self.metrics_address = await server.start(host, port)
        except OSError:
            await self.stop()
            raise
        self.metrics, self._metrics_server = metrics, server
        log.info("metrics, /health and /ready on http://%s:%d", *self.metrics_address)

    async def stop(self) -> None:
        """Stop accepting, answer what clients already sent (bounded), close connections."""
        await stop_sweeping(self)
        self._idle_sweeper.stop()
        if self.cluster is not None:
            self.cluster.stop_serving()  # requests from now on: retriable errors, clients move on
        for server in self._servers:
            server.close()
        # Parked JoinGroup/SyncGroup get NOT_COORDINATOR, in-flight commits are persisted and
        # answered, the offsets partitions are handed over: before connections drain.
        await self.group_coordinator.stop()
        connections = list(self.connections)
        if connections:
            await asyncio.wait([asyncio.ensure_future(c.drain()) for c in connections], timeout=SHUTDOWN_DRAIN_S)
        for conn in connections:
            conn.close()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        if self.cluster is not None:  # everything settled: the others take over at once
            await self.cluster.leave()
        if self._metrics_server is not None:  # last: /ready says 503 while draining
            await self._metrics_server.stop()
            self._metrics_server = None


def _connection_factory(node: KafkaNode, listener):
    if listener.uses_sasl:
        from kop_fast.server.sasl_connection import SaslConnection
        return lambda: SaslConnection(node, listener)
    return lambda: KafkaConnection(node, listener)
