"""Token keys in Pulsar's forms, verification with PyJWT, the SASL mechanisms' messages, and
who an authenticated client is (tenant/namespace)."""

from __future__ import annotations

import base64
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kop_fast.auth.authenticator import AuthenticationFailed, Authenticator
from kop_fast.auth.mechanisms import MechanismError, parse_oauthbearer, parse_plain
from kop_fast.auth.tokens import TokenError, TokenVerifier, read_key

KEY = b"0123456789abcdef0123456789abcdef"


def token(key=KEY, algorithm="HS256", **claims):
    return jwt.encode({"sub": "alice", "exp": int(time.time()) + 60, **claims}, key, algorithm=algorithm)


def test_key_forms_of_pulsar(tmp_path):
    path = tmp_path / "secret.key"
    path.write_bytes(KEY)
    b64 = base64.b64encode(KEY).decode()
    assert read_key(f"file:{path}") == KEY
    assert read_key(f"file://{path}") == KEY
    assert read_key(f"data:;base64,{b64}") == KEY
    assert read_key(f"base64:{b64}") == KEY
    with pytest.raises(ValueError):
        read_key(b64)


def test_hs256_verifies_role_and_expiry():
    verifier = TokenVerifier(secret_key=KEY)
    verified = verifier.verify(token())
    assert verified.role == "alice" and verified.expires_at > time.time()
    assert TokenVerifier(secret_key=KEY).verify(jwt.encode({"sub": "x"}, KEY, algorithm="HS256")).expires_at is None
    with pytest.raises(TokenError, match="signature"):
        verifier.verify(token(key=b"another key, also thirty-two bytes"))
    with pytest.raises(TokenError, match="expired"):
        verifier.verify(token(exp=int(time.time()) - 10))
    with pytest.raises(TokenError, match="subject"):
        verifier.verify(jwt.encode({"exp": int(time.time()) + 60}, KEY, algorithm="HS256"))
    with pytest.raises(TokenError, match="not valid"):
        verifier.verify("not a jwt")


def test_public_keys_pem_and_der_rs256_es256():
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert TokenVerifier(public_key=pem).verify(token(rsa_key, "RS256")).role == "alice"
    ec_key = ec.generate_private_key(ec.SECP256R1())
    der = ec_key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert TokenVerifier(public_key=der).verify(token(ec_key, "ES256")).role == "alice"
    with pytest.raises(TokenError):  # an HS256 token signed with the public key's bytes: not accepted
        TokenVerifier(public_key=pem).verify(_hs256_signed_with(pem))


def _hs256_signed_with(secret: bytes) -> str:
    """The algorithm-confusion forgery (PyJWT itself refuses to make it)."""
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(
        json.dumps({"sub": "mallory", "exp": int(time.time()) + 60}).encode())
    return signing + "." + b64(hmac.new(secret, signing.encode(), hashlib.sha256).digest())


def test_plain_message():
    creds = parse_plain(b"\0acme/prod\0token:abc")
    assert (creds.token, creds.tenant) == ("abc", "acme/prod")
    for bad in (b"acme\0token:abc", b"\0acme\0password", b"\0\0token:abc"):
        with pytest.raises(MechanismError):
            parse_plain(bad)


def test_oauthbearer_message_and_extensions():
    creds = parse_oauthbearer(b"n,,\x01auth=Bearer abc.def\x01tenant=acme/prod\x01\x01")
    assert (creds.token, creds.tenant) == ("abc.def", "acme/prod")
    assert parse_oauthbearer(b"n,a=alice,\x01auth=Bearer t\x01\x01").tenant is None
    for bad in (b"auth=Bearer t", b"n,,\x01auth=Basic t\x01\x01", b"n,,\x01noequals\x01\x01"):
        with pytest.raises(MechanismError):
            parse_oauthbearer(bad)


def authenticator(allowed=()):
    return Authenticator(TokenVerifier(secret_key=KEY), ("PLAIN", "OAUTHBEARER"), "public", "default", allowed)


def test_tenant_and_namespace_from_the_client_or_the_token():
    auth = authenticator()
    p = auth.authenticate("PLAIN", b"\0acme/prod\0token:" + token().encode())
    assert (p.role, p.tenant, p.namespace) == ("alice", "acme", "prod")
    assert auth.authenticate("PLAIN", b"\0acme\0token:" + token().encode()).scope == "acme/default"
    oauth = f"n,,\x01auth=Bearer {token(tenant='globex/eu')}\x01\x01".encode()
    assert auth.authenticate("OAUTHBEARER", oauth).scope == "globex/eu"  # the claim, without an extension
    oauth = f"n,,\x01auth=Bearer {token(tenant='globex/eu')}\x01tenant=acme\x01\x01".encode()
    assert auth.authenticate("OAUTHBEARER", oauth).scope == "acme/default"  # the extension first
    plain = f"n,,\x01auth=Bearer {token()}\x01\x01".encode()
    assert auth.authenticate("OAUTHBEARER", plain).scope == "public/default"  # neither: --kafka-tenant


def test_refusals_name_the_reason_never_the_token():
    secret = token(key=b"another key, also thirty-two bytes")
    with pytest.raises(AuthenticationFailed) as refused:
        authenticator().authenticate("PLAIN", b"\0acme\0token:" + secret.encode())
    assert "signature" in str(refused.value) and secret not in str(refused.value)
    with pytest.raises(AuthenticationFailed, match="not allowed"):
        authenticator(("acme",)).authenticate("PLAIN", b"\0globex\0token:" + token().encode())
    with pytest.raises(AuthenticationFailed, match="TENANT"):
        authenticator().authenticate("PLAIN", b"\0a/b/c\0token:" + token().encode())
