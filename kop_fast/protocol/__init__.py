"""Sans-io Kafka protocol: framing, request/response headers, schemas, errors.

Nothing in this package performs I/O or imports asyncio or pulsar.
"""
