"""Fetch (key 1) v0-v12: stored batches through the storage's fetch cursors, long polling,
zero-copy responses (v4+; v0-v3 get the batches down-converted to legacy message sets:
protocol/legacy_records.py).

Each partition gets a cursor at its fetch offset (`PartitionLog.open_fetch`).
Data already there is taken at once; if less than `min_bytes` came, the fetch
waits until any cursor may have more or `max_wait_ms` passes: no polling loop,
no fixed sleeps. Where the data comes from (memory, a reader reading ahead) is
the storage's business.

Fetch sessions (KIP-227) are declined as Kafka allows: every response carries
session id 0, so clients keep sending full fetch requests.
"""

from __future__ import annotations

import asyncio
import logging

from kop_fast.protocol.encoded import EncodedResponse
from kop_fast import codec
from kop_fast.protocol.errors import ErrorCode
from kop_fast.protocol.fetch_response import (FetchPartitionResult, encode_fetch_response,
                                              encode_legacy_fetch_response)
from kop_fast.protocol.legacy_records import down_convert
from kop_fast.server.leaders import leader_error
from kop_fast.server.registry import api
from kop_fast.server.storage_errors import storage_error_code
from kop_fast.auth.access import CONSUME
from kop_fast.server.topics import authorized, existing_topic, missing_topic_error

log = logging.getLogger("kop_fast.fetch")

API_KEY = 1


class _PartitionFetch:
    __slots__ = ("result", "partition", "cursor", "max_bytes")

    def __init__(self, result: FetchPartitionResult, partition=None, cursor=None, max_bytes: int = 0) -> None:
        self.result = result
        self.partition = partition
        self.cursor = cursor
        self.max_bytes = max_bytes


async def _prepare(node, name: str, request_partition) -> _PartitionFetch:
    index = request_partition.partition
    info = await existing_topic(node, name)
    if info is None:
        return _PartitionFetch(FetchPartitionResult(index, missing_topic_error(node, name)))
    if not 0 <= index < info.partitions:
        return _PartitionFetch(FetchPartitionResult(index, ErrorCode.unknown_topic_or_partition))
    error = await authorized(node, info, CONSUME)  # SASL clients: Pulsar may decide (server/topics.py)
    if error:
        return _PartitionFetch(FetchPartitionResult(index, error))
    error = leader_error(node, node.storage.partition_name(info, index),
                         getattr(request_partition, "current_leader_epoch", -1))
    if error:
        return _PartitionFetch(FetchPartitionResult(index, error))
    partition = node.storage.partition_log(info, index)
    try:
        log_start, hwm = await partition.bounds()
        offset = request_partition.fetch_offset
        if offset > hwm:  # maybe written through another kop_fast: ask again before refusing
            log_start, hwm = await partition.bounds(refresh=True)
        if offset < log_start or offset > hwm:
            return _PartitionFetch(FetchPartitionResult(index, ErrorCode.offset_out_of_range, hwm, log_start))
        cursor = await partition.open_fetch(offset)
    except Exception as exc:
        log.warning("fetch from %s failed: %r", partition.name, exc)
        return _PartitionFetch(FetchPartitionResult(index, storage_error_code(exc)))
    return _PartitionFetch(FetchPartitionResult(index, ErrorCode.none, hwm, log_start), partition, cursor,
                           request_partition.partition_max_bytes)


def _take(fetches: list[_PartitionFetch], budget: int) -> int:
    """Move ready data into the results; return the bytes taken."""
    taken = 0
    for f in fetches:
        cursor = f.cursor
        if cursor is None:  # it failed during this fetch
            continue
        room = min(f.max_bytes - f.result.size, budget - taken)
        if room <= 0 and (f.result.size or taken):
            continue
        try:
            parts, size = cursor.take(max(room, 1))
        except Exception as exc:
            f.result.error_code = storage_error_code(exc)
            f.result.parts, f.result.size = [], 0
            cursor.release()
            f.cursor = None
            continue
        if size:
            f.result.parts.extend(parts)
            f.result.size += size
            taken += size
    return taken


def _down_convert(plan, prepared: list[_PartitionFetch], version: int, max_bytes: int) -> None:
    """Fetch v0-v3: each partition's stored batches as a magic 0 (v0/v1) or magic 1 (v2/v3)
    message set from its fetch offset on, within its max bytes and what is left of the
    request's (v3), at least one message."""
    magic = 0 if version < 2 else 1
    left = max_bytes
    for (_name, request_partition), f in zip(plan, prepared):
        result = f.result
        if not result.parts:
            continue
        if left <= 0:  # converted messages outgrew the request's max bytes: the client asks again
            result.parts, result.size = [], 0
            continue
        try:
            data = down_convert(b"".join(result.parts), magic, request_partition.fetch_offset,
                                min(f.max_bytes, left))
        except codec.CorruptRecordError as exc:
            log.warning("cannot down-convert the batches of %s: %s", f.partition.name, exc)
            result.error_code = ErrorCode.corrupt_message
            data = b""
        result.parts = [data] if data else []
        result.size = len(data)
        left -= len(data)


@api(API_KEY, 0, 12)
async def handle_fetch(ctx, request):
    node = ctx.node
    version = ctx.api_version
    if version >= 7 and request.session_id != 0:
        # We never hand out sessions, so an incremental fetch names one we do not know.
        if node.metrics is not None:
            node.metrics.error(API_KEY, ErrorCode.fetch_session_id_not_found)
        return EncodedResponse(encode_fetch_response(version, [], error_code=ErrorCode.fetch_session_id_not_found))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(request.max_wait.total_seconds(), 0)
    min_bytes = request.min_bytes
    max_bytes = getattr(request, "max_bytes", 0x7FFFFFFF)

    plan = [(topic.topic, p) for topic in request.topics for p in topic.partitions]
    if len(plan) == 1:  # the common case, without gather's task (~10 us of a ~100 us fetch)
        prepared = [await _prepare(node, *plan[0])]
    else:
        prepared = await asyncio.gather(*(_prepare(node, name, p) for name, p in plan))
    fetches = [f for f in prepared if f.cursor is not None]
    try:
        total = _take(fetches, max_bytes)
        while total < min_bytes and fetches:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            waits = [w for f in fetches if f.cursor is not None for w in f.cursor.wait()]
            if not waits:
                break
            done, pending = await asyncio.wait(waits, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            for w in pending:
                w.cancel()
            if not done:
                break
            total += _take(fetches, max_bytes - total)
    finally:
        for f in fetches:
            if f.cursor is not None:
                f.cursor.release()

    if version < 4:
        _down_convert(plan, prepared, version, max_bytes)
    topics: list = []
    by_name: dict[str, list] = {}
    metrics = node.metrics
    for (name, _), f in zip(plan, prepared):
        if f.partition is not None and f.result.error_code == ErrorCode.none:
            hwm = f.partition.high_watermark
            f.result.high_watermark = f.result.last_stable_offset = hwm
        if metrics is not None:
            if f.result.error_code:
                metrics.error(API_KEY, f.result.error_code)
            elif f.result.size:
                metrics.fetched(name, f.result.size)
        entries = by_name.get(name)
        if entries is None:
            entries = by_name[name] = []
            topics.append((name, entries))
        entries.append(f.result)
    if version < 4:
        return EncodedResponse(encode_legacy_fetch_response(version, topics))
    return EncodedResponse(encode_fetch_response(version, topics))
