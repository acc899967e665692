"""Partitioned-topic metadata through Pulsar's admin REST API (used when --pulsar-admin-url is given).

With a real Pulsar cluster the partition count of a topic belongs in Pulsar's
own metadata, where Pulsar clients and tools see it. Endpoints (Pulsar admin v2):

    GET  /admin/v2/persistent/{tenant}/{namespace}/{topic}/partitions  -> {"partitions": N}
    PUT  /admin/v2/persistent/{tenant}/{namespace}/{topic}/partitions  body: N   (409 if it exists)
    GET  /admin/v2/persistent/{tenant}/{namespace}/partitioned          -> ["persistent://..."]
    POST /admin/v2/persistent/{tenant}/{namespace}/{topic}/partitions  body: N   (more partitions)
    DELETE /admin/v2/persistent/{tenant}/{namespace}/{topic}/partitions?force=true
    POST /admin/v2/persistent/{tenant}/{namespace}/{topic}/retention   body: {"retentionTimeInMinutes": M,
                                                                              "retentionSizeInMB": S}
    DELETE /admin/v2/persistent/{tenant}/{namespace}/{topic}/retention  (back to the namespace's policy)

N == 0 means "not a partitioned topic" (absent, or a plain topic). The standard
library's HTTP client runs in a worker thread so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request

TIMEOUT_S = 10.0


class PulsarAdminError(RuntimeError):
    pass


def _path(pulsar_topic: str) -> str:
    scheme, rest = pulsar_topic.split("://", 1)
    tenant, namespace, topic = rest.split("/", 2)
    quote = urllib.parse.quote
    return f"/admin/v2/{scheme}/{quote(tenant)}/{quote(namespace)}/{quote(topic, safe='')}"


class PulsarAdmin:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def _call(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json",
                                                  "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                payload = response.read()
                return response.status, (json.loads(payload) if payload else None)
        except urllib.error.HTTPError as exc:
            return exc.code, None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise PulsarAdminError(f"{method} {path}: {exc}") from exc

    async def partitions(self, pulsar_topic: str) -> int:
        """Partition count per Pulsar (0: not a partitioned topic)."""
        status, body = await asyncio.to_thread(self._call, "GET", _path(pulsar_topic) + "/partitions")
        if status == 404:
            return 0
        if status != 200 or not isinstance(body, dict):
            raise PulsarAdminError(f"partitions of {pulsar_topic}: HTTP {status}")
        return int(body.get("partitions", 0))

    async def create_partitioned(self, pulsar_topic: str, partitions: int) -> bool:
        """True if created, False if it already existed."""
        status, _ = await asyncio.to_thread(self._call, "PUT", _path(pulsar_topic) + "/partitions", partitions)
        if status in (200, 204):
            return True
        if status == 409:
            return False
        raise PulsarAdminError(f"creating {pulsar_topic}: HTTP {status}")

    async def partitioned_topics(self, tenant: str, namespace: str) -> list[str]:
        quote = urllib.parse.quote
        status, body = await asyncio.to_thread(
            self._call, "GET", f"/admin/v2/persistent/{quote(tenant)}/{quote(namespace)}/partitioned")
        if status != 200 or not isinstance(body, list):
            raise PulsarAdminError(f"partitioned topics of {tenant}/{namespace}: HTTP {status}")
        return [str(t) for t in body]

    async def grow_partitioned(self, pulsar_topic: str, partitions: int) -> None:
        status, _ = await asyncio.to_thread(self._call, "POST", _path(pulsar_topic) + "/partitions", partitions)
        if status not in (200, 204):
            raise PulsarAdminError(f"growing {pulsar_topic} to {partitions} partitions: HTTP {status}")

    async def delete_partitioned(self, pulsar_topic: str) -> None:
        """Delete the topic and its data (404: already gone)."""
        status, _ = await asyncio.to_thread(self._call, "DELETE", _path(pulsar_topic) + "/partitions?force=true")
        if status not in (200, 204, 404):
            raise PulsarAdminError(f"deleting {pulsar_topic}: HTTP {status}")

    async def set_retention(self, pulsar_topic: str, configs) -> None:
        """The topic's retention policy from Kafka's retention.ms / retention.bytes (-1: unlimited);
        neither given: the namespace's policy applies again."""
        ms, size = configs.get("retention.ms"), configs.get("retention.bytes")
        if ms is None and size is None:
            status, _ = await asyncio.to_thread(self._call, "DELETE", _path(pulsar_topic) + "/retention")
            if status not in (200, 204, 404):
                raise PulsarAdminError(f"removing the retention of {pulsar_topic}: HTTP {status}")
            return
        policy = {"retentionTimeInMinutes": _ceil_units(ms, 60_000), "retentionSizeInMB": _ceil_units(size, 1 << 20)}
        status, _ = await asyncio.to_thread(self._call, "POST", _path(pulsar_topic) + "/retention", policy)
        if status not in (200, 204):
            raise PulsarAdminError(f"setting the retention of {pulsar_topic}: HTTP {status}")


def _ceil_units(value, unit: int) -> int:
    """A Kafka size or duration in Pulsar's coarser unit, rounded up; absent or negative: -1 (unlimited)."""
    if value is None or int(value) < 0:
        return -1
    return -(-int(value) // unit)
