"""Security listeners against real servers and real clients: SASL PLAIN and OAUTHBEARER with
Pulsar-style tokens, TLS, and tenants that never see each other's topics, records or groups."""

from __future__ import annotations

import signal
import socket
import ssl
import time
import uuid

import jwt
import pytest

from tests.security_support import (
    HS256_KEY,
    hs256_token,
    metadata_v1,
    plain_message,
    produce_v3,
    rsa_keypair,
    sasl_authenticate,
    sasl_handshake,
    secret_key_option,
    self_signed_cert,
)
from kop_fast.embedded import free_port
from tests.support import KopServer

pytestmark = pytest.mark.interop

ACME, GLOBEX = "acme/prod", "globex/prod"


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """One proxy: PLAINTEXT, SASL_PLAINTEXT, SSL and SASL_SSL listeners, HS256 tokens."""
    base = tmp_path_factory.mktemp("security")
    cert, key = self_signed_cert(base)
    server = KopServer(base / "kop", "--listen", "SASL_PLAINTEXT://127.0.0.1:0", "--listen", "SSL://127.0.0.1:0",
                       "--listen", "SASL_SSL://127.0.0.1:0", "--tls-cert", str(cert), "--tls-key", str(key),
                       "--auth-token-secret-key", secret_key_option(),
                       "--group-initial-rebalance-delay-ms", "0").start()
    server.cert, server.key, server.base = cert, key, base
    server.sasl, server.ssl, server.sasl_ssl = (f"127.0.0.1:{p}" for p in server.ports[1:4])
    yield server
    server.stop()


def sasl_conf(server, tenant: str, token: str | None = None, role: str = "alice") -> dict:
    return {"bootstrap.servers": server.sasl, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
            "sasl.username": tenant, "sasl.password": "token:" + (token or hs256_token(role))}


def produce(conf: dict, topic: str, values: list[bytes]) -> None:
    from confluent_kafka import Producer

    producer = Producer({**conf, "linger.ms": 2})
    errors = []
    for value in values:
        producer.produce(topic, value, on_delivery=lambda err, msg: err and errors.append(err))
    assert producer.flush(30) == 0
    assert not errors, errors


def consume(conf: dict, topic: str, group: str, want: int, timeout: float = 30, settle: float = 0) -> list[bytes]:
    """`want` records (then `settle` seconds more, to catch any that should not be there)."""
    from confluent_kafka import Consumer

    consumer = Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([topic])
    got, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(got) < want:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert not msg.error(), msg.error()
            got.append(msg.value())
        settled = time.monotonic() + settle
        while time.monotonic() < settled:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                got.append(msg.value())
        if got:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return got


def group_ids(conf: dict) -> set[str]:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(conf)  # held until the answer is in (else its handle is destroyed)
    result = admin.list_consumer_groups(request_timeout=15).result(timeout=20)
    assert not result.errors, result.errors
    return {g.group_id for g in result.valid}


def test_tenants_see_only_their_own_topics_records_and_groups(secured):
    acme, globex = sasl_conf(secured, ACME), sasl_conf(secured, GLOBEX, role="bob")
    group = "billing-" + uuid.uuid4().hex[:6]
    produce(acme, "orders", [b"acme-%d" % i for i in range(5)])
    produce(acme, "acme-only", [b"x"])
    assert consume(acme, "orders", group, 5) == [b"acme-%d" % i for i in range(5)]
    from confluent_kafka.admin import AdminClient
    # globex: the same topic and group names, nothing of acme's ...
    assert group in group_ids(acme)
    assert group not in group_ids(globex)
    admin = AdminClient(globex)
    [described] = admin.describe_consumer_groups([group], request_timeout=15).values()
    assert described.result(timeout=20).state.name == "DEAD"  # acme's group, unknown to globex
    listed = AdminClient(globex).list_topics(timeout=15).topics
    assert "acme-only" not in listed
    assert "acme-only" in AdminClient(acme).list_topics(timeout=15).topics
    # A full name outside the tenant is refused.
    foreign = AdminClient(globex).list_topics(topic="persistent://acme/prod/orders", timeout=15)
    topic = foreign.topics["persistent://acme/prod/orders"]
    assert topic.error is not None and topic.error.code() == 29  # TOPIC_AUTHORIZATION_FAILED
    # ... and then only its own records, in its own group of the same name (no offsets of acme's).
    produce(globex, "orders", [b"globex"])
    assert consume(globex, "orders", group, 1, settle=2) == [b"globex"]
    assert group in group_ids(globex)
    assert consume(acme, "orders", "g-" + uuid.uuid4().hex[:6], 5) == [b"acme-%d" % i for i in range(5)]
    # The PLAINTEXT listener keeps today's namespace: none of the tenants' topics.
    plain = AdminClient({"bootstrap.servers": secured.bootstrap}).list_topics(timeout=15).topics
    assert "acme-only" not in plain


def _sasl_socket(server) -> socket.socket:
    host, port = server.sasl.split(":")
    return socket.create_connection((host, int(port)), timeout=10)


@pytest.mark.parametrize("token, why", [
    (jwt.encode({"sub": "mallory", "exp": int(time.time()) + 3600}, b"another key of 32 bytes, at least",
                algorithm="HS256"), "signature"),
    (hs256_token("alice", expires_in=-60), "expired"),
])
def test_bad_tokens_are_refused_and_the_connection_closed(secured, token, why):
    with _sasl_socket(secured) as sock:
        assert sasl_handshake(sock, "PLAIN") == (0, ["PLAIN", "OAUTHBEARER"])
        error, message, _ = sasl_authenticate(sock, plain_message(ACME, token))
        assert error == 58 and why in message  # SASL_AUTHENTICATION_FAILED
        assert token not in message
        assert metadata_v1(sock) is None  # closed
    assert token not in secured.log_text()


def test_unsupported_mechanism_lists_the_enabled_ones(secured):
    with _sasl_socket(secured) as sock:
        assert sasl_handshake(sock, "SCRAM-SHA-256") == (33, ["PLAIN", "OAUTHBEARER"])  # UNSUPPORTED_SASL_MECHANISM


def test_requests_before_authentication_close_the_connection(secured):
    with _sasl_socket(secured) as sock:
        assert produce_v3(sock) is None
    with _sasl_socket(secured) as sock:
        assert sasl_handshake(sock, "PLAIN")[0] == 0
        assert metadata_v1(sock) is None  # handshake done, not authenticated yet
    assert "Unexpected Kafka request of type 0" in secured.log_text()


def test_session_lifetime_comes_from_the_token_exp(secured):
    with _sasl_socket(secured) as sock:
        sasl_handshake(sock, "PLAIN")
        error, _, lifetime = sasl_authenticate(sock, plain_message(ACME, hs256_token("alice", expires_in=600)))
        assert error == 0 and 590_000 < lifetime <= 600_000
        assert metadata_v1(sock) is not None
    with _sasl_socket(secured) as sock:  # expired on the server's clock: closed
        sasl_handshake(sock, "PLAIN")
        assert sasl_authenticate(sock, plain_message(ACME, hs256_token("alice", expires_in=2)))[0] == 0
        time.sleep(3)
        assert metadata_v1(sock) is None


def test_v0_handshake_then_unframed_token(secured):
    with _sasl_socket(secured) as sock:
        assert sasl_handshake(sock, "PLAIN", version=0)[0] == 0
        token = plain_message(ACME, hs256_token("alice"))
        sock.sendall(len(token).to_bytes(4, "big") + token)  # no Kafka header: the raw SASL token
        assert sock.recv(4) == b"\0\0\0\0"  # PLAIN's empty challenge
        assert metadata_v1(sock) is not None


def test_allowed_tenants_refuse_the_others(tmp_path):
    with KopServer(tmp_path / "kop", "--listen", "SASL_PLAINTEXT://127.0.0.1:0", "--allowed-tenants", "acme",
                   "--auth-token-secret-key", secret_key_option()) as server:
        host, port = "127.0.0.1", server.ports[1]
        with socket.create_connection((host, port), timeout=10) as sock:
            sasl_handshake(sock, "PLAIN")
            error, message, _ = sasl_authenticate(sock, plain_message(GLOBEX, hs256_token("bob")))
            assert error == 58 and "globex" in message
        with socket.create_connection((host, port), timeout=10) as sock:
            sasl_handshake(sock, "PLAIN")
            assert sasl_authenticate(sock, plain_message(ACME, hs256_token("alice")))[0] == 0


def test_oauthbearer_with_an_rs256_public_key(tmp_path):
    private, public = rsa_keypair(tmp_path)

    def oauth_cb(_config):
        expires = time.time() + 3600
        token = jwt.encode({"sub": "svc", "exp": int(expires)}, private, algorithm="RS256")
        return token, expires, "svc", {"tenant": ACME}

    with KopServer(tmp_path / "kop", "--listen", "SASL_PLAINTEXT://127.0.0.1:0",
                   "--auth-token-public-key", f"file:{public}", "--group-initial-rebalance-delay-ms", "0") as server:
        conf = {"bootstrap.servers": f"127.0.0.1:{server.ports[1]}", "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "OAUTHBEARER", "oauth_cb": oauth_cb}
        produce(conf, "events", [b"e%d" % i for i in range(3)])
        assert consume(conf, "events", "oauth-group", 3) == [b"e0", b"e1", b"e2"]
        assert "oauth-group" in group_ids(conf)
        assert "authenticated as role svc, tenant acme/prod" in server.log_text()


def test_ssl_listener_with_a_self_signed_certificate(secured):
    conf = {"bootstrap.servers": secured.ssl, "security.protocol": "SSL", "ssl.ca.location": str(secured.cert)}
    produce(conf, "tls-topic", [b"over tls"])
    assert consume(conf, "tls-topic", "tls-group", 1) == [b"over tls"]


def test_sasl_ssl_delivers_and_consumes(secured):
    conf = {**sasl_conf(secured, ACME), "bootstrap.servers": secured.sasl_ssl, "security.protocol": "SASL_SSL",
            "ssl.ca.location": str(secured.cert)}
    produce(conf, "secure-orders", [b"s1", b"s2"])
    assert consume(conf, "secure-orders", "secure-group", 2) == [b"s1", b"s2"]
    # Same tenant over SASL_PLAINTEXT: the same topic.
    assert consume(sasl_conf(secured, ACME), "secure-orders", "other-" + uuid.uuid4().hex[:6], 2) == [b"s1", b"s2"]


def test_sighup_reloads_the_certificate_for_new_connections(secured):
    host, port = secured.ssl.split(":")
    before = ssl.get_server_certificate((host, int(port)))
    new_cert, new_key = self_signed_cert(secured.base, name="renewed", common_name="renewed")
    secured.cert.write_bytes(new_cert.read_bytes())
    secured.key.write_bytes(new_key.read_bytes())
    secured.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and ssl.get_server_certificate((host, int(port))) == before:
        time.sleep(0.2)
    assert ssl.get_server_certificate((host, int(port))) == new_cert.read_text()
    assert "TLS certificate reloaded" in secured.log_text()


def test_kafka_python_with_sasl_plain(secured):
    from kafka import KafkaConsumer, KafkaProducer

    sasl = {"bootstrap_servers": secured.sasl, "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
            "sasl_plain_username": ACME, "sasl_plain_password": "token:" + hs256_token("alice")}
    producer = KafkaProducer(**sasl)
    producer.send("kp-topic", b"from kafka-python").get(timeout=30)
    producer.close()
    consumer = KafkaConsumer("kp-topic", group_id="kp-group", auto_offset_reset="earliest",
                             consumer_timeout_ms=20000, **sasl)
    try:
        assert next(iter(consumer)).value == b"from kafka-python"
    finally:
        consumer.close()


def test_aiokafka_with_sasl_plain(secured):
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    sasl = {"bootstrap_servers": secured.sasl, "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
            "sasl_plain_username": GLOBEX, "sasl_plain_password": "token:" + hs256_token("bob")}

    async def run():
        producer = AIOKafkaProducer(**sasl)
        await producer.start()
        try:
            await producer.send_and_wait("aio-topic", b"from aiokafka")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer("aio-topic", group_id="aio-group", auto_offset_reset="earliest", **sasl)
        await consumer.start()
        try:
            msg = await asyncio.wait_for(consumer.getone(), 30)
            return msg.value
        finally:
            await consumer.stop()

    assert asyncio.run(run()) == b"from aiokafka"


def test_a_tenants_commits_move_its_pulsar_subscription(secured):
    """Mirroring: the group's subscription, named as the client names the group, on the tenant's topic."""
    from confluent_kafka import Consumer, TopicPartition

    from tests.interop.test_groups import first_record_on_subscription

    acme = sasl_conf(secured, ACME)
    topic, group = "mirrored-" + uuid.uuid4().hex[:6], "mirror-group"
    produce(acme, topic, [b"r0", b"r1", b"r2"])
    produce(acme, topic, [b"r3", b"r4"])  # a second batch: a second Pulsar entry
    consumer = Consumer({**acme, "group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        consumer.assign([TopicPartition(topic, 0)])
        offsets, deadline = {}, time.monotonic() + 30
        while len(offsets) < 5 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                offsets[msg.value()] = msg.offset()  # offsets are packed Pulsar positions, not 0..4
        consumer.commit(offsets=[TopicPartition(topic, 0, offsets[b"r3"])], asynchronous=False)
    finally:
        consumer.close()
    batch = first_record_on_subscription(secured.pulsar_url, f"persistent://acme/prod/{topic}-partition-0", group,
                                         b"r3")
    assert [r.value for r in batch] == [b"r3", b"r4"]


def test_a_produce_to_another_tenants_topic_is_refused(secured):
    from confluent_kafka import KafkaError, Producer

    producer = Producer({**sasl_conf(secured, GLOBEX, role="bob"), "message.timeout.ms": 10000})
    errors = []
    producer.produce("persistent://acme/prod/orders", b"intruder", on_delivery=lambda err, msg: errors.append(err))
    producer.flush(20)
    assert errors and errors[0] is not None and errors[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_an_api_with_an_error_answer_gets_illegal_sasl_state_before_authentication(secured):
    import struct

    from tests.security_support import _send_then_receive, _frame

    with _sasl_socket(secured) as sock:
        answer = _send_then_receive(sock, _frame(16, 0, b""))  # ListGroups v0
        assert answer is not None and struct.unpack(">h", answer[4:6])[0] == 34  # ILLEGAL_SASL_STATE
        assert metadata_v1(sock) is None


def test_required_client_certificates(tmp_path):
    cert, key = self_signed_cert(tmp_path)
    client_cert, client_key = self_signed_cert(tmp_path, name="client", common_name="client")
    with KopServer(tmp_path / "kop", "--listen", "SSL://127.0.0.1:0", "--tls-cert", str(cert), "--tls-key", str(key),
                   "--tls-ca", str(client_cert), "--tls-client-auth", "required") as server:
        conf = {"bootstrap.servers": f"127.0.0.1:{server.ports[1]}", "security.protocol": "SSL",
                "ssl.ca.location": str(cert)}
        with_cert = {**conf, "ssl.certificate.location": str(client_cert), "ssl.key.location": str(client_key)}
        produce(with_cert, "mtls", [b"with a client certificate"])
        from confluent_kafka import Producer
        producer = Producer({**conf, "message.timeout.ms": 5000})
        errors = []
        producer.produce("mtls", b"without", on_delivery=lambda err, msg: errors.append(err))
        producer.flush(15)
        assert errors and errors[0] is not None  # no certificate: the handshake fails


def test_each_proxy_advertises_its_address_per_listener_name(tmp_path):
    """Two proxies, listeners PLAINTEXT and INTERNAL (mapped to SASL_PLAINTEXT): a client of
    INTERNAL is told both proxies' INTERNAL addresses, one of PLAINTEXT their PLAINTEXT ones."""
    from confluent_kafka.admin import AdminClient

    common = ("--listen", "INTERNAL://127.0.0.1:0", "--listener-security-protocol-map", "INTERNAL:SASL_PLAINTEXT",
              "--auth-token-secret-key", secret_key_option())
    a = KopServer(tmp_path / "a", *common).start()
    try:
        b = KopServer(tmp_path / "b", *common, "--pulsar-url", a.pulsar_url, "--node-id", "1").start()
        try:
            a.sasl = f"127.0.0.1:{a.ports[1]}"
            internal = sasl_conf(a, ACME)
            want = {(0, a.ports[1]), (1, b.ports[1])}
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                brokers = AdminClient(internal).list_topics(timeout=10).brokers
                if {(n, m.port) for n, m in brokers.items()} == want:
                    break
                time.sleep(0.5)
            assert {(n, m.port) for n, m in brokers.items()} == want
            brokers = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=10).brokers
            assert {(n, m.port) for n, m in brokers.items()} == {(0, a.port), (1, b.port)}
        finally:
            b.stop()
    finally:
        a.stop()


def test_short_lived_oauth_tokens_keep_a_producer_going(tmp_path):
    """Tokens of 4 s: the session ends with each one (KIP-368); the client re-authenticates
    or reconnects with a fresh token, and every record is delivered."""
    from confluent_kafka import Producer

    private, public = rsa_keypair(tmp_path)

    def oauth_cb(_config):
        expires = time.time() + 4
        return jwt.encode({"sub": "svc", "exp": int(expires)}, private, algorithm="RS256"), expires, "svc", {
            "tenant": ACME}

    with KopServer(tmp_path / "kop", "--listen", "SASL_PLAINTEXT://127.0.0.1:0",
                   "--auth-token-public-key", f"file:{public}") as server:
        producer = Producer({"bootstrap.servers": f"127.0.0.1:{server.ports[1]}", "security.protocol": "SASL_PLAINTEXT",
                             "sasl.mechanism": "OAUTHBEARER", "oauth_cb": oauth_cb, "linger.ms": 5})
        errors, delivered = [], []
        end = time.monotonic() + 12
        i = 0
        while time.monotonic() < end:
            producer.produce("short-lived", b"%d" % i,
                             on_delivery=lambda err, msg: (errors if err else delivered).append(err or msg))
            producer.poll(0.05)
            i += 1
        assert producer.flush(30) == 0
        assert not errors and len(delivered) == i


def test_reauthentication_on_the_same_connection_extends_the_session(secured):
    """KIP-368: a new SaslHandshake + SaslAuthenticate before the end moves the end."""
    with _sasl_socket(secured) as sock:
        sasl_handshake(sock, "PLAIN")
        assert sasl_authenticate(sock, plain_message(ACME, hs256_token("alice", expires_in=3)))[0] == 0
        assert sasl_handshake(sock, "PLAIN")[0] == 0
        error, _, lifetime = sasl_authenticate(sock, plain_message(ACME, hs256_token("alice", expires_in=600)))
        assert error == 0 and lifetime > 590_000
        time.sleep(4)
        assert metadata_v1(sock) is not None  # past the first token's end: still open
        assert sasl_handshake(sock, "PLAIN")[0] == 0  # another tenant on re-authentication: refused
        assert sasl_authenticate(sock, plain_message(GLOBEX, hs256_token("alice")))[0] == 58


def test_list_offsets_of_another_tenants_topic_is_refused(secured):
    import struct

    from tests.security_support import _frame, _send_then_receive, _string

    produce(sasl_conf(secured, ACME), "orders", [b"acme's"])
    name = "persistent://acme/prod/orders"
    with _sasl_socket(secured) as sock:
        sasl_handshake(sock, "PLAIN")
        assert sasl_authenticate(sock, plain_message(GLOBEX, hs256_token("bob")))[0] == 0
        body = struct.pack(">ii", -1, 1) + _string(name) + struct.pack(">iiq", 1, 0, -1)  # ListOffsets v1, latest
        answer = _send_then_receive(sock, _frame(2, 1, body))
        at = 4 + 4 + 2 + len(name) + 4 + 4
        assert struct.unpack(">h", answer[at:at + 2])[0] == 29  # TOPIC_AUTHORIZATION_FAILED


def test_pulsar_authorizes_each_role_through_a_client_of_its_own(tmp_path):
    """--pulsar-authorize-roles: each token gets a Pulsar client of its own, which opens a
    producer (Produce) or a reader (Fetch) as that role before the proxy serves it. pulsar-lite
    does not authenticate, so here Pulsar grants everything: what is shown is the path (one
    client per token, the proxy's own token accepted, nothing leaked to the log); the refusal
    mapping is tests/unit/test_role_access.py's."""
    import urllib.request

    metrics_port = free_port()
    own_token = hs256_token("kop-fast-proxy")
    with KopServer(tmp_path / "kop", "--listen", "SASL_PLAINTEXT://127.0.0.1:0",
                   "--auth-token-secret-key", secret_key_option(), "--pulsar-authorize-roles", "true",
                   "--pulsar-auth-token", "token:" + own_token, "--metrics-listen", f"127.0.0.1:{metrics_port}",
                   "--group-initial-rebalance-delay-ms", "0") as server:
        server.sasl = f"127.0.0.1:{server.ports[1]}"
        alice, bob = hs256_token("alice"), hs256_token("bob")
        produce(sasl_conf(server, ACME, alice), "orders", [b"a1", b"a2"])
        assert consume(sasl_conf(server, ACME, bob), "orders", "billing", want=2) == [b"a1", b"a2"]
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        [line] = [l for l in text.splitlines() if l.startswith('kop_fast_storage_handles{kind="role_clients"}')]
        assert float(line.split()[-1]) == 2.0, line  # alice's and bob's
        log = server.log_text()
    for secret in (alice, bob, own_token):
        assert secret not in log
