"""Idempotent producers' state follows the partition: rebuilt from what is stored when this proxy gets it.

`ProducerStateTable` (sans-io) holds, per partition, each idempotent producer's
epoch, last sequence and last batches with their offsets. Before this proxy
accepts the first idempotent batch of a partition, it reads the partition's last
RECOVERY_ENTRIES entries (`PartitionLog.recent_producer_batches`) into the table,
so a retry of a batch the previous owner stored is answered with its offset
instead of being stored twice. Until then such batches get NOT_LEADER_OR_FOLLOWER
(retriable: the client retries after its backoff). When a new cluster epoch moves
the partition away, its producers are forgotten, so owning it again reads the log
again. Batches of plain producers never wait.
"""

from __future__ import annotations

import asyncio
import logging

from kop_fast.producer_state import ProducerStateTable
from kop_fast.storage.api import PartitionLog

log = logging.getLogger("kop_fast.produce")

# Idempotent producers retry at most their last 5 in-flight batches; the entries of a few
# busy producers since their last retry fit in far fewer than this.
RECOVERY_ENTRIES = 1000


class ProducerRecovery:
    def __init__(self, table: ProducerStateTable) -> None:
        self.table = table
        self.cluster = None
        self._ready: set[str] = set()
        self._loading: dict[str, asyncio.Task] = {}

    def attach(self, cluster) -> None:
        self.cluster = cluster
        cluster.listeners.append(self._on_epoch)

    def ready(self, partition: PartitionLog) -> bool:
        """True when the partition's producer state is loaded; otherwise starts loading it."""
        name = partition.name
        if name in self._ready:
            return True
        if name not in self._loading:
            self._loading[name] = asyncio.ensure_future(self._load(partition))
        return False

    async def _load(self, partition: PartitionLog) -> None:
        name = partition.name
        try:
            batches = await partition.recent_producer_batches(RECOVERY_ENTRIES)
        except Exception as exc:  # noqa: BLE001 - the next idempotent batch tries again
            log.warning("cannot read the producer state of %s (%r); retrying on the next batch", name, exc)
            return
        finally:
            self._loading.pop(name, None)
        if self.cluster is not None and not self.cluster.owns(name):
            return  # moved away while reading
        self.table.drop_partition(name)
        self.table.restore(name, batches)
        self._ready.add(name)

    def _on_epoch(self) -> None:
        for name in list(self._ready):
            if not self.cluster.owns(name):
                self._ready.discard(name)
                self.table.drop_partition(name)
        for name, task in list(self._loading.items()):
            if not self.cluster.owns(name):
                task.cancel()
