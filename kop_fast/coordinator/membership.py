"""The group-membership requests of a group: JoinGroup (with KIP-345 static members and
KIP-394 member-id-required joins), SyncGroup, Heartbeat and LeaveGroup."""

from __future__ import annotations

from typing import Any

from kop_fast.protocol.errors import ErrorCode

from .errors import group_store_error
from .group_base import COMPLETING, DEAD, EMPTY, PREPARING, STABLE
from .member import Member
from .messages import (
    UNKNOWN_MEMBER_ID,
    HeartbeatRequest,
    HeartbeatResponse,
    JoinRequest,
    JoinResponse,
    LeaveMemberResult,
    LeaveRequest,
    LeaveResponse,
    Output,
    SyncRequest,
    SyncResponse,
    join_error,
)
from .rebalance import GroupRebalance

__all__ = ["GroupMembership"]


class GroupMembership(GroupRebalance):
    """JoinGroup, SyncGroup, Heartbeat and LeaveGroup on an existing group."""

    # ================================================================================ JoinGroup

    def join(self, req: JoinRequest, waiter: Any, now_ms: int) -> Output:
        """JoinGroup on an existing group (group creation and session-timeout bounds are checked
        by :class:`~kop_fast.coordinator.partition_groups.PartitionGroups`)."""
        out = Output()
        box = (waiter,)
        member_id = req.member_id
        if not self._accept_joining_member(member_id):
            # Over group.max.size: shed this member (Kafka does not rebalance for it here).
            if member_id in self.members:
                self._remove_member(member_id, out)
            out.respond(waiter, join_error(ErrorCode.group_max_size_reached))
        elif member_id == UNKNOWN_MEMBER_ID:
            self._join_new_member(req, box, now_ms, out)
        else:
            self._join_current_member(req, box, now_ms, out)
        if self.state is PREPARING:
            self._try_complete_join(now_ms, out)
        return out

    def _accept_joining_member(self, member_id: str) -> bool:
        max_size = self.config.max_size
        if self.state in (EMPTY, DEAD):
            return True
        if self.state is PREPARING:
            m = self.members.get(member_id)
            if m is not None and m.awaiting_join:
                return True
            if len(self.members) < max_size:
                return True  # fewer members than the limit, so fewer awaiting too
            return sum(1 for x in self.members.values() if x.awaiting_join) < max_size
        return member_id in self.members or len(self.members) < max_size

    def _join_new_member(self, req: JoinRequest, box: tuple[Any], now: int, out: Output) -> None:
        if self.state is DEAD:
            out.respond(box[0], join_error(ErrorCode.coordinator_not_available))
            return
        if not self.supports_protocols(req.protocol_type, {n for n, _ in req.protocols}):
            out.respond(box[0], join_error(ErrorCode.inconsistent_group_protocol))
            return
        new_id = self._generate_member_id(req.client_id, req.group_instance_id)
        if req.group_instance_id is not None:
            old_id = self.static_members.get(req.group_instance_id)
            if old_id is not None:
                self._update_static_member_and_rebalance(old_id, new_id, req, box, now, out)
            else:
                self._add_member_and_rebalance(new_id, req, box, now, out)
        elif req.require_known_member_id:
            # KIP-394: hand out the id first; the member joins for real with it. Until then it
            # counts as expected (a pending member delays the end of the join phase).
            self.pending_members[new_id] = now + req.session_timeout_ms
            out.respond(box[0], join_error(ErrorCode.member_id_required, new_id))
        else:
            self._add_member_and_rebalance(new_id, req, box, now, out)

    def _join_current_member(self, req: JoinRequest, box: tuple[Any], now: int, out: Output) -> None:
        member_id = req.member_id
        if self.state is DEAD:
            out.respond(box[0], join_error(ErrorCode.coordinator_not_available, member_id))
            return
        if not self.supports_protocols(req.protocol_type, {n for n, _ in req.protocols}):
            out.respond(box[0], join_error(ErrorCode.inconsistent_group_protocol, member_id))
            return
        if self.is_pending_member(member_id):
            if req.group_instance_id is not None:
                # Pending ids are only given to dynamic members; Kafka throws here.
                out.respond(box[0], join_error(ErrorCode.unknown_server_error, member_id))
                return
            self._add_member_and_rebalance(member_id, req, box, now, out)
            return
        error = self._validate_current_member(member_id, req.group_instance_id)
        if error is not None:
            out.respond(box[0], join_error(error, member_id))
            return
        m = self.members[member_id]
        if self.state is PREPARING:
            self._update_member_and_rebalance(m, req, box, now, out)
        elif self.state is COMPLETING:
            if m.matches(req.protocols):
                # Same metadata: probably a retry after a lost response; answer with the current
                # generation without starting another rebalance.
                out.respond(box[0], self._current_join_response(member_id, include_members=self.is_leader(member_id)))
            else:
                self._update_member_and_rebalance(m, req, box, now, out)
        elif self.state is STABLE:
            if self.is_leader(member_id) or not m.matches(req.protocols):
                # A leader join forces a rebalance: that is how the leader reacts to changes that
                # do not show in member metadata (e.g. new partitions of a subscribed topic).
                self._update_member_and_rebalance(m, req, box, now, out)
            else:
                # A follower rejoining with unchanged metadata (e.g. a cooperative-sticky client's
                # second join) just gets the current generation.
                out.respond(box[0], self._current_join_response(member_id, include_members=False))
        else:  # Empty: members cannot exist; a defensive answer
            out.respond(box[0], join_error(ErrorCode.unknown_member_id, member_id))

    def _current_join_response(self, member_id: str, *, include_members: bool) -> JoinResponse:
        return JoinResponse(
            error_code=ErrorCode.none,
            member_id=member_id,
            generation_id=self.generation_id,
            protocol_type=self.protocol_type,
            protocol_name=self.protocol_name,
            leader=self.leader_id or "",
            members=self.current_member_metadata() if include_members else [],
        )

    def _add_member_and_rebalance(
        self, member_id: str, req: JoinRequest, box: tuple[Any], now: int, out: Output
    ) -> None:
        m = Member(
            member_id,
            req.group_instance_id,
            req.client_id,
            req.client_host,
            req.rebalance_timeout_ms,
            req.session_timeout_ms,
            req.protocol_type,
            req.protocols,
        )
        m.is_new = True
        if self.state is PREPARING and self.generation_id == 0:
            self.new_member_added = True
        self._add_member(m, box)
        # A parked new member cannot heartbeat and its socket is muted, so a disconnect is
        # invisible; bound how long it may sit in the join phase.
        self._schedule_heartbeat(m, now, self.config.new_member_join_timeout_ms)
        self._maybe_prepare_rebalance(now, out, f"new member {member_id} joined")

    def _update_member_and_rebalance(self, m: Member, req: JoinRequest, box: tuple[Any], now: int, out: Output) -> None:
        self._update_member(m, req.protocols, req.rebalance_timeout_ms, req.session_timeout_ms, box, out)
        why = "leader rejoined" if self.is_leader(m.member_id) else "member rejoined with new metadata"
        self._maybe_prepare_rebalance(now, out, f"{why}: {m.member_id}")

    def _replace_static_member(self, instance_id: str, old_id: str, new_id: str, out: Output) -> Member:
        m = self.members.pop(old_id)
        # Whoever still waits under the old id is a zombie or a duplicate instance: fence it.
        if m.join_waiter is not None:
            out.respond(m.join_waiter[0], join_error(ErrorCode.fenced_instance_id, old_id))
            m.join_waiter = None
        if m.sync_waiter is not None:
            out.respond(m.sync_waiter[0], SyncResponse(ErrorCode.fenced_instance_id))
            m.sync_waiter = None
        m.member_id = new_id
        self.members[new_id] = m
        if self.leader_id == old_id:
            self.leader_id = new_id
        self.static_members[instance_id] = new_id
        if old_id in self.pending_sync_members:
            # Kafka leaves the old id here (and rebalances when the sync timer fires); the new
            # id is the same member, so carry the obligation over.
            self.pending_sync_members.discard(old_id)
            self.pending_sync_members.add(new_id)
        return m

    def _update_static_member_and_rebalance(
        self, old_id: str, new_id: str, req: JoinRequest, box: tuple[Any], now: int, out: Output
    ) -> None:
        instance_id = req.group_instance_id
        assert instance_id is not None
        current_leader = self.leader_id
        m = self._replace_static_member(instance_id, old_id, new_id, out)
        self._schedule_heartbeat(m, now)
        old_protocols = list(m.protocols)
        old_rebalance_timeout, old_session_timeout = m.rebalance_timeout_ms, m.session_timeout_ms
        self._update_member(m, req.protocols, req.rebalance_timeout_ms, req.session_timeout_ms, box, out)

        if self.state is STABLE:
            if self.protocol_name == self.select_protocol():
                # KIP-345: a known static member restarting does not cost a rebalance. Persist
                # its new member id first, then give it the current generation.
                generation = self.generation_id
                assignment = {x.member_id: x.assignment for x in self.members.values()}
                record = self._metadata_record(assignment)

                def on_done(error: int, now2: int, out2: Output) -> None:
                    still_ours = (
                        self.state is STABLE
                        and self.generation_id == generation
                        and self.members.get(new_id) is m
                        and m.join_waiter is box
                    )
                    if not still_ours:
                        return  # a rebalance took over; it answers (or answered) the waiter
                    error = group_store_error(error)
                    if error != ErrorCode.none:
                        # Revert: the old member id is what is durable.
                        m.join_waiter = None
                        self._update_member(m, old_protocols, old_rebalance_timeout, old_session_timeout, None, out2)
                        self._replace_static_member(instance_id, new_id, old_id, out2)
                        self._schedule_heartbeat(m, now2)
                        out2.respond(
                            box[0],
                            JoinResponse(
                                error_code=error,
                                member_id=UNKNOWN_MEMBER_ID,
                                generation_id=self.generation_id,
                                protocol_type=self.protocol_type,
                                protocol_name=self.protocol_name,
                                leader=current_leader or "",
                            ),
                        )
                        return
                    m.join_waiter = None
                    if req.supports_skip_assignment:
                        # JoinGroup v9+ (KIP-814): tell a static leader it leads, but to skip
                        # running the assignor since the group is Stable.
                        is_leader = self.is_leader(new_id)
                        response = self._current_join_response(new_id, include_members=is_leader)
                        response.skip_assignment = is_leader
                    else:
                        # Older clients: report the old leader id, so a restarted leader does not
                        # believe it leads and compute an assignment nobody would receive.
                        response = self._current_join_response(new_id, include_members=False)
                        response.leader = current_leader or ""
                    out2.respond(box[0], response)

                self._write(out, [record], on_done)
            else:
                self._maybe_prepare_rebalance(
                    now, out, f"static member {instance_id} rejoined with protocols that change the selection"
                )
        elif self.state is COMPLETING:
            # The leader may already be assigning for the old member id: start over.
            self._prepare_rebalance(now, out, f"static member {instance_id} rejoined during CompletingRebalance")
        # PreparingRebalance: the member is simply parked with its new id.

    # ================================================================================ SyncGroup

    def sync(self, req: SyncRequest, waiter: Any, now_ms: int) -> Output:
        error = self._validate_sync(req)
        if error is not None:
            return Output.of(waiter, SyncResponse(error))
        out = Output()
        if self.state is EMPTY:
            out.respond(waiter, SyncResponse(ErrorCode.unknown_member_id))
        elif self.state is PREPARING:
            out.respond(waiter, SyncResponse(ErrorCode.rebalance_in_progress))
        elif self.state is COMPLETING:
            m = self.members[req.member_id]
            if m.sync_waiter is not None:
                # Re-sent while parked: answer the stale one (Kafka would drop it).
                out.respond(m.sync_waiter[0], SyncResponse(ErrorCode.rebalance_in_progress))
            m.sync_waiter = (waiter,)
            self._remove_pending_sync(req.member_id)
            if self.is_leader(req.member_id):
                given = dict(req.assignments)
                # Members the leader forgot get an empty assignment.
                assignment = {mid: given.get(mid, b"") for mid in self.members}
                generation = self.generation_id

                def on_done(error: int, now2: int, out2: Output) -> None:
                    # The group may have moved on while the write was in flight; then the
                    # rebalance that moved it has already answered the parked syncs.
                    if self.state is not COMPLETING or self.generation_id != generation:
                        return
                    error = group_store_error(error)
                    if error != ErrorCode.none:
                        self._reset_and_propagate_assignment_error(error, now2, out2)
                        self._maybe_prepare_rebalance(now2, out2, f"storing the assignment failed with {error!r}")
                    else:
                        self._set_and_propagate_assignment(assignment, now2, out2)
                        self._transition(STABLE, now2)

                self._write(out, [self._metadata_record(assignment)], on_done)
        else:  # Stable
            m = self.members[req.member_id]
            self._remove_pending_sync(req.member_id)
            out.respond(waiter, SyncResponse(ErrorCode.none, m.assignment, self.protocol_type, self.protocol_name))
            self._schedule_heartbeat(m, now_ms)
        return out

    def _validate_sync(self, req: SyncRequest) -> int | None:
        if self.state is DEAD:
            return ErrorCode.coordinator_not_available
        error = self._validate_current_member(req.member_id, req.group_instance_id)
        if error is not None:
            return error
        if req.generation_id != self.generation_id:
            return ErrorCode.illegal_generation
        if req.protocol_type is not None and req.protocol_type != self.protocol_type:
            return ErrorCode.inconsistent_group_protocol
        if req.protocol_name is not None and req.protocol_name != self.protocol_name:
            return ErrorCode.inconsistent_group_protocol
        return None

    # ================================================================================ Heartbeat

    def heartbeat(self, req: HeartbeatRequest, now_ms: int) -> HeartbeatResponse:
        if self.state is DEAD:
            return HeartbeatResponse(ErrorCode.coordinator_not_available)
        error = self._validate_current_member(req.member_id, req.group_instance_id)
        if error is not None:
            return HeartbeatResponse(error)
        if req.generation_id != self.generation_id:
            return HeartbeatResponse(ErrorCode.illegal_generation)
        if self.state is EMPTY:
            return HeartbeatResponse(ErrorCode.unknown_member_id)
        self._schedule_heartbeat(self.members[req.member_id], now_ms)
        if self.state is PREPARING:
            return HeartbeatResponse(ErrorCode.rebalance_in_progress)
        return HeartbeatResponse(ErrorCode.none)

    # =============================================================================== LeaveGroup

    def leave(self, req: LeaveRequest, waiter: Any, now_ms: int) -> Output:
        if self.state is DEAD:
            return Output.of(waiter, LeaveResponse(ErrorCode.coordinator_not_available))
        out = Output()
        results = []
        error: int
        for lm in req.members:
            if lm.member_id == UNKNOWN_MEMBER_ID:
                # Administrative removal by group.instance.id (KIP-345).
                current = self.static_members.get(lm.group_instance_id) if lm.group_instance_id is not None else None
                if current is not None:
                    self._remove_member_and_update_group(
                        self.members[current],
                        now_ms,
                        out,
                        f"static member {lm.group_instance_id} removed by LeaveGroup",
                    )
                    error = ErrorCode.none
                else:
                    error = ErrorCode.unknown_member_id
            elif self.is_pending_member(lm.member_id):
                self._remove_member(lm.member_id, out)
                if self.state is PREPARING:
                    self._try_complete_join(now_ms, out)
                error = ErrorCode.none
            else:
                error = self._validate_current_member(lm.member_id, lm.group_instance_id) or ErrorCode.none
                if error == ErrorCode.none:
                    self._remove_member_and_update_group(
                        self.members[lm.member_id], now_ms, out, f"member {lm.member_id} left (reason: {lm.reason})"
                    )
            results.append(LeaveMemberResult(lm.member_id, lm.group_instance_id, error))
        response = LeaveResponse(ErrorCode.none, results)
        if out.writes:
            # The group's new state (e.g. empty, next generation) is answered once it is stored:
            # a coordinator that dies right after the answer must not come back with the member
            # still in the group (the next join would wait out its session).
            out.writes[-1].then(lambda _error, _now, later: later.respond(waiter, response))
        else:
            out.respond(waiter, response)
        return out
