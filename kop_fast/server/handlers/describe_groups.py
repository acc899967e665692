"""DescribeGroups (key 15) v0-v5: state, protocol and members of each group."""

from __future__ import annotations

import datetime

from kop_fast.protocol.build import make, sibling
from kop_fast.server.group_coordinator import coordinator_of, kafka_error
from kop_fast.server.registry import api

API_KEY = 15
_ZERO = datetime.timedelta(0)
_AUTHORIZED_OPS_UNKNOWN = -(2**31)


@api(API_KEY, 0, 5)
async def handle_describe_groups(ctx, request):
    schema = ctx.response_schema
    described = await coordinator_of(ctx).describe_groups(list(request.groups), ctx.api_version)
    group_cls = sibling(schema, "DescribedGroup")
    member_cls = sibling(schema, "DescribedGroupMember")
    groups = tuple(
        make(group_cls, error_code=kafka_error(g.error_code), group_id=g.group_id, group_state=g.state,
             protocol_type=g.protocol_type, protocol_data=g.protocol_data,
             authorized_operations=_AUTHORIZED_OPS_UNKNOWN,
             members=tuple(make(member_cls, member_id=m.member_id, group_instance_id=m.group_instance_id,
                                client_id=m.client_id, client_host=m.client_host, member_metadata=m.metadata,
                                member_assignment=m.assignment) for m in g.members))
        for g in described)
    return make(schema, throttle_time=_ZERO, groups=groups)
