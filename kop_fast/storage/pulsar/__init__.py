"""Kafka data in Apache Pulsar: the implementation of `kop_fast.storage.api` on pulsar-client.

Everything that imports pulsar-client lives in this package; only the
composition root (`kop_fast.app`) imports it.
"""

from kop_fast.storage.pulsar.storage import PulsarStorage

__all__ = ["PulsarStorage"]
