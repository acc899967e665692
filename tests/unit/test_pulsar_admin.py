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

    def _name(self):
        path = self.path.split("?", 1)[0]
        return "persistent://" + "/".join(path.split("/")[4:7]), path

    def do_POST(self):
        name, path = self._name()
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if path.endswith("/partitions"):
            if name not in self.topics:
                return self._send(404)
            if body <= self.topics[name]:
                return self._send(409, {"reason": "partitions can only grow"})
            self.topics[name] = body
            return self._send(204)
        if path.endswith("/retention"):
            self.retention[name] = body
            return self._send(204)
        self._send(404)

    def do_DELETE(self):
        name, path = self._name()
        if path.endswith("/partitions"):
            self.deletes.append(self.path)
            return self._send(204 if self.topics.pop(name, None) is not None else 404)
        if path.endswith("/retention"):
            return self._send(204 if self.retention.pop(name, None) is not None else 404)
        self._send(404)


@pytest.fixture
def admin_url():
    _AdminHandler.topics = {}
    _AdminHandler.retention = {}
    _AdminHandler.deletes = []
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


def test_topic_changes_through_the_admin_api(admin_url):
    admin = PulsarAdmin(admin_url)
    topic = "persistent://public/default/orders"

    async def scenario():
        assert await admin.create_partitioned(topic, 2) is True
        await admin.grow_partitioned(topic, 5)
        assert await admin.partitions(topic) == 5
        with pytest.raises(PulsarAdminError):
            await admin.grow_partitioned(topic, 3)  # Pulsar refuses to shrink
        await admin.set_retention(topic, {"retention.ms": "90001", "retention.bytes": "1"})
        assert _AdminHandler.retention[topic] == {"retentionTimeInMinutes": 2, "retentionSizeInMB": 1}
        await admin.set_retention(topic, {"retention.ms": "-1"})
        assert _AdminHandler.retention[topic] == {"retentionTimeInMinutes": -1, "retentionSizeInMB": -1}
        await admin.set_retention(topic, {"cleanup.policy": "delete"})  # no retention: the namespace's again
        assert topic not in _AdminHandler.retention
        await admin.delete_partitioned(topic)
        assert await admin.partitions(topic) == 0
        assert _AdminHandler.deletes[-1].endswith("/partitions?force=true")
        await admin.delete_partitioned(topic)  # already gone: no error

    asyncio.run(scenario())


def test_unreachable_admin_is_a_clear_error():
    admin = PulsarAdmin("http://127.0.0.1:9")  # discard port: nothing listens

    with pytest.raises(PulsarAdminError):
        asyncio.run(admin.partitions("persistent://public/default/x"))
