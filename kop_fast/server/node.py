"""The Broker: what every handler shares (settings, backend, registry, identity, open connections)."""

from __future__ import annotations

import base64
import hashlib

from kop_fast.config import Settings
from kop_fast.producer_state import ProducerStateTable
from kop_fast.server.registry import REGISTRY, HandlerRegistry


def default_cluster_id(pulsar_url: str, tenant: str, namespace: str) -> str:
    """A stable Kafka cluster id, equal in every kop_fast in front of the same Pulsar namespace."""
    digest = hashlib.sha256(f"{pulsar_url}|{tenant}/{namespace}".encode()).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class Broker:
    def __init__(self, settings: Settings, backend, advertised: tuple[str, int],
                 registry: HandlerRegistry = REGISTRY, pulsar_url: str = "") -> None:
        self.settings = settings
        self.backend = backend
        self.registry = registry
        self.node_id = settings.node_id
        self.host, self.port = advertised
        self.cluster_id = settings.cluster_id or default_cluster_id(
            pulsar_url, settings.kafka_tenant, settings.kafka_namespace)
        self.connections: set = set()
        self.producer_state = ProducerStateTable()
        self.group_coordinator = None  # GroupCoordinator, set by the app once the backend runs
