"""LeaveGroup (key 13) v0-v5: v0-v2 one member id, v3+ a batch of members (KIP-345)."""

from __future__ import annotations

import datetime

from kop_fast.coordinator import LeaveMember, LeaveRequest
from kop_fast.protocol.build import make, sibling
from kop_fast.server.group_coordinator import coordinator_of, kafka_error
from kop_fast.server.registry import api

API_KEY = 13
_ZERO = datetime.timedelta(0)


def error_response(ctx, request, error):
    return make(ctx.response_schema, throttle_time=_ZERO, error_code=kafka_error(error), members=())


@api(API_KEY, 0, 5, error_response=error_response)
async def handle_leave_group(ctx, request):
    schema = ctx.response_schema
    if ctx.api_version < 3:
        members = [LeaveMember(member_id=request.member_id)]
    else:
        members = [LeaveMember(member_id=m.member_id, group_instance_id=m.group_instance_id,
                               reason=getattr(m, "reason", None)) for m in request.members]
    response = await coordinator_of(ctx).leave(LeaveRequest(group_id=request.group_id, members=members))
    if ctx.api_version < 3:
        return make(schema, throttle_time=_ZERO, error_code=kafka_error(response.legacy_error_code))
    member_cls = sibling(schema, "MemberResponse")
    return make(schema, throttle_time=_ZERO, error_code=kafka_error(response.error_code),
                members=tuple(make(member_cls, member_id=m.member_id, group_instance_id=m.group_instance_id,
                                   error_code=kafka_error(m.error_code)) for m in response.members))
