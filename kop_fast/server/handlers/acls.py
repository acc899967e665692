"""DescribeAcls, CreateAcls, DeleteAcls (keys 29, 30, 31) v1-v3: answered as a Kafka broker
without an authorizer answers them (SECURITY_DISABLED, with Kafka's messages): kop_fast
keeps no ACLs, every client may do everything."""

from __future__ import annotations

import datetime

from kop_fast.protocol.build import make, sibling
from kop_fast.protocol.errors import ErrorCode
from kop_fast.server.registry import api

DESCRIBE_ACLS, CREATE_ACLS, DELETE_ACLS = 29, 30, 31
_ZERO = datetime.timedelta(0)
# Kafka's words: DescribeAcls says where, the others do not.
_DESCRIBE_MESSAGE = "No Authorizer is configured on the broker"
_ALTER_MESSAGE = "No Authorizer is configured."


@api(DESCRIBE_ACLS, 1, 3)
def handle_describe_acls(ctx, request):
    return make(ctx.response_schema, throttle_time=_ZERO, error_code=ErrorCode.security_disabled,
                error_message=_DESCRIBE_MESSAGE, resources=())


@api(CREATE_ACLS, 1, 3)
def handle_create_acls(ctx, request):
    schema = ctx.response_schema
    result = make(sibling(schema, "AclCreationResult"), error_code=ErrorCode.security_disabled,
                  error_message=_ALTER_MESSAGE)
    return make(schema, throttle_time=_ZERO, results=(result,) * len(request.creations))


@api(DELETE_ACLS, 1, 3)
def handle_delete_acls(ctx, request):
    schema = ctx.response_schema
    result = make(sibling(schema, "DeleteAclsFilterResult"), error_code=ErrorCode.security_disabled,
                  error_message=_ALTER_MESSAGE, matching_acls=())
    return make(schema, throttle_time=_ZERO, filter_results=(result,) * len(request.filters))
