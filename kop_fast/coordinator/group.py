"""The per-group state machine of the Kafka consumer-group coordinator (classic protocol).

It follows Kafka's ``GroupCoordinator`` / ``GroupMetadata`` (Kafka 3.x, including KIP-345 static
membership, KIP-394 member-id-required joins, KIP-429-compatible rejoin handling, KIP-211 offset
retention, KIP-496 OffsetDelete, KIP-814 skip-assignment, pending-sync expiry). It is *sans-io*:
no sockets, no asyncio, no clock. The asyncio layer drives it.

Group states (Kafka's transitions)::

    Empty --join--> PreparingRebalance --all joined / timeout--> CompletingRebalance
    CompletingRebalance --leader's SyncGroup persisted--> Stable
    Stable / CompletingRebalance --join with new metadata, leader join, leave, expiry--> PreparingRebalance
    PreparingRebalance --nobody left--> Empty
    any --DeleteGroups (Empty only) / offset expiry (Empty, no offsets) / unload--> Dead

How to drive it
---------------
Every request method takes a request dataclass, an opaque ``waiter`` token chosen by the caller
(e.g. an ``asyncio.Future``; it is only stored and handed back, never inspected) and ``now_ms``
(wall-clock epoch milliseconds). Methods that may change state return an
:class:`~kop_fast.coordinator.messages.Output`:

* ``Output.completions``: ``(waiter, response)`` pairs to deliver now. They include the
  caller's own response when it is ready, and responses to *other* waiters that this call
  released (e.g. the last member to rejoin releases every parked JoinGroup). A JoinGroup or
  SyncGroup that has to wait produces no completion for its waiter yet; it is answered later
  from another call, from :meth:`Group.tick`, or from
  :func:`~kop_fast.coordinator.messages.complete_write`.
* ``Output.writes``: :class:`~kop_fast.coordinator.messages.PendingWrite` objects, records to
  persist (see below).

Read-only methods (``heartbeat``, ``fetch_offsets``, ``describe``, ``overview``) return their
response directly.

Timers (session timeouts, rebalance timeouts, the initial rebalance delay, pending-member and
pending-sync expiry) are plain deadlines: call :meth:`Group.tick` (or ``PartitionGroups.tick``)
whenever ``next_deadline_ms()`` has passed. Re-read ``next_deadline_ms()`` after every call,
because calls move deadlines.

Every waiter handed in is answered exactly once, eventually, as long as the I/O layer keeps
ticking and completes every write. Where Kafka would silently drop a parked request (a member
re-sending JoinGroup/SyncGroup while the first one is parked, or a member removed while parked),
this state machine answers the superseded waiter (REBALANCE_IN_PROGRESS / UNKNOWN_MEMBER_ID)
so futures never leak.

Persistence contract
--------------------
State that must survive a restart is written as :class:`~kop_fast.coordinator.records.Record`
key/value pairs, grouped in a ``PendingWrite``. The choice made here is **apply after
persist**, exactly like Kafka's coordinator:

* an OffsetCommit *stages* the offsets (pending: not visible to OffsetFetch, reported as
  UNSTABLE_OFFSET_COMMIT to fetches that require stable offsets) and returns a PendingWrite;
  the commit's response is **not** in any Output until the I/O layer reports the write's
  outcome with ``complete_write`` (``PartitionGroups.complete_write``), which applies the
  offsets and emits the response (or fails them and emits the error);
* the leader's SyncGroup in CompletingRebalance writes the group's assignment; the group becomes
  Stable and every parked SyncGroup is answered only in ``complete_write``;
* a static member replacing its old member id while Stable is answered only once the new
  member id is persisted;
* OffsetDelete and DeleteGroups are answered once their tombstones are written (Kafka answers
  these before the tombstones land; waiting is strictly safer);
* the metadata of a group that became Empty, and tombstones from offset expiry, have no waiter.

So if the I/O layer only ever delivers ``Output.completions``, a response that depends on
durable state cannot reach a client before that state is durable. The I/O layer must:

1. append ``write.records`` to ``__consumer_offsets`` partition
   ``partition_for(write.group_id, n)``, preserving the order in which PendingWrites were
   emitted (at least per group; a per-partition FIFO producer does that);
2. call ``complete_write(write, error_code, now_ms)`` exactly once per write, with
   ``ErrorCode.none`` on success or a Kafka error code on failure/timeout (e.g.
   ``COORDINATOR_NOT_AVAILABLE``, ``NOT_COORDINATOR`` after losing ownership,
   ``REQUEST_TIMED_OUT``); it is translated the way Kafka translates storage errors;
3. deliver the completions that call returns.
"""

from __future__ import annotations

from collections.abc import Callable

from kop_fast.protocol.errors import ErrorCode

from . import records as rec
from .group_base import DEAD, EMPTY, STABLE, GroupConfig
from .group_offsets import GroupOffsets
from .member import Member
from .membership import GroupMembership
from .messages import Output, SyncResponse, join_error

__all__ = ["Group"]


class Group(GroupMembership, GroupOffsets):
    """One consumer group: membership, rebalance state machine, committed offsets.

    The request handlers are in :class:`~kop_fast.coordinator.membership.GroupMembership`
    (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, on top of the rebalance protocol of
    :class:`~kop_fast.coordinator.rebalance.GroupRebalance`) and
    :class:`~kop_fast.coordinator.group_offsets.GroupOffsets` (OffsetCommit, OffsetFetch,
    OffsetDelete, retention); this class adds what concerns the whole group: deletion, unloading
    and rebuilding it from its persisted record.
    """

    # ============================================================================ whole-group ops

    def delete(self, now_ms: int) -> tuple[int, list[rec.Record]]:
        """DeleteGroups for this group: only an Empty group can be deleted; returns the error and
        the tombstones to write (offsets and group metadata)."""
        if self.state is DEAD:
            return ErrorCode.group_id_not_found, []
        if self.state is not EMPTY:
            return ErrorCode.non_empty_group, []
        # Left Empty without offsets, the group dies in the cleanup, which adds its tombstone.
        return ErrorCode.none, self._cleanup(self.offsets.remove_all(), now_ms)

    def unload(self, now_ms: int) -> Output:
        """This node stops coordinating the group (Kafka's onGroupUnloaded): parked requests get
        NOT_COORDINATOR so clients look the coordinator up again."""
        out = Output()
        if self.state is not DEAD:
            self._transition(DEAD, now_ms)
        for m in self.members.values():
            if m.join_waiter is not None:
                out.respond(m.join_waiter[0], join_error(ErrorCode.not_coordinator, m.member_id))
                m.join_waiter = None
            if m.sync_waiter is not None:
                out.respond(m.sync_waiter[0], SyncResponse(ErrorCode.not_coordinator))
                m.sync_waiter = None
            m.heartbeat_deadline_ms = None
        self.pending_members.clear()
        self.pending_sync_members.clear()
        self._join_deadline_ms = None
        self._sync_deadline_ms = None
        return out

    @classmethod
    def from_record(
        cls,
        group_id: str,
        value: rec.GroupMetadataValue,
        config: GroupConfig,
        now_ms: int,
        *,
        id_factory: Callable[[], str] | None = None,
    ) -> Group:
        """Rebuild a group from its persisted metadata, as Kafka's loadGroup: Stable with the
        persisted members (who must heartbeat within their session timeout or be removed, see
        :meth:`on_loaded`), or Empty."""
        g = cls(group_id, config, now_ms, id_factory=id_factory)
        g.state = STABLE if value.members else EMPTY
        g.generation_id = value.generation
        g.protocol_name = value.protocol
        g.leader_id = value.leader
        g.state_timestamp_ms = value.current_state_timestamp_ms if value.current_state_timestamp_ms >= 0 else None
        for mv in value.members:
            m = Member(
                mv.member_id,
                mv.group_instance_id,
                mv.client_id,
                mv.client_host,
                mv.rebalance_timeout_ms,
                mv.session_timeout_ms,
                value.protocol_type,
                [(value.protocol or "", mv.subscription)],
            )
            m.assignment = mv.assignment
            g._add_member(m, None)
        g.protocol_type = value.protocol_type or None
        if g.leader_id is not None and g.leader_id not in g.members:
            g.leader_id = next(iter(g.members), None)
        g.subscribed_topics = g._compute_subscribed_topics()
        return g

    def on_loaded(self, now_ms: int) -> Output:
        """After replay: start the members' session timers; an over-capacity group rebalances so
        its members get a chance to commit before being shed (as in Kafka's onGroupLoaded)."""
        out = Output()
        if self.state not in (STABLE, EMPTY):
            return out
        if len(self.members) > self.config.max_size:
            self._prepare_rebalance(now_ms, out, f"freshly loaded group is over capacity ({self.config.max_size})")
        for m in self.members.values():
            self._schedule_heartbeat(m, now_ms)
        return out
