"""The client messages of the SASL mechanisms, parsed (sans-io).

PLAIN (RFC 4616): `authzid NUL username NUL password`. As in KoP, the username is the
tenant (`acme`) or tenant/namespace (`acme/prod`), and the password is `token:<JWT>`.

OAUTHBEARER (RFC 7628 client first message): `n,[a=authzid],` then `\\x01`-separated
`key=value` pairs, `auth=Bearer <JWT>` among them, ending `\\x01\\x01`. The other pairs
are SASL extensions (KIP-342); `tenant=acme` or `tenant=acme/prod` names the tenant.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class MechanismError(Exception):
    """A client message that does not follow its mechanism."""


@dataclass(frozen=True, slots=True)
class Credentials:
    token: str
    tenant: str | None = None  # "tenant" or "tenant/namespace" as the client named it
    extensions: dict = field(default_factory=dict)


def parse_plain(message: bytes) -> Credentials:
    parts = message.split(b"\0")
    if len(parts) != 3:
        raise MechanismError("PLAIN expects authzid NUL username NUL password")
    try:
        username, password = parts[1].decode(), parts[2].decode()
    except UnicodeDecodeError:
        raise MechanismError("PLAIN username and password must be UTF-8") from None
    if not password.startswith("token:"):
        raise MechanismError("PLAIN password must be token:<JWT>")
    if not username:
        raise MechanismError("PLAIN username must name the tenant (tenant or tenant/namespace)")
    return Credentials(password[6:], username)


def parse_oauthbearer(message: bytes) -> Credentials:
    try:
        text = message.decode()
    except UnicodeDecodeError:
        raise MechanismError("OAUTHBEARER message must be UTF-8") from None
    gs2, sep, rest = text.partition("\x01")
    if not sep or not gs2.startswith(("n,", "y,")):
        raise MechanismError("OAUTHBEARER message must start with a GS2 header (n,,)")
    pairs = {}
    for item in rest.split("\x01"):
        if not item:
            continue
        key, eq, value = item.partition("=")
        if not eq:
            raise MechanismError("OAUTHBEARER key/value pair without '='")
        pairs[key] = value
    auth = pairs.pop("auth", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise MechanismError("OAUTHBEARER message has no auth=Bearer <token>")
    return Credentials(token.strip(), pairs.get("tenant"), pairs)


PARSERS = {"PLAIN": parse_plain, "OAUTHBEARER": parse_oauthbearer}
