"""Pure encode/decode of the coordinator's persistence records.

The I/O layer writes these records to the Pulsar system topic ``__consumer_offsets`` (partition
``partition_for(group_id, n)``) and replays them into :meth:`PartitionGroups.load` on startup.
Every record is a key and a value, both bytes; a value of ``None`` is a tombstone, which deletes
the key (compaction keeps the newest value for each key).

Format: the byte layout of Kafka's own ``__consumer_offsets`` records in their last
non-flexible versions, so that anyone who knows Kafka's format can read them, and so they are
compact (no field names, big-endian integers):

* key: ``int16 version`` then
    - version 0/1, offset commit key: ``string group, string topic, int32 partition``
    - version 2, group metadata key: ``string group``
* offset commit value (an :class:`~kop_fast.coordinator.offsets.OffsetAndMetadata`):
  ``int16 version`` then ``int64 offset``, ``int32 leader_epoch`` (v3+), ``string metadata``,
  ``int64 commit_timestamp``, ``int64 expire_timestamp`` (v1 only). We write v3, or v1 when the
  commit carries an explicit expiry (old OffsetCommit v2-v4 ``retention_time_ms``), exactly as
  Kafka does.
* group metadata value: ``int16 version`` then ``string protocol_type, int32 generation,
  nullable string protocol, nullable string leader, int64 current_state_timestamp (v2+),
  array of members``; a member is ``string member_id, nullable string group_instance_id (v3+),
  string client_id, string client_host, int32 rebalance_timeout (v1+), int32 session_timeout,
  bytes subscription, bytes assignment``. We write v3.

Strings are ``int16`` length + UTF-8 (length -1 = null), bytes are ``int32`` length + data,
arrays are ``int32`` count + elements.

Versions newer than the ones above (Kafka's v4+ are "flexible" encodings, and key versions 3+
are KIP-848 record types) raise :class:`UnknownRecordVersionError`, a clear error naming the
record kind and version; truncated or trailing bytes raise :class:`RecordDecodeError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .offsets import OffsetAndMetadata

__all__ = [
    "Record",
    "RecordDecodeError",
    "UnknownRecordVersionError",
    "OffsetCommitKey",
    "GroupMetadataKey",
    "MemberMetadataValue",
    "GroupMetadataValue",
    "encode_offset_commit_key",
    "encode_group_metadata_key",
    "encode_offset_commit_value",
    "encode_group_metadata_value",
    "decode_key",
    "decode_offset_commit_value",
    "decode_group_metadata_value",
    "decode_record",
    "offset_commit_record",
    "group_metadata_record",
    "java_string_hash",
    "partition_for",
]

OFFSET_COMMIT_KEY_VERSION = 1
GROUP_METADATA_KEY_VERSION = 2
OFFSET_COMMIT_VALUE_VERSION = 3
OFFSET_COMMIT_VALUE_VERSION_WITH_EXPIRY = 1
GROUP_METADATA_VALUE_VERSION = 3

_MAX_OFFSET_COMMIT_VALUE_VERSION = 3
_MAX_GROUP_METADATA_VALUE_VERSION = 3


class RecordDecodeError(ValueError):
    """The bytes are not a valid coordinator record."""


class UnknownRecordVersionError(RecordDecodeError):
    """The record was written in a version this code does not know (written by newer code)."""

    def __init__(self, kind: str, version: int, max_known: int) -> None:
        super().__init__(
            f"unknown {kind} version {version} (this kop_fast reads versions up to {max_known}); "
            f"the record was probably written by a newer kop_fast or by Kafka itself"
        )
        self.kind = kind
        self.version = version
        self.max_known = max_known


@dataclass(frozen=True, slots=True)
class Record:
    """One persistence record: key bytes, and value bytes or ``None`` for a tombstone."""

    key: bytes
    value: bytes | None


@dataclass(frozen=True, slots=True)
class OffsetCommitKey:
    group_id: str
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class GroupMetadataKey:
    group_id: str


@dataclass(frozen=True, slots=True)
class MemberMetadataValue:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    subscription: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class GroupMetadataValue:
    protocol_type: str
    generation: int
    protocol: str | None
    leader: str | None
    current_state_timestamp_ms: int  # -1 when unknown (records written before v2)
    members: tuple[MemberMetadataValue, ...] = ()


Key = OffsetCommitKey | GroupMetadataKey

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")


# ---------------------------------------------------------------------------------------- writer


class _Writer:
    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def i16(self, v: int) -> None:
        self.parts.append(_I16.pack(v))

    def i32(self, v: int) -> None:
        self.parts.append(_I32.pack(v))

    def i64(self, v: int) -> None:
        self.parts.append(_I64.pack(v))

    def string(self, s: str) -> None:
        b = s.encode("utf-8")
        if len(b) > 0x7FFF:
            raise ValueError(f"string of {len(b)} bytes is too long for an int16 length")
        self.parts.append(_I16.pack(len(b)))
        self.parts.append(b)

    def nullable_string(self, s: str | None) -> None:
        if s is None:
            self.parts.append(_I16.pack(-1))
        else:
            self.string(s)

    def bytes_(self, b: bytes) -> None:
        self.parts.append(_I32.pack(len(b)))
        self.parts.append(bytes(b))

    def getvalue(self) -> bytes:
        return b"".join(self.parts)


# ---------------------------------------------------------------------------------------- reader


class _Reader:
    __slots__ = ("buf", "pos", "kind")

    def __init__(self, buf: bytes, kind: str) -> None:
        self.buf = memoryview(bytes(buf))
        self.pos = 0
        self.kind = kind

    def _need(self, n: int) -> None:
        if self.pos + n > len(self.buf):
            raise RecordDecodeError(f"truncated {self.kind}: needed {n} bytes at offset {self.pos}")

    def i16(self) -> int:
        self._need(2)
        (v,) = _I16.unpack_from(self.buf, self.pos)
        self.pos += 2
        return v

    def i32(self) -> int:
        self._need(4)
        (v,) = _I32.unpack_from(self.buf, self.pos)
        self.pos += 4
        return v

    def i64(self) -> int:
        self._need(8)
        (v,) = _I64.unpack_from(self.buf, self.pos)
        self.pos += 8
        return v

    def version(self, max_known: int) -> int:
        """The leading ``int16`` version; raises UnknownRecordVersionError beyond ``max_known``."""
        version = self.i16()
        if version < 0 or version > max_known:
            raise UnknownRecordVersionError(self.kind, version, max_known)
        return version

    def nullable_string(self) -> str | None:
        n = self.i16()
        if n < 0:
            return None
        self._need(n)
        try:
            s = bytes(self.buf[self.pos : self.pos + n]).decode("utf-8")
        except UnicodeDecodeError as e:
            raise RecordDecodeError(f"invalid UTF-8 in {self.kind}: {e}") from None
        self.pos += n
        return s

    def string(self) -> str:
        s = self.nullable_string()
        if s is None:
            raise RecordDecodeError(f"null in a non-nullable string of {self.kind}")
        return s

    def bytes_(self) -> bytes:
        n = self.i32()
        if n < 0:
            return b""  # Kafka reads a null subscription/assignment as empty
        self._need(n)
        b = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return b

    def array_len(self) -> int:
        n = self.i32()
        if n < 0:
            raise RecordDecodeError(f"negative array length in {self.kind}")
        return n

    def done(self) -> None:
        if self.pos != len(self.buf):
            raise RecordDecodeError(f"{len(self.buf) - self.pos} trailing bytes after {self.kind}")


# ------------------------------------------------------------------------------------- encoding


def encode_offset_commit_key(group_id: str, topic: str, partition: int) -> bytes:
    w = _Writer()
    w.i16(OFFSET_COMMIT_KEY_VERSION)
    w.string(group_id)
    w.string(topic)
    w.i32(partition)
    return w.getvalue()


def encode_group_metadata_key(group_id: str) -> bytes:
    w = _Writer()
    w.i16(GROUP_METADATA_KEY_VERSION)
    w.string(group_id)
    return w.getvalue()


def encode_offset_commit_value(v: OffsetAndMetadata) -> bytes:
    w = _Writer()
    if v.expire_timestamp_ms is not None:
        # v1 is the only version that can carry an explicit expiry (Kafka does the same).
        w.i16(OFFSET_COMMIT_VALUE_VERSION_WITH_EXPIRY)
        w.i64(v.offset)
        w.string(v.metadata)
        w.i64(v.commit_timestamp_ms)
        w.i64(v.expire_timestamp_ms)
    else:
        w.i16(OFFSET_COMMIT_VALUE_VERSION)
        w.i64(v.offset)
        w.i32(v.leader_epoch)
        w.string(v.metadata)
        w.i64(v.commit_timestamp_ms)
    return w.getvalue()


def encode_group_metadata_value(v: GroupMetadataValue) -> bytes:
    w = _Writer()
    w.i16(GROUP_METADATA_VALUE_VERSION)
    w.string(v.protocol_type)
    w.i32(v.generation)
    w.nullable_string(v.protocol)
    w.nullable_string(v.leader)
    w.i64(v.current_state_timestamp_ms)
    w.i32(len(v.members))
    for m in v.members:
        w.string(m.member_id)
        w.nullable_string(m.group_instance_id)
        w.string(m.client_id)
        w.string(m.client_host)
        w.i32(m.rebalance_timeout_ms)
        w.i32(m.session_timeout_ms)
        w.bytes_(m.subscription)
        w.bytes_(m.assignment)
    return w.getvalue()


def offset_commit_record(group_id: str, topic: str, partition: int, value: OffsetAndMetadata | None) -> Record:
    """The record for a committed offset; ``value=None`` makes the tombstone that deletes it."""
    return Record(
        encode_offset_commit_key(group_id, topic, partition),
        None if value is None else encode_offset_commit_value(value),
    )


def group_metadata_record(group_id: str, value: GroupMetadataValue | None) -> Record:
    """The record for a group's metadata; ``value=None`` makes the tombstone that deletes it."""
    return Record(
        encode_group_metadata_key(group_id),
        None if value is None else encode_group_metadata_value(value),
    )


# ------------------------------------------------------------------------------------- decoding


def decode_key(data: bytes) -> Key:
    r = _Reader(data, "record key")
    version = r.version(GROUP_METADATA_KEY_VERSION)
    if version == GROUP_METADATA_KEY_VERSION:
        key: Key = GroupMetadataKey(r.string())
    else:  # 0 and 1: offset commit keys
        key = OffsetCommitKey(r.string(), r.string(), r.i32())
    r.done()
    return key


def decode_offset_commit_value(data: bytes) -> OffsetAndMetadata:
    r = _Reader(data, "offset commit value")
    version = r.version(_MAX_OFFSET_COMMIT_VALUE_VERSION)
    offset = r.i64()
    leader_epoch = r.i32() if version >= 3 else -1
    metadata = r.string()
    commit_ts = r.i64()
    expire_ts: int | None = None
    if version == 1:
        expire_ts = r.i64()
        if expire_ts < 0:
            expire_ts = None
    r.done()
    return OffsetAndMetadata(offset, leader_epoch, metadata, commit_ts, expire_ts)


def decode_group_metadata_value(data: bytes) -> GroupMetadataValue:
    r = _Reader(data, "group metadata value")
    version = r.version(_MAX_GROUP_METADATA_VALUE_VERSION)
    protocol_type = r.string()
    generation = r.i32()
    protocol = r.nullable_string()
    leader = r.nullable_string()
    state_ts = r.i64() if version >= 2 else -1
    members = []
    for _ in range(r.array_len()):
        member_id = r.string()
        instance_id = r.nullable_string() if version >= 3 else None
        client_id = r.string()
        client_host = r.string()
        rebalance_timeout = r.i32() if version >= 1 else None
        session_timeout = r.i32()
        if rebalance_timeout is None:
            # v0 had no rebalance timeout; Kafka used the session timeout for both.
            rebalance_timeout = session_timeout
        subscription = r.bytes_()
        assignment = r.bytes_()
        members.append(
            MemberMetadataValue(
                member_id,
                instance_id,
                client_id,
                client_host,
                rebalance_timeout,
                session_timeout,
                subscription,
                assignment,
            )
        )
    r.done()
    return GroupMetadataValue(protocol_type, generation, protocol, leader, state_ts, tuple(members))


def decode_record(
    record: Record | tuple[bytes, bytes | None],
) -> tuple[Key, OffsetAndMetadata | GroupMetadataValue | None]:
    """Decode a key/value pair; the value is ``None`` for a tombstone."""
    key_bytes, value_bytes = (record.key, record.value) if isinstance(record, Record) else record
    key = decode_key(key_bytes)
    if value_bytes is None:
        return key, None
    if isinstance(key, OffsetCommitKey):
        return key, decode_offset_commit_value(value_bytes)
    return key, decode_group_metadata_value(value_bytes)


# ------------------------------------------------------------------------------------ placement


def java_string_hash(s: str) -> int:
    """Java's ``String.hashCode()``: a signed 32-bit hash over the UTF-16 code units."""
    h = 0
    if s.isascii():
        for ch in s.encode("ascii"):
            h = (31 * h + ch) & 0xFFFFFFFF
    else:
        units = s.encode("utf-16-be")
        for i in range(0, len(units), 2):
            h = (31 * h + ((units[i] << 8) | units[i + 1])) & 0xFFFFFFFF
    return h - 0x1_0000_0000 if h & 0x8000_0000 else h


def partition_for(group_id: str, num_partitions: int) -> int:
    """The ``__consumer_offsets`` partition owning ``group_id``, placed exactly as Kafka places it:
    ``Utils.abs(groupId.hashCode) % numPartitions`` (``Utils.abs(Integer.MIN_VALUE)`` is 0)."""
    if num_partitions <= 0:
        raise ValueError("num_partitions must be positive")
    h = java_string_hash(group_id)
    return (0 if h == -0x8000_0000 else abs(h)) % num_partitions
