"""ListGroups (key 16) v0-v4: the groups this process coordinates (v4: filtered by state)."""

from __future__ import annotations

import datetime

from kop_fast.protocol.build import make, sibling
from kop_fast.server.group_coordinator import coordinator_of, kafka_error
from kop_fast.server.registry import api

API_KEY = 16
_ZERO = datetime.timedelta(0)


def error_response(ctx, request, error):
    return make(ctx.response_schema, throttle_time=_ZERO, error_code=kafka_error(error), groups=())


@api(API_KEY, 0, 4, error_response=error_response)
async def handle_list_groups(ctx, request):
    schema = ctx.response_schema
    states = getattr(request, "states_filter", None) or None
    response = await coordinator_of(ctx).list_groups(states)
    group_cls = sibling(schema, "ListedGroup")
    groups = tuple(make(group_cls, group_id=g.group_id, protocol_type=g.protocol_type, group_state=g.state)
                   for g in response.groups)
    return make(schema, throttle_time=_ZERO, error_code=kafka_error(response.error_code), groups=groups)
