"""The I/O edge towards Kafka clients: uvloop server, connections, request dispatch."""
