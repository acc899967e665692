"""Pulsar messages as what a Kafka fetch sends, in both entry formats.

This module's `convert_message` numbers them for `--offset-mode packed`
(offsets_consecutive.py numbers them for `consecutive`, with `native_message`).
Packed offsets are Pulsar positions packed with `codec.pack_offset(ledger, entry, index)`:
a Kafka-format entry (one stored Kafka batch) holds offsets base+0 .. base+n-1
with base = pack(ledger, entry, 0); a Pulsar-native message at batch index i of
its entry has offset pack(ledger, entry, max(i, 0)). Offsets therefore grow with
Pulsar's own order but have gaps between entries; a fetch inside a gap returns
the next existing record.
"""

from __future__ import annotations

import base64

import _pulsar

from kop_fast import codec, pulsar_payload
from kop_fast.pulsar_payload import (
    FORMAT_PROPERTY,
    FORMAT_V2,
    KEY_B64_PROPERTY,
    OFFSET_PROPERTY,
    RECORDS_PROPERTY,
    RESERVED_PROPERTIES,
)
from kop_fast.storage.pulsar.bridge import position_of


def message_id(ledger: int, entry: int, batch_index: int = -1):
    return _pulsar.MessageId(-1, ledger, entry, batch_index)


def stored_parts(base_offset: int, data: bytes) -> tuple:
    """A stored Kafka batch as Fetch sends it, without copying it: the real base offset in
    front of the stored bytes after their own (the producer's) base offset."""
    return base_offset.to_bytes(8, "big", signed=True), memoryview(data)[8:]


class KafkaEntry:
    """A stored Kafka batch as read back: fetch sends `parts` (base offset patched, no copy of the rest)."""

    __slots__ = ("base_offset", "next_offset", "parts", "size", "data")

    def __init__(self, base_offset: int, count: int, data: bytes) -> None:
        self.base_offset = base_offset
        self.next_offset = base_offset + count
        self.data = data
        self.parts = stored_parts(base_offset, data)
        self.size = len(data)

    @property
    def max_timestamp(self) -> int:
        return int.from_bytes(self.data[35:43], "big", signed=True)

    def records(self) -> list:
        patched = bytearray(self.data)
        codec.patch_base_offset(patched, self.base_offset)
        return codec.decode_batches(patched)[0].records


class NativeMessage:
    """One message a Pulsar application wrote (or entry format `pulsar`), as a Kafka record."""

    __slots__ = ("base_offset", "next_offset", "ledger", "entry", "record", "size")

    def __init__(self, ledger: int, entry: int, offset: int, record) -> None:
        self.ledger = ledger
        self.entry = entry
        self.base_offset = offset
        self.next_offset = offset + 1
        self.record = record
        self.size = 64 + (len(record.value) if record.value else 0) + (len(record.key) if record.key else 0)

    @property
    def max_timestamp(self) -> int:
        return self.record.timestamp

    def records(self) -> list:
        return [self.record]


def convert_message(msg, position: tuple[int, int, int] | None = None) -> KafkaEntry | NativeMessage:
    """A pulsar-client Message as what Fetch sends."""
    ledger, entry, index = position or position_of(msg)
    properties = msg.properties()
    if properties.get(FORMAT_PROPERTY) == FORMAT_V2:
        count = int(properties.get(RECORDS_PROPERTY, "0"))
        return KafkaEntry(codec.pack_offset(ledger, entry, 0), count, msg.data())
    return native_message(msg, ledger, entry, codec.pack_offset(ledger, entry, index if index > 0 else 0),
                          properties)


def native_message(msg, ledger: int, entry: int, offset: int, properties: dict) -> NativeMessage:
    """A message that is not a stored Kafka batch, as the Kafka record at `offset`."""
    key = msg.partition_key()
    if key:
        key = base64.b64decode(key) if properties.get(KEY_B64_PROPERTY) == "1" else key.encode()
    else:
        key = None
    value = None if msg.has_null_value() else msg.data()
    timestamp = msg.event_timestamp() or msg.publish_timestamp()
    if not properties:
        headers = ()
    elif KEY_B64_PROPERTY in properties or OFFSET_PROPERTY in properties:
        headers = pulsar_payload.properties_to_headers(
            {k: v for k, v in properties.items() if k not in RESERVED_PROPERTIES})
    else:
        headers = pulsar_payload.properties_to_headers(properties)
    return NativeMessage(ledger, entry, offset, codec.Record(offset, timestamp, key, value, headers))


def encode_native_group(group: list[NativeMessage]) -> bytes:
    """Messages of one Pulsar entry with consecutive indexes as one Kafka batch."""
    return codec.encode_batch([m.record for m in group], base_offset=group[0].base_offset)
