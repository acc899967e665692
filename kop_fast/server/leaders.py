"""Who leads a partition, for the handlers: the cluster's answer, or this proxy alone before it has joined.

Every partition-level handler asks `leader_error` first: a proxy that does not
own a partition answers NOT_LEADER_OR_FOLLOWER (its client refreshes Metadata
and goes to the owner), and a request that names a leader epoch is checked
against the partition's (FENCED_LEADER_EPOCH when older, UNKNOWN_LEADER_EPOCH
when newer), as Kafka brokers do.
"""

from __future__ import annotations

from kop_fast.protocol.errors import ErrorCode
from kop_fast.storage.api import TopicInfo


def leader_of(node, info: TopicInfo, index: int) -> tuple[int | None, int]:
    """(leader node id or None, leader epoch) of a partition."""
    cluster = node.cluster
    if cluster is None:
        return node.node_id, -1
    owner, epoch = cluster.owner(node.storage.partition_name(info, index))
    return (owner.node_id, epoch) if owner is not None else (None, -1)


def live_brokers(node, listener_name: str | None = None) -> list[tuple[int, str, int]]:
    """(node id, host, port) of every live proxy, by node id, as a client of listener
    `listener_name` reaches it (None: the first listener's addresses)."""
    cluster = node.cluster
    if cluster is None or not cluster.view.members:
        host, port = node.advertised.get(listener_name, (node.host, node.port))
        return [(node.node_id, host, port)]
    return [(m.node_id, *m.address(listener_name)) for m in cluster.members()]


def leader_error(node, partition_name: str, requested_epoch: int = -1) -> ErrorCode:
    """NONE when this proxy leads the partition (at the epoch the request names, if any)."""
    cluster = node.cluster
    if cluster is None:
        return ErrorCode.none
    owner, epoch = cluster.owner(partition_name)
    if owner is None or owner is not cluster.me or not cluster.owns(partition_name):
        return ErrorCode.not_leader_or_follower
    if requested_epoch >= 0:
        if requested_epoch < epoch:
            return ErrorCode.fenced_leader_epoch
        if requested_epoch > epoch:
            return ErrorCode.unknown_leader_epoch
    return ErrorCode.none
