"""Pulsar's own authorization for SASL clients (`--pulsar-authorize-roles`).

The data path stays the proxy's: one producer per partition, shared readers, the
proxy's credentials. What a client may do is asked of Pulsar as the client: a Pulsar
client made with the client's token opens a producer (Produce) or a reader (Fetch) on
the topic and closes it at once. Pulsar's broker then applies its authentication and
authorization (the role's `produce`/`consume` permission on the topic or namespace)
exactly as for a Pulsar application of that role, and its refusal
(AuthorizationError, AuthenticationError) comes back to the Kafka client as
TOPIC_AUTHORIZATION_FAILED. The answers are kept for a while (`auth/access.py`).

The clients, one per token (a token is a credential: two tokens of one role may
differ in what Pulsar lets them do), are cached, at most MAX_CLIENTS of them (the least
recently used is closed first), and closed after IDLE_S without a question.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict

import _pulsar
import pulsar

from kop_fast.auth.access import PRODUCE, AccessDecisions
from kop_fast.storage.pulsar.bridge import CompletionBridge, PulsarError, client_logger, close_quietly

log = logging.getLogger("kop_fast.auth")

MAX_CLIENTS = 64
IDLE_S = 300.0
_REFUSALS = frozenset({_pulsar.Result.AuthorizationError, _pulsar.Result.AuthenticationError})


class RoleAccess:
    def __init__(self, service_url: str, bridge: CompletionBridge, max_clients: int = MAX_CLIENTS,
                 idle_s: float = IDLE_S, clock=time.monotonic) -> None:
        self.service_url = service_url
        self.bridge = bridge
        self.max_clients = max_clients
        self.idle_s = idle_s
        self._clock = clock
        self.decisions = AccessDecisions()
        self._clients: OrderedDict = OrderedDict()  # token -> [pulsar.Client, last used]
        self._asking: dict[tuple, asyncio.Future] = {}  # questions in flight, shared
        self.questions = 0  # asked of Pulsar (tests, metrics)

    def known(self, token: str, topic: str, action: str) -> bool | None:
        return self.decisions.known((token, topic, action), self._clock())

    async def allowed(self, token: str, topic: str, action: str) -> bool:
        """May the holder of `token` `action` ("produce"/"consume") `topic` (a Pulsar topic)?
        Raises PulsarError when Pulsar could not answer (nothing is remembered then)."""
        key = (token, topic, action)
        known = self.decisions.known(key, self._clock())
        if known is not None:
            return known
        asking = self._asking.get(key)
        if asking is None:
            asking = self._asking[key] = asyncio.ensure_future(self._ask(token, topic, action))
            asking.add_done_callback(lambda _f, key=key: self._asking.pop(key, None))
        return await asyncio.shield(asking)

    async def _ask(self, token: str, topic: str, action: str) -> bool:
        client = self._client_for(token)
        self.questions += 1
        fut, cb = self.bridge.value_future()
        if action == PRODUCE:
            conf = _pulsar.ProducerConfiguration()
            conf.batching_enabled(False)
            client.create_producer_async_v2(topic, conf, cb)
        else:
            conf = _pulsar.ReaderConfiguration()
            client.create_reader_async_v2(topic, _pulsar.MessageId.latest, conf, cb)
        try:
            handle = await fut
        except PulsarError as exc:
            if exc.result in _REFUSALS:
                log.info("Pulsar refused %s on %s for a client's role: %s", action, topic, exc.result)
                self.decisions.remember((token, topic, action), False, self._clock())
                return False
            raise
        await close_quietly(self.bridge, handle)
        self.decisions.remember((token, topic, action), True, self._clock())
        return True

    def _client_for(self, token: str) -> _pulsar.Client:
        now = self._clock()
        entry = self._clients.get(token)
        if entry is not None:
            entry[1] = now
            self._clients.move_to_end(token)
        self._close_idle(now)
        if entry is None:
            wrapper = pulsar.Client(self.service_url, authentication=pulsar.AuthenticationToken(token),
                                    operation_timeout_seconds=10, connection_timeout_ms=10000,
                                    logger=client_logger())
            entry = self._clients[token] = [wrapper, now]
            while len(self._clients) > self.max_clients:
                old_token, (old, _used) = self._clients.popitem(last=False)
                self.decisions.forget_token(old_token)
                self._close_later(old)
        return entry[0]._client

    def _close_idle(self, now: float) -> None:
        for token in [t for t, (_c, used) in self._clients.items() if now - used >= self.idle_s]:
            client, _used = self._clients.pop(token)
            self._close_later(client)

    def _close_later(self, wrapper) -> None:
        task = asyncio.ensure_future(close_quietly(self.bridge, wrapper._client))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    @property
    def open_clients(self) -> int:
        return len(self._clients)

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), OrderedDict()
        await asyncio.gather(*(close_quietly(self.bridge, c._client) for c, _used in clients),
                             return_exceptions=True)
