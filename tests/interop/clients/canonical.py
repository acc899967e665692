"""The records every client in the interoperability matrix writes and reads back.

Cross-client checks go through one shape, so that what confluent-kafka wrote, kcat, kafkajs or a
Go client must read back with keys, headers (binary and null values) and timestamps intact, and the
other way round. Programs in other languages exchange records as JSON lines of hex strings:
`{"key": hex|null, "value": hex|null, "headers": [[name, hex|null], ...], "timestamp": ms}`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

# A day in the past, so that a broker-stamped time can never pass for the client's.
BASE_TS = (int(time.time()) - 86_400) * 1000


@dataclass(frozen=True)
class Record:
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    timestamp: int

    def to_json(self) -> dict:
        return {"key": None if self.key is None else self.key.hex(),
                "value": None if self.value is None else self.value.hex(),
                "headers": [[n, None if v is None else v.hex()] for n, v in self.headers],
                "timestamp": self.timestamp}

    @classmethod
    def from_json(cls, obj: dict) -> "Record":
        def unhex(s):
            return None if s is None else bytes.fromhex(s)
        return cls(unhex(obj["key"]), unhex(obj["value"]),
                   tuple((n, unhex(v)) for n, v in obj.get("headers") or []), int(obj["timestamp"]))


def canonical_records(tag: str, count: int = 6) -> list[Record]:
    """`count` records: text and binary keys, a null key, binary and null header values, a repeated
    header name, an empty value, and strictly increasing create times. `tag` makes values unique per test."""
    out = []
    for i in range(count):
        key = None if i % 3 == 2 else (f"key-{i}".encode() if i % 2 == 0 else bytes([0, 255, i, 10]))
        value = b"" if i == 1 else f"{tag}-value-{i}".encode() + bytes([0, 200 + i % 50])
        headers: tuple = ()
        if i % 2 == 0:
            headers = (("trace", f"t{i}".encode()), ("bin", bytes([0, 1, 254, 255])), ("nul", None))
        elif i == 3:
            headers = (("dup", b"a"), ("dup", b"b"))
        out.append(Record(key, value, headers, BASE_TS + 1000 * i))
    return out


def write_json_lines(records: list[Record]) -> str:
    return "".join(json.dumps(r.to_json()) + "\n" for r in records)


def read_json_lines(text: str) -> list[Record]:
    return [Record.from_json(json.loads(line)) for line in text.splitlines() if line.strip()]


def assert_same_records(got: list[Record], want: list[Record], *, who: str) -> None:
    """Order within one partition is part of the contract; the first difference is reported alone."""
    assert len(got) == len(want), f"{who}: got {len(got)} records, want {len(want)}: {got[:3]!r}"
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"{who}: record #{i} differs:\n got  {g!r}\n want {w!r}"


# -- confluent-kafka as the reference writer and reader ---------------------------------------------

def confluent_write(bootstrap: str, topic: str, records: list[Record], partition: int = 0) -> list[int]:
    from tests.interop.test_produce_fetch import produce
    return produce(bootstrap, topic, [(r.key, r.value, list(r.headers), r.timestamp) for r in records],
                   partition=partition)


def confluent_read(bootstrap: str, topic: str, count: int, partition: int = 0, start: int = 0) -> list[Record]:
    from tests.interop.test_produce_fetch import consume
    messages, errors = consume(bootstrap, topic, start, count, partition=partition)
    assert not errors, errors[:3]
    out = []
    for m in messages:
        _, ts = m.timestamp()
        out.append(Record(m.key(), m.value(), tuple((n, v) for n, v in (m.headers() or [])), ts))
    return out


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> list[int]:
    """The group's committed offsets as confluent-kafka sees them (-1001 for none)."""
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        got = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=15)
    finally:
        consumer.close()
    assert all(tp.error is None for tp in got), got
    return [tp.offset for tp in got]
