"""The cluster's offset mode in the topic registry: the first "offsets" record wins; a registry
with topics but no such record (made before offset modes) is packed; a new one takes the proposal."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("_pulsar")

from kop_fast.storage.pulsar.topic_registry import TopicRegistry  # noqa: E402


class LocalRegistry(TopicRegistry):
    """The registry's log in a list: `_append` applies the record at the next position."""

    def __init__(self) -> None:
        super().__init__(None, None, "registry")
        self.written: list[dict] = []

    async def _append(self, record: dict) -> tuple:
        self.written.append(record)
        position = (1, len(self.written), -1)
        self._apply_record(record["op"], record["topic"], record, position)
        return position


def claim(registry: LocalRegistry, proposed):
    return asyncio.run(registry.claim_offset_mode(proposed))


@pytest.mark.parametrize("proposed, stored", [(None, "consecutive"), ("consecutive", "consecutive"),
                                              ("packed", "packed")])
def test_a_new_registry_takes_the_proposed_mode(proposed, stored):
    registry = LocalRegistry()
    assert claim(registry, proposed) == stored
    assert registry.written == [{"op": "offsets", "topic": "", "mode": stored}]
    assert claim(registry, "packed" if stored == "consecutive" else "consecutive") == stored  # first one wins


def test_a_registry_with_topics_from_before_offset_modes_is_packed():
    registry = LocalRegistry()
    registry._apply_record("create", "persistent://public/default/t", {"op": "create", "partitions": 1,
                                                                        "topic": "persistent://public/default/t"},
                           (1, 0, -1))
    assert claim(registry, None) == "packed"
    # Even when this proxy proposes consecutive: the mismatch is then refused by PulsarStorage.start.
    assert claim(registry, "consecutive") == "packed"


def test_ledger_records_are_kept_per_partition_topic_and_reported():
    registry = LocalRegistry()
    seen = []
    registry.on_ledger = lambda topic, record: seen.append((topic, record))
    asyncio.run(registry.record_ledger("p-partition-0", 12, 0, 50_000, (9, 49_999)))
    asyncio.run(registry.record_ledger("p-partition-0", 15, 3, 100_000, None))
    assert registry.ledgers == {"p-partition-0": [(12, 0, 50_000, (9, 49_999)), (15, 3, 100_000, None)]}
    assert seen[0] == ("p-partition-0", (12, 0, 50_000, (9, 49_999)))
