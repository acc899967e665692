"""Credentials -> who the client is: the verified role and the tenant/namespace its
connection works in (sans-io; the keys are read once, at start).

The tenant comes from the client: PLAIN's username, OAUTHBEARER's `tenant=` extension,
else the token's `tenant` claim ("acme" or "acme/prod"), else --kafka-tenant. A tenant
without a namespace gets --kafka-namespace. --allowed-tenants refuses the others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kop_fast.auth.mechanisms import PARSERS, MechanismError
from kop_fast.auth.tokens import TokenError, TokenVerifier

_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


class AuthenticationFailed(Exception):
    """The message says why, for the client and the log; it never holds a token."""


@dataclass(frozen=True, slots=True)
class Principal:
    role: str
    tenant: str
    namespace: str
    expires_at: float | None  # seconds since the epoch; None: the session does not expire
    # The verified token itself, to act for the role against Pulsar; never shown or compared.
    token: str | None = field(default=None, repr=False, compare=False)

    @property
    def scope(self) -> str:
        return f"{self.tenant}/{self.namespace}"


class Authenticator:
    def __init__(self, verifier: TokenVerifier, mechanisms: tuple[str, ...], default_tenant: str,
                 default_namespace: str, allowed_tenants: tuple[str, ...] = ()) -> None:
        self.verifier = verifier
        self.mechanisms = mechanisms
        self.default_tenant = default_tenant
        self.default_namespace = default_namespace
        self.allowed_tenants = frozenset(allowed_tenants)

    @classmethod
    def from_settings(cls, settings) -> "Authenticator":
        return cls(TokenVerifier.from_settings(settings), settings.sasl_enabled_mechanisms,
                   settings.kafka_tenant, settings.kafka_namespace, settings.allowed_tenants)

    def authenticate(self, mechanism: str, message: bytes) -> Principal:
        try:
            credentials = PARSERS[mechanism](message)
            token = self.verifier.verify(credentials.token)
        except (MechanismError, TokenError) as exc:
            raise AuthenticationFailed(f"Authentication failed: {exc}") from None
        named = credentials.tenant
        if named is None:
            claim = token.claims.get("tenant")
            named = claim if isinstance(claim, str) and claim else self.default_tenant
        tenant, _, namespace = named.partition("/")
        namespace = namespace or self.default_namespace
        if not (_NAME.match(tenant) and _NAME.match(namespace)):
            raise AuthenticationFailed(f"Authentication failed: {named!r} is not TENANT or TENANT/NAMESPACE")
        if self.allowed_tenants and tenant not in self.allowed_tenants:
            raise AuthenticationFailed(f"Authentication failed: tenant {tenant} is not allowed")
        return Principal(token.role, tenant, namespace, token.expires_at, credentials.token)
