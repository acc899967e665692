"""Every version of every group API handler: kio request in, a response kio can encode and decode back.

The coordinator is a stub returning fixed answers; this checks the request
conversions and that each version's response is well-formed (non-nullable
fields, version-specific fields), which the client tests only cover for the
versions those clients pick.
"""

from __future__ import annotations

import asyncio
import datetime
import io
from types import SimpleNamespace

import pytest

import kop_fast.server.handlers  # noqa: F401 - registers the handlers
from kop_fast.protocol.errors import ErrorCode
from kop_fast.coordinator import (
    DescribedGroup,
    DescribedMember,
    HeartbeatResponse,
    JoinResponse,
    JoinResponseMember,
    LeaveMemberResult,
    LeaveResponse,
    ListedGroup,
    ListGroupsResponse,
    OffsetCommitPartitionResult,
    OffsetCommitResponse,
    OffsetDeletePartitionResult,
    OffsetDeleteResponse,
    OffsetFetchPartitionResult,
    OffsetFetchResponse,
    SyncResponse,
)
from kop_fast.protocol.build import make, sibling
from kop_fast.protocol.schemas import encode_entity, request_schema, response_schema
from kop_fast.config import build_settings
from kop_fast.server.node import KafkaNode
from kop_fast.server.registry import REGISTRY
from kop_fast.storage.memory import MemoryStorage, MemoryTopic

MS = datetime.timedelta(milliseconds=1)


class StubCoordinator:
    def __init__(self) -> None:
        self.calls: list = []

    async def find_coordinator(self, key):
        self.calls.append(("find", key))
        return ErrorCode.none

    async def join(self, req):
        self.calls.append(req)
        return JoinResponse(ErrorCode.none, req.member_id or "m-1", 3, "consumer", "range", "m-1",
                            [JoinResponseMember("m-1", None, b"meta")])

    async def sync(self, req):
        self.calls.append(req)
        return SyncResponse(ErrorCode.none, b"assignment", "consumer", "range")

    def heartbeat(self, req):
        self.calls.append(req)
        return HeartbeatResponse(ErrorCode.rebalance_in_progress)

    async def leave(self, req):
        self.calls.append(req)
        return LeaveResponse(ErrorCode.none, [LeaveMemberResult(m.member_id, m.group_instance_id,
                                                                ErrorCode.unknown_member_id) for m in req.members])

    async def commit_offsets(self, req):
        self.calls.append(req)
        return OffsetCommitResponse(ErrorCode.none, [OffsetCommitPartitionResult(p.topic, p.partition, 0)
                                                     for p in req.partitions])

    async def fetch_offsets(self, req):
        self.calls.append(req)
        if req.group_id == "loading":
            return OffsetFetchResponse(ErrorCode.coordinator_load_in_progress)
        return OffsetFetchResponse(ErrorCode.none, [OffsetFetchPartitionResult("t", 0, 42, 5, "md")])

    async def describe_groups(self, group_ids, version):
        return [DescribedGroup(ErrorCode.none, g, "Stable", "consumer", "range",
                               [DescribedMember("m-1", "i-1", "c", "/127.0.0.1", b"md", b"as")]) for g in group_ids]

    async def list_groups(self, states=None, types=None):
        return ListGroupsResponse(ErrorCode.none, [ListedGroup("g", "consumer", "Stable")])

    async def delete_groups(self, group_ids):
        return [(g, ErrorCode.non_empty_group) for g in group_ids]

    async def delete_offsets(self, req):
        self.calls.append(req)
        return OffsetDeleteResponse(ErrorCode.none, [OffsetDeletePartitionResult(t, p, 0) for t, p in req.partitions])


def context(api_key: int, version: int, coordinator):
    storage = MemoryStorage()
    storage.engine.topics["t"] = MemoryTopic(3)
    node = KafkaNode(build_settings({"listen": "127.0.0.1:9092"}, environ={}), storage, "cluster")
    node.group_coordinator = coordinator
    return SimpleNamespace(node=node, api_version=version, response_schema=response_schema(api_key, version),
                           header=SimpleNamespace(client_id="client"),
                           connection=SimpleNamespace(peer=("127.0.0.1", 5555), listener_name=None))


def nested(schema, class_name, **fields):
    return make(sibling(schema, class_name), **fields)


def build_request(api_key: int, version: int):
    s = request_schema(api_key, version)
    if api_key == 10:
        return make(s, key="g", key_type=0, coordinator_keys=("g", "h"))
    if api_key == 11:
        return make(s, group_id="g", session_timeout=6000 * MS, rebalance_timeout=9000 * MS, member_id="",
                    group_instance_id=None, protocol_type="consumer", reason=None,
                    protocols=(nested(s, "JoinGroupRequestProtocol", name="range", metadata=b"x"),))
    if api_key == 14:
        return make(s, group_id="g", generation_id=3, member_id="m-1", group_instance_id=None,
                    protocol_type="consumer", protocol_name="range",
                    assignments=(nested(s, "SyncGroupRequestAssignment", member_id="m-1", assignment=b"a"),))
    if api_key == 12:
        return make(s, group_id="g", generation_id=3, member_id="m-1", group_instance_id=None)
    if api_key == 13:
        if version < 3:
            return make(s, group_id="g", member_id="m-1")
        return make(s, group_id="g",
                    members=(nested(s, "MemberIdentity", member_id="m-1", group_instance_id=None, reason=None),))
    if api_key == 8:
        part = nested(s, "OffsetCommitRequestPartition", partition_index=0, committed_offset=42,
                      committed_leader_epoch=5, committed_metadata="md", commit_timestamp=-1)
        bad = nested(s, "OffsetCommitRequestPartition", partition_index=7, committed_offset=1,
                     committed_leader_epoch=-1, committed_metadata=None, commit_timestamp=-1)
        return make(s, group_id="g", generation_id_or_member_epoch=3, member_id="m-1", group_instance_id=None,
                    retention_time=-1 * MS,
                    topics=(nested(s, "OffsetCommitRequestTopic", name="t", partitions=(part, bad)),))
    if api_key == 9:
        if version >= 8:
            topics = nested(s, "OffsetFetchRequestTopics", name="t", partition_indexes=(0,))
            return make(s, require_stable=True, groups=(
                nested(s, "OffsetFetchRequestGroup", group_id="g", topics=(topics,)),
                nested(s, "OffsetFetchRequestGroup", group_id="loading", topics=None)))
        return make(s, group_id="g", require_stable=False,
                    topics=(nested(s, "OffsetFetchRequestTopic", name="t", partition_indexes=(0,)),))
    if api_key == 15:
        return make(s, groups=("g",), include_authorized_operations=False)
    if api_key == 16:
        return make(s, states_filter=())
    if api_key == 42:
        return make(s, groups_names=("g", "h"))
    if api_key == 47:
        return make(s, group_id="g", topics=(nested(s, "OffsetDeleteRequestTopic", name="t", partitions=(
            nested(s, "OffsetDeleteRequestPartition", partition_index=1),)),))
    raise AssertionError(api_key)


GROUP_APIS = [10, 11, 14, 12, 13, 8, 9, 15, 16, 42, 47]
CASES = [(key, v) for key in GROUP_APIS for v in range(REGISTRY.get(key).min_version,
                                                         REGISTRY.get(key).max_version + 1)]


def roundtrip(response):
    from kio.serial import entity_reader

    buf = io.BytesIO()
    encode_entity(response, buf)
    decoded, _ = entity_reader(type(response))(buf.getvalue(), 0)
    assert decoded == response
    return decoded


@pytest.mark.parametrize(("api_key", "version"), CASES, ids=[f"{k}-v{v}" for k, v in CASES])
def test_every_version_answers_a_well_formed_response(api_key, version):
    coordinator = StubCoordinator()
    ctx = context(api_key, version, coordinator)
    result = REGISTRY.get(api_key).handle(ctx, build_request(api_key, version))
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    response = roundtrip(result)
    assert type(response) is response_schema(api_key, version)
    entry = REGISTRY.get(api_key)
    if entry.error_response is not None:
        roundtrip(entry.error_response(ctx, build_request(api_key, version), 15))


def run(api_key, version, request=None, coordinator=None):
    coordinator = coordinator or StubCoordinator()
    ctx = context(api_key, version, coordinator)
    result = REGISTRY.get(api_key).handle(ctx, request or build_request(api_key, version))
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    return result, coordinator


def test_join_v0_uses_session_timeout_as_rebalance_timeout_and_v4_requires_member_id():
    _, c0 = run(11, 0)
    assert (c0.calls[0].session_timeout_ms, c0.calls[0].rebalance_timeout_ms) == (6000, 6000)
    assert not c0.calls[0].require_known_member_id
    _, c4 = run(11, 4)
    assert c4.calls[0].rebalance_timeout_ms == 9000 and c4.calls[0].require_known_member_id
    assert c4.calls[0].client_host == "/127.0.0.1" and c4.calls[0].client_id == "client"
    response, _ = run(11, 6)
    assert response.protocol_name == "range"


def test_offset_commit_unknown_partition_and_retention():
    response, coordinator = run(8, 2)
    [request] = coordinator.calls
    assert [(p.topic, p.partition, p.offset) for p in request.partitions] == [("t", 0, 42)]
    assert request.retention_time_ms == -1 and request.generation_id == 3
    [topic] = response.topics
    assert [(p.partition_index, p.error_code) for p in topic.partitions] == [(0, 0), (7, 3)]
    _, coordinator = run(8, 6)
    assert coordinator.calls[0].partitions[0].leader_epoch == 5


def test_offset_fetch_group_errors_by_version():
    s = request_schema(9, 1)
    loading = make(s, group_id="loading", topics=(nested(s, "OffsetFetchRequestTopic", name="t",
                                                         partition_indexes=(0, 1)),))
    v1, _ = run(9, 1, loading)
    assert [(p.partition_index, p.error_code) for t in v1.topics for p in t.partitions] == [(0, 14), (1, 14)]
    s = request_schema(9, 7)
    v7, _ = run(9, 7, make(s, group_id="loading", topics=None, require_stable=True))
    assert v7.error_code == 14 and v7.topics == ()
    v8, coordinator = run(9, 8)
    assert [(g.group_id, g.error_code) for g in v8.groups] == [("g", 0), ("loading", 14)]
    assert v8.groups[0].topics[0].partitions[0].committed_offset == 42
    assert coordinator.calls[1].partitions is None and coordinator.calls[0].require_stable
