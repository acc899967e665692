"""SyncGroup (key 14) v0-v5: the leader's assignment, answered once it is persisted."""

from __future__ import annotations

import datetime

from kop_fast.coordinator import SyncRequest
from kop_fast.protocol.build import make
from kop_fast.server.group_coordinator import coordinator_of, kafka_error
from kop_fast.server.registry import api

API_KEY = 14
_ZERO = datetime.timedelta(0)


def error_response(ctx, request, error):
    return make(ctx.response_schema, throttle_time=_ZERO, error_code=kafka_error(error), protocol_type=None,
                protocol_name=None, assignment=b"")


@api(API_KEY, 0, 5, error_response=error_response)
async def handle_sync_group(ctx, request):
    req = SyncRequest(
        group_id=request.group_id,
        generation_id=request.generation_id,
        member_id=request.member_id,
        assignments=[(a.member_id, a.assignment) for a in request.assignments],
        group_instance_id=getattr(request, "group_instance_id", None),
        protocol_type=getattr(request, "protocol_type", None),
        protocol_name=getattr(request, "protocol_name", None),
    )
    response = await coordinator_of(ctx).sync(req)
    return make(ctx.response_schema, throttle_time=_ZERO, error_code=kafka_error(response.error_code),
                protocol_type=response.protocol_type, protocol_name=response.protocol_name,
                assignment=response.assignment or b"")
