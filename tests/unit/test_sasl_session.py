"""The SASL state machine of one connection (sans-io), and the v0 unframed exchange over a
real socket to a KafkaNode on the memory storage."""

from __future__ import annotations

import asyncio
import struct
import time

import jwt

from kop_fast.auth.authenticator import Authenticator
from kop_fast.auth.sasl_session import SaslSession, State
from kop_fast.auth.tokens import TokenVerifier
from kop_fast.protocol.errors import ErrorCode

KEY = b"0123456789abcdef0123456789abcdef"


def plain(tenant="acme/prod", role="alice", expires_in=60, key=KEY) -> bytes:
    token = jwt.encode({"sub": role, "exp": int(time.time() + expires_in)}, key, algorithm="HS256")
    return b"\0" + tenant.encode() + b"\0token:" + token.encode()


def session() -> SaslSession:
    return SaslSession(Authenticator(TokenVerifier(secret_key=KEY), ("PLAIN", "OAUTHBEARER"), "public", "default"))


def test_v1_handshake_then_authenticate():
    s = session()
    assert s.allows(18) and s.allows(17) and not s.allows(0)
    assert s.handshake("PLAIN", 1).error == ErrorCode.none and s.state is State.AWAIT_AUTHENTICATE
    outcome = s.authenticate(plain(expires_in=100), time.time())
    assert outcome.error == ErrorCode.none and 98_000 < outcome.session_lifetime_ms <= 100_000
    assert s.authenticated and s.allows(0) and s.principal.scope == "acme/prod"


def test_v0_handshake_expects_the_raw_token():
    s = session()
    s.handshake("PLAIN", 0)
    assert s.expects_raw_token
    assert s.authenticate(plain(), time.time()).error == ErrorCode.none and s.authenticated


def test_failures_close():
    s = session()
    out = s.handshake("SCRAM-SHA-512", 1)
    assert out.error == ErrorCode.unsupported_sasl_mechanism and out.close
    s = session()
    out = s.authenticate(plain(), time.time())
    assert out.error == ErrorCode.illegal_sasl_state and out.close
    s = session()
    s.handshake("PLAIN", 1)
    out = s.authenticate(plain(key=b"wrong key, but thirty-two bytes!"), time.time())
    assert out.error == ErrorCode.sasl_authentication_failed and "signature" in out.message and out.close
    s = session()
    out = s.refuse(0)
    assert out.error == ErrorCode.illegal_sasl_state and out.close and s.state is State.FAILED


def test_reauthentication_keeps_the_principal():
    s = session()
    s.handshake("PLAIN", 1)
    s.authenticate(plain(expires_in=10), time.time())
    assert s.handshake("PLAIN", 1).error == ErrorCode.none
    assert s.allows(0)  # the session so far still holds while it re-authenticates
    out = s.authenticate(plain(expires_in=1000), time.time())
    assert out.error == ErrorCode.none and out.session_lifetime_ms > 900_000
    s.handshake("PLAIN", 1)
    out = s.authenticate(plain(tenant="globex/prod"), time.time())
    assert out.error == ErrorCode.sasl_authentication_failed and out.close


def test_v0_unframed_exchange_over_a_socket():
    from kop_fast.config import build_settings
    from kop_fast.server.node import KafkaNode
    from kop_fast.storage.memory import MemoryStorage
    import base64

    async def scenario():
        settings = build_settings({"listen": "SASL_PLAINTEXT://127.0.0.1:0",
                                   "auth_token_secret_key": "base64:" + base64.b64encode(KEY).decode()}, environ={})
        storage = MemoryStorage()
        await storage.start()
        node = KafkaNode(settings, storage, "memory-cluster")
        [(host, port)] = await node.start()
        try:
            reader, writer = await asyncio.open_connection(host, port)
            payload = struct.pack(">hhih", 17, 0, 1, 4) + b"test" + struct.pack(">h", 5) + b"PLAIN"
            writer.write(struct.pack(">i", len(payload)) + payload)
            size = struct.unpack(">i", await reader.readexactly(4))[0]
            frame = await reader.readexactly(size)
            assert struct.unpack(">h", frame[4:6])[0] == 0
            token = plain()
            writer.write(struct.pack(">i", len(token)) + token)  # unframed: no request header
            assert await reader.readexactly(4) == b"\0\0\0\0"
            metadata = struct.pack(">hhih", 3, 1, 2, 4) + b"test" + struct.pack(">i", 0)
            writer.write(struct.pack(">i", len(metadata)) + metadata)
            size = struct.unpack(">i", await reader.readexactly(4))[0]
            frame = await reader.readexactly(size)
            assert struct.unpack(">i", frame[:4])[0] == 2  # Metadata answered after authentication
            [conn] = node.connections
            assert conn.node.tenant == "acme" and conn.node.storage.scope == "acme/prod"
            writer.close()
        finally:
            await node.stop()
            await storage.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))
