"""Node-wide limits on client connections: how many (in total and per IP), how long one may
sit idle, and how many Produce bytes all of them together may have waiting on the storage.

The checks sit where a connection opens and closes (`admit` / `release`: a dict update),
in a sweep over the open connections every few seconds (idle ones), and on Produce only
(`produce_handed` / `produce_settled`: an integer add and compare each). Nothing else on
the request path is touched.

A connection over a connection limit is accepted and closed at once, as Kafka does; a flood
of them must not flood the log, so the WARNING is written at most once per
`REFUSAL_LOG_INTERVAL_S`, with the number refused since the previous line.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time

log = logging.getLogger("kop_fast.limits")

REFUSAL_LOG_INTERVAL_S = 10.0
# The idle sweep runs every quarter of the idle timeout, at most this far apart: a connection
# is closed between the timeout and 1.5 times it (or the timeout plus 20 s).
MAX_SWEEP_INTERVAL_S = 10.0
# File descriptors a process needs besides its client connections (Pulsar clients, logs,
# the metrics listener, the embedded broker's pipes).
SPARE_FDS = 256

TOTAL = "max-connections"
PER_IP = "max-connections-per-ip"


class ConnectionLimits:
    def __init__(self, settings, clock=time.monotonic) -> None:
        self.max_connections = settings.max_connections
        self.max_per_ip = settings.max_connections_per_ip
        self.max_idle_s = settings.connections_max_idle_ms / 1000
        self.max_pending_produce = settings.max_pending_produce_bytes
        self._clock = clock
        self.open = 0  # admitted connections not closed yet
        self._per_ip: dict[str, int] = {}
        self.refused = {TOTAL: 0, PER_IP: 0}  # since start, for metrics
        self.idle_closed = 0
        self._unlogged = 0  # refusals since the last WARNING line
        self._next_log = 0.0
        # Produce bytes handed to the storage, not settled yet, over all connections; the
        # connections that stopped reading because of it.
        self.pending_produce = 0
        self.held: set = set()

    # -- connection counts ----------------------------------------------------------------------
    def admit(self, ip: str, peer_name: str) -> bool:
        """Count a new connection from `ip`; False (and a rate-limited WARNING): close it."""
        if self.open >= self.max_connections:
            self._refuse(TOTAL, peer_name, f"{self.open} connections open (--max-connections {self.max_connections})")
            return False
        from_ip = self._per_ip.get(ip, 0)
        if from_ip >= self.max_per_ip:
            self._refuse(PER_IP, peer_name,
                         f"{from_ip} connections open from {ip} (--max-connections-per-ip {self.max_per_ip})")
            return False
        self._per_ip[ip] = from_ip + 1
        self.open += 1
        return True

    def release(self, ip: str) -> None:
        """An admitted connection from `ip` closed."""
        self.open -= 1
        left = self._per_ip[ip] - 1
        if left:
            self._per_ip[ip] = left
        else:
            del self._per_ip[ip]  # the dict holds only IPs with open connections

    def open_from(self, ip: str) -> int:
        return self._per_ip.get(ip, 0)

    def _refuse(self, limit: str, peer_name: str, why: str) -> None:
        self.refused[limit] += 1
        self._unlogged += 1
        now = self._clock()
        if now < self._next_log:
            return
        more = self._unlogged - 1
        log.warning("closing connection from %s at once: %s%s", peer_name, why,
                    f"; {more} more refused since the previous such line" if more else "",
                    extra={"peer": peer_name, "limit": limit, "refused_unlogged": more})
        self._unlogged = 0
        self._next_log = now + REFUSAL_LOG_INTERVAL_S

    # -- pending Produce bytes ------------------------------------------------------------------
    def produce_handed(self, size: int) -> bool:
        """A Produce of `size` bytes waits on the storage; True: the node is at its bound, the
        connection that sent it should stop reading (`hold`)."""
        self.pending_produce += size
        return self.pending_produce >= self.max_pending_produce

    def hold(self, connection) -> None:
        self.held.add(connection)

    def produce_settled(self, size: int) -> None:
        """The storage answered (or the request was abandoned with its connection)."""
        self.pending_produce -= size
        if self.held and self.pending_produce < self.max_pending_produce:
            held, self.held = self.held, set()
            for connection in held:
                connection.release_hold()

    # -- idle connections -----------------------------------------------------------------------
    def sweep_interval(self) -> float | None:
        if not self.max_idle_s:
            return None
        return min(self.max_idle_s / 4, MAX_SWEEP_INTERVAL_S)

    def sweep(self, connections) -> int:
        """Close the connections idle for `max_idle_s`; how many were closed.

        A connection is active when it received bytes since the previous sweep (`reads`
        moved) or has requests in flight; otherwise it has been idle since the sweep that
        last saw it active, so it is never closed early, at most two sweeps late."""
        now = self._clock()
        closed = 0
        for conn in list(connections):
            if conn.reads != conn.reads_seen or conn.busy:
                conn.reads_seen = conn.reads
                conn.idle_since = now
            elif now - conn.idle_since >= self.max_idle_s:
                conn.close_idle(now - conn.idle_since)
                closed += 1
        self.idle_closed += closed
        return closed


class IdleSweeper:
    """Runs `ConnectionLimits.sweep` over a node's connections on a `call_later` timer."""

    def __init__(self, limits: ConnectionLimits, connections) -> None:
        self._limits = limits
        self._connections = connections
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        interval = self._limits.sweep_interval()
        if interval is not None:
            self._timer = asyncio.get_running_loop().call_later(interval, self._run, interval)

    def _run(self, interval: float) -> None:
        try:
            self._limits.sweep(self._connections)
        finally:
            self._timer = asyncio.get_running_loop().call_later(interval, self._run, interval)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def ensure_fd_limit(max_connections: int) -> None:
    """Raise the soft RLIMIT_NOFILE so `max_connections` can be accepted: past it accept(2)
    fails with EMFILE, and the client learns nothing of why; a WARNING when the hard limit
    does not allow it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + SPARE_FDS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
        except (ValueError, OSError) as exc:
            log.debug("cannot raise the open files limit to %d: %s", new, exc)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        log.warning("open files limit %d is below --max-connections %d plus %d for the process itself: "
                    "connections beyond it cannot be accepted (raise `ulimit -n`)",
                    soft, max_connections, SPARE_FDS)
