"""A tenant's view of the storage and the group coordinator (server/tenancy.py), on fakes."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from kop_fast.coordinator.messages import HeartbeatRequest, ListedGroup, ListGroupsResponse
from kop_fast.protocol.errors import ErrorCode
from kop_fast.server.tenancy import ForeignTopic, TenantGroups, TenantStorage, split_scoped_group
from kop_fast.server.topics import resolve_topic
from kop_fast.storage.api import TopicInfo


class FakeStorage:
    """Knows Pulsar-style names: `t/ns/x` is `persistent://t/ns/x`; a short name is public/default."""

    def __init__(self):
        self.topics = {}
        self.infos = {}  # kept, as PulsarStorage keeps its layouts
        self.listed_scope = None

    def _full(self, name):
        return "persistent://" + name if name.count("/") == 2 else f"persistent://public/default/{name}"

    def _info(self, full):
        short = full[len("persistent://public/default/"):] if full.startswith("persistent://public/default/") else full
        info = self.infos.get(full)
        if info is None or info.partitions != self.topics[full]:
            info = self.infos[full] = TopicInfo(short, self.topics[full], full, uuid.UUID(int=1))
        return info

    def cached_topic(self, name):
        full = self._full(name)
        return self._info(full) if full in self.topics else None

    async def describe_topic(self, name):
        return self.cached_topic(name)

    async def create_topic(self, name, partitions, configs=None):
        self.topics[self._full(name)] = partitions
        return self.cached_topic(name)

    async def list_topics(self, scope=None):
        self.listed_scope = scope
        return [self._info(full) for full in sorted(self.topics)]


def test_short_names_map_into_the_tenant_and_full_names_are_checked():
    async def scenario():
        inner = FakeStorage()
        await inner.create_topic("orders", 1)  # public/default's
        view = TenantStorage(inner, "acme", "prod")
        created = await view.create_topic("orders", 3)
        assert (created.name, created.storage_name, created.partitions) == ("orders", "persistent://acme/prod/orders", 3)
        assert view.cached_topic("orders") is view.cached_topic("orders")  # kept: Produce asks each time
        assert view.cached_topic("persistent://acme/prod/orders").partitions == 3
        assert view.cached_topic("persistent://public/default/orders") is None
        with pytest.raises(ForeignTopic):
            await view.describe_topic("persistent://globex/prod/orders")
        assert [i.name for i in await view.list_topics()] == ["orders"]
        assert inner.listed_scope == "acme/prod"

        class Node:
            storage = view
            settings = type("S", (), {"auto_create_topics": True, "default_num_partitions": 1})

        assert (await resolve_topic(Node, "globex/prod/orders", True))[0] == ErrorCode.topic_authorization_failed
        assert (await resolve_topic(Node, "orders", False))[0] == ErrorCode.none

    asyncio.run(scenario())


class FakeCoordinator:
    def __init__(self):
        self.seen = []

    def partition_index(self, key):
        self.seen.append(key)
        return 0

    def heartbeat(self, req):
        self.seen.append(req.group_id)
        return "ok"

    async def list_groups(self, states_filter=None, types_filter=None):
        return ListGroupsResponse(ErrorCode.none, [ListedGroup("acme/prod/g", "consumer", "Stable"),
                                                   ListedGroup("globex/prod/g", "consumer", "Stable"),
                                                   ListedGroup("plain", "consumer", "Empty")])

    async def delete_groups(self, group_ids):
        return [(g, ErrorCode.none) for g in group_ids]


def test_groups_are_scoped_and_shown_by_the_clients_own_ids():
    async def scenario():
        inner = FakeCoordinator()
        view = TenantGroups(inner, "acme/prod")
        view.partition_index("g")
        view.heartbeat(HeartbeatRequest(group_id="g", generation_id=1, member_id="m"))
        assert inner.seen == ["acme/prod/g", "acme/prod/g"]
        listed = await view.list_groups()
        assert [g.group_id for g in listed.groups] == ["g"]
        assert await view.delete_groups(["g"]) == [("g", ErrorCode.none)]

    asyncio.run(scenario())


def test_split_scoped_group():
    assert split_scoped_group("acme/prod/billing") == ("acme/prod", "billing")
    assert split_scoped_group("acme/prod/a/b") == ("acme/prod", "a/b")
    assert split_scoped_group("plain") == (None, "plain")
