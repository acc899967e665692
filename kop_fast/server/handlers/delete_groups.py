"""DeleteGroups (key 42) v0-v2: only Empty groups can be deleted (NON_EMPTY_GROUP otherwise)."""

from __future__ import annotations

import datetime

from kop_fast.protocol.build import make, sibling
from kop_fast.server.group_coordinator import coordinator_of, kafka_error
from kop_fast.server.registry import api

API_KEY = 42
_ZERO = datetime.timedelta(0)


@api(API_KEY, 0, 2)
async def handle_delete_groups(ctx, request):
    schema = ctx.response_schema
    results = await coordinator_of(ctx).delete_groups(list(request.groups_names))
    result_cls = sibling(schema, "DeletableGroupResult")
    return make(schema, throttle_time=_ZERO,
                results=tuple(make(result_cls, group_id=gid, error_code=kafka_error(error)) for gid, error in results))
