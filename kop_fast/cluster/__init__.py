"""Several kop_fast proxies as one Kafka cluster (sans-io: no asyncio, no Pulsar here).

`view.ClusterView` is the membership every proxy derives from the same log of
changes in Pulsar; `placement` maps partitions to members over it.
"""
