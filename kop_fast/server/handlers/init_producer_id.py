"""InitProducerId (key 22) v0-v4: producer ids for idempotent producers (transactions are not supported).

Ids are random 53-bit numbers: several kop_fast processes hand them out without
coordinating, and the chance that two live producers share one is negligible.
A producer that asks again with its id and epoch (KIP-360) gets the epoch bumped.
"""

from __future__ import annotations

import datetime
import secrets

from kop_fast.protocol.build import make
from kop_fast.protocol.errors import ErrorCode
from kop_fast.server.registry import api

API_KEY = 22
_ZERO = datetime.timedelta(0)
MAX_EPOCH = 32767


@api(API_KEY, 0, 4)
def handle_init_producer_id(ctx, request):
    schema = ctx.response_schema
    if request.transactional_id is not None:
        # Transactions need a transaction coordinator and control records; we have neither.
        return make(schema, throttle_time=_ZERO, error_code=ErrorCode.transactional_id_authorization_failed,
                    producer_id=-1, producer_epoch=-1)
    producer_id = getattr(request, "producer_id", -1)
    epoch = getattr(request, "producer_epoch", -1)
    if producer_id >= 0 and 0 <= epoch < MAX_EPOCH:
        return make(schema, throttle_time=_ZERO, error_code=ErrorCode.none,
                    producer_id=producer_id, producer_epoch=epoch + 1)
    return make(schema, throttle_time=_ZERO, error_code=ErrorCode.none,
                producer_id=secrets.randbits(53), producer_epoch=0)
