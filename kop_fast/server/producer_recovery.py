"""Idempotent producers' state follows the partition: rebuilt from what is stored when this proxy gets it.

`ProducerStateTable` (sans-io) holds, per partition, each idempotent producer's
epoch, last sequence and last batches with their offsets. Before this proxy
accepts the first idempotent batch of a partition, it reads the partition's last
RECOVERY_ENTRIES entries (`PartitionLog.recent_producer_batches`) into the table,
so a retry of a batch the previous owner stored is answered with its offset
instead of being stored twice.

The idempotent batches that arrive meanwhile wait for the read (`after_load`) and
are then taken in the order they arrived, in the same step of the event loop that
makes the state ready, so no later batch can overtake them. A Kafka broker has its
producer state at hand when it leads a partition; answering the first batch of a
new partition NOT_LEADER_OR_FOLLOWER instead (retriable, but in the time of one
Pulsar round trip) exhausts clients that retry without backoff: Sarama 1.22's
idempotent producer resends at once, after a metadata refresh only, 3 times by
default, and then fails the batch (or hangs). Only a read that fails, that is not
done within LOAD_WAIT_S, or whose partition moves away meanwhile, answers its
waiting batches NOT_LEADER_OR_FOLLOWER (the client retries; the next batch starts
a new read). When a new cluster epoch moves the partition away, its producers are
forgotten, so owning it again reads the log again. Batches of plain producers
never wait.

A failed write of an idempotent batch says nothing certain: Pulsar may have
persisted the entry and lost only its receipt (killed in between). So the
failure does not just forget the producer (its retry would be stored a second
time): it makes the partition's state unknown again (`invalidate`), and the next
idempotent batch, typically that retry, waits for a new read of the stored tail,
taken once the partition's idempotent writes still under way have settled, so it
sees them too.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from kop_fast.producer_state import ProducerStateTable
from kop_fast.protocol.errors import ErrorCode
from kop_fast.storage.api import PartitionLog

log = logging.getLogger("kop_fast.produce")

# Idempotent producers retry at most their last 5 in-flight batches; the entries of a few
# busy producers since their last retry fit in far fewer than this.
RECOVERY_ENTRIES = 1000
# How long a batch waits for its partition's producer state before it is answered
# NOT_LEADER_OR_FOLLOWER: well within clients' request timeouts (30 s by default).
LOAD_WAIT_S = 5.0

# What a batch is answered when it cannot wait any longer (retriable).
NOT_READY = (ErrorCode.not_leader_or_follower, -1)


class _Waiting:
    """The batches waiting for one partition's state, in arrival order, and their deadline."""

    __slots__ = ("batches", "timer")

    def __init__(self) -> None:
        self.batches: list[tuple[Callable[[], object], asyncio.Future]] = []
        self.timer: asyncio.TimerHandle | None = None


class ProducerRecovery:
    def __init__(self, table: ProducerStateTable, wait_s: float = LOAD_WAIT_S) -> None:
        self.table = table
        self.cluster = None
        self.wait_s = wait_s
        self._ready: set[str] = set()
        self._loading: dict[str, asyncio.Task] = {}
        self._waiting: dict[str, _Waiting] = {}
        self._writing: dict[str, set[asyncio.Future]] = {}  # idempotent writes not yet settled

    def writing(self, name: str, stored: asyncio.Future) -> None:
        """An idempotent batch of partition `name` is being written (a reload waits for it)."""
        pending = self._writing.get(name)
        if pending is None:
            pending = self._writing[name] = set()
        pending.add(stored)

    def settled(self, name: str, stored: asyncio.Future, failed: bool) -> None:
        """That write ended; a failed one leaves the partition's producer state unknown."""
        pending = self._writing.get(name)
        if pending is not None:
            pending.discard(stored)
            if not pending:
                del self._writing[name]
        if failed:
            self._ready.discard(name)  # the next idempotent batch reads the stored tail again

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

    def after_load(self, partition: PartitionLog, store: Callable[[], object]) -> asyncio.Future:
        """A future of `store()`'s (error, offset), called once the partition's state is loaded,
        after the batches that were waiting before it; NOT_READY if it cannot be loaded in time."""
        name = partition.name
        if name in self._ready:  # not waiting at all
            return _as_future(store())
        self.ready(partition)  # loading it (again, after a failed read)
        loop = asyncio.get_running_loop()
        waiting = self._waiting.get(name)
        if waiting is None:
            waiting = self._waiting[name] = _Waiting()
            waiting.timer = loop.call_later(self.wait_s, self._expire, name, waiting)
        result = loop.create_future()
        waiting.batches.append((store, result))
        return result

    async def _load(self, partition: PartitionLog) -> None:
        name = partition.name
        batches = None
        try:
            pending = self._writing.get(name)
            if pending:  # what they stored must be in the tail we read
                await asyncio.wait(list(pending))
            batches = await partition.recent_producer_batches(RECOVERY_ENTRIES)
        except Exception as exc:  # noqa: BLE001 - the next idempotent batch tries again
            log.warning("cannot read the producer state of %s (%r); retrying on the next batch", name, exc)
        finally:
            self._loading.pop(name, None)
            if batches is None or (self.cluster is not None and not self.cluster.owns(name)):
                self._answer(name, None)  # failed, cancelled or moved away while reading
                batches = None
        if batches is None:
            return
        self.table.drop_partition(name)
        self.table.restore(name, batches)
        self._ready.add(name)
        self._answer(name, batches)

    def _answer(self, name: str, loaded) -> None:
        """Take (or, when the state did not load, refuse) the waiting batches, in arrival order."""
        waiting = self._waiting.pop(name, None)
        if waiting is None:
            return
        if waiting.timer is not None:
            waiting.timer.cancel()
        for store, result in waiting.batches:
            if result.done():  # its connection went away
                continue
            if loaded is None:
                result.set_result(NOT_READY)
                continue
            try:
                outcome = store()
            except Exception as exc:  # noqa: BLE001 - one batch's bug must not strand the others
                result.set_exception(exc)
                continue
            _chain(outcome, result)

    def _expire(self, name: str, waiting: _Waiting) -> None:
        if self._waiting.get(name) is waiting:
            log.warning("the producer state of %s is not read within %.1f s; answering NOT_LEADER_OR_FOLLOWER",
                        name, self.wait_s)
            waiting.timer = None
            self._answer(name, None)

    def _on_epoch(self) -> None:
        for name in list(self._ready):
            if not self.cluster.owns(name):
                self._ready.discard(name)
                self.table.drop_partition(name)
        for name, task in list(self._loading.items()):
            if not self.cluster.owns(name):
                task.cancel()


def _as_future(outcome) -> asyncio.Future:
    if isinstance(outcome, asyncio.Future):
        return outcome
    result = asyncio.get_running_loop().create_future()
    result.set_result(outcome)
    return result


def _chain(outcome, result: asyncio.Future) -> None:
    if not isinstance(outcome, asyncio.Future):
        result.set_result(outcome)
        return

    def copy(fut: asyncio.Future) -> None:
        if result.done():
            return
        if fut.cancelled():
            result.cancel()
        elif fut.exception() is not None:
            result.set_exception(fut.exception())
        else:
            result.set_result(fut.result())

    outcome.add_done_callback(copy)
