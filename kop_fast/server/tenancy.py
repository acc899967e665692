"""What an authenticated connection sees: its tenant's topics and groups, nobody else's.

`TenantNode` stands in for the KafkaNode in that connection's request contexts. It
hands out the same node for everything but two things:

- `storage`, a `TenantStorage`: short topic names map into the tenant's namespace
  (`orders` -> `tenant/ns/orders`, a name the storage takes as that Pulsar topic), a
  full name must be inside it (else `ForeignTopic`: TOPIC_AUTHORIZATION_FAILED), topic
  listings hold only its topics, and the layouts it returns carry the short names.
- `group_coordinator`, a `TenantGroups`: group ids become `tenant/ns/<group>` in the
  coordinator (so in the offsets topic and its placement), and answers show the
  client's own ids; ListGroups holds only the tenant's groups.

PLAINTEXT connections keep the real node: nothing here is on their path.
"""

from __future__ import annotations

import dataclasses
import re

from kop_fast.storage.api import InvalidTopicName, TopicExists, TopicInfo

_SHORT = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


class ForeignTopic(InvalidTopicName):
    """A topic outside the connection's tenant/namespace (TOPIC_AUTHORIZATION_FAILED)."""


def scoped_group(scope: str, group_id: str) -> str:
    return f"{scope}/{group_id}"


def split_scoped_group(group_id: str) -> tuple[str | None, str]:
    """`tenant/ns/group` -> (`tenant/ns`, `group`); an unscoped id (PLAINTEXT) -> (None, id).
    A PLAINTEXT group id with two '/' reads as scoped: PLAINTEXT listeners are not isolated."""
    parts = group_id.split("/", 2)
    if len(parts) == 3 and parts[0] and parts[1]:
        return f"{parts[0]}/{parts[1]}", parts[2]
    return None, group_id


class TenantStorage:
    def __init__(self, storage, tenant: str, namespace: str, role: str | None = None,
                 token: str | None = None) -> None:
        self._storage = storage
        self.role, self._token = role, token  # for the engine's authorization (granted/authorize)
        self.scope = f"{tenant}/{namespace}"
        self._full_prefix = f"persistent://{self.scope}/"
        self._names: dict[str, str] = {}  # client name -> storage name (the checks run once)
        self._views: dict[str, tuple[TopicInfo, TopicInfo]] = {}  # storage name -> (layout, as shown)

    def __getattr__(self, name):  # partition_log, topic_configs, ...: layouts carry the engine's name
        return getattr(self._storage, name)

    def _name(self, name: str) -> str:
        mapped = self._names.get(name)
        if mapped is None:
            if _SHORT.match(name):
                mapped = f"{self.scope}/{name}"
            else:
                full = name if "://" in name else "persistent://" + name
                if not full.startswith(self._full_prefix):
                    raise ForeignTopic(f"topic {name!r} is outside tenant/namespace {self.scope}")
                mapped = self.scope + "/" + full[len(self._full_prefix):]
            if len(self._names) < 10_000:
                self._names[name] = mapped
        return mapped

    def granted(self, info: TopicInfo, action: str) -> bool | None:
        """May this connection `action` ("produce"/"consume") the topic: True/False as the
        engine last said (no I/O), None when `authorize` must ask (`--pulsar-authorize-roles`)."""
        return self._storage.known_access(self.role, self._token, self._layout(info), action)

    async def authorize(self, info: TopicInfo, action: str) -> bool:
        return await self._storage.check_access(self.role, self._token, self._layout(info), action)

    def use_token(self, token: str | None) -> None:
        self._token = token

    def _layout(self, info: TopicInfo) -> TopicInfo:
        """The engine's layout behind a layout shown to the tenant (its name is the short one)."""
        kept = self._views.get(info.storage_name)
        return kept[0] if kept is not None and kept[1] is info else info

    def is_foreign(self, name: str) -> bool:
        try:
            self._name(name)
        except ForeignTopic:
            return True
        return False

    def _shown(self, info: TopicInfo | None) -> TopicInfo | None:
        """The layout with the name the tenant's clients use (kept: Produce asks every time)."""
        if info is None:
            return None
        kept = self._views.get(info.storage_name)
        if kept is not None and kept[0] is info:
            return kept[1]
        short = info.storage_name[len(self._full_prefix):] if info.storage_name.startswith(self._full_prefix) \
            else info.name
        shown = dataclasses.replace(info, name=short)
        self._views[info.storage_name] = (info, shown)
        return shown

    def cached_topic(self, name: str) -> TopicInfo | None:
        try:
            return self._shown(self._storage.cached_topic(self._name(name)))
        except InvalidTopicName:
            return None

    async def describe_topic(self, name: str) -> TopicInfo | None:
        return self._shown(await self._storage.describe_topic(self._name(name)))

    async def create_topic(self, name: str, partitions: int, configs=None) -> TopicInfo:
        try:
            return self._shown(await self._storage.create_topic(self._name(name), partitions, configs))
        except TopicExists as exc:
            raise TopicExists(self._shown(exc.info)) from None

    async def grow_topic(self, topic: TopicInfo, partitions: int) -> TopicInfo:
        return self._shown(await self._storage.grow_topic(topic, partitions))

    async def list_topics(self) -> list[TopicInfo]:
        topics = await self._storage.list_topics(self.scope)
        return [self._shown(info) for info in topics if info.storage_name.startswith(self._full_prefix)]


class TenantGroups:
    """The group coordinator as one tenant's connections see it."""

    def __init__(self, coordinator, scope: str) -> None:
        self._coordinator = coordinator
        self.scope = scope
        self._prefix = scope + "/"

    def __getattr__(self, name):
        return getattr(self._coordinator, name)

    def _scoped(self, group_id: str) -> str:
        return self._prefix + group_id

    def _own(self, group_id: str) -> str:
        return group_id[len(self._prefix):] if group_id.startswith(self._prefix) else group_id

    def _with_scoped_id(self, req):
        return dataclasses.replace(req, group_id=self._scoped(req.group_id))

    def partition_index(self, key: str) -> int:
        return self._coordinator.partition_index(self._scoped(key))

    async def find_coordinator(self, key: str):
        return await self._coordinator.find_coordinator(self._scoped(key))

    async def join(self, req):
        return await self._coordinator.join(self._with_scoped_id(req))

    async def sync(self, req):
        return await self._coordinator.sync(self._with_scoped_id(req))

    def heartbeat(self, req):
        return self._coordinator.heartbeat(self._with_scoped_id(req))

    async def leave(self, req):
        return await self._coordinator.leave(self._with_scoped_id(req))

    async def commit_offsets(self, req):
        return await self._coordinator.commit_offsets(self._with_scoped_id(req))

    async def fetch_offsets(self, req):
        return await self._coordinator.fetch_offsets(self._with_scoped_id(req))

    async def delete_offsets(self, req):
        return await self._coordinator.delete_offsets(self._with_scoped_id(req))

    async def describe_groups(self, group_ids, api_version: int):
        described = await self._coordinator.describe_groups([self._scoped(g) for g in group_ids], api_version)
        return [dataclasses.replace(d, group_id=self._own(d.group_id)) for d in described]

    async def list_groups(self, states_filter=None, types_filter=None):
        response = await self._coordinator.list_groups(states_filter, types_filter)
        mine = [dataclasses.replace(g, group_id=self._own(g.group_id))
                for g in response.groups if g.group_id.startswith(self._prefix)]
        return dataclasses.replace(response, groups=mine)

    async def delete_groups(self, group_ids):
        results = await self._coordinator.delete_groups([self._scoped(g) for g in group_ids])
        return [(self._own(gid), error) for gid, error in results]


class TenantNode:
    """The KafkaNode, as one authenticated tenant's connection sees it."""

    def __init__(self, node, tenant: str, namespace: str, role: str | None = None,
                 token: str | None = None) -> None:
        self._node = node
        self.tenant, self.namespace = tenant, namespace
        self.storage = TenantStorage(node.storage, tenant, namespace, role, token)
        self.group_coordinator = TenantGroups(node.group_coordinator, self.storage.scope)

    def __getattr__(self, name):
        return getattr(self._node, name)
