"""The retention sweep: kop_fast itself enforces a topic's `retention.ms` override.

Every `RETENTION_SWEEP_S` the sweep goes over the topics with a retention.ms override
and, for each partition, moves the log start to the first record whose timestamp is
within the retention (`PartitionLog.offset_for_timestamp`; none: everything is older,
so the high watermark) with `PartitionLog.delete_records`. The log start never moves
back. Every proxy sweeps; moving the start to the same place twice changes nothing.
The storage may apply the same retention in the engine as well (Pulsar's admin API).
"""

from __future__ import annotations

import asyncio
import logging
import time

from kop_fast.server.topic_configs import RETENTION_MS, int_setting

log = logging.getLogger("kop_fast.retention")

RETENTION_SWEEP_S = 60.0


async def sweep_partition(partition, retention_ms: int, now_ms: int) -> int:
    """Move one partition's log start past records older than the retention; the new log start."""
    found = await partition.offset_for_timestamp(now_ms - retention_ms)
    log_start, end = await partition.bounds(refresh=found is None)
    target = end if found is None else found[0]
    if target <= log_start:
        return log_start
    return await partition.delete_records(target)


async def sweep(node, now_ms: int | None = None) -> dict[tuple[str, int], int]:
    """One pass over every topic with a retention.ms override: {(topic, partition): log start}."""
    storage = node.storage
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    starts: dict[tuple[str, int], int] = {}
    for info in await storage.list_topics():
        value = storage.topic_configs(info).get(RETENTION_MS)
        if value is None or int_setting(value) < 0:  # -1: no time limit
            continue
        retention_ms = int_setting(value)
        for index in range(info.partitions):
            partition = storage.partition_log(info, index)
            try:
                starts[(info.name, index)] = await sweep_partition(partition, retention_ms, now_ms)
            except Exception as exc:  # one partition's failure must not stop the others
                log.warning("retention sweep of %s failed: %r", partition.name, exc)
    return starts


class RetentionSweeper:
    """Runs `sweep` every `interval_s` until stopped."""

    def __init__(self, node, interval_s: float = RETENTION_SWEEP_S) -> None:
        self._node = node
        self._interval_s = interval_s
        self._task: asyncio.Task | None = None

    def start(self) -> "RetentionSweeper":
        self._task = asyncio.ensure_future(self._run())
        return self

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await sweep(self._node)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("retention sweep failed: %r", exc)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass


def start_sweeping(node) -> None:
    """Start the node's retention sweeps (KafkaNode.start)."""
    node.retention_sweeper = RetentionSweeper(node).start()


async def stop_sweeping(node) -> None:
    """Stop them, if they were started (KafkaNode.stop)."""
    sweeper = getattr(node, "retention_sweeper", None)
    if sweeper is not None:
        node.retention_sweeper = None
        await sweeper.stop()
