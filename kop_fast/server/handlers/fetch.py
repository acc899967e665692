"""Fetch (key 1) v4-v12: stored batches from the entry cache or Pulsar readers, long polling,
zero-copy responses.

A partition whose fetch offset lies in the entry cache (batches this process
stored, see backend/entry_cache.py) is answered from memory. Otherwise it leases
a reader positioned at its fetch offset (kept and reused across fetches). Data
already there is taken at once; if less than `min_bytes` came, the fetch waits
until any of its readers receives an entry, an entry is stored through this
process, or `max_wait_ms` passes: no polling loop, no fixed sleeps.

Fetch sessions (KIP-227) are declined as Kafka allows: every response carries
session id 0, so clients keep sending full fetch requests.
"""

from __future__ import annotations

import asyncio
import logging
import time

from kop_fast.protocol.errors import ErrorCode
from kop_fast.protocol.fetch_response import FetchPartitionResult, encode_fetch_response
from kop_fast.server.connection import EncodedResponse
from kop_fast.server.registry import api
from kop_fast.server.storage_errors import storage_error_code
from kop_fast.server.topics import cached_topic, resolve_topic

log = logging.getLogger("kop_fast.fetch")

API_KEY = 1
# A reader that has delivered nothing this long while the log has records beyond it is replaced.
STALL_S = 2.0


class _PartitionFetch:
    __slots__ = ("result", "log", "reader", "offset", "max_bytes")

    def __init__(self, result: FetchPartitionResult, log_=None, reader=None, offset: int = 0,
                 max_bytes: int = 0) -> None:
        self.result = result
        self.log = log_
        self.reader = reader
        self.offset = offset
        self.max_bytes = max_bytes


async def _prepare(broker, name: str, partition) -> _PartitionFetch:
    index = partition.partition
    info = cached_topic(broker, name)
    if info is None:
        _, info = await resolve_topic(broker, name, auto_create=False)
    if info is None or not 0 <= index < info.partitions:
        return _PartitionFetch(FetchPartitionResult(index, ErrorCode.unknown_topic_or_partition))
    log_ = broker.backend.partition(info, index)
    try:
        log_start, hwm = await log_.bounds()
        offset = partition.fetch_offset
        if offset > hwm:  # maybe written through another kop_fast: ask Pulsar before refusing
            log_start, hwm = await log_.bounds(refresh=True)
        if offset < log_start or offset > hwm:
            return _PartitionFetch(FetchPartitionResult(index, ErrorCode.offset_out_of_range, hwm, log_start))
        cache = log_.cache
        # Served from memory: no Pulsar reader needed (nor opened).
        reader = None if cache is not None and cache.holds(offset) else await log_.reader_for(offset)
    except Exception as exc:
        log.warning("fetch from %s failed: %r", log_.topic, exc)
        return _PartitionFetch(FetchPartitionResult(index, storage_error_code(exc)))
    return _PartitionFetch(FetchPartitionResult(index, ErrorCode.none, hwm, log_start), log_, reader,
                           offset, partition.partition_max_bytes)


def _take(fetches: list[_PartitionFetch], budget: int) -> int:
    """Move cached or buffered data into the results; return the bytes taken."""
    taken = 0
    for f in fetches:
        if f.result.error_code != ErrorCode.none:  # its reader failed during this fetch
            continue
        room = min(f.max_bytes - f.result.size, budget - taken)
        if room <= 0 and (f.result.size or taken):
            continue
        cache = f.log.cache
        if cache is not None:
            parts, size, after = cache.take(f.offset, max(room, 1))
            if size:
                f.result.parts.extend(parts)
                f.result.size += size
                # The reader this consumer used last (still waiting where this fetch began)
                # goes on from here, so the next fetch after the cached run reuses it.
                if f.reader is not None:
                    f.reader.skip_to(after)
                else:
                    f.log.advance_idle_readers(f.offset, after)
                f.offset = after
                taken += size
                continue
        reader = f.reader
        if reader is None:
            continue
        try:
            parts, size = reader.take(f.offset, max(room, 1))
        except Exception as exc:
            f.result.error_code = storage_error_code(exc)
            f.result.parts, f.result.size = [], 0
            reader.leased = False
            f.reader = None
            continue
        if size:
            f.result.parts.extend(parts)
            f.result.size += size
            f.offset = reader.position
            taken += size
    return taken


@api(API_KEY, 4, 12)
async def handle_fetch(ctx, request):
    broker = ctx.broker
    version = ctx.api_version
    if version >= 7 and request.session_id != 0:
        # We never hand out sessions, so an incremental fetch names one we do not know.
        return EncodedResponse(encode_fetch_response(version, [], error_code=ErrorCode.fetch_session_id_not_found))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(request.max_wait.total_seconds(), 0)
    min_bytes = request.min_bytes
    max_bytes = getattr(request, "max_bytes", 0x7FFFFFFF)

    plan = [(topic.topic, p) for topic in request.topics for p in topic.partitions]
    prepared = await asyncio.gather(*(_prepare(broker, name, p) for name, p in plan))
    fetches = [f for f in prepared if f.log is not None]
    try:
        total = _take(fetches, max_bytes)
        while total < min_bytes and fetches:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            waits = [f.reader.wait_future() for f in fetches if f.reader is not None]
            waits += [f.log.cache.wait_future(loop) for f in fetches if f.log.cache is not None]
            if not waits:
                break
            done, pending = await asyncio.wait(waits, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            for w in pending:
                w.cancel()
            if not done:
                break
            total += _take(fetches, max_bytes - total)
    finally:
        now = time.monotonic()
        for f in fetches:
            reader = f.reader
            if reader is None:
                continue
            reader.leased = False
            hwm = f.log.high_watermark or 0
            if not f.result.size and reader.position < hwm and now - reader.last_delivery > STALL_S:
                reader.mark_stalled()

    topics: list = []
    by_name: dict[str, list] = {}
    for (name, _), f in zip(plan, prepared):
        if f.log is not None and f.result.error_code == ErrorCode.none:
            hwm = f.log.high_watermark
            f.result.high_watermark = f.result.last_stable_offset = hwm
        entries = by_name.get(name)
        if entries is None:
            entries = by_name[name] = []
            topics.append((name, entries))
        entries.append(f.result)
    return EncodedResponse(encode_fetch_response(version, topics))
