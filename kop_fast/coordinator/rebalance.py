"""The rebalance protocol of a group: its timers and the phases of a rebalance.

A rebalance starts in :meth:`GroupRebalance._prepare_rebalance` (state PreparingRebalance, the
join timer armed), ends its join phase in :meth:`GroupRebalance._complete_join` once every member
rejoined or the timer fired (a new generation: CompletingRebalance, or Empty), and its sync phase
when the leader's assignment is persisted (Stable, see :mod:`.membership`). Timers are plain
deadlines checked by :meth:`GroupRebalance.tick`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from kop_fast.protocol.errors import ErrorCode

from .group_base import COMPLETING, DEAD, EMPTY, PREPARING, STABLE, GroupBase
from .member import Member
from .messages import JoinResponse, Output, SyncResponse

__all__ = ["GroupRebalance"]

# The group's log, whichever of its modules writes to it.
_log = logging.getLogger("kop_fast.coordinator.group")

# Timer kinds, in the order they fire when due at the same millisecond.
_T_PENDING_MEMBER = 0
_T_HEARTBEAT = 1
_T_SYNC = 2
_T_JOIN = 3


class GroupRebalance(GroupBase):
    """Timers and rebalance phases of a group."""

    # ================================================================================== timers

    def next_deadline_ms(self) -> int | None:
        t = self._earliest_timer()
        return None if t is None else t[0]

    def _earliest_timer(self) -> tuple[int, int, str | None] | None:
        best: tuple[int, int, str | None] | None = None
        for mid, d in self.pending_members.items():
            if best is None or (d, _T_PENDING_MEMBER) < best[:2]:
                best = (d, _T_PENDING_MEMBER, mid)
        for m in self.members.values():
            hb = m.heartbeat_deadline_ms
            if hb is not None and (best is None or (hb, _T_HEARTBEAT) < best[:2]):
                best = (hb, _T_HEARTBEAT, m.member_id)
        if self._sync_deadline_ms is not None and (best is None or (self._sync_deadline_ms, _T_SYNC) < best[:2]):
            best = (self._sync_deadline_ms, _T_SYNC, None)
        if self._join_deadline_ms is not None and (best is None or (self._join_deadline_ms, _T_JOIN) < best[:2]):
            best = (self._join_deadline_ms, _T_JOIN, None)
        return best

    def tick(self, now_ms: int) -> Output:
        """Fire every timer due at ``now_ms``."""
        out = Output()
        self._run_timers(now_ms, out)
        return out

    def _run_timers(self, now: int, out: Output) -> None:
        # The cap only guards against a degenerate configuration (e.g. zero timeouts) re-arming
        # timers at `now` forever; normal operation never gets near it.
        for _ in range(1000 + 4 * (len(self.members) + len(self.pending_members))):
            t = self._earliest_timer()
            if t is None or t[0] > now:
                return
            _, kind, key = t
            if kind == _T_PENDING_MEMBER:
                assert key is not None
                self._on_pending_member_expired(key, now, out)
            elif kind == _T_HEARTBEAT:
                assert key is not None
                self._on_heartbeat_expired(self.members[key], now, out)
            elif kind == _T_SYNC:
                self._on_sync_expired(now, out)
            else:
                self._on_join_expired(now, out)

    def _on_heartbeat_expired(self, m: Member, now: int, out: Output) -> None:
        m.heartbeat_deadline_ms = None
        if m.is_new or not (m.awaiting_join or m.awaiting_sync):
            _log.info("Member %s in group %s has failed (session expired), removing it", m.member_id, self.group_id)
            self._remove_member_and_update_group(m, now, out, f"member {m.member_id} session expired")
        else:
            # A member parked in JoinGroup/SyncGroup is alive by definition (Kafka's
            # hasSatisfiedHeartbeat); re-arm so it is checked again once it is answered.
            self._schedule_heartbeat(m, now)

    def _on_pending_member_expired(self, member_id: str, now: int, out: Output) -> None:
        del self.pending_members[member_id]
        if self.state is PREPARING:
            self._try_complete_join(now, out)

    def _on_sync_expired(self, now: int, out: Output) -> None:
        self._sync_deadline_ms = None
        if self._sync_generation != self.generation_id or self.state not in (COMPLETING, STABLE):
            return
        if self.pending_sync_members:
            # Members that got their JoinGroup response but never sent SyncGroup are gone.
            missing = sorted(self.pending_sync_members)
            for mid in missing:
                self._remove_member(mid, out)
            self._prepare_rebalance(now, out, f"members {missing} did not send SyncGroup in time")

    def _on_join_expired(self, now: int, out: Output) -> None:
        self._join_deadline_ms = None
        if self.state is not PREPARING:
            return
        if self._join_initial and self.new_member_added and self._join_remaining_ms != 0:
            # Kafka's InitialDelayedJoin: members keep arriving, wait another delay, but never
            # longer in total than the rebalance timeout.
            self.new_member_added = False
            delay = min(self.config.initial_rebalance_delay_ms, self._join_remaining_ms)
            remaining = max(self._join_remaining_ms - self._join_delay_ms, 0)
            self._set_join_timer(now, delay, initial=True, remaining_ms=remaining)
            return
        self._complete_join(now, out)

    def _set_join_timer(self, now: int, delay_ms: int, *, initial: bool, remaining_ms: int = 0) -> None:
        self._join_deadline_ms = now + delay_ms
        self._join_initial = initial
        self._join_delay_ms = delay_ms
        self._join_remaining_ms = remaining_ms

    # ============================================================================== rebalancing

    def _maybe_prepare_rebalance(self, now: int, out: Output, reason: str) -> None:
        if self.state in (STABLE, COMPLETING, EMPTY):
            self._prepare_rebalance(now, out, reason)

    def _prepare_rebalance(self, now: int, out: Output, reason: str) -> None:
        _log.info(
            "Preparing to rebalance group %s in state %s with old generation %d (reason: %s)",
            self.group_id,
            self.state.value,
            self.generation_id,
            reason,
        )
        if self.state is COMPLETING:
            # Members parked in SyncGroup must rejoin.
            self._reset_and_propagate_assignment_error(ErrorCode.rebalance_in_progress, now, out)
        self.pending_sync_members.clear()
        self._sync_deadline_ms = None
        was_empty = self.state is EMPTY
        if was_empty:
            delay = self.config.initial_rebalance_delay_ms
            self._set_join_timer(
                now, delay, initial=True, remaining_ms=max(self.rebalance_timeout_ms() - delay, 0)
            )
        else:
            self._set_join_timer(now, self.rebalance_timeout_ms(), initial=False)
        self._transition(PREPARING, now)
        if not was_empty:
            self._try_complete_join(now, out)

    def _try_complete_join(self, now: int, out: Output) -> None:
        """Finish the join phase early once every known member rejoined (never during the
        initial delay, which always runs its course)."""
        if (
            self.state is PREPARING
            and self._join_deadline_ms is not None
            and not self._join_initial
            and self.has_all_members_joined()
        ):
            self._join_deadline_ms = None
            self._complete_join(now, out)

    def _maybe_elect_new_joined_leader(self) -> bool:
        if self.leader_id is None:
            return False
        leader = self.members[self.leader_id]
        if leader.awaiting_join:
            return True
        for mid, m in self.members.items():
            if m.awaiting_join:
                self.leader_id = mid
                return True
        return False

    def _complete_join(self, now: int, out: Output) -> None:
        """Kafka's onCompleteJoin: the join phase is over (all rejoined, or timeout)."""
        self._join_deadline_ms = None
        # Dynamic members that did not rejoin in time are gone; static ones stay (they may be
        # restarting) and are removed later by their session timeout or the sync timer.
        for m in [m for m in self.members.values() if not m.awaiting_join and not m.is_static]:
            self._remove_member(m.member_id, out)
        if self.state is DEAD:
            return
        if not self._maybe_elect_new_joined_leader() and self.members:
            # Only non-rejoined static members are left: wait another rebalance timeout.
            self._set_join_timer(now, self.rebalance_timeout_ms(), initial=False)
            return
        self._init_next_generation(now)
        if self.state is EMPTY:
            _log.info("Group %s with generation %d is now empty", self.group_id, self.generation_id)
            self._write(out, [self._metadata_record({})], None)
            return
        _log.info(
            "Stabilized group %s generation %d (protocol %s) with %d members",
            self.group_id,
            self.generation_id,
            self.protocol_name,
            len(self.members),
        )
        members = self.current_member_metadata()
        for m in self.members.values():
            if m.join_waiter is not None:
                is_leader = self.is_leader(m.member_id)
                out.respond(
                    m.join_waiter[0],
                    JoinResponse(
                        error_code=ErrorCode.none,
                        member_id=m.member_id,
                        generation_id=self.generation_id,
                        protocol_type=self.protocol_type,
                        protocol_name=self.protocol_name,
                        leader=self.leader_id or "",
                        members=list(members) if is_leader else [],
                    ),
                )
                m.join_waiter = None
            self._schedule_heartbeat(m, now)
            m.is_new = False
            self.pending_sync_members.add(m.member_id)
        self._sync_deadline_ms = now + self.rebalance_timeout_ms()
        self._sync_generation = self.generation_id

    def _init_next_generation(self, now: int) -> None:
        self.generation_id += 1
        if self.members:
            self.protocol_name = self.select_protocol()
            self.subscribed_topics = self._compute_subscribed_topics()
            self._transition(COMPLETING, now)
        else:
            self.protocol_name = None
            self.subscribed_topics = self._compute_subscribed_topics()
            self._transition(EMPTY, now)

    def _reset_and_propagate_assignment_error(self, error: int, now: int, out: Output) -> None:
        for m in self.members.values():
            m.assignment = b""
        self._propagate_assignment(error, now, out)

    def _set_and_propagate_assignment(self, assignment: Mapping[str, bytes], now: int, out: Output) -> None:
        for m in self.members.values():
            m.assignment = assignment.get(m.member_id, b"")
        self._propagate_assignment(ErrorCode.none, now, out)

    def _propagate_assignment(self, error: int, now: int, out: Output) -> None:
        ok = error == ErrorCode.none
        for m in self.members.values():
            if m.sync_waiter is not None:
                out.respond(
                    m.sync_waiter[0],
                    SyncResponse(
                        error_code=error,
                        assignment=m.assignment if ok else b"",
                        protocol_type=self.protocol_type if ok else None,
                        protocol_name=self.protocol_name if ok else None,
                    ),
                )
                m.sync_waiter = None
                # Its session may have lapsed while parked; start a fresh one.
                self._schedule_heartbeat(m, now)

    def _remove_member_and_update_group(self, m: Member, now: int, out: Output, reason: str) -> None:
        self._remove_member(m.member_id, out)
        if self.state in (STABLE, COMPLETING):
            self._maybe_prepare_rebalance(now, out, reason)
        elif self.state is PREPARING:
            self._try_complete_join(now, out)
