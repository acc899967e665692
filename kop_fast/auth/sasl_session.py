"""One connection's SASL exchange as a state machine (sans-io: bytes and codes in, answers out).

    AWAIT_HANDSHAKE --SaslHandshake v1--> AWAIT_AUTHENTICATE --SaslAuthenticate--> AUTHENTICATED
    AWAIT_HANDSHAKE --SaslHandshake v0--> AWAIT_RAW_TOKEN --unframed token------> AUTHENTICATED
    AUTHENTICATED --SaslHandshake v1 (KIP-368 re-authentication)--> AWAIT_AUTHENTICATE

Before AUTHENTICATED only ApiVersions, SaslHandshake and SaslAuthenticate are served;
any other request is ILLEGAL_SASL_STATE and the connection closes, as does a failed
authentication. After a v0 handshake (Sarama, old Java clients) the next frame is the
mechanism's raw token with only its 4-byte length: no Kafka request header.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from kop_fast.auth.authenticator import AuthenticationFailed, Authenticator, Principal
from kop_fast.protocol.errors import ErrorCode

API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 17, 36
_BEFORE_AUTH = frozenset((API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE))


class State(enum.Enum):
    AWAIT_HANDSHAKE = "await handshake"
    AWAIT_AUTHENTICATE = "await SaslAuthenticate"
    AWAIT_RAW_TOKEN = "await unframed token"
    AUTHENTICATED = "authenticated"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Outcome:
    error: ErrorCode
    message: str | None = None
    session_lifetime_ms: int = 0  # 0: no expiry (KIP-368)
    close: bool = False  # the connection closes once the answer is written


class SaslSession:
    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator
        self.state = State.AWAIT_HANDSHAKE
        self.mechanism: str | None = None
        self.principal: Principal | None = None

    @property
    def authenticated(self) -> bool:
        return self.state is State.AUTHENTICATED

    @property
    def expects_raw_token(self) -> bool:
        return self.state is State.AWAIT_RAW_TOKEN

    def allows(self, api_key: int) -> bool:
        # While a client re-authenticates (KIP-368) its session so far still holds: requests
        # it pipelined before the new SaslHandshake are served.
        return (self.state is State.AUTHENTICATED or api_key in _BEFORE_AUTH
                or (self.state is State.AWAIT_AUTHENTICATE and self.principal is not None))

    def refuse(self, api_key: int) -> Outcome:
        """A request the state does not allow (the connection closes)."""
        self.state = State.FAILED
        return Outcome(ErrorCode.illegal_sasl_state,
                       f"Unexpected Kafka request of type {api_key} during SASL authentication", close=True)

    def handshake(self, mechanism: str, version: int) -> Outcome:
        if self.state not in (State.AWAIT_HANDSHAKE, State.AUTHENTICATED) or (
                self.state is State.AUTHENTICATED and version == 0):
            self.state = State.FAILED
            return Outcome(ErrorCode.illegal_sasl_state, "SaslHandshake is not expected now", close=True)
        if mechanism not in self.authenticator.mechanisms:
            self.state = State.FAILED  # Kafka closes after answering the enabled list
            return Outcome(ErrorCode.unsupported_sasl_mechanism,
                           f"Unsupported SASL mechanism {mechanism}", close=True)
        self.mechanism = mechanism
        self.state = State.AWAIT_RAW_TOKEN if version == 0 else State.AWAIT_AUTHENTICATE
        return Outcome(ErrorCode.none)

    def authenticate(self, message: bytes, now: float) -> Outcome:
        """A SaslAuthenticate's auth_bytes, or the unframed token after a v0 handshake."""
        if self.state not in (State.AWAIT_AUTHENTICATE, State.AWAIT_RAW_TOKEN):
            self.state = State.FAILED
            return Outcome(ErrorCode.illegal_sasl_state, "SaslAuthenticate before SaslHandshake", close=True)
        try:
            principal = self.authenticator.authenticate(self.mechanism, bytes(message))
        except AuthenticationFailed as exc:
            self.state = State.FAILED
            return Outcome(ErrorCode.sasl_authentication_failed, str(exc), close=True)
        previous = self.principal
        if previous is not None and (previous.role, previous.scope) != (principal.role, principal.scope):
            self.state = State.FAILED  # KIP-368: re-authentication may not change who the client is
            return Outcome(ErrorCode.sasl_authentication_failed,
                           "Re-authentication may not change the principal or tenant", close=True)
        if principal.expires_at is not None and principal.expires_at <= now:
            self.state = State.FAILED
            return Outcome(ErrorCode.sasl_authentication_failed, "Authentication failed: the token has expired",
                           close=True)
        self.principal = principal
        self.state = State.AUTHENTICATED
        lifetime = 0 if principal.expires_at is None else max(1, int((principal.expires_at - now) * 1000))
        return Outcome(ErrorCode.none, session_lifetime_ms=lifetime)
