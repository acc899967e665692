"""How kop_fast lays Kafka data into Pulsar messages, and a helper for Pulsar applications.

Entry format `kafka` (the default, the fast path): one Pulsar message per Kafka
record batch. Its payload is the batch exactly as the Kafka producer sent it (v2
record batch, CRC intact, maybe compressed); its properties mark it:

    kafka.format  = "v2"        the payload is a Kafka v2 record batch
    kafka.records = "<count>"   records in the batch

The batch's stored base offset is meaningless; the real offset of record i is
`pack_offset(ledger, entry, 0) + i` (see docs/CODEC.md). A Pulsar consumer turns
such a message back into records with `records(message)`:

    import pulsar
    from kop_fast.pulsar_payload import records
    reader = client.create_reader("persistent://public/default/t-partition-0", pulsar.MessageId.earliest)
    for record in records(reader.read_next()):
        print(record.offset, record.key, record.value, record.headers)

Entry format `pulsar` (interop): one Pulsar message per Kafka record; key ->
partition key (UTF-8; other bytes base64 with property `kafka.key.b64`), value ->
payload (a null value is a Pulsar null-value message), timestamp -> event time,
headers -> properties (mapping in docs/CODEC.md).
"""

from __future__ import annotations

FORMAT_PROPERTY = "kafka.format"
FORMAT_V2 = "v2"
RECORDS_PROPERTY = "kafka.records"
KEY_B64_PROPERTY = "kafka.key.b64"
# Properties kop_fast itself sets; they never become Kafka headers.
RESERVED_PROPERTIES = frozenset({FORMAT_PROPERTY, RECORDS_PROPERTY, KEY_B64_PROPERTY})


def is_kafka_entry(properties: dict) -> bool:
    return properties.get(FORMAT_PROPERTY) == FORMAT_V2


def records(message) -> list:
    """Records of a Pulsar message (pulsar.Message) that kop_fast wrote in the `kafka` entry format."""
    from kop_fast import codec

    properties = message.properties()
    if not is_kafka_entry(properties):
        raise ValueError("not a kop_fast kafka-format message (no kafka.format=v2 property)")
    mid = message.message_id()
    base = codec.pack_offset(mid.ledger_id(), mid.entry_id(), 0)
    data = bytearray(message.data())
    codec.patch_base_offset(data, base)
    out = []
    for batch in codec.decode_batches(bytes(data)):
        out.extend(batch.records)
    return out
