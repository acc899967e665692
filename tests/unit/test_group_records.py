"""Persistence records: byte layout, round trips, version handling, replay into PartitionGroups."""

from __future__ import annotations

import struct

import pytest

from kop_fast.coordinator import (
    GroupConfig,
    GroupState,
    HeartbeatRequest,
    JoinRequest,
    LeaveMember,
    OffsetAndMetadata,
    OffsetDeleteRequest,
    OffsetFetchRequest,
    PartitionGroups,
    partition_for,
)
from kop_fast.coordinator import records as rec
from kop_fast.protocol.errors import ErrorCode
from tests.unit.group_harness import Harness, sub

E = ErrorCode


def s16(s: str | None) -> bytes:
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def b32(b: bytes) -> bytes:
    return struct.pack(">i", len(b)) + b


# ================================================================================ byte layout


def test_keys_use_kafkas_layout():
    assert rec.encode_offset_commit_key("g", "t", 3) == b"\x00\x01" + s16("g") + s16("t") + b"\x00\x00\x00\x03"
    assert rec.encode_group_metadata_key("grp") == b"\x00\x02" + s16("grp")
    assert rec.decode_key(rec.encode_offset_commit_key("g", "t", 3)) == rec.OffsetCommitKey("g", "t", 3)
    assert rec.decode_key(b"\x00\x00" + s16("g") + s16("t") + b"\x00\x00\x00\x01") == rec.OffsetCommitKey("g", "t", 1)
    assert rec.decode_key(rec.encode_group_metadata_key("grp")) == rec.GroupMetadataKey("grp")


def test_offset_commit_value_v3_layout_and_round_trip():
    v = OffsetAndMetadata(offset=42, leader_epoch=7, metadata="m", commit_timestamp_ms=1234)
    data = rec.encode_offset_commit_value(v)
    assert data == b"\x00\x03" + struct.pack(">qi", 42, 7) + s16("m") + struct.pack(">q", 1234)
    assert rec.decode_offset_commit_value(data) == v


def test_offset_commit_value_with_expiry_is_v1():
    v = OffsetAndMetadata(offset=1, metadata="", commit_timestamp_ms=10, expire_timestamp_ms=99)
    data = rec.encode_offset_commit_value(v)
    assert data[:2] == b"\x00\x01"
    back = rec.decode_offset_commit_value(data)
    assert back.expire_timestamp_ms == 99 and back.leader_epoch == -1 and back.offset == 1


def test_older_offset_commit_values_decode():
    v0 = b"\x00\x00" + struct.pack(">q", 5) + s16("x") + struct.pack(">q", 77)
    assert rec.decode_offset_commit_value(v0) == OffsetAndMetadata(5, -1, "x", 77, None)
    v2 = b"\x00\x02" + struct.pack(">q", 6) + s16("") + struct.pack(">q", 78)
    assert rec.decode_offset_commit_value(v2) == OffsetAndMetadata(6, -1, "", 78, None)


def test_group_metadata_value_round_trip():
    v = rec.GroupMetadataValue(
        protocol_type="consumer",
        generation=5,
        protocol="range",
        leader="m1",
        current_state_timestamp_ms=1_700_000_000_000,
        members=(
            rec.MemberMetadataValue("m1", None, "c1", "/1.2.3.4", 30000, 10000, sub("t"), b"A"),
            rec.MemberMetadataValue("m2", "inst-2", "c2", "/5.6.7.8", 60000, 45000, b"", b""),
        ),
    )
    data = rec.encode_group_metadata_value(v)
    assert data[:2] == b"\x00\x03"
    assert rec.decode_group_metadata_value(data) == v
    empty = rec.GroupMetadataValue("consumer", 6, None, None, 123, ())
    assert rec.decode_group_metadata_value(rec.encode_group_metadata_value(empty)) == empty


def test_older_group_metadata_values_decode():
    member_v0 = s16("m1") + s16("c1") + s16("/h") + struct.pack(">i", 9000) + b32(b"S") + b32(b"A")
    v0 = (
        b"\x00\x00" + s16("consumer") + struct.pack(">i", 2) + s16("range") + s16("m1")
        + struct.pack(">i", 1) + member_v0
    )
    got = rec.decode_group_metadata_value(v0)
    assert got.current_state_timestamp_ms == -1
    # v0 has no rebalance timeout: the session timeout stands in for it.
    assert got.members[0] == rec.MemberMetadataValue("m1", None, "c1", "/h", 9000, 9000, b"S", b"A")
    member_v1 = s16("m1") + s16("c1") + s16("/h") + struct.pack(">ii", 20000, 9000) + b32(b"S") + b32(b"A")
    v2 = (
        b"\x00\x02" + s16("consumer") + struct.pack(">i", 2) + s16(None) + s16(None)
        + struct.pack(">q", 55) + struct.pack(">i", 1) + member_v1
    )
    got = rec.decode_group_metadata_value(v2)
    assert got.protocol is None and got.leader is None and got.current_state_timestamp_ms == 55
    assert got.members[0].rebalance_timeout_ms == 20000 and got.members[0].group_instance_id is None


def test_tombstones_and_decode_record():
    r = rec.offset_commit_record("g", "t", 0, None)
    assert r.value is None and rec.decode_record(r) == (rec.OffsetCommitKey("g", "t", 0), None)
    r = rec.group_metadata_record("g", None)
    assert rec.decode_record((r.key, r.value)) == (rec.GroupMetadataKey("g"), None)


def test_unknown_newer_versions_raise_a_clear_error():
    with pytest.raises(rec.UnknownRecordVersionError, match="record key version 3"):
        rec.decode_key(b"\x00\x03" + s16("g"))
    with pytest.raises(rec.UnknownRecordVersionError, match="offset commit value version 4") as e:
        rec.decode_offset_commit_value(b"\x00\x04" + b"\x00" * 30)
    assert e.value.version == 4 and e.value.max_known == 3
    with pytest.raises(rec.UnknownRecordVersionError, match="group metadata value version 9"):
        rec.decode_group_metadata_value(b"\x00\x09")
    assert issubclass(rec.UnknownRecordVersionError, rec.RecordDecodeError)


def test_corrupt_records_raise_decode_errors():
    good = rec.encode_offset_commit_value(OffsetAndMetadata(1, 2, "meta", 3))
    with pytest.raises(rec.RecordDecodeError, match="truncated"):
        rec.decode_offset_commit_value(good[:-1])
    with pytest.raises(rec.RecordDecodeError, match="trailing"):
        rec.decode_offset_commit_value(good + b"\x00")
    with pytest.raises(rec.RecordDecodeError):
        rec.decode_key(b"\x00")


def test_partition_for_matches_kafka_placement():
    # Java: "hello".hashCode() == 99162322; "Hello World".hashCode() == -862545276;
    # "polygenelubricants".hashCode() == Integer.MIN_VALUE, for which Utils.abs gives 0.
    assert rec.java_string_hash("hello") == 99162322
    assert rec.java_string_hash("Hello World") == -862545276
    assert rec.java_string_hash("polygenelubricants") == -(2**31)
    assert rec.java_string_hash("Aa") == rec.java_string_hash("BB") == 2112
    assert rec.java_string_hash("\U0001F600") == 31 * 0xD83D + 0xDE00  # UTF-16 surrogate pair
    assert partition_for("hello", 50) == 99162322 % 50
    assert partition_for("Hello World", 50) == 862545276 % 50
    assert partition_for("polygenelubricants", 50) == 0
    assert all(0 <= partition_for(f"group-{i}", 7) < 7 for i in range(100))
    with pytest.raises(ValueError):
        partition_for("g", 0)


# ===================================================================================== replay


def _replayed(h: Harness, **config) -> PartitionGroups:
    groups = PartitionGroups(GroupConfig(**config))
    groups.load(h.log, h.now)
    return groups


def test_replay_restores_stable_group_and_offsets():
    h = Harness()
    ja = h.join(client="ca", instance="i-a", session=20_000)
    b_id = h.member_id_for("cb", session=20_000)
    jb = h.join(b_id, client="cb", session=20_000)
    h.advance_until(lambda: h.answer(ja) and h.answer(jb))
    a = h.answer(ja).member_id
    h.sync(a, 1, {a: b"AA", b_id: b"BB"}, group_instance_id="i-a")
    h.sync(b_id, 1)
    h.commit({("t1", 0): (10, 3, "x"), ("t1", 1): 11}, generation=1, member_id=a, group_instance_id="i-a")
    h.commit({("t1", 0): (12, 4, "y")}, generation=1, member_id=b_id)  # later record overrides
    h.commit({("s", 0): 99}, group="simple")

    groups = _replayed(h)
    g = groups.get("g")
    assert g.state is GroupState.STABLE and g.generation_id == 1
    assert (g.protocol_type, g.protocol_name, g.leader_id) == ("consumer", "range", a)
    assert g.static_members == {"i-a": a}
    assert groups.describe_group("g") == h.partition.describe_group("g")
    assert groups.fetch_offsets(OffsetFetchRequest("g")) == h.partition.fetch_offsets(OffsetFetchRequest("g"))
    fetched = groups.fetch_offsets(OffsetFetchRequest("g")).partitions
    got = {(p.topic, p.partition): (p.offset, p.leader_epoch, p.metadata) for p in fetched}
    assert got == {("t1", 0): (12, 4, "y"), ("t1", 1): (11, -1, "")}
    simple = groups.get("simple")
    assert simple.state is GroupState.EMPTY and simple.generation_id == 0 and simple.protocol_type is None
    assert groups.fetch_offsets(OffsetFetchRequest("simple", [("s", 0)])).partitions[0].offset == 99

    # Restored members are live: the static one rejoins without a rebalance...
    w = h.waiter("j")
    out = groups.join(
        JoinRequest("g", "", "ca", "/h", 20_000, 30_000, "consumer", [("range", sub("t1"))], group_instance_id="i-a"),
        w,
        h.now,
    )
    assert [type(x).__name__ for x in out.writes] == ["PendingWrite"] and out.completions == []
    resp = groups.complete_write(out.writes[0], E.none, h.now).response_for(w)
    assert resp.error_code == E.none and resp.generation_id == 1
    assert groups.get("g").state is GroupState.STABLE
    # ... and members that never come back expire after their session timeout.
    new_a = resp.member_id
    hb = groups.heartbeat(HeartbeatRequest("g", 1, new_a, "i-a"), h.now + 10_000)
    assert hb.error_code == E.none
    groups.tick(h.now + 20_000)
    g = groups.get("g")
    assert list(g.members) == [new_a] and g.state is GroupState.PREPARING_REBALANCE


def test_replay_of_a_silent_group_ends_empty_after_session_timeouts():
    h = Harness()
    (a, b), gen = h.stable_group(2, session=10_000)
    groups = _replayed(h)
    assert groups.get("g").state is GroupState.STABLE and set(groups.get("g").members) == {a, b}
    t = h.now
    assert groups.next_deadline_ms() == t + 10_000
    out = groups.tick(t + 10_000)
    g = groups.get("g")
    assert g.state is GroupState.EMPTY and g.members == {} and g.generation_id == gen + 1
    [write] = out.writes  # the Empty metadata is persisted
    assert rec.decode_record(write.records[0])[1].members == ()


def test_replay_applies_tombstones():
    h = Harness()
    (a,), gen = h.stable_group(1)
    h.commit({("t1", 0): 1, ("t1", 1): 2}, generation=gen, member_id=a)
    h.leave(LeaveMember(a))
    w = h.waiter("od")
    h.dispatch(h.partition.delete_offsets(OffsetDeleteRequest("g", [("t1", 0)]), w, h.now))
    groups = _replayed(h)
    g = groups.get("g")
    assert g.state is GroupState.EMPTY and g.generation_id == gen + 1
    assert dict(g.offsets.items()).keys() == {("t1", 1)}
    # Empty since when? The persisted state timestamp survives, so KIP-211 retention does too.
    assert g.state_timestamp_ms == h.group().state_timestamp_ms

    w = h.waiter("del")
    h.dispatch(h.partition.delete_groups(["g"], w, h.now))
    assert h.answer(w).results[0].error_code == E.none
    groups = _replayed(h)
    assert "g" not in groups and len(groups) == 0


def test_group_tombstone_leaves_undeleted_offsets_in_an_offsets_only_group():
    records = [
        rec.group_metadata_record("g", rec.GroupMetadataValue("consumer", 3, None, None, 5, ())),
        rec.offset_commit_record("g", "t", 0, OffsetAndMetadata(7, -1, "", 5)),
        rec.group_metadata_record("g", None),
    ]
    groups = PartitionGroups()
    res = groups.load(records, 1000)
    g = groups.get("g")
    assert (res.groups, res.offsets) == (1, 1)
    assert g.generation_id == 0 and g.protocol_type is None and g.offsets.get(("t", 0)).offset == 7


def test_replay_skips_unknown_key_versions_but_refuses_unknown_value_versions():
    good = rec.offset_commit_record("g", "t", 0, OffsetAndMetadata(1, -1, "", 5))
    unknown_key = (b"\x00\x05" + s16("g"), b"whatever")
    groups = PartitionGroups()
    res = groups.load([good, unknown_key], 1000)
    assert res.skipped_records == 1 and res.offsets == 1
    bad_value = (rec.encode_offset_commit_key("h", "t", 0), b"\x00\x07" + b"\x00" * 8)
    with pytest.raises(rec.UnknownRecordVersionError):
        PartitionGroups().load([bad_value], 1000)
    with pytest.raises(ValueError, match="already loaded"):
        groups.load([good], 1000)


def test_loaded_empty_group_expires_from_its_persisted_empty_time():
    retention = 10 * 60_000
    h = Harness(offsets_retention_ms=retention)
    (a,), gen = h.stable_group(1)
    h.commit({("t1", 0): 1}, generation=gen, member_id=a)
    h.leave(LeaveMember(a))
    empty_since = h.now
    h.clock.advance(retention - 1000)
    groups = _replayed(h, offsets_retention_ms=retention)  # restarted shortly before expiry
    assert groups.expire_offsets(h.now).writes == []
    out = groups.expire_offsets(empty_since + retention)
    decoded = [rec.decode_record(r) for w in out.writes for r in w.records]
    assert decoded == [(rec.OffsetCommitKey("g", "t1", 0), None), (rec.GroupMetadataKey("g"), None)]
    assert "g" not in groups
