"""One member of a consumer group (Kafka's ``MemberMetadata``), and the parsing of the consumer
protocol's subscription metadata."""

from __future__ import annotations

import struct
from typing import Any
from collections.abc import Sequence

from .errors import IllegalStateError

__all__ = ["Member", "subscribed_topics_of"]


class Member:
    """One member of a group (Kafka's ``MemberMetadata``)."""

    __slots__ = (
        "member_id",
        "group_instance_id",
        "client_id",
        "client_host",
        "rebalance_timeout_ms",
        "session_timeout_ms",
        "protocol_type",
        "protocols",
        "assignment",
        "join_waiter",
        "sync_waiter",
        "is_new",
        "heartbeat_deadline_ms",
    )

    def __init__(
        self,
        member_id: str,
        group_instance_id: str | None,
        client_id: str,
        client_host: str,
        rebalance_timeout_ms: int,
        session_timeout_ms: int,
        protocol_type: str,
        protocols: Sequence[tuple[str, bytes]],
    ) -> None:
        self.member_id = member_id
        self.group_instance_id = group_instance_id
        self.client_id = client_id
        self.client_host = client_host
        self.rebalance_timeout_ms = rebalance_timeout_ms
        self.session_timeout_ms = session_timeout_ms
        self.protocol_type = protocol_type
        self.protocols: list[tuple[str, bytes]] = [(n, bytes(m)) for n, m in protocols]
        self.assignment = b""
        # A parked JoinGroup / SyncGroup: a 1-tuple holding the caller's waiter, so that any
        # object (even None) can be a waiter. None = not parked.
        self.join_waiter: tuple[Any] | None = None
        self.sync_waiter: tuple[Any] | None = None
        # Joined but not yet part of a completed generation: it cannot heartbeat yet, so it
        # expires after new_member_join_timeout_ms instead of its session timeout.
        self.is_new = False
        self.heartbeat_deadline_ms: int | None = None

    @property
    def is_static(self) -> bool:
        return self.group_instance_id is not None

    @property
    def awaiting_join(self) -> bool:
        return self.join_waiter is not None

    @property
    def awaiting_sync(self) -> bool:
        return self.sync_waiter is not None

    def protocol_names(self) -> set[str]:
        return {n for n, _ in self.protocols}

    def metadata(self, protocol: str) -> bytes:
        for n, m in self.protocols:
            if n == protocol:
                return m
        raise IllegalStateError(f"member {self.member_id} does not support protocol {protocol}")

    def matches(self, protocols: Sequence[tuple[str, bytes]]) -> bool:
        """Same protocols with the same metadata in the same order (Kafka's ``matches``)."""
        if len(protocols) != len(self.protocols):
            return False
        return all(n1 == n2 and bytes(m1) == m2 for (n1, m1), (n2, m2) in zip(protocols, self.protocols, strict=True))

    def vote(self, candidates: set[str]) -> str:
        """The member's most preferred protocol among ``candidates``."""
        for n, _ in self.protocols:
            if n in candidates:
                return n
        raise IllegalStateError(f"member {self.member_id} supports none of {sorted(candidates)}")

    def __repr__(self) -> str:
        return (
            f"Member({self.member_id!r}, instance={self.group_instance_id!r}, "
            f"join={self.awaiting_join}, sync={self.awaiting_sync}, new={self.is_new})"
        )


def subscribed_topics_of(metadata: bytes) -> set[str]:
    """Topics of a ``ConsumerProtocolSubscription`` (any version: v0 is a prefix of all of them):
    ``int16 version``, then ``int32 count`` strings of ``int16 length`` + UTF-8."""
    (version,) = struct.unpack_from(">h", metadata, 0)
    if version < 0:
        raise ValueError("negative consumer protocol version")
    (count,) = struct.unpack_from(">i", metadata, 2)
    if count < 0:
        raise ValueError("negative topic count")
    pos = 6
    topics = set()
    for _ in range(count):
        (n,) = struct.unpack_from(">h", metadata, pos)
        pos += 2
        if n < 0 or pos + n > len(metadata):
            raise ValueError("bad topic name")
        topics.add(metadata[pos : pos + n].decode("utf-8"))
        pos += n
    return topics
