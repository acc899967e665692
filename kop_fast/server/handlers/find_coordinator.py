"""FindCoordinator (key 10) v0-v4: the proxy that owns the group's `__consumer_offsets` partition.

The cluster places offsets partitions like data partitions (`kop_fast.cluster`),
so every proxy names the same coordinator. When it is this proxy, the load of the
partition starts here (the group request that follows waits for it).
v4 batches keys (`coordinator_keys`). Key type 1 (transactions) gets
COORDINATOR_NOT_AVAILABLE per key: there is no transaction coordinator.
"""

from __future__ import annotations

import asyncio
import datetime

from kop_fast.protocol.build import make, sibling
from kop_fast.protocol.errors import ErrorCode
from kop_fast.server.cluster import offsets_key
from kop_fast.server.group_coordinator import coordinator_of, kafka_error
from kop_fast.server.registry import api

API_KEY = 10
KEY_TYPE_GROUP = 0
KEY_TYPE_TRANSACTION = 1
_ZERO = datetime.timedelta(0)


_NOWHERE = {"node_id": -1, "host": "", "port": -1}


async def _lookup(ctx, key_type: int, key: str) -> tuple[ErrorCode, str | None, dict]:
    if key_type == KEY_TYPE_TRANSACTION:
        return ErrorCode.coordinator_not_available, "transactions are not supported", _NOWHERE
    if key_type != KEY_TYPE_GROUP:
        return ErrorCode.invalid_request, f"unknown coordinator key type {key_type}", _NOWHERE
    coordinator = coordinator_of(ctx)
    owner = ctx.node.cluster.owner(offsets_key(coordinator.partition_index(key)))[0] if ctx.node.cluster else None
    if owner is not None and owner is not ctx.node.cluster.me:
        host, port = owner.address(ctx.connection.listener_name)
        return ErrorCode.none, None, {"node_id": owner.node_id, "host": host, "port": port}
    code = await coordinator.find_coordinator(key)
    if code == ErrorCode.none:
        node = ctx.node
        host, port = node.advertised.get(ctx.connection.listener_name, (node.host, node.port))
        return ErrorCode.none, None, {"node_id": node.node_id, "host": host, "port": port}
    return kafka_error(code), "the group's coordinator is not available yet", _NOWHERE


@api(API_KEY, 0, 4)
async def handle_find_coordinator(ctx, request):
    schema = ctx.response_schema
    key_type = getattr(request, "key_type", KEY_TYPE_GROUP)
    if ctx.api_version >= 4:
        keys = request.coordinator_keys
        found = await asyncio.gather(*(_lookup(ctx, key_type, k) for k in keys))
        coordinator_cls = sibling(schema, "Coordinator")
        coordinators = tuple(
            make(coordinator_cls, key=k, error_code=error, error_message=message, **where)
            for k, (error, message, where) in zip(keys, found))
        return make(schema, throttle_time=_ZERO, coordinators=coordinators)
    error, message, where = await _lookup(ctx, key_type, request.key)
    return make(schema, throttle_time=_ZERO, error_code=error, error_message=message, **where)
