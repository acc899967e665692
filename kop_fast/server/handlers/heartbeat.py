"""Heartbeat (key 12) v0-v4: answered at once (the member's session timer moves)."""

from __future__ import annotations

import datetime

from kop_fast.coordinator import HeartbeatRequest
from kop_fast.protocol.build import make
from kop_fast.server.group_coordinator import coordinator_of, kafka_error
from kop_fast.server.registry import api

API_KEY = 12
_ZERO = datetime.timedelta(0)


def error_response(ctx, request, error):
    return make(ctx.response_schema, throttle_time=_ZERO, error_code=kafka_error(error))


@api(API_KEY, 0, 4, error_response=error_response)
def handle_heartbeat(ctx, request):
    response = coordinator_of(ctx).heartbeat(HeartbeatRequest(
        group_id=request.group_id,
        generation_id=request.generation_id,
        member_id=request.member_id,
        group_instance_id=getattr(request, "group_instance_id", None),
    ))
    return make(ctx.response_schema, throttle_time=_ZERO, error_code=kafka_error(response.error_code))
