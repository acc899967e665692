"""The engine authorizes SASL clients (`--pulsar-authorize-roles`): decisions, their cache, and
what Kafka clients are answered (the in-memory storage refuses what a test says, as Pulsar's
authorization would; tests/interop/test_security.py runs the Pulsar side)."""

from __future__ import annotations

import asyncio
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from kop_fast.auth.access import CONSUME, GRANT_TTL_S, PRODUCE, REFUSAL_TTL_S, AccessDecisions
from kop_fast.auth.authenticator import Principal
from tests.security_support import hs256_token, secret_key_option
from tests.unit.memory_node import memory_node, run


def test_grants_and_refusals_hold_for_their_times_and_the_cache_is_bounded():
    decisions = AccessDecisions(max_decisions=3)
    decisions.remember(("t1", "topic", PRODUCE), True, now=100.0)
    decisions.remember(("t1", "topic", CONSUME), False, now=100.0)
    assert decisions.known(("t1", "topic", PRODUCE), 100.0 + GRANT_TTL_S - 1) is True
    assert decisions.known(("t1", "topic", CONSUME), 100.0 + REFUSAL_TTL_S - 1) is False
    assert decisions.known(("t1", "topic", CONSUME), 100.0 + REFUSAL_TTL_S) is None  # asked again
    assert decisions.known(("t1", "topic", PRODUCE), 100.0 + GRANT_TTL_S) is None
    for i in range(5):
        decisions.remember((f"t{i}", "x", PRODUCE), True, now=200.0)
    assert len(decisions) == 3 and decisions.known(("t0", "x", PRODUCE), 200.0) is None
    decisions.forget_token("t4")
    assert decisions.known(("t4", "x", PRODUCE), 200.0) is None
    assert decisions.known(("t3", "x", PRODUCE), 200.0) is True


def test_a_principal_never_shows_its_token():
    principal = Principal("role", "acme", "prod", None, "secret.jwt.value")
    assert "secret" not in repr(principal)
    assert principal == Principal("role", "acme", "prod", None, "another")


def _sasl(bootstrap: str, role: str, **extra) -> dict:
    return {"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
            "sasl.username": "acme/prod", "sasl.password": "token:" + hs256_token(role), **extra}


def _produce(conf: dict, topic: str) -> list:
    reports = []
    producer = Producer({**conf, "message.timeout.ms": 10000, "retries": 0})
    producer.produce(topic, b"value", partition=0, on_delivery=lambda err, msg: reports.append(err))
    producer.flush(20)
    return reports


def _consume_error(conf: dict, topic: str):
    consumer = Consumer({**conf, "group.id": "g", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None:
                return msg.error() if msg.error() else msg.value()
        return None
    finally:
        consumer.close()


def test_refused_roles_get_topic_authorization_failed_and_granted_ones_work():
    async def scenario():
        async with memory_node(listen="SASL_PLAINTEXT://127.0.0.1:0",
                               auth_token_secret_key=secret_key_option()) as (node, bootstrap):
            node.storage.refused.update({("reader", "acme/prod/orders", PRODUCE),
                                         ("writer", "acme/prod/orders", CONSUME)})
            loop = asyncio.get_running_loop()
            writer, reader = _sasl(bootstrap, "writer"), _sasl(bootstrap, "reader")
            assert await loop.run_in_executor(None, _produce, writer, "orders") == [None]
            [refused] = await loop.run_in_executor(None, _produce, reader, "orders")
            assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
            assert await loop.run_in_executor(None, _consume_error, reader, "orders") == b"value"
            error = await loop.run_in_executor(None, _consume_error, writer, "orders")
            assert isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
            assert node.storage.access_questions >= 4
    run(scenario, 90)
