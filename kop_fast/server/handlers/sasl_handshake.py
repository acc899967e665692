"""SaslHandshake (key 17) v0-v1: picks the mechanism; the enabled list is always answered.

After v0 the client sends its token unframed (no Kafka header): the connection
(`server/sasl_connection.py`) takes that frame. On a listener without SASL the
answer is ILLEGAL_SASL_STATE.
"""

from __future__ import annotations

from kop_fast.protocol.build import make
from kop_fast.protocol.errors import ErrorCode
from kop_fast.server.registry import api

API_KEY = 17


@api(API_KEY, 0, 1)
def handle_sasl_handshake(ctx, request):
    session = getattr(ctx.connection, "sasl", None)
    if session is None:
        return make(ctx.response_schema, error_code=ErrorCode.illegal_sasl_state, mechanisms=())
    outcome = session.handshake(request.mechanism, ctx.api_version)
    ctx.connection.sasl_outcome(outcome)
    return make(ctx.response_schema, error_code=outcome.error, mechanisms=session.authenticator.mechanisms)
