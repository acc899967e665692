"""Pulsar's answers to "may this role produce to / consume from this topic", remembered
for a while (sans-io: the asking is the storage's, `storage/pulsar/role_access.py`).

With `--pulsar-authorize-roles` Pulsar's own authorization decides what a SASL client
may do: the storage opens a producer or a reader on the topic *as the client's role*
(a Pulsar client made with the client's token) and closes it again. That costs a
Pulsar round trip, so the answer is kept: a grant for GRANT_TTL_S, a refusal for
REFUSAL_TTL_S (shorter: an operator who grants the permission sees it work soon).
Permissions changed in Pulsar take effect on the proxy within those times. Requests
of one role for one topic that arrive while the question is open share its answer.
"""

from __future__ import annotations

from collections import OrderedDict

PRODUCE = "produce"
CONSUME = "consume"

GRANT_TTL_S = 60.0
REFUSAL_TTL_S = 10.0
MAX_DECISIONS = 10_000


class AccessDecisions:
    """(token, topic, action) -> granted, until its time runs out; bounded (oldest out)."""

    def __init__(self, max_decisions: int = MAX_DECISIONS) -> None:
        self._decisions: OrderedDict = OrderedDict()  # key -> (granted, valid until)
        self._max = max_decisions

    def known(self, key: tuple, now: float) -> bool | None:
        """True or False while a decision holds, None when Pulsar must be asked."""
        decision = self._decisions.get(key)
        if decision is None:
            return None
        granted, until = decision
        if now >= until:
            del self._decisions[key]
            return None
        return granted

    def remember(self, key: tuple, granted: bool, now: float) -> None:
        self._decisions[key] = (granted, now + (GRANT_TTL_S if granted else REFUSAL_TTL_S))
        self._decisions.move_to_end(key)
        while len(self._decisions) > self._max:
            self._decisions.popitem(last=False)

    def forget_token(self, token: str) -> None:
        for key in [k for k in self._decisions if k[0] == token]:
            del self._decisions[key]

    def __len__(self) -> int:
        return len(self._decisions)
