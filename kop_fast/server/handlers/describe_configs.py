"""DescribeConfigs (key 32) v1-v4: topic configs (overrides and Kafka's defaults) and this broker's settings.

A topic answers every config of the catalogue (`server/topic_configs.py`): its override
with source DYNAMIC_TOPIC_CONFIG, else Kafka's default (DEFAULT_CONFIG). A broker
resource named with this node's id answers kop_fast's settings (STATIC_BROKER_CONFIG)
and Kafka's defaults for the rest, all read-only; the cluster-wide default broker
resource ("") holds only dynamic defaults, and kop_fast has none (Kafka answers the same
for a cluster without them). Other broker ids and other resource types: INVALID_REQUEST.
"""

from __future__ import annotations

import datetime

from kop_fast.protocol.build import make, sibling
from kop_fast.protocol.errors import ErrorCode
from kop_fast.server.registry import api
from kop_fast.server.topic_configs import (
    ResourceError,
    ResourceType,
    broker_entries,
    broker_id_error,
    existing_topic_or_error,
    topic_entries,
)

API_KEY = 32
_ZERO = datetime.timedelta(0)


async def _entries(node, resource) -> list:
    if resource.resource_type == ResourceType.TOPIC:
        return topic_entries(node.storage, await existing_topic_or_error(node, resource.resource_name))
    if resource.resource_type == ResourceType.BROKER:
        error = broker_id_error(node, resource.resource_name, allow_default=True)
        if error is not None:
            raise error
        return [] if resource.resource_name == "" else broker_entries(node)
    raise ResourceError(ErrorCode.invalid_request, f"Unsupported resource type: {resource.resource_type}")


def _config(schema, entry, synonyms: bool, documentation: bool):
    entry_cls = sibling(schema, "DescribeConfigsResourceResult")
    synonym_cls = sibling(schema, "DescribeConfigsSynonym")
    return make(entry_cls, name=entry.name, value=entry.value, read_only=entry.read_only,
                config_source=int(entry.source), is_sensitive=entry.sensitive,
                synonyms=tuple(make(synonym_cls, name=n, value=v, source=int(s)) for n, v, s in entry.synonyms)
                if synonyms else (),
                config_type=int(entry.type), documentation=entry.documentation if documentation else None)


async def _result(ctx, resource, synonyms: bool, documentation: bool):
    result_cls = sibling(ctx.response_schema, "DescribeConfigsResult")
    try:
        entries = await _entries(ctx.node, resource)
    except ResourceError as exc:
        return make(result_cls, error_code=exc.code, error_message=exc.message,
                    resource_type=resource.resource_type, resource_name=resource.resource_name, configs=())
    wanted = resource.configuration_keys
    if wanted is not None:
        keys = set(wanted)
        entries = [e for e in entries if e.name in keys]
    return make(result_cls, error_code=ErrorCode.none, error_message=None, resource_type=resource.resource_type,
                resource_name=resource.resource_name,
                configs=tuple(_config(ctx.response_schema, e, synonyms, documentation) for e in entries))


def error_response(ctx, request, error):
    result_cls = sibling(ctx.response_schema, "DescribeConfigsResult")
    return make(ctx.response_schema, throttle_time=_ZERO, results=tuple(
        make(result_cls, error_code=error, error_message=None, resource_type=r.resource_type,
             resource_name=r.resource_name, configs=()) for r in request.resources))


@api(API_KEY, 1, 4, error_response=error_response)
async def handle_describe_configs(ctx, request):
    synonyms = bool(getattr(request, "include_synonyms", False))
    documentation = bool(getattr(request, "include_documentation", False))
    results = [await _result(ctx, resource, synonyms, documentation) for resource in request.resources]
    return make(ctx.response_schema, throttle_time=_ZERO, results=tuple(results))
