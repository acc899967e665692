"""Which member owns a partition: rendezvous (highest-random-weight) hashing.

Each member scores every partition key; the highest score owns it. Adding or
removing a member moves only the partitions that member wins or held (about 1/N
of them), and every proxy computes the same owner from the same member set,
without talking to the others. The score depends on the node id only (not on
the process instance), so a proxy restarted with its node id gets its
partitions back.
"""

from __future__ import annotations

import hashlib
from typing import Iterable


def score(node_id: int, key: str) -> int:
    digest = hashlib.blake2b(f"{node_id}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner_id(node_ids: Iterable[int], key: str) -> int | None:
    """The node id that owns `key` among `node_ids` (None when there are none)."""
    best, best_score = None, -1
    for node_id in node_ids:
        s = score(node_id, key)
        if s > best_score or (s == best_score and node_id < best):
            best, best_score = node_id, s
    return best


def partition_key(storage_name: str, index: int) -> str:
    """The placement key of one partition (data or `__consumer_offsets`)."""
    return f"{storage_name}#{index}"
