"""TLS of SSL and SASL_SSL listeners with the standard ssl module, certificates re-read on SIGHUP.

A listening server keeps the SSLContext it was created with, so the one it holds is
only a front: its sni_callback (run for every ClientHello, with or without a server
name) moves the connection onto the newest context. `reload()` builds a new context
from the files; connections already open keep the one they shook hands with.
"""

from __future__ import annotations

import logging
import ssl

log = logging.getLogger("kop_fast.tls")

_CLIENT_AUTH = {"none": ssl.CERT_NONE, "requested": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def build_context(settings) -> ssl.SSLContext:
    """A server context from --tls-cert/--tls-key/--tls-ca/--tls-client-auth; TLS 1.2 at least."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(settings.tls_cert), str(settings.tls_key))
    if settings.tls_ca is not None:
        context.load_verify_locations(cafile=str(settings.tls_ca))
    context.verify_mode = _CLIENT_AUTH[settings.tls_client_auth]
    return context


class ServerTls:
    def __init__(self, settings) -> None:
        self.settings = settings
        self.current = build_context(settings)  # raises (ssl.SSLError, OSError) on bad files
        self.front = build_context(settings)
        self.front.sni_callback = self._pick_current

    def _pick_current(self, ssl_object, server_name, front) -> None:
        ssl_object.context = self.current
        return None

    def reload(self) -> bool:
        """Re-read the certificate files for new connections; a failure keeps the old ones."""
        try:
            self.current = build_context(self.settings)
        except (ssl.SSLError, OSError) as exc:
            log.error("TLS certificate reload failed, keeping the previous one: %s", exc)
            return False
        log.info("TLS certificate reloaded from %s", self.settings.tls_cert)
        return True
