"""TLS contexts (server/tls.py): TLS 1.2 at least, client certificates as asked, and a reload
that new connections see while the listening server keeps its context."""

from __future__ import annotations

import asyncio
import ssl

from kop_fast.config import build_settings
from kop_fast.server.tls import ServerTls, build_context
from tests.security_support import self_signed_cert


def _settings(cert, key, **flags):
    return build_settings({"tls_cert": str(cert), "tls_key": str(key), **flags}, environ={})


def test_context_options(tmp_path):
    cert, key = self_signed_cert(tmp_path)
    context = build_context(_settings(cert, key))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2 and context.verify_mode == ssl.CERT_NONE
    context = build_context(_settings(cert, key, tls_ca=str(cert), tls_client_auth="required"))
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_reload_reaches_new_connections(tmp_path):
    cert, key = self_signed_cert(tmp_path, common_name="first")
    tls = ServerTls(_settings(cert, key))

    async def peer_common_name(port):
        client = ssl.create_default_context(cafile=str(cert))
        client.check_hostname = False
        client.verify_mode = ssl.CERT_NONE
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        from cryptography import x509
        return x509.load_der_x509_certificate(der).subject.rfc4514_string()

    async def scenario():
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=tls.front)
        port = server.sockets[0].getsockname()[1]
        try:
            assert await peer_common_name(port) == "CN=first"
            new_cert, new_key = self_signed_cert(tmp_path, name="second", common_name="second")
            cert.write_bytes(new_cert.read_bytes())
            key.write_bytes(new_key.read_bytes())
            assert tls.reload()
            assert await peer_common_name(port) == "CN=second"
            key.write_text("garbage")
            assert not tls.reload()  # a bad file keeps the last good certificate
            assert await peer_common_name(port) == "CN=second"
        finally:
            server.close()

    asyncio.run(scenario())
