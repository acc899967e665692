"""`ClusterView`: the live proxies, as every proxy derives them from one log of changes.

The changes are records in a Pulsar topic, so every proxy applies the same
changes in the same order (Pulsar's order is the only agreement we need) and
arrives at the same members and the same epochs:

    {"op": "join",   "node": N, "instance": U, "host": H, "port": P}
    {"op": "leave",  "node": N, "instance": U}     graceful stop
    {"op": "expire", "node": N, "instance": U}     written by any proxy that has not
                                                   heard N's heartbeat for the lease time

A join for a node id held by another instance replaces that instance when it has
the same advertised address (a restart after a crash: the address can only be
bound by one live process), and is refused otherwise (the newcomer sees that its
instance is not a member and refuses to start). A leave or expire names the
instance, so a late one never removes a successor. Every change that alters the
members is one epoch.

A partition's leader epoch is the epoch at which its current owner got it, so it
grows on every move and stays put otherwise. `confirmed` holds the epoch each
member reports (in its heartbeats) to have applied. A member serves a partition
it got only once it is `handed_over`: every earlier owner that is still a member
has applied the epoch at which it lost the partition, i.e. has stopped serving
it (earlier owners that left or were expired have stopped by the lease rule).
Only a partition's own previous owners are waited for, so a newcomer, or a dead
member not expired yet, holds up nothing it did not own.
"""

from __future__ import annotations

from dataclasses import dataclass

from kop_fast.cluster.placement import owner_id

HISTORY_LIMIT = 2000  # views kept for leader epochs; older moves count as "before the oldest"


@dataclass(frozen=True, slots=True)
class Member:
    node_id: int
    instance: str
    host: str
    port: int
    # (listener name, host, port) of each listener, first listener first; host/port above are
    # the first one's (what proxies that predate listener names read).
    listeners: tuple[tuple[str, str, int], ...] = ()

    def address(self, listener_name: str | None) -> tuple[str, int]:
        """Where a client of `listener_name` reaches this member (its first listener when it
        has none of that name)."""
        for name, host, port in self.listeners:
            if name == listener_name:
                return host, port
        return self.host, self.port


class ClusterView:
    def __init__(self) -> None:
        self.members: dict[int, Member] = {}
        self.epoch = 0
        # (epoch, members at that epoch), oldest first; the last is the current view.
        self.history: list[tuple[int, dict[int, Member]]] = [(0, {})]
        self.confirmed: dict[str, int] = {}  # instance -> epoch it has applied
        self._owners: dict[str, tuple[Member | None, int]] = {}  # key -> (owner, leader epoch)
        self._handed_over: set[str] = set()  # keys found handed over in this epoch (stays true)

    # -- changes --------------------------------------------------------------------------------
    def apply(self, change: dict) -> bool:
        """Apply one change from the log; True when the members changed (a new epoch)."""
        try:
            op = change["op"]
            node = int(change["node"])
            instance = str(change["instance"])
        except (KeyError, TypeError, ValueError):
            return False
        current = self.members.get(node)
        if op == "join":
            try:
                joiner = Member(node, instance, str(change["host"]), int(change["port"]),
                                _listeners(change.get("listeners")))
            except (KeyError, TypeError, ValueError):
                return False
            if current is not None and (current.instance == instance or
                                        (current.host, current.port) != (joiner.host, joiner.port)):
                return False  # already in, or the id is someone else's
            members = dict(self.members)
            members[node] = joiner
        elif op in ("leave", "expire"):
            if current is None or current.instance != instance:
                return False
            members = dict(self.members)
            del members[node]
            self.confirmed.pop(instance, None)
        else:
            return False
        self.members = members
        self.epoch += 1
        self.history.append((self.epoch, members))
        if len(self.history) > HISTORY_LIMIT:
            del self.history[0]
        self._owners.clear()
        self._handed_over.clear()
        return True

    def confirm(self, instance: str, applied_epoch: int) -> None:
        """A member's heartbeat said it has applied `applied_epoch`."""
        if applied_epoch > self.confirmed.get(instance, -1):
            self.confirmed[instance] = applied_epoch

    # -- questions ------------------------------------------------------------------------------
    def member_by_instance(self, instance: str) -> Member | None:
        for member in self.members.values():
            if member.instance == instance:
                return member
        return None

    def free_node_id(self) -> int:
        node = 0
        while node in self.members:
            node += 1
        return node

    def owner(self, key: str) -> tuple[Member | None, int]:
        """(owner, leader epoch) of a partition key; (None, -1) when there are no members."""
        cached = self._owners.get(key)
        if cached is not None:
            return cached
        result = self._compute_owner(key)
        self._owners[key] = result
        return result

    def _compute_owner(self, key: str) -> tuple[Member | None, int]:
        if not self.members:
            return None, -1
        owner = self.members[owner_id(self.members, key)]
        since = self.history[-1][0]
        for epoch, members in reversed(self.history[:-1]):
            if not members or members[owner_id(members, key)] != owner:
                break
            since = epoch
        return owner, since

    def handed_over(self, key: str) -> bool:
        """Every earlier owner of `key` that is still a member has applied the epoch at which it
        lost it (so none of them serves it any more)."""
        if key in self._handed_over:
            return True
        floor = min((self.confirmed.get(m.instance, -1) for m in self.members.values()), default=self.epoch)
        owner, _ = self.owner(key)
        later_owner, later_epoch = owner, self.history[-1][0]
        for epoch, members in reversed(self.history[:-1]):
            if later_epoch <= floor:
                break  # every member has applied this far: earlier owners stopped long ago
            previous = members[owner_id(members, key)] if members else None
            if previous is not None and previous != later_owner:
                current = self.members.get(previous.node_id)
                if current == previous and self.confirmed.get(previous.instance, -1) < later_epoch:
                    return False  # it may still serve the partition it lost at later_epoch
            later_owner, later_epoch = previous, epoch
        self._handed_over.add(key)
        return True


def _listeners(raw) -> tuple[tuple[str, str, int], ...]:
    """The join record's {name: [host, port]} (absent from older proxies' records)."""
    if not isinstance(raw, dict):
        return ()
    out = []
    for name, address in raw.items():
        try:
            host, port = address
            out.append((str(name), str(host), int(port)))
        except (TypeError, ValueError):
            continue
    return tuple(out)
