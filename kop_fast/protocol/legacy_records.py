"""Legacy message sets (magic 0 and 1) for Produce v0-v2 and Fetch v0-v3.

Storage only ever holds v2 record batches. Old clients are served as a Kafka 3
broker with message format v2 serves them:

* up-conversion (Produce v0-v2): every message of a request's message set, plain
  or inside compressed wrapper messages (gzip, snappy, lz4 -- magic 0 lz4 with
  its broken header checksum, KAFKA-3160, is repaired by the codec), becomes one
  record of ONE v2 batch with offset deltas 0..n-1, the key and value, and no
  headers. Magic 1 messages keep their timestamp (CreateTime; a wrapper with
  LogAppendTime gives its own time to its messages, as Kafka reads them). Magic 0
  messages have none: they get the broker's receive time as CreateTime. (Kafka
  itself stores -1, "no timestamp"; a real time keeps ListOffsets by time and
  time-based retention meaningful, and no Kafka consumer rejects one.) The batch
  is compressed with the producer's codec (Kafka's compression.type=producer), the
  first compressed wrapper's, else not at all.

* down-conversion (Fetch v0/v1 -> magic 0, v2/v3 -> magic 1): every record of the
  stored batches at or after the fetch offset becomes one uncompressed message at
  its real offset (Kafka drops the records below the fetch offset from converted
  uncompressed batches too: old consumers assume the first message is the one
  they asked for). Magic 1 carries the record's timestamp and the batch's
  timestamp type; magic 0 has no timestamp. Headers are dropped, and control
  batches skipped, as Kafka does. The legacy CRC is CRC32 (zlib), not CRC32C.

Only old clients take these paths; they are plain Python over the codec's decoder
and encoder.
"""

from __future__ import annotations

import struct
import zlib

from kop_fast import codec

_MAGIC0_HEAD = struct.Struct(">qiIbb")  # offset, size, crc, magic, attributes
_MAGIC1_HEAD = struct.Struct(">qiIbbq")  # ... timestamp
_I32 = struct.Struct(">i")
_CRC_START = 16  # the CRC covers the message from its magic byte on
_ATTR_TIMESTAMP_TYPE = 0x08
_NULL = b"\xff\xff\xff\xff"


def up_convert(message_set, receive_time_ms: int, impl=codec) -> bytes:
    """The records of a legacy message set as one v2 batch (base offset 0, no producer id).

    Raises codec.CorruptRecordError for anything that is not a valid, non-empty set of
    magic 0/1 messages (a v2 batch included: Produce v0-v2 cannot carry one). `impl`:
    the codec implementation (tests compare both)."""
    batches = impl.decode_batches(message_set)
    records = []
    compression = codec.COMPRESSION_NONE
    for batch in batches:
        magic = batch.magic
        if magic > 1:
            raise codec.CorruptRecordError("a v2 record batch in a Produce v0-v2 request")
        if batch.compression and not compression:
            compression = batch.compression
        for record in batch.records:
            timestamp = record.timestamp if magic else receive_time_ms
            records.append((len(records), timestamp, record.key, record.value, ()))
    if not records:
        raise codec.CorruptRecordError("an empty message set")
    return impl.encode_batch(records, compression=compression)


def _message(magic: int, attributes: int, offset: int, timestamp: int, key, value) -> bytes:
    key_part = _NULL if key is None else _I32.pack(len(key)) + key
    value_part = _NULL if value is None else _I32.pack(len(value)) + value
    if magic:
        size = 14 + len(key_part) + len(value_part)  # crc, magic, attributes, timestamp, key, value
        head = bytearray(_MAGIC1_HEAD.pack(offset, size, 0, 1, attributes, timestamp))
    else:
        size = 6 + len(key_part) + len(value_part)  # crc, magic, attributes, key, value
        head = bytearray(_MAGIC0_HEAD.pack(offset, size, 0, 0, attributes))
    crc = zlib.crc32(value_part, zlib.crc32(key_part, zlib.crc32(memoryview(head)[_CRC_START:])))
    struct.pack_into(">I", head, 12, crc)
    head += key_part
    head += value_part
    return bytes(head)


def down_convert(batches_data, magic: int, fetch_offset: int, max_bytes: int, impl=codec) -> bytes:
    """Stored v2 batches (`batches_data`, their bytes back to back) as a magic `magic`
    message set of the records at or after `fetch_offset`: whole messages up to
    `max_bytes`, but always the first one. Raises codec.CorruptRecordError."""
    out = bytearray()
    for batch in impl.decode_batches(batches_data):
        if batch.is_control:
            continue
        attributes = _ATTR_TIMESTAMP_TYPE if magic and batch.timestamp_type else 0
        for record in batch.records:
            offset = record.offset
            if offset < fetch_offset:
                continue
            message = _message(magic, attributes, offset, record.timestamp, record.key, record.value)
            if out and len(out) + len(message) > max_bytes:
                return bytes(out)
            out += message
    return bytes(out)
