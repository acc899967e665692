"""`MemoryClusterLog`: the membership log in memory (test double of `storage.pulsar.cluster_log`).

Every MemoryStorage on one MemoryEngine shares one log per cluster id, so
several in-process nodes form one cluster as proxies on one Pulsar do. Changes
are delivered to every follower in append order; heartbeats only to followers
started before them.
"""

from __future__ import annotations

import asyncio
from typing import Callable


class MemoryClusterChannel:
    """One cluster id's shared state: the changes so far and the live followers."""

    def __init__(self) -> None:
        self.changes: list[dict] = []
        self.followers: list["MemoryClusterLog"] = []


class MemoryClusterLog:
    def __init__(self, channel: MemoryClusterChannel) -> None:
        self._channel = channel
        self._on_change: Callable[[dict], None] | None = None
        self._on_heartbeat: Callable[[dict], None] | None = None
        #: set to a StorageError to make every write fail (a proxy cut off from the engine)
        self.cut_off = None

    async def start(self, on_change, on_heartbeat) -> None:
        self._on_change, self._on_heartbeat = on_change, on_heartbeat
        for change in list(self._channel.changes):
            on_change(dict(change))
        self._channel.followers.append(self)

    async def append_change(self, change: dict) -> None:
        await asyncio.sleep(0)
        if self.cut_off is not None:
            raise self.cut_off
        self._channel.changes.append(dict(change))
        for follower in list(self._channel.followers):
            follower._on_change(dict(change))

    async def publish_heartbeat(self, heartbeat: dict) -> None:
        await asyncio.sleep(0)
        if self.cut_off is not None:
            raise self.cut_off
        for follower in list(self._channel.followers):
            follower._on_heartbeat(dict(heartbeat))

    async def close(self) -> None:
        if self in self._channel.followers:
            self._channel.followers.remove(self)
