"""Keys, tokens and certificates made at test time (cryptography, PyJWT), and raw SASL frames."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import socket
import struct
import time
from pathlib import Path

import jwt

HS256_KEY = b"kop-fast test key, 32 bytes long!"


def secret_key_option(key: bytes = HS256_KEY) -> str:
    return "base64:" + base64.b64encode(key).decode()


def hs256_token(role: str, key: bytes = HS256_KEY, expires_in: float = 3600, **claims) -> str:
    return jwt.encode({"sub": role, "exp": int(time.time() + expires_in), **claims}, key, algorithm="HS256")


def rsa_keypair(directory: Path) -> tuple[object, Path]:
    """A private RSA key and the path of its public key (PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = directory / "public.pem"
    public.write_bytes(private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def self_signed_cert(directory: Path, name: str = "server", common_name: str = "localhost") -> tuple[Path, Path]:
    """(certificate, key) PEM files of a self-signed certificate for localhost and 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


# -- raw SASL requests (non-flexible versions: header v1) ------------------------------------------
def _frame(api_key: int, version: int, body: bytes, correlation_id: int = 1) -> bytes:
    payload = struct.pack(">hhih", api_key, version, correlation_id, 4) + b"test" + body
    return struct.pack(">i", len(payload)) + payload


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def recv_frame_or_none(sock: socket.socket) -> bytes | None:
    """One response frame, or None when the server closed the connection."""
    try:
        return _recv_frame(sock)
    except (ConnectionResetError, BrokenPipeError):
        return None


def _send_then_receive(sock: socket.socket, frame: bytes) -> bytes | None:
    try:
        sock.sendall(frame)
    except (ConnectionResetError, BrokenPipeError):
        return None
    return recv_frame_or_none(sock)


def _recv_frame(sock: socket.socket) -> bytes | None:
    head = b""
    while len(head) < 4:
        chunk = sock.recv(4 - len(head))
        if not chunk:
            return None
        head += chunk
    size = struct.unpack(">i", head)[0]
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def sasl_handshake(sock: socket.socket, mechanism: str, version: int = 1) -> tuple[int, list[str]]:
    sock.sendall(_frame(17, version, _string(mechanism)))
    frame = recv_frame_or_none(sock)
    assert frame is not None, "closed before answering SaslHandshake"
    error, count = struct.unpack(">hi", frame[4:10])
    names, at = [], 10
    for _ in range(count):
        n = struct.unpack(">h", frame[at:at + 2])[0]
        names.append(frame[at + 2:at + 2 + n].decode())
        at += 2 + n
    return error, names


def sasl_authenticate(sock: socket.socket, auth_bytes: bytes) -> tuple[int, str | None, int]:
    """SaslAuthenticate v1: (error code, error message, session lifetime ms)."""
    sock.sendall(_frame(36, 1, struct.pack(">i", len(auth_bytes)) + auth_bytes))
    frame = recv_frame_or_none(sock)
    assert frame is not None, "closed before answering SaslAuthenticate"
    error, n = struct.unpack(">hh", frame[4:8])
    at = 8
    message = None
    if n >= 0:
        message, at = frame[at:at + n].decode(), at + n
    size = struct.unpack(">i", frame[at:at + 4])[0]
    at += 4 + size
    lifetime = struct.unpack(">q", frame[at:at + 8])[0]
    return error, message, lifetime


def plain_message(username: str, token: str) -> bytes:
    return b"\0" + username.encode() + b"\0" + b"token:" + token.encode()


def metadata_v1(sock: socket.socket, correlation_id: int = 7) -> bytes | None:
    """Metadata v1 for no topics; the raw response, or None when the connection was closed."""
    return _send_then_receive(sock, _frame(3, 1, struct.pack(">i", 0), correlation_id))


def produce_v3(sock: socket.socket) -> bytes | None:
    """A Produce v3 with no topics (acks=1): the answer, or None when closed."""
    body = struct.pack(">hhii", -1, 1, 1000, 0)
    return _send_then_receive(sock, _frame(0, 3, body))
