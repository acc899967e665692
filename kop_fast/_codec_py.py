"""Pure-Python twin of :mod:`kop_fast._codec`.

Same public API and byte-identical output as the compiled module; chosen by
:mod:`kop_fast.codec` when ``KOP_FAST_NO_EXTENSIONS=1``.  It is the readable
reference for the wire format: the Cython module follows it step by step, and
the test-suite runs every test against both.

The two exception classes live here only, and the compiled module imports
them, so ``except CorruptRecordError`` catches errors of either
implementation.

See docs/CODEC.md for the offset layout and the CRC design.  The Kafka
header <-> Pulsar property mapping is not part of the codec: it is plain
Python in kop_fast.pulsar_payload.
"""

from __future__ import annotations

import operator
import struct
import zlib
from typing import Any, Iterable, NamedTuple

import cramjam

__all__ = [
    "COMPRESSION_GZIP",
    "COMPRESSION_LZ4",
    "COMPRESSION_NAMES",
    "COMPRESSION_NONE",
    "COMPRESSION_SNAPPY",
    "COMPRESSION_ZSTD",
    "CRC32C_HARDWARE",
    "CorruptRecordError",
    "DEFAULT_OFFSET_LAYOUT",
    "MAX_DECOMPRESSED",
    "OffsetLayout",
    "OffsetOverflowError",
    "Record",
    "RecordBatch",
    "batch_infos",
    "crc32c",
    "decode_batches",
    "decode_varint",
    "encode_batch",
    "encode_varint",
    "get_offset_layout",
    "pack_offset",
    "patch_base_offset",
    "set_offset_layout",
    "split_batch",
    "unpack_offset",
    "verify_batches",
]


class CorruptRecordError(ValueError):
    """A record set is truncated, malformed, fails its CRC or decompresses
    beyond the allowed size."""


class OffsetOverflowError(ValueError):
    """A ledger id, entry id, batch index or offset does not fit the offset
    layout (or a base offset does not fit a signed 64-bit integer)."""


# ---------------------------------------------------------------------------
# constants

COMPRESSION_NONE = 0
COMPRESSION_GZIP = 1
COMPRESSION_SNAPPY = 2
COMPRESSION_LZ4 = 3
COMPRESSION_ZSTD = 4
COMPRESSION_NAMES = ("none", "gzip", "snappy", "lz4", "zstd")

#: Default cap on the bytes one decode_batches() call may decompress, summed
#: over all its batches (a zip bomb raises instead of eating memory).
MAX_DECOMPRESSED = 64 << 20

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1
_INT16_MIN = -(1 << 15)
_INT16_MAX = (1 << 15) - 1

# v2 batch header: baseOffset, batchLength, partitionLeaderEpoch, magic, crc,
# attributes, lastOffsetDelta, baseTimestamp, maxTimestamp, producerId,
# producerEpoch, baseSequence, recordCount.
_V2_HEADER = struct.Struct(">qiibIhiqqqhii")
_V2_HEADER_SIZE = 61  # == _V2_HEADER.size
_V2_CRC_START = 21  # the CRC covers attributes .. end of batch
_V2_AFTER_CRC = struct.Struct(">hiqqqhii")
_V2_BEFORE_CRC = struct.Struct(">qiibI")
_LOG_OVERHEAD = 12  # offset (8) + size (4) in front of every batch/message
_V2_MIN_BATCH_LENGTH = _V2_HEADER_SIZE - _LOG_OVERHEAD  # 49
# smallest legacy messages: crc4 magic1 attrs1 [ts8] keylen4 valuelen4
_V0_MIN_MESSAGE_SIZE = 14
_V1_MIN_MESSAGE_SIZE = 22
# smallest v2 record on the wire: length, attributes, timestampDelta,
# offsetDelta, keyLength, valueLength, headerCount - one byte each.
_MIN_RECORD_SIZE = 7

_ATTR_COMPRESSION_MASK = 0x07
_ATTR_TIMESTAMP_TYPE = 0x08
_ATTR_TRANSACTIONAL = 0x10
_ATTR_CONTROL = 0x20

_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = _XERIAL_MAGIC + struct.pack(">ii", 1, 1)
_XERIAL_BLOCK_SIZE = 32 * 1024  # what xerial's SnappyOutputStream (Java) uses
_GZIP_LEVEL = 6  # java.util.zip.Deflater's default, as the Java producer
_ZSTD_LEVEL = 3  # Kafka's default zstd level (KIP-390)
_LZ4_FRAME_MAGIC = b"\x04\x22\x4d\x18"
# first guess for a decompressed size with no better hint; grows 4x per retry
_MIN_DECOMPRESS_GUESS = 64 * 1024

_pack_i32 = struct.Struct(">i").pack
_unpack_i32 = struct.Struct(">i").unpack_from
_unpack_i64 = struct.Struct(">q").unpack_from
_unpack_u32 = struct.Struct(">I").unpack_from
_unpack_u32le = struct.Struct("<I").unpack_from
_pack_i64_into = struct.Struct(">q").pack_into


def _corrupt(msg: str) -> CorruptRecordError:
    return CorruptRecordError(msg)


def _as_bytes_view(buf: Any) -> memoryview:
    """A flat unsigned-byte view of any contiguous buffer."""
    view = memoryview(buf)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


# ---------------------------------------------------------------------------
# CRC32C (Castagnoli)

_CRC32C_POLY = 0x82F63B78  # bit-reflected 0x1EDC6F41


def _make_crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _CRC32C_POLY if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _make_crc32c_table()


def _check_crc_arg(crc: int) -> int:
    crc = operator.index(crc)
    if not 0 <= crc <= 0xFFFFFFFF:
        raise ValueError(f"crc must be an unsigned 32-bit value, got {crc}")
    return crc


def _crc32c_sw(data: Any, crc: int = 0) -> int:
    """Table-driven CRC32C in pure Python (byte at a time).

    Slow (tens of MB/s at best); the twin's crc32c() uses the ``crc32c``
    package instead when it is installed.
    """
    table = _CRC32C_TABLE
    reg = _check_crc_arg(crc) ^ 0xFFFFFFFF
    for byte in _as_bytes_view(data).tobytes():
        reg = table[(reg ^ byte) & 0xFF] ^ (reg >> 8)
    return reg ^ 0xFFFFFFFF


try:  # the crc32c package (a C extension) keeps the twin usable on big batches
    import crc32c as _crc32c_package

    def crc32c(data: Any, crc: int = 0) -> int:
        """CRC32C of ``data``, continuing from ``crc`` (the value returned
        for the preceding bytes), as ``crc32c(b, crc32c(a)) == crc32c(a+b)``."""
        return _crc32c_package.crc32c(_as_bytes_view(data), _check_crc_arg(crc))

    CRC32C_HARDWARE = bool(getattr(_crc32c_package, "hardware_based", False))
except ImportError:  # pragma: no cover - depends on the environment
    crc32c = _crc32c_sw
    CRC32C_HARDWARE = False


# ---------------------------------------------------------------------------
# varints (zigzag, as Kafka's ByteUtils)


def encode_varint(n: int) -> bytes:
    """Zigzag varint (Kafka's varlong encoding) of a signed 64-bit integer."""
    n = operator.index(n)
    if not _INT64_MIN <= n <= _INT64_MAX:
        raise OverflowError(f"varint value {n} does not fit a signed 64-bit integer")
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _read_zigzag(buf: Any, pos: int, end: int, bits: int = 64) -> tuple[int, int]:
    """Zigzag varint of at most ``bits`` (64: 10 bytes; 32: 5 bytes) ending before ``end``."""
    last_shift = 63 if bits == 64 else 28  # shift of the last byte the width allows
    last_max = 1 if bits == 64 else 0x0F  # and the largest value that byte may carry
    z = 0
    shift = 0
    while True:
        if pos >= end:
            raise _corrupt("truncated varint")
        b = buf[pos]
        pos += 1
        if shift == last_shift and b > last_max:
            raise _corrupt(f"varint does not fit {bits} bits")
        z |= (b & 0x7F) << shift
        if b < 0x80:
            return (z >> 1) ^ -(z & 1), pos
        shift += 7


_read_varlong = _read_zigzag


def _read_varint(buf: Any, pos: int, end: int) -> tuple[int, int]:
    """Zigzag varint of at most 5 bytes (a Kafka int32 varint)."""
    return _read_zigzag(buf, pos, end, 32)


def decode_varint(buf: Any, pos: int = 0) -> tuple[int, int]:
    """Decode the zigzag varint (up to 64 bits) at ``buf[pos:]``.

    Returns ``(value, position after the varint)``.
    """
    view = _as_bytes_view(buf)
    pos = operator.index(pos)
    if pos < 0 or pos > len(view):
        raise _corrupt(f"varint position {pos} outside a {len(view)}-byte buffer")
    return _read_varlong(view, pos, len(view))


# ---------------------------------------------------------------------------
# offset layout


class OffsetLayout:
    """How a Kafka offset packs a Pulsar position.

    ``offset = ledger_id << (entry_bits + index_bits) | entry_id << index_bits
    | batch_index``, so offsets sort exactly like Pulsar MessageIds (ledger,
    then entry, then batch index).  Nothing wraps: a value that does not fit
    raises OffsetOverflowError.
    """

    __slots__ = (
        "ledger_bits",
        "entry_bits",
        "index_bits",
        "max_ledger_id",
        "max_entry_id",
        "max_index",
        "max_offset",
        "_entry_shift",
        "_ledger_shift",
    )

    def __init__(self, ledger_bits: int = 28, entry_bits: int = 21, index_bits: int = 14):
        ledger_bits = operator.index(ledger_bits)
        entry_bits = operator.index(entry_bits)
        index_bits = operator.index(index_bits)
        if ledger_bits < 1 or entry_bits < 1 or index_bits < 0:
            raise ValueError(
                "offset layout needs ledger_bits >= 1, entry_bits >= 1, index_bits >= 0; "
                f"got {ledger_bits}/{entry_bits}/{index_bits}"
            )
        if ledger_bits + entry_bits + index_bits > 63:
            raise ValueError(
                f"offset layout {ledger_bits}+{entry_bits}+{index_bits} = "
                f"{ledger_bits + entry_bits + index_bits} bits exceeds the 63 bits of a "
                "non-negative Kafka offset"
            )
        self.ledger_bits = ledger_bits
        self.entry_bits = entry_bits
        self.index_bits = index_bits
        self.max_ledger_id = (1 << ledger_bits) - 1
        self.max_entry_id = (1 << entry_bits) - 1
        self.max_index = (1 << index_bits) - 1
        self.max_offset = (1 << (ledger_bits + entry_bits + index_bits)) - 1
        self._entry_shift = index_bits
        self._ledger_shift = entry_bits + index_bits

    @property
    def total_bits(self) -> int:
        return self.ledger_bits + self.entry_bits + self.index_bits

    def pack(self, ledger_id: int, entry_id: int, batch_index: int = 0) -> int:
        ledger_id = operator.index(ledger_id)
        entry_id = operator.index(entry_id)
        batch_index = operator.index(batch_index)
        if not 0 <= ledger_id <= self.max_ledger_id:
            raise OffsetOverflowError(
                f"ledger id {ledger_id} does not fit the {self.ledger_bits} ledger bits of "
                f"the offset layout (0..{self.max_ledger_id})"
            )
        if not 0 <= entry_id <= self.max_entry_id:
            raise OffsetOverflowError(
                f"entry id {entry_id} does not fit the {self.entry_bits} entry bits of "
                f"the offset layout (0..{self.max_entry_id})"
            )
        if not 0 <= batch_index <= self.max_index:
            raise OffsetOverflowError(
                f"batch index {batch_index} does not fit the {self.index_bits} index bits "
                f"of the offset layout (0..{self.max_index})"
            )
        return (ledger_id << self._ledger_shift) | (entry_id << self._entry_shift) | batch_index

    def unpack(self, offset: int) -> tuple[int, int, int]:
        offset = operator.index(offset)
        if not 0 <= offset <= self.max_offset:
            raise OffsetOverflowError(
                f"offset {offset} is outside the offset layout "
                f"{self.ledger_bits}/{self.entry_bits}/{self.index_bits} (0..{self.max_offset})"
            )
        return (
            offset >> self._ledger_shift,
            (offset >> self._entry_shift) & self.max_entry_id,
            offset & self.max_index,
        )

    def __eq__(self, other: object) -> bool:
        try:
            return (self.ledger_bits, self.entry_bits, self.index_bits) == (
                other.ledger_bits,  # type: ignore[attr-defined]
                other.entry_bits,  # type: ignore[attr-defined]
                other.index_bits,  # type: ignore[attr-defined]
            )
        except AttributeError:
            return NotImplemented

    def __hash__(self) -> int:
        return hash((self.ledger_bits, self.entry_bits, self.index_bits))

    def __repr__(self) -> str:
        return (
            f"OffsetLayout(ledger_bits={self.ledger_bits}, entry_bits={self.entry_bits}, "
            f"index_bits={self.index_bits})"
        )

    def __reduce__(self):
        return (OffsetLayout, (self.ledger_bits, self.entry_bits, self.index_bits))


DEFAULT_OFFSET_LAYOUT = OffsetLayout(28, 21, 14)
_offset_layout = DEFAULT_OFFSET_LAYOUT


def set_offset_layout(layout: OffsetLayout) -> None:
    """Make ``layout`` the one pack_offset()/unpack_offset() use."""
    global _offset_layout
    if not isinstance(layout, OffsetLayout):
        raise TypeError(f"expected an OffsetLayout, got {type(layout).__name__}")
    _offset_layout = layout


def get_offset_layout() -> OffsetLayout:
    return _offset_layout


def pack_offset(ledger_id: int, entry_id: int, batch_index: int = 0) -> int:
    return _offset_layout.pack(ledger_id, entry_id, batch_index)


def unpack_offset(offset: int) -> tuple[int, int, int]:
    return _offset_layout.unpack(offset)


# ---------------------------------------------------------------------------
# records and batches


def _check_int64(value: Any, what: str) -> int:
    value = operator.index(value)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise OverflowError(f"{what} {value} does not fit a signed 64-bit integer")
    return value


def _check_payload(value: Any, what: str) -> bytes | None:
    if value is None or type(value) is bytes:
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"record {what} must be bytes or None, not {type(value).__name__}")


def _check_headers(headers: Any) -> tuple:
    if type(headers) is tuple and all(
        type(h) is tuple
        and len(h) == 2
        and type(h[0]) is str
        and (h[1] is None or type(h[1]) is bytes)
        for h in headers
    ):
        return headers
    out = []
    for header in headers:
        try:
            key, value = header
        except (TypeError, ValueError):
            raise TypeError("each header must be a (str, bytes | None) pair") from None
        if type(key) is not str:
            raise TypeError(f"header key must be str, not {type(key).__name__}")
        out.append((key, _check_payload(value, "header value")))
    return tuple(out)


class _RecordFields(NamedTuple):
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple = ()


_new_record = tuple.__new__


class Record(_RecordFields):
    """One Kafka record: ``Record(offset, timestamp, key, value, headers=())``.

    A tuple of its five fields (iterable, indexable, equal to the plain tuple
    of its fields and to the compiled module's Record with the same fields).
    ``headers`` is a tuple of ``(str, bytes | None)`` pairs.
    """

    __slots__ = ()

    def __new__(
        cls,
        offset: int,
        timestamp: int,
        key: bytes | None,
        value: bytes | None,
        headers: Iterable = (),
    ) -> "Record":
        if (
            type(offset) is int
            and type(timestamp) is int
            and _INT64_MIN <= offset <= _INT64_MAX
            and _INT64_MIN <= timestamp <= _INT64_MAX
            and (key is None or type(key) is bytes)
            and (value is None or type(value) is bytes)
            and headers == ()
        ):  # the common case, without the per-field checks below
            return _new_record(cls, (offset, timestamp, key, value, ()))
        return _new_record(
            cls,
            (
                _check_int64(offset, "record offset"),
                _check_int64(timestamp, "record timestamp"),
                _check_payload(key, "key"),
                _check_payload(value, "value"),
                _check_headers(headers),
            ),
        )

    def __repr__(self) -> str:
        return (
            f"Record(offset={self[0]!r}, timestamp={self[1]!r}, key={self[2]!r}, "
            f"value={self[3]!r}, headers={self[4]!r})"
        )


_BATCH_FIELDS = (
    "base_offset",
    "last_offset_delta",
    "partition_leader_epoch",
    "magic",
    "attributes",
    "compression",
    "timestamp_type",
    "is_transactional",
    "is_control",
    "base_timestamp",
    "max_timestamp",
    "producer_id",
    "producer_epoch",
    "base_sequence",
    "records",
)


class RecordBatch:
    """A decoded record batch (v2) or legacy message (magic 0/1).

    ``records`` holds Records with absolute offsets and timestamps.  For a
    log-append-time batch every record's timestamp is the batch's
    max_timestamp, as Kafka clients report it.
    """

    __slots__ = _BATCH_FIELDS

    def __init__(
        self,
        base_offset: int,
        last_offset_delta: int,
        partition_leader_epoch: int,
        magic: int,
        attributes: int,
        compression: int,
        timestamp_type: int,
        is_transactional: bool,
        is_control: bool,
        base_timestamp: int,
        max_timestamp: int,
        producer_id: int,
        producer_epoch: int,
        base_sequence: int,
        records: list,
    ) -> None:
        self.base_offset = base_offset
        self.last_offset_delta = last_offset_delta
        self.partition_leader_epoch = partition_leader_epoch
        self.magic = magic
        self.attributes = attributes
        self.compression = compression
        self.timestamp_type = timestamp_type
        self.is_transactional = is_transactional
        self.is_control = is_control
        self.base_timestamp = base_timestamp
        self.max_timestamp = max_timestamp
        self.producer_id = producer_id
        self.producer_epoch = producer_epoch
        self.base_sequence = base_sequence
        self.records = records

    @property
    def next_offset(self) -> int:
        """The offset after this batch's last offset."""
        return self.base_offset + self.last_offset_delta + 1

    def _fields(self) -> tuple:
        return tuple(getattr(self, name) for name in _BATCH_FIELDS)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RecordBatch):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={getattr(self, name)!r}" for name in _BATCH_FIELDS if name != "records"
        )
        return f"RecordBatch({fields}, records=<{len(self.records)} records>)"


# ---------------------------------------------------------------------------
# decompression (bounded)


def _codec_name(codec: int) -> str:
    return COMPRESSION_NAMES[codec] if 0 <= codec < len(COMPRESSION_NAMES) else str(codec)


def _xxh32(data: bytes, seed: int = 0) -> int:
    """xxHash32; only used to repair the LZ4 frame header checksum of magic 0
    messages (old Kafka clients hashed the magic bytes too, KAFKA-3160)."""
    p1, p2, p3, p4, p5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393
    mask = 0xFFFFFFFF

    def rotl(x: int, r: int) -> int:
        return ((x << r) | (x >> (32 - r))) & mask

    n = len(data)
    pos = 0
    if n >= 16:
        v = [(seed + p1 + p2) & mask, (seed + p2) & mask, seed & mask, (seed - p1) & mask]
        while pos + 16 <= n:
            for lane in range(4):
                word = _unpack_u32le(data, pos)[0]
                v[lane] = (rotl((v[lane] + word * p2) & mask, 13) * p1) & mask
                pos += 4
        h = (rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18)) & mask
    else:
        h = (seed + p5) & mask
    h = (h + n) & mask
    while pos + 4 <= n:
        h = (rotl((h + _unpack_u32le(data, pos)[0] * p3) & mask, 17) * p4) & mask
        pos += 4
    while pos < n:
        h = (rotl((h + data[pos] * p5) & mask, 11) * p1) & mask
        pos += 1
    h ^= h >> 15
    h = (h * p2) & mask
    h ^= h >> 13
    h = (h * p3) & mask
    h ^= h >> 16
    return h


def _repair_lz4_header_checksum(data: memoryview) -> Any:
    """Rewrite the frame descriptor checksum (HC) the way the LZ4 frame spec
    defines it; magic 0 producers computed it over the magic bytes too."""
    if len(data) < 7 or bytes(data[:4]) != _LZ4_FRAME_MAGIC:
        return data
    flg = data[4]
    hc_pos = 6 + (8 if flg & 0x08 else 0) + (4 if flg & 0x01 else 0)
    if hc_pos >= len(data):
        return data
    fixed = bytearray(data)
    fixed[hc_pos] = (_xxh32(bytes(fixed[4:hc_pos])) >> 8) & 0xFF
    return fixed


def _decompress_growing(
    codec: int, fn: Any, data: Any, guess: int, budget: int
) -> memoryview:
    """Decompress into a buffer of ``guess`` bytes, growing 4x while the
    output does not fit but never past ``budget``: a bomb fails at the cap
    instead of allocating, and corrupt data fails at once."""
    size = min(budget, max(guess, 1))
    while True:
        out = bytearray(size)
        try:
            n = fn(data, out)
        except Exception as exc:  # cramjam.DecompressionError and friends
            if not _output_full(exc):
                raise _corrupt(f"{_codec_name(codec)} data is corrupt: {exc}") from None
            if size >= budget:
                raise _corrupt(
                    f"{_codec_name(codec)} data decompresses beyond the {budget}-byte limit"
                ) from None
            size = min(budget, size * 4)
            continue
        return memoryview(out)[:n]


def _output_full(exc: Exception) -> bool:
    """cramjam's ``decompress_into`` reports a too-small output buffer as an
    I/O "failed to write whole buffer" error (tests pin this down)."""
    return "whole buffer" in str(exc)


def _snappy_raw_len(chunk: Any) -> int:
    try:
        return int(cramjam.snappy.decompress_raw_len(chunk))
    except Exception as exc:
        raise _corrupt(f"snappy data is corrupt: {exc}") from None


def _snappy_decompress(data: memoryview, budget: int) -> memoryview:
    chunks = []
    total = 0
    if len(data) >= 16 and bytes(data[:8]) == _XERIAL_MAGIC:
        # xerial framing (Java clients): 16-byte header, then chunks of
        # int32 length + raw snappy block
        pos = 16
        end = len(data)
        while pos < end:
            if end - pos < 4:
                raise _corrupt("truncated xerial snappy chunk length")
            clen = _unpack_i32(data, pos)[0]
            pos += 4
            if clen < 0 or clen > end - pos:
                raise _corrupt(f"xerial snappy chunk length {clen} exceeds the data")
            chunk = data[pos : pos + clen]
            pos += clen
            raw = _snappy_raw_len(chunk)
            chunks.append((chunk, raw))
            total += raw
            if total > budget:
                raise _corrupt(f"snappy data decompresses beyond the {budget}-byte limit")
    else:
        raw = _snappy_raw_len(data)
        if raw > budget:
            raise _corrupt(f"snappy data decompresses beyond the {budget}-byte limit")
        chunks.append((data, raw))
        total = raw
    out = bytearray(total)
    view = memoryview(out)
    pos = 0
    for chunk, raw in chunks:
        try:
            n = cramjam.snappy.decompress_raw_into(chunk, view[pos : pos + raw])
        except Exception as exc:
            raise _corrupt(f"snappy data is corrupt: {exc}") from None
        if n != raw:
            raise _corrupt("snappy chunk decompressed to a different length than declared")
        pos += raw
    return view


def _decompress(codec: int, data: memoryview, budget: int, magic: int) -> memoryview:
    if codec == COMPRESSION_GZIP:
        guess = 4 * len(data) + _MIN_DECOMPRESS_GUESS
        if len(data) >= 18:
            # ISIZE trailer: uncompressed size mod 2**32 (of the last member)
            guess = max(guess, _unpack_u32le(data, len(data) - 4)[0] + 1)
        return _decompress_growing(codec, cramjam.gzip.decompress_into, data, guess, budget)
    if codec == COMPRESSION_SNAPPY:
        return _snappy_decompress(data, budget)
    if codec == COMPRESSION_LZ4:
        if magic == 0:
            data = _repair_lz4_header_checksum(data)
        guess = 4 * len(data) + _MIN_DECOMPRESS_GUESS
        return _decompress_growing(codec, cramjam.lz4.decompress_into, data, guess, budget)
    if codec == COMPRESSION_ZSTD:
        if magic < 2:
            raise _corrupt(f"zstd compression needs magic 2, message has magic {magic}")
        guess = 4 * len(data) + _MIN_DECOMPRESS_GUESS
        return _decompress_growing(codec, cramjam.zstd.decompress_into, data, guess, budget)
    raise _corrupt(f"unknown compression codec {codec}")


def _compress(codec: int, data: Any) -> bytes:
    if codec == COMPRESSION_GZIP:
        return bytes(cramjam.gzip.compress(data, level=_GZIP_LEVEL))
    if codec == COMPRESSION_SNAPPY:
        view = memoryview(data)
        parts = [_XERIAL_HEADER]
        for start in range(0, len(view), _XERIAL_BLOCK_SIZE):
            block = bytes(cramjam.snappy.compress_raw(view[start : start + _XERIAL_BLOCK_SIZE]))
            parts.append(_pack_i32(len(block)))
            parts.append(block)
        return b"".join(parts)
    if codec == COMPRESSION_LZ4:
        # independent blocks, no content checksum: what Kafka's Java
        # Lz4BlockInputStream can read (KIP-57)
        compressor = cramjam.lz4.Compressor(content_checksum=False, block_linked=False)
        compressor.compress(data if type(data) is bytes else bytes(data))  # wants bytes
        return bytes(compressor.finish())
    if codec == COMPRESSION_ZSTD:
        return bytes(cramjam.zstd.compress(data, level=_ZSTD_LEVEL))
    raise ValueError(f"unknown compression codec {codec}")


# ---------------------------------------------------------------------------
# decoding


def _read_nullable_bytes(buf: memoryview, pos: int, end: int, what: str) -> tuple[Any, int]:
    length, pos = _read_varint(buf, pos, end)
    if length < 0:
        if length == -1:
            return None, pos
        raise _corrupt(f"invalid {what} length {length}")
    if length > end - pos:
        raise _corrupt(f"{what} length {length} exceeds the record")
    return buf[pos : pos + length].tobytes(), pos + length


def _decode_records(
    body: memoryview,
    count: int,
    base_offset: int,
    base_timestamp: int,
    log_append_time: int | None,
) -> list:
    end = len(body)
    if count > end // _MIN_RECORD_SIZE:
        raise _corrupt(f"record count {count} cannot fit in {end} bytes of records")
    pos = 0
    records = []
    append = records.append
    for _ in range(count):
        length, pos = _read_varint(body, pos, end)
        if length < 0 or length > end - pos:
            raise _corrupt(f"record length {length} exceeds the batch")
        rec_end = pos + length
        if pos >= rec_end:
            raise _corrupt("record too short for its attributes")
        pos += 1  # record attributes: unused by Kafka
        ts_delta, pos = _read_varlong(body, pos, rec_end)
        offset_delta, pos = _read_varint(body, pos, rec_end)
        key, pos = _read_nullable_bytes(body, pos, rec_end, "key")
        value, pos = _read_nullable_bytes(body, pos, rec_end, "value")
        n_headers, pos = _read_varint(body, pos, rec_end)
        if n_headers < 0 or n_headers > (rec_end - pos) // 2:
            raise _corrupt(f"invalid header count {n_headers}")
        if n_headers:
            headers = []
            for _ in range(n_headers):
                klen, pos = _read_varint(body, pos, rec_end)
                if klen < 0 or klen > rec_end - pos:
                    raise _corrupt(f"invalid header key length {klen}")
                hkey = str(body[pos : pos + klen], "utf-8", "surrogateescape")
                pos += klen
                hvalue, pos = _read_nullable_bytes(body, pos, rec_end, "header value")
                headers.append((hkey, hvalue))
            headers = tuple(headers)
        else:
            headers = ()
        if pos != rec_end:
            raise _corrupt(
                f"record declares {length} bytes but its fields take {length - (rec_end - pos)}"
            )
        offset = base_offset + offset_delta
        if offset > _INT64_MAX or offset < _INT64_MIN:
            raise _corrupt("record offset overflows 64 bits")
        if log_append_time is None:
            timestamp = base_timestamp + ts_delta
            if timestamp > _INT64_MAX or timestamp < _INT64_MIN:
                raise _corrupt("record timestamp overflows 64 bits")
        else:
            timestamp = log_append_time
        append(_new_record(Record, (offset, timestamp, key, value, headers)))
    if pos != end:
        raise _corrupt(f"{end - pos} bytes left over after the batch's {count} records")
    return records


def _decode_v2(view: memoryview, pos: int, end: int, budget: list) -> RecordBatch:
    (
        base_offset,
        _length,
        leader_epoch,
        magic,
        crc,
        attributes,
        last_offset_delta,
        base_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        count,
    ) = _V2_HEADER.unpack_from(view, pos)
    if crc32c(view[pos + _V2_CRC_START : end]) != crc:
        raise _corrupt(f"CRC mismatch in the batch at base offset {base_offset}")
    codec = attributes & _ATTR_COMPRESSION_MASK
    if codec > COMPRESSION_ZSTD:
        raise _corrupt(f"unknown compression codec {codec}")
    if count < 0:
        raise _corrupt(f"negative record count {count}")
    timestamp_type = 1 if attributes & _ATTR_TIMESTAMP_TYPE else 0
    body = view[pos + _V2_HEADER_SIZE : end]
    if codec:
        body = _decompress(codec, body, budget[0], 2)
        budget[0] -= len(body)
    records = _decode_records(
        body, count, base_offset, base_timestamp, max_timestamp if timestamp_type else None
    )
    return RecordBatch(
        base_offset,
        last_offset_delta,
        leader_epoch,
        2,
        attributes,
        codec,
        timestamp_type,
        bool(attributes & _ATTR_TRANSACTIONAL),
        bool(attributes & _ATTR_CONTROL),
        base_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        records,
    )


def _parse_legacy_message(view: memoryview, pos: int, end: int) -> tuple:
    """One legacy message in view[pos:end] (offset and size included).

    Returns (offset, magic, attributes, timestamp, key, value)."""
    offset = _unpack_i64(view, pos)[0]
    crc = _unpack_u32(view, pos + 12)[0]
    magic = view[pos + 16]
    if magic > 1:
        raise _corrupt(f"unsupported magic {_signed8(magic)} in a legacy message set")
    if end - pos - _LOG_OVERHEAD < _legacy_min_size(magic):
        raise _corrupt(f"legacy message at offset {offset} is too short for magic {magic}")
    if zlib.crc32(view[pos + 16 : end]) != crc:
        raise _corrupt(f"CRC mismatch in the magic {magic} message at offset {offset}")
    attributes = view[pos + 17]
    p = pos + 18
    if magic == 1:
        timestamp = _unpack_i64(view, p)[0]
        p += 8
    else:
        timestamp = -1
    values = []
    for what in ("key", "value"):
        if end - p < 4:
            raise _corrupt(f"truncated legacy message {what}")
        length = _unpack_i32(view, p)[0]
        p += 4
        if length < 0:
            if length != -1:
                raise _corrupt(f"invalid legacy message {what} length {length}")
            values.append(None)
        else:
            if length > end - p:
                raise _corrupt(f"legacy message {what} length {length} exceeds the message")
            values.append(view[p : p + length].tobytes())
            p += length
    if p != end:
        raise _corrupt(f"{end - p} bytes left over in the legacy message at offset {offset}")
    return offset, magic, attributes, timestamp, values[0], values[1]


def _legacy_min_size(magic: int) -> int:
    return _V1_MIN_MESSAGE_SIZE if magic == 1 else _V0_MIN_MESSAGE_SIZE


def _decode_legacy(view: memoryview, pos: int, end: int, budget: list) -> RecordBatch:
    offset, magic, attributes, timestamp, key, value = _parse_legacy_message(view, pos, end)
    codec = attributes & _ATTR_COMPRESSION_MASK
    timestamp_type = 1 if (magic == 1 and attributes & _ATTR_TIMESTAMP_TYPE) else 0
    if codec == COMPRESSION_NONE:
        records = [_new_record(Record, (offset, timestamp, key, value, ()))]
    else:
        if codec > COMPRESSION_ZSTD:
            raise _corrupt(f"unknown compression codec {codec}")
        if value is None:
            raise _corrupt(f"compressed legacy message at offset {offset} has no value")
        inner = _decompress(codec, memoryview(value), budget[0], magic)
        budget[0] -= len(inner)
        entries = []
        p = 0
        n = len(inner)
        while p < n:
            if n - p < _LOG_OVERHEAD:
                raise _corrupt("truncated message inside a compressed legacy message")
            size = _unpack_i32(inner, p + 8)[0]
            if size < _V0_MIN_MESSAGE_SIZE or size > n - p - _LOG_OVERHEAD:
                raise _corrupt(f"invalid inner legacy message size {size}")
            inner_end = p + _LOG_OVERHEAD + size
            entry = _parse_legacy_message(inner, p, inner_end)
            if entry[1] != magic:
                raise _corrupt(
                    f"inner message magic {entry[1]} differs from its wrapper's magic {magic}"
                )
            if entry[2] & _ATTR_COMPRESSION_MASK:
                raise _corrupt("nested compression inside a legacy message")
            entries.append(entry)
            p = inner_end
        if not entries:
            raise _corrupt(f"compressed legacy message at offset {offset} holds no messages")
        shift = 0
        if magic == 1:
            # inner offsets are relative; the wrapper carries the last one's
            # absolute offset.  A producer's message set has wrapper offset 0
            # (the broker assigns it): then the relative offsets stand, as in
            # Kafka's own reader.
            shift = offset - entries[-1][0]
            if shift < 0:
                shift = 0
            elif shift > _INT64_MAX:
                raise _corrupt("inner message offset overflows 64 bits")
        records = []
        for inner_offset, _m, _a, inner_ts, inner_key, inner_value in entries:
            absolute = inner_offset + shift
            if absolute > _INT64_MAX or absolute < _INT64_MIN:
                raise _corrupt("inner message offset overflows 64 bits")
            records.append(
                _new_record(
                    Record,
                    (
                        absolute,
                        timestamp if timestamp_type else inner_ts,
                        inner_key,
                        inner_value,
                        (),
                    ),
                )
            )
    base_offset = records[0][0]
    last_offset_delta = records[-1][0] - base_offset
    if not _INT64_MIN <= last_offset_delta <= _INT64_MAX:
        raise _corrupt("legacy message offsets span more than 64 bits")
    return RecordBatch(
        base_offset,
        last_offset_delta,
        -1,
        magic,
        attributes,
        codec,
        timestamp_type,
        False,
        False,
        records[0][1],
        max(r[1] for r in records),
        -1,
        -1,
        -1,
        records,
    )


def _frame_end(view: memoryview, pos: int, n: int, allow_partial_tail: bool) -> int:
    """End of the batch/message at pos, -1 for a tolerated partial tail."""
    remaining = n - pos
    if remaining < _LOG_OVERHEAD:
        if allow_partial_tail:
            return -1
        raise _corrupt(f"truncated batch: {remaining} bytes at buffer offset {pos}")
    length = _unpack_i32(view, pos + 8)[0]
    if length < _V0_MIN_MESSAGE_SIZE:
        raise _corrupt(f"invalid batch length {length} at buffer offset {pos}")
    if length > remaining - _LOG_OVERHEAD:
        if allow_partial_tail:
            return -1
        raise _corrupt(
            f"truncated batch: length {length} but {remaining - _LOG_OVERHEAD} bytes left "
            f"at buffer offset {pos}"
        )
    magic = view[pos + 16]
    if magic == 2:
        if length < _V2_MIN_BATCH_LENGTH:
            raise _corrupt(f"batch length {length} is shorter than a v2 batch header")
    elif magic == 1:
        if length < _V1_MIN_MESSAGE_SIZE:
            raise _corrupt(f"message size {length} is shorter than a magic 1 message")
    elif magic != 0:
        raise _corrupt(f"unsupported magic {_signed8(magic)} at buffer offset {pos}")
    return pos + _LOG_OVERHEAD + length


def _signed8(b: int) -> int:
    return b - 256 if b > 127 else b


def decode_batches(
    buf: Any,
    *,
    allow_partial_tail: bool = False,
    max_decompressed: int = MAX_DECOMPRESSED,
) -> list[RecordBatch]:
    """Decode every batch of a Kafka record set (v2 batches and magic 0/1
    message sets), decompressing as needed.

    A truncated last batch raises CorruptRecordError unless
    ``allow_partial_tail`` (fetch responses may end in one).  At most
    ``max_decompressed`` bytes are decompressed over the whole call.
    """
    view = _as_bytes_view(buf)
    n = len(view)
    pos = 0
    batches = []
    budget = [operator.index(max_decompressed)]
    try:
        while pos < n:
            end = _frame_end(view, pos, n, allow_partial_tail)
            if end < 0:
                break
            if view[pos + 16] == 2:
                batches.append(_decode_v2(view, pos, end, budget))
            else:
                batches.append(_decode_legacy(view, pos, end, budget))
            pos = end
    except (struct.error, IndexError) as exc:  # a read past an end: truncation
        raise _corrupt(f"truncated record data: {exc}") from None
    return batches


# ---------------------------------------------------------------------------
# verification without per-record objects


def _scan(buf: Any, want_infos: bool) -> tuple[int, int, list]:
    view = _as_bytes_view(buf)
    n = len(view)
    pos = 0
    batches = 0
    total_records = 0
    infos = []
    while pos < n:
        remaining = n - pos
        if remaining > 16 and view[pos + 16] != 2:
            raise _corrupt(
                f"unsupported magic {_signed8(view[pos + 16])} at buffer offset {pos} (expected 2)"
            )
        if remaining < _V2_HEADER_SIZE:
            raise _corrupt(f"truncated batch: {remaining} bytes at buffer offset {pos}")
        (
            base_offset,
            length,
            _leader_epoch,
            magic,
            crc,
            attributes,
            last_offset_delta,
            base_timestamp,
            max_timestamp,
            producer_id,
            producer_epoch,
            base_sequence,
            count,
        ) = _V2_HEADER.unpack_from(view, pos)
        if magic != 2:
            raise _corrupt(f"unsupported magic {magic} at buffer offset {pos} (expected 2)")
        if length < _V2_MIN_BATCH_LENGTH:
            raise _corrupt(f"invalid batch length {length} at buffer offset {pos}")
        if length > remaining - _LOG_OVERHEAD:
            raise _corrupt(
                f"truncated batch: length {length} but {remaining - _LOG_OVERHEAD} bytes left "
                f"at buffer offset {pos}"
            )
        end = pos + _LOG_OVERHEAD + length
        if count < 0:
            raise _corrupt(f"negative record count {count} at buffer offset {pos}")
        codec = attributes & _ATTR_COMPRESSION_MASK
        if codec > COMPRESSION_ZSTD:
            raise _corrupt(f"unknown compression codec {codec} at buffer offset {pos}")
        if crc32c(view[pos + _V2_CRC_START : end]) != crc:
            raise _corrupt(f"CRC mismatch in the batch at buffer offset {pos}")
        if codec == COMPRESSION_NONE:
            p = pos + _V2_HEADER_SIZE
            tiles = 0
            while p < end:
                rec_len, p = _read_varint(view, p, end)
                if rec_len < 0 or rec_len > end - p:
                    raise _corrupt(
                        f"record length {rec_len} overruns the batch at buffer offset {pos}"
                    )
                p += rec_len
                tiles += 1
            if tiles != count:
                raise _corrupt(
                    f"batch at buffer offset {pos} declares {count} records but holds {tiles}"
                )
        if want_infos:
            infos.append(
                (
                    pos,
                    _LOG_OVERHEAD + length,
                    base_offset,
                    last_offset_delta,
                    count,
                    attributes,
                    base_timestamp,
                    max_timestamp,
                    producer_id,
                    producer_epoch,
                    base_sequence,
                )
            )
        batches += 1
        total_records += count
        pos = end
    return batches, total_records, infos


def verify_batches(buf: Any) -> tuple[int, int]:
    """Check the structure, sizes and CRC of every v2 batch in ``buf``.

    Returns ``(batches, records)``; raises CorruptRecordError naming the
    problem.  No per-record objects are built.
    """
    batches, records, _ = _scan(buf, False)
    return batches, records


def batch_infos(buf: Any) -> list[tuple]:
    """verify_batches() plus one header tuple per batch:
    ``(offset_in_buf, length, base_offset, last_offset_delta, record_count,
    attributes, base_timestamp, max_timestamp, producer_id, producer_epoch,
    base_sequence)`` (``length`` includes the 12-byte offset/length prefix)."""
    return _scan(buf, True)[2]


def patch_base_offset(buf: Any, base_offset: int) -> None:
    """Overwrite the base offset of the v2 batch at the start of the
    writable ``buf`` in place (the CRC does not cover it)."""
    view = memoryview(buf)
    if view.readonly:
        raise TypeError("patch_base_offset needs a writable buffer (bytearray, memoryview)")
    view = _as_bytes_view(view)
    base_offset = operator.index(base_offset)
    if not 0 <= base_offset <= _INT64_MAX:
        raise OffsetOverflowError(f"base offset {base_offset} is outside 0..2**63-1")
    if len(view) < _V2_HEADER_SIZE or view[16] != 2:
        raise _corrupt("patch_base_offset needs a v2 batch at the start of the buffer")
    _pack_i64_into(view, 0, base_offset)


# ---------------------------------------------------------------------------
# encoding


def _codec_id(compression: Any) -> int:
    if isinstance(compression, str):
        try:
            return COMPRESSION_NAMES.index(compression.lower())
        except ValueError:
            raise ValueError(
                f"unknown compression {compression!r}; use one of {', '.join(COMPRESSION_NAMES)}"
            ) from None
    codec = operator.index(compression)
    if not 0 <= codec <= COMPRESSION_ZSTD:
        raise ValueError(f"unknown compression codec {codec}")
    return codec


def _check_range(value: Any, lo: int, hi: int, what: str) -> int:
    value = operator.index(value)
    if not lo <= value <= hi:
        raise ValueError(f"{what} {value} is outside {lo}..{hi}")
    return value


def _put_payload(out: bytearray, value: Any, what: str) -> None:
    if value is None:
        out += b"\x01"  # zigzag(-1)
        return
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"record {what} must be bytes or None, not {type(value).__name__}")
    view = _as_bytes_view(value)
    out += encode_varint(len(view))
    out += view


def encode_batch(
    records: Iterable,
    *,
    base_offset: int = 0,
    compression: Any = "none",
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    transactional: bool = False,
    timestamp_type: int = 0,
    partition_leader_epoch: int = -1,
    control: bool = False,
) -> bytes:
    """Encode ``records`` as one v2 batch with a CRC32C.

    Each record's offset delta is ``record.offset - base_offset`` (deltas must
    be >= 0, strictly increasing and fit 31 bits); the batch's base timestamp
    is the first record's timestamp and max_timestamp the largest one.
    ``records`` may hold Records or plain 5-tuples in Record field order.
    """
    codec = _codec_id(compression)
    base_offset = _check_range(base_offset, _INT64_MIN, _INT64_MAX, "base_offset")
    producer_id = _check_range(producer_id, _INT64_MIN, _INT64_MAX, "producer_id")
    producer_epoch = _check_range(producer_epoch, _INT16_MIN, _INT16_MAX, "producer_epoch")
    base_sequence = _check_range(base_sequence, _INT32_MIN, _INT32_MAX, "base_sequence")
    leader_epoch = _check_range(
        partition_leader_epoch, _INT32_MIN, _INT32_MAX, "partition_leader_epoch"
    )
    timestamp_type = _check_range(timestamp_type, 0, 1, "timestamp_type")

    body = bytearray()
    count = 0
    prev_delta = -1
    first_timestamp = max_timestamp = 0
    for record in records:
        try:
            offset, timestamp, key, value, headers = record
        except (TypeError, ValueError):
            raise TypeError(
                "records must be Records or (offset, timestamp, key, value, headers) tuples"
            ) from None
        offset = _check_int64(offset, "record offset")
        timestamp = _check_int64(timestamp, "record timestamp")
        delta = offset - base_offset
        if delta <= prev_delta or delta > _INT32_MAX:
            raise ValueError(
                f"record offset {offset} gives offset delta {delta}; deltas from base_offset "
                f"{base_offset} must be >= 0, increase strictly and stay below 2**31"
            )
        prev_delta = delta
        if count == 0:
            first_timestamp = max_timestamp = timestamp
        elif timestamp > max_timestamp:
            max_timestamp = timestamp
        ts_delta = timestamp - first_timestamp
        if not _INT64_MIN <= ts_delta <= _INT64_MAX:
            raise ValueError(f"record timestamp {timestamp} is too far from the first one")
        rec = bytearray(b"\x00")  # attributes
        rec += encode_varint(ts_delta)
        rec += encode_varint(delta)
        _put_payload(rec, key, "key")
        _put_payload(rec, value, "value")
        if headers:
            headers = tuple(headers)
            rec += encode_varint(len(headers))
            for header in headers:
                try:
                    hkey, hvalue = header
                except (TypeError, ValueError):
                    raise TypeError("each header must be a (str, bytes | None) pair") from None
                if not isinstance(hkey, str):
                    raise TypeError(f"header key must be str, not {type(hkey).__name__}")
                try:
                    raw_key = hkey.encode("utf-8", "surrogateescape")
                except UnicodeEncodeError:
                    raise ValueError(f"header key {hkey!r} cannot be encoded as UTF-8") from None
                rec += encode_varint(len(raw_key))
                rec += raw_key
                _put_payload(rec, hvalue, "header value")
        else:
            rec += b"\x00"
        body += encode_varint(len(rec))
        body += rec
        count += 1
    if count == 0:
        raise ValueError("encode_batch needs at least one record")

    payload = _compress(codec, body) if codec else body
    attributes = codec | (timestamp_type << 3)
    if transactional:
        attributes |= _ATTR_TRANSACTIONAL
    if control:
        attributes |= _ATTR_CONTROL
    after_crc = _V2_AFTER_CRC.pack(
        attributes,
        prev_delta,
        first_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        count,
    )
    crc = crc32c(payload, crc32c(after_crc))
    before_crc = _V2_BEFORE_CRC.pack(
        base_offset, _V2_MIN_BATCH_LENGTH + len(payload), leader_epoch, 2, crc
    )
    return b"".join((before_crc, after_crc, payload))


def _advance_sequence(sequence: int, increment: int) -> int:
    """base_sequence + increment, wrapping at 2**31 - 1 as Kafka does."""
    if sequence < 0:
        return sequence
    if sequence > _INT32_MAX - increment:
        return increment - (_INT32_MAX - sequence) - 1
    return sequence + increment


def split_batch(batch_bytes: Any, max_records: int) -> list:
    """Split one v2 batch holding more than ``max_records`` records into
    several valid v2 batches of at most ``max_records`` records each (same
    producer fields with base_sequence advanced, same compression and
    attributes).  A batch within the limit comes back as ``[batch_bytes]``."""
    max_records = operator.index(max_records)
    if max_records < 1:
        raise ValueError(f"max_records must be >= 1, got {max_records}")
    view = _as_bytes_view(batch_bytes)
    infos = _scan(view, True)[2]
    if len(infos) != 1:
        raise _corrupt(f"split_batch needs exactly one batch, buffer holds {len(infos)}")
    count = infos[0][4]
    if count <= max_records:
        return [batch_bytes]
    (batch,) = decode_batches(view)
    records = batch.records
    out = []
    for start in range(0, len(records), max_records):
        chunk = records[start : start + max_records]
        out.append(
            encode_batch(
                chunk,
                base_offset=chunk[0][0],
                compression=batch.compression,
                producer_id=batch.producer_id,
                producer_epoch=batch.producer_epoch,
                base_sequence=_advance_sequence(
                    batch.base_sequence, chunk[0][0] - batch.base_offset
                ),
                transactional=batch.is_transactional,
                timestamp_type=batch.timestamp_type,
                partition_leader_epoch=batch.partition_leader_epoch,
                control=batch.is_control,
            )
        )
    return out
