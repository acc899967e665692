"""The admin REST adapter against a local HTTP server that answers as Pulsar's admin v2 API documents.

(pulsar-lite has no admin API, so this checks our requests and our reading of
the answers; it is not a stand-in for testing against a real Pulsar cluster.)
"""

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kop_fast.storage.pulsar.admin import PulsarAdmin, PulsarAdminError


class _AdminHandler(BaseHTTPRequestHandler):
    topics: dict = {}

    def log_message(self, *args):
        pass

    def _send(self, status, body=None):
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        parts = self.path.split("/")
        if self.path.endswith("/partitioned"):
            ns = "/".join(parts[4:6])
            return self._send(200, [t for t in self.topics if t.startswith(f"persistent://{ns}/")])
        if self.path.endswith("/partitions"):
            name = "persistent://" + "/".join(parts[4:7])
            return self._send(200, {"partitions": self.topics.get(name, 0)})
        self._send(404)

    def do_PUT(self):
        parts = self.path.split("/")
        name = "persistent://" + "/".join(parts[4:7])
        count = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if name in self.topics:
            return self._send(409, {"reason": "already exists"})
        self.topics[name] = count
        self._send(204)


@pytest.fixture
def admin_url():
    _AdminHandler.topics = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AdminHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_partitioned_topic_lifecycle(admin_url):
    admin = PulsarAdmin(admin_url)

    async def scenario():
        assert await admin.partitions("persistent://public/default/orders") == 0
        assert await admin.create_partitioned("persistent://public/default/orders", 6) is True
        assert await admin.create_partitioned("persistent://public/default/orders", 3) is False
        assert await admin.partitions("persistent://public/default/orders") == 6
        assert await admin.partitioned_topics("public", "default") == ["persistent://public/default/orders"]

    asyncio.run(scenario())


def test_unreachable_admin_is_a_clear_error():
    admin = PulsarAdmin("http://127.0.0.1:9")  # discard port: nothing listens

    with pytest.raises(PulsarAdminError):
        asyncio.run(admin.partitions("persistent://public/default/x"))
