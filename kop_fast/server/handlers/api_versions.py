"""ApiVersions (key 18): the answer is built from the handler registry, so only what works is advertised."""

from __future__ import annotations

import datetime

from kop_fast.protocol.build import make, sibling
from kop_fast.protocol.errors import ErrorCode
from kop_fast.server.registry import api

API_KEY = 18
_ZERO = datetime.timedelta(0)


@api(API_KEY, 0, 3)
def handle_api_versions(ctx, request):
    # v3+ (KIP-511) name the client software; the connection logs who it is serving.
    ctx.connection.identify(ctx.header.client_id, getattr(request, "client_software_name", None),
                            getattr(request, "client_software_version", None))
    schema = ctx.response_schema
    api_version = sibling(schema, "ApiVersion")
    keys = tuple(api_version(api_key=k, min_version=lo, max_version=hi)
                 for k, lo, hi in ctx.node.registry.supported())
    return make(schema, error_code=ErrorCode.none, api_keys=keys, throttle_time=_ZERO)
