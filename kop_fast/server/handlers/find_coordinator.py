"""FindCoordinator (key 10) v0-v4: this process coordinates every group whose partition it owns.

v4 batches keys (`coordinator_keys`). Key type 1 (transactions) gets
COORDINATOR_NOT_AVAILABLE per key: there is no transaction coordinator.
A group whose `__consumer_offsets` partition another kop_fast process holds also
gets COORDINATOR_NOT_AVAILABLE: this process cannot yet name the owner.
"""

from __future__ import annotations

import asyncio
import datetime

from kop_fast.protocol.build import make, sibling
from kop_fast.protocol.errors import ErrorCode
from kop_fast.server.group_coordinator import coordinator_of, kafka_error
from kop_fast.server.registry import api

API_KEY = 10
KEY_TYPE_GROUP = 0
KEY_TYPE_TRANSACTION = 1
_ZERO = datetime.timedelta(0)


async def _lookup(ctx, key_type: int, key: str) -> tuple[ErrorCode, str | None]:
    if key_type == KEY_TYPE_TRANSACTION:
        return ErrorCode.coordinator_not_available, "transactions are not supported"
    if key_type != KEY_TYPE_GROUP:
        return ErrorCode.invalid_request, f"unknown coordinator key type {key_type}"
    code = await coordinator_of(ctx).find_coordinator(key)
    if code == ErrorCode.none:
        return ErrorCode.none, None
    return kafka_error(code), "the group's coordinator partition is not available here"


def _where(ctx, error: ErrorCode) -> dict:
    node = ctx.node
    if error == ErrorCode.none:
        return {"node_id": node.node_id, "host": node.host, "port": node.port}
    return {"node_id": -1, "host": "", "port": -1}


@api(API_KEY, 0, 4)
async def handle_find_coordinator(ctx, request):
    schema = ctx.response_schema
    key_type = getattr(request, "key_type", KEY_TYPE_GROUP)
    if ctx.api_version >= 4:
        keys = request.coordinator_keys
        found = await asyncio.gather(*(_lookup(ctx, key_type, k) for k in keys))
        coordinator_cls = sibling(schema, "Coordinator")
        coordinators = tuple(
            make(coordinator_cls, key=k, error_code=error, error_message=message, **_where(ctx, error))
            for k, (error, message) in zip(keys, found))
        return make(schema, throttle_time=_ZERO, coordinators=coordinators)
    error, message = await _lookup(ctx, key_type, request.key)
    return make(schema, throttle_time=_ZERO, error_code=error, error_message=message, **_where(ctx, error))
