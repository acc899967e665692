"""`ClusterMembership`: this proxy as one member of a Kafka cluster of proxies on one engine.

The asyncio driver of `kop_fast.cluster.view`. It joins through the storage's
membership log (`Storage.cluster_log`), heartbeats every HEARTBEAT_S, expires
members silent for LEASE_S, and answers the request path's questions: who owns
a partition, with which leader epoch, and may this proxy serve it now.

Serving a partition needs three things, all cheap to check per request:
* the view says this proxy owns it (rendezvous over the members);
* every other member has confirmed (in its heartbeats) that it applied the epoch
  at which this proxy got the partition, so the previous owner has stopped
  serving it and its writes are settled (a graceful move hands over in
  milliseconds);
* this proxy's lease holds: its last heartbeat that Pulsar took was sent less
  than SELF_LEASE_S ago. The others expire it only after LEASE_S without a
  heartbeat, so a proxy cut off from Pulsar (or frozen) has stopped serving
  before anyone takes over its partitions. The margin covers clock-rate drift and
  delivery, not clock offsets: only each process's monotonic clock is used.

A proxy removed from the view (expired while it was alive) serves nothing and
joins again with its next heartbeat, which makes a new epoch.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Awaitable, Callable

from kop_fast.cluster.view import ClusterView, Member
from kop_fast.storage.api import ClusterLog, Storage, StorageError

log = logging.getLogger("kop_fast.cluster")

HEARTBEAT_S = 1.0
LEASE_S = 6.0  # the others expire a member after this long without its heartbeat
SELF_LEASE_S = 4.0  # a member stops serving this long after its last heartbeat Pulsar took
HEARING_S = 3.0  # this proxy hears the others only if it heard itself this recently
HANDOVER_DRAIN_S = 3.0  # how long lost partitions' in-flight writes may take before confirming
OFFSETS_KEY_PREFIX = "__consumer_offsets#"


class ClusterJoinError(RuntimeError):
    """This proxy cannot join (its node id belongs to another live proxy)."""


def offsets_key(index: int) -> str:
    return f"{OFFSETS_KEY_PREFIX}{index}"


class ClusterMembership:
    def __init__(self, storage: Storage, cluster_id: str, host: str, port: int,
                 node_id: int | None = None, listeners: dict[str, tuple[str, int]] | None = None) -> None:
        self.storage = storage
        self.cluster_id = cluster_id
        self.host, self.port = host, port
        self.addresses = listeners or {}  # listener name -> advertised (host, port)
        self.requested_node_id = node_id
        self.instance = uuid.uuid4().hex
        self.view = ClusterView()
        self.me: Member | None = None
        self._joined_as = -1  # the node id this proxy joined as (kept when it is expired)
        self._log: ClusterLog | None = None
        self._lease_until = 0.0
        self._applied = 0  # the epoch this proxy has applied, lost partitions drained
        self._heard: dict[str, float] = {}  # instance -> monotonic time of its last heartbeat
        self._deaf_until = 0.0  # when this proxy last started hearing again after a gap
        self._leaving = False
        self._tasks: list[asyncio.Task] = []
        self._changed = asyncio.Event()
        # Called after every new epoch; may return an awaitable (e.g. lost partitions draining)
        # that is awaited, bounded, before this proxy confirms the epoch.
        self.listeners: list[Callable[[], Awaitable | None]] = []

    # -- the request path's questions -----------------------------------------------------------
    @property
    def node_id(self) -> int:
        if self.me is not None:
            return self.me.node_id
        return self._joined_as if self._joined_as >= 0 else (self.requested_node_id or 0)

    def owner(self, key: str) -> tuple[Member | None, int]:
        """(owning member, leader epoch) of a partition key."""
        return self.view.owner(key)

    def owns(self, key: str) -> bool:
        owner, _ = self.view.owner(key)
        return owner is not None and owner is self.me and not self._leaving

    def serving(self, key: str) -> bool:
        """This proxy may write the partition now (owner, handed over, lease held)."""
        owner, _ = self.view.owner(key)
        return (owner is self.me and owner is not None and not self._leaving
                and time.monotonic() < self._lease_until and self.view.handed_over(key))

    def members(self) -> list[Member]:
        return sorted(self.view.members.values(), key=lambda m: m.node_id)

    # -- life cycle -----------------------------------------------------------------------------
    async def join(self) -> Member:
        """Replay the membership log, join, take the first lease. Raises ClusterJoinError."""
        self._log = self.storage.cluster_log(self.cluster_id)
        await self._log.start(self._on_change, self._on_heartbeat)
        started = time.monotonic()
        for member in self.view.members.values():  # not heard yet: give them a lease from now
            self._heard.setdefault(member.instance, started)
        while True:
            node = self._node_id_to_claim()
            await self._log.append_change(self._join_change(node))
            self.me = self.view.member_by_instance(self.instance)
            if self.me is not None:
                self._joined_as = self.me.node_id
                break
            if self.requested_node_id is not None:
                holder = self.view.members.get(node)
                raise ClusterJoinError(f"node id {node} belongs to the live proxy at "
                                       f"{holder.host}:{holder.port}" if holder else f"cannot join as node {node}")
        self._applied = self.view.epoch
        await self._heartbeat()
        self._tasks.append(asyncio.create_task(self._heartbeats(), name="cluster-heartbeats"))
        self._tasks.append(asyncio.create_task(self._expiries(), name="cluster-expiries"))
        log.info("joined cluster %s as node %d (epoch %d, %d members)", self.cluster_id, self.me.node_id,
                 self.view.epoch, len(self.view.members))
        return self.me

    def _node_id_to_claim(self) -> int:
        if self.requested_node_id is not None:
            holder = self.view.members.get(self.requested_node_id)
            if holder is not None and (holder.host, holder.port) != (self.host, self.port):
                raise ClusterJoinError(f"node id {self.requested_node_id} belongs to the live proxy at "
                                       f"{holder.host}:{holder.port}")
            return self.requested_node_id
        for member in self.view.members.values():  # our predecessor at this address
            if (member.host, member.port) == (self.host, self.port):
                return member.node_id
        return self.view.free_node_id()

    def _join_change(self, node: int) -> dict:
        change = {"op": "join", "node": node, "instance": self.instance, "host": self.host, "port": self.port}
        if self.addresses:
            change["listeners"] = {name: [h, p] for name, (h, p) in self.addresses.items()}
        return change

    def stop_serving(self) -> None:
        """Graceful stop, first step: serve nothing from now on (requests get retriable errors)."""
        self._leaving = True

    async def leave(self, timeout: float = 5.0) -> None:
        """Graceful stop, last step (after in-flight work is done): the others take over at once."""
        self._leaving = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # (bounded: in 3.11 a wait_for that completes as it is cancelled swallows the cancel)
            await asyncio.wait(self._tasks, timeout=2)
        self._tasks.clear()
        if self._log is None:
            return
        if self.me is not None and self.view.member_by_instance(self.instance) is not None:
            try:
                await asyncio.wait_for(self._log.append_change(
                    {"op": "leave", "node": self.me.node_id, "instance": self.instance}), timeout)
            except (asyncio.TimeoutError, StorageError) as exc:
                log.warning("could not say goodbye to the cluster (%r): the others expire this node", exc)
        await self._log.close()
        self._log = None

    # -- following the log ----------------------------------------------------------------------
    def _on_change(self, change: dict) -> None:
        before = set(self.view.members.values())
        if not self.view.apply(change):
            return
        now = time.monotonic()
        after = set(self.view.members.values())
        for member in after - before:
            self._heard.setdefault(member.instance, now)
            log.info("cluster epoch %d: node %d joined (%s:%d)", self.view.epoch, member.node_id,
                     member.host, member.port)
        for member in before - after:
            self._heard.pop(member.instance, None)
            log.info("cluster epoch %d: node %d left (%s)", self.view.epoch, member.node_id, change["op"])
        if self.me is not None:
            self.me = self.view.member_by_instance(self.instance)
            if self.me is None and not self._leaving:
                log.warning("this proxy was removed from the cluster (%s); serving nothing until it rejoins",
                            change["op"])
        self._changed.set()

    def _on_heartbeat(self, heartbeat: dict) -> None:
        try:
            instance = str(heartbeat["instance"])
            applied = int(heartbeat["applied"])
        except (KeyError, TypeError, ValueError):
            return
        now = time.monotonic()
        if instance == self.instance and now - self._heard.get(instance, now) > HEARING_S:
            # This proxy was deaf (frozen, or its reader stalled and was replaced): what it
            # last heard of the others is stale, not a sign that they are silent.
            self._deaf_until = now
        self._heard[instance] = now
        self.view.confirm(instance, applied)

    # -- tasks ----------------------------------------------------------------------------------
    async def _heartbeat(self) -> None:
        sent = time.monotonic()
        assert self._log is not None
        await self._log.publish_heartbeat({"node": self.node_id, "instance": self.instance,
                                           "applied": self._applied})
        self._lease_until = max(self._lease_until, sent + SELF_LEASE_S)

    async def _heartbeats(self) -> None:
        """Every HEARTBEAT_S, and at once after a new epoch has been applied (and drained)."""
        while not self._leaving:
            try:
                await asyncio.wait_for(self._changed.wait(), HEARTBEAT_S)
            except asyncio.TimeoutError:
                pass
            if self._changed.is_set():
                self._changed.clear()
                await self._apply_epoch()
            try:
                if self.view.member_by_instance(self.instance) is None and not self._leaving:
                    await self._rejoin()
                await self._heartbeat()
            except StorageError as exc:
                log.warning("heartbeat failed (%r); this proxy stops serving %.0f s after the last one",
                            exc, SELF_LEASE_S)
            except ClusterJoinError as exc:
                log.error("cannot join the cluster again: %s", exc)

    async def _apply_epoch(self) -> None:
        epoch = self.view.epoch
        pending = []
        for listener in list(self.listeners):
            try:
                result = listener()
            except Exception:  # noqa: BLE001 - one listener must not stop the membership
                log.exception("a cluster listener failed")
                continue
            if result is not None:
                pending.append(asyncio.ensure_future(result))
        if pending:
            await asyncio.wait(pending, timeout=HANDOVER_DRAIN_S)
        self._applied = max(self._applied, epoch)

    async def _rejoin(self) -> None:
        node = self._joined_as if self._joined_as not in self.view.members else self._node_id_to_claim()
        await self._log.append_change(self._join_change(node))
        self.me = self.view.member_by_instance(self.instance)
        if self.me is not None:
            self._joined_as = self.me.node_id
            log.info("joined the cluster again as node %d", self.me.node_id)

    async def _expiries(self) -> None:
        """Expire members not heard for LEASE_S (every member does this; the log dedupes).

        Only while this proxy hears its own heartbeats: if it does not, its reader (or its
        link to Pulsar) is what is broken, not the others."""
        tick = time.monotonic()
        while not self._leaving:
            await asyncio.sleep(HEARTBEAT_S / 2)
            now = time.monotonic()
            if now - tick > HEARING_S:
                self._deaf_until = now  # this loop itself was stalled (a frozen process)
            tick = now
            if now - self._heard.get(self.instance, 0.0) > HEARING_S:
                continue
            for member in list(self.view.members.values()):
                if member.instance == self.instance:
                    continue
                heard = max(self._heard.get(member.instance, now), self._deaf_until)
                if now - heard > LEASE_S:
                    self._heard[member.instance] = now  # don't write it again every tick
                    log.warning("node %d (%s:%d) silent for %.1f s: expiring it", member.node_id,
                                member.host, member.port, now - heard)
                    try:
                        await self._log.append_change({"op": "expire", "node": member.node_id,
                                                       "instance": member.instance})
                    except StorageError as exc:
                        log.warning("could not expire node %d (%r)", member.node_id, exc)
