"""A connection of a SASL listener (SASL_PLAINTEXT, SASL_SSL): KafkaConnection plus the
SASL exchange (`auth/sasl_session.py`) in front of its dispatch.

Until the client has authenticated, only ApiVersions and the SASL APIs are served;
anything else is answered ILLEGAL_SASL_STATE where the API has a one-code error
answer and the connection is closed either way. Once authenticated, the connection's
`node` becomes the client's tenant view (`server/tenancy.py`), so every handler
finds topics and groups in the tenant's namespace without knowing about tenants.
A subclass, so PLAINTEXT connections pay nothing for any of this.
"""

from __future__ import annotations

import asyncio
import logging
import time

from kop_fast.auth.sasl_session import Outcome, SaslSession
from kop_fast.protocol.errors import ErrorCode
from kop_fast.protocol.headers import parse_request_header, peek_api
from kop_fast.protocol.schemas import is_flexible
from kop_fast.server.connection import KafkaConnection, RequestContext, _Slot
from kop_fast.server.tenancy import TenantNode

log = logging.getLogger("kop_fast.sasl")


class SaslConnection(KafkaConnection):
    def __init__(self, node, listener) -> None:
        super().__init__(node, listener)
        self.real_node = node
        self.sasl = SaslSession(node.authenticator)
        self._expiry: asyncio.TimerHandle | None = None

    def _dispatch(self, frame) -> None:
        session = self.sasl
        if session.authenticated:
            super()._dispatch(frame)
            return
        if session.expects_raw_token:
            self._raw_token(frame)
            return
        api_key, _version, _correlation = peek_api(frame)
        if session.allows(api_key):
            super()._dispatch(frame)
            return
        self._refuse_before_authentication(frame, api_key, session.refuse(api_key))

    def _refuse_before_authentication(self, frame, api_key: int, outcome: Outcome) -> None:
        log.warning("closing connection from %s: %s", self.peer_name, outcome.message, extra={"peer": self.peer_name})
        self._close_reason = outcome.message
        entry = self.node.registry.get(api_key)
        if entry is not None and entry.error_response is not None:
            try:
                api_version = peek_api(frame)[1]
                header, body_offset = parse_request_header(frame, is_flexible(api_key, api_version))
                request = entry.decode(api_version, frame, body_offset)
                ctx = RequestContext(self.node, self, header)
                slot = _Slot(len(frame))
                self._slots.append(slot)
                self._complete(slot, ctx, entry.error_response(ctx, request, ErrorCode.illegal_sasl_state))
            except Exception:  # a frame we cannot even answer: just close
                pass
        self.close()

    def _raw_token(self, frame) -> None:
        """The unframed token after a SaslHandshake v0: answered with an empty, length-prefixed
        challenge on success (Kafka's SaslServerAuthenticator), closed on failure."""
        outcome = self.sasl.authenticate(frame, time.time())
        if outcome.error != ErrorCode.none:
            self.sasl_outcome(outcome)
            self.close()
            return
        slot = _Slot()
        slot.parts = [b"\0\0\0\0"]
        slot.ready = True
        self._slots.append(slot)
        self._write_ready()
        self.sasl_outcome(outcome)

    def sasl_outcome(self, outcome: Outcome) -> None:
        """What the handlers report: a failure closes once its answer is out (transport.close
        flushes first); a success scopes the connection to its tenant and arms the expiry."""
        if outcome.close:
            log.warning("SASL authentication from %s refused: %s", self.peer_name, outcome.message,
                        extra={"peer": self.peer_name})
            self._close_reason = outcome.message
            asyncio.get_running_loop().call_soon(self.close)  # after the answer is written
            return
        principal = self.sasl.principal
        if not self.sasl.authenticated or principal is None:
            return
        if not isinstance(self.node, TenantNode):
            self.node = TenantNode(self.real_node, principal.tenant, principal.namespace, principal.role,
                                   principal.token)
            log.info("connection from %s authenticated as role %s, tenant %s", self.peer_name, principal.role,
                     principal.scope, extra={"peer": self.peer_name, "role": principal.role})
        else:
            self.node.storage.use_token(principal.token)  # re-authenticated (KIP-368): same role, new token
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if outcome.session_lifetime_ms:
            self._expiry = asyncio.get_running_loop().call_later(outcome.session_lifetime_ms / 1000,
                                                                 self._session_expired)

    def _session_expired(self) -> None:
        self._close_reason = "SASL session expired (token exp)"
        log.info("closing connection from %s: its SASL session expired", self.peer_name,
                 extra={"peer": self.peer_name})
        self.close()

    def connection_lost(self, exc) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        super().connection_lost(exc)
