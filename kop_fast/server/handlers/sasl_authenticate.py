"""SaslAuthenticate (key 36) v0-v2: the mechanism's message, verified in one round.

v1+ tell the client its session lifetime (KIP-368), from the token's `exp`: the
connection is closed when it passes unless the client re-authenticates first.
"""

from __future__ import annotations

import datetime
import time

from kop_fast.protocol.build import make
from kop_fast.protocol.errors import ErrorCode
from kop_fast.server.registry import api

API_KEY = 36


@api(API_KEY, 0, 2)
def handle_sasl_authenticate(ctx, request):
    session = getattr(ctx.connection, "sasl", None)
    if session is None:
        return make(ctx.response_schema, error_code=ErrorCode.illegal_sasl_state,
                    error_message="this listener does not use SASL", auth_bytes=b"",
                    session_lifetime=datetime.timedelta(0))
    outcome = session.authenticate(request.auth_bytes, time.time())
    ctx.connection.sasl_outcome(outcome)
    return make(ctx.response_schema, error_code=outcome.error, error_message=outcome.message, auth_bytes=b"",
                session_lifetime=datetime.timedelta(milliseconds=outcome.session_lifetime_ms))
