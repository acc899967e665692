"""JoinGroup (key 11) v0-v9: parks until the rebalance completes (see kop_fast.coordinator.group)."""

from __future__ import annotations

import datetime

from kop_fast.coordinator import JoinRequest
from kop_fast.protocol.build import make, sibling
from kop_fast.server.group_coordinator import client_host, coordinator_of, kafka_error, millis
from kop_fast.server.registry import api

API_KEY = 11
_ZERO = datetime.timedelta(0)


def to_request(ctx, request) -> JoinRequest:
    version = ctx.api_version
    session_ms = millis(request.session_timeout)
    # v0 has no rebalance timeout: the session timeout stands in (as in Kafka).
    rebalance_ms = millis(request.rebalance_timeout) if version >= 1 else session_ms
    instance_id = getattr(request, "group_instance_id", None)
    return JoinRequest(
        group_id=request.group_id,
        member_id=request.member_id,
        client_id=ctx.header.client_id or "",
        client_host=client_host(ctx),
        session_timeout_ms=session_ms,
        rebalance_timeout_ms=rebalance_ms,
        protocol_type=request.protocol_type,
        protocols=[(p.name, p.metadata) for p in request.protocols],
        group_instance_id=instance_id,
        require_known_member_id=version >= 4 and instance_id is None,
        supports_skip_assignment=version >= 9,
        reason=getattr(request, "reason", None),
    )


def to_response(ctx, response):
    schema = ctx.response_schema
    member_cls = sibling(schema, "JoinGroupResponseMember")
    members = tuple(make(member_cls, member_id=m.member_id, group_instance_id=m.group_instance_id,
                         metadata=m.metadata) for m in response.members)
    protocol_name = response.protocol_name
    if protocol_name is None and ctx.api_version < 7:
        protocol_name = ""  # nullable only from v7 (Kafka sends "" before)
    return make(schema, throttle_time=_ZERO, error_code=kafka_error(response.error_code),
                generation_id=response.generation_id, protocol_type=response.protocol_type,
                protocol_name=protocol_name, leader=response.leader or "",
                skip_assignment=response.skip_assignment, member_id=response.member_id or "",
                members=members)


def error_response(ctx, request, error):
    return make(ctx.response_schema, throttle_time=_ZERO, error_code=kafka_error(error), generation_id=-1,
                protocol_type=None, protocol_name=None if ctx.api_version >= 7 else "", leader="",
                skip_assignment=False, member_id=request.member_id, members=())


@api(API_KEY, 0, 9, error_response=error_response)
async def handle_join_group(ctx, request):
    response = await coordinator_of(ctx).join(to_request(ctx, request))
    return to_response(ctx, response)
