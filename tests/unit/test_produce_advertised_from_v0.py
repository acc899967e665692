"""ApiVersions names Produce from v0, as Apache Kafka 4.0 does (KAFKA-18659); v0-v2 are implemented
too (legacy message sets up-converted: tests/unit/test_legacy_on_memory.py).

librdkafka before 2.11.1 (Debian's kcat 1.7.1 on librdkafka 2.0.2, for one) enables gzip, snappy
and lz4 only when the broker advertises Produce v0 and otherwise sends the batch uncompressed,
saying nothing unless asked to log (`Broker does not support compression type gzip: not
compressing batch`). End to end: tests/interop/clients/test_kcat.py::test_kcat_compressed_producer
finds each codec in the stored batch.
"""

from __future__ import annotations

import kop_fast.server.handlers  # noqa: F401 - registers every handler
from kop_fast.protocol.produce_wire import MAX_VERSION, MIN_VERSION
from kop_fast.server.registry import REGISTRY


def test_produce_is_advertised_and_implemented_from_v0():
    supported = {key: (lo, hi) for key, lo, hi in REGISTRY.supported()}
    assert (MIN_VERSION, supported[0]) == (0, (0, MAX_VERSION))
    entry = REGISTRY.get(0)
    assert (entry.min_version, entry.max_version) == (0, MAX_VERSION)  # what the connection accepts
