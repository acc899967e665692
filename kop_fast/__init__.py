"""kop_fast: Kafka-on-Pulsar as a fast Python proxy.

Kafka clients speak the Kafka wire protocol to a kop_fast server; kop_fast
keeps their data in Apache Pulsar through the official pulsar-client.
"""

__version__ = "0.1.0"
