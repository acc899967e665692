"""JWT verification as Pulsar's AuthenticationProviderToken does it, with PyJWT.

Keys come in Pulsar's forms (tokenSecretKey / tokenPublicKey): `file:/path` or
`file:///path` (the file's bytes), `data:;base64,<b64>` (a data URL) or `base64:<b64>`.
A secret key is raw bytes (HS256/384/512); a public key is PEM or DER, RSA (RS256...)
or EC (ES256...). The role is the `sub` claim (Pulsar's default tokenAuthClaim);
`exp`, when present, is honoured (Pulsar accepts tokens without one).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import jwt

_HMAC = ["HS256", "HS384", "HS512"]
_RSA = ["RS256", "RS384", "RS512"]
_EC = ["ES256", "ES384", "ES512"]


class TokenError(Exception):
    """A token that is not accepted; the message names why, never the token."""


def read_key(source: str) -> bytes:
    """The bytes a Pulsar key setting names."""
    if source.startswith("data:"):
        meta, sep, payload = source[5:].partition(",")
        if not sep:
            raise ValueError("a data: key needs a comma before its content")
        return base64.b64decode(payload) if meta.endswith(";base64") else unquote(payload).encode()
    if source.startswith("base64:"):
        return base64.b64decode(source[7:])
    if source.startswith("file:"):
        path = urlparse(source).path if source.startswith("file://") else source[5:]
        return Path(path).read_bytes()
    raise ValueError("a key is file:/PATH, data:;base64,KEY or base64:KEY")


def _public_key(raw: bytes):
    from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key
    if raw.lstrip().startswith(b"-----BEGIN"):
        return load_pem_public_key(raw)
    return load_der_public_key(raw)


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    role: str
    expires_at: float | None  # seconds since the epoch (`exp`), None: never
    claims: dict


class TokenVerifier:
    def __init__(self, secret_key: bytes | None = None, public_key: bytes | None = None) -> None:
        if (secret_key is None) == (public_key is None):
            raise ValueError("give exactly one of a secret key and a public key")
        if secret_key is not None:
            self._key, self._algorithms = secret_key, _HMAC
        else:
            from cryptography.hazmat.primitives.asymmetric import ec, rsa
            key = _public_key(public_key)
            if isinstance(key, rsa.RSAPublicKey):
                self._algorithms = _RSA
            elif isinstance(key, ec.EllipticCurvePublicKey):
                self._algorithms = _EC
            else:
                raise ValueError("the public key is neither RSA nor EC")
            self._key = key

    @classmethod
    def from_settings(cls, settings) -> "TokenVerifier":
        if settings.auth_token_secret_key:
            return cls(secret_key=read_key(settings.auth_token_secret_key))
        return cls(public_key=read_key(settings.auth_token_public_key))

    def verify(self, token: str) -> VerifiedToken:
        try:
            claims = jwt.decode(token, self._key, algorithms=self._algorithms,
                                options={"require": ["sub"], "verify_aud": False})
        except jwt.ExpiredSignatureError:
            raise TokenError("the token has expired") from None
        except jwt.InvalidSignatureError:
            raise TokenError("the token's signature does not verify") from None
        except jwt.MissingRequiredClaimError:
            raise TokenError("the token has no subject (sub) claim") from None
        except jwt.InvalidTokenError as exc:
            raise TokenError(f"the token is not valid: {type(exc).__name__}") from None
        role = claims.get("sub")
        if not isinstance(role, str) or not role:
            raise TokenError("the token's subject (sub) is not a name")
        exp = claims.get("exp")
        return VerifiedToken(role, float(exp) if exp is not None else None, claims)
