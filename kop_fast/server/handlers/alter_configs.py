"""AlterConfigs (key 33) v0-v2: a topic's overrides become exactly the configs given.

Kafka's semantics: keys not given return to their defaults. Every value is checked
against the catalogue (`server/topic_configs.py`); one kop_fast cannot apply refuses the
resource with INVALID_CONFIG and the reason, and nothing of it is stored. Broker
configs are read-only in kop_fast (its settings are fixed at start): changing one is
answered as Kafka answers a config that cannot be updated dynamically (INVALID_REQUEST).

The machinery is shared with IncrementalAlterConfigs (key 44), which differs only in how
the new overrides are computed from the current ones and in allowing null values for DELETE.
"""

from __future__ import annotations

import datetime
from collections import Counter
from typing import Callable

from kop_fast.protocol.build import make, sibling
from kop_fast.protocol.errors import ErrorCode
from kop_fast.server.registry import api
from kop_fast.server.storage_errors import storage_error_code
from kop_fast.server.topic_configs import (
    AlterOp,
    ResourceError,
    ResourceType,
    broker_id_error,
    check_topic_configs,
    existing_topic_or_error,
)
from kop_fast.storage.api import StorageError, UnknownTopic

API_KEY = 33
_ZERO = datetime.timedelta(0)

# (current overrides, the resource's configs) -> (new overrides, names whose value is new)
Compute = Callable[[dict, tuple], tuple[dict, list]]


async def _alter_topic(node, resource, validate_only: bool, compute: Compute) -> None:
    info = await existing_topic_or_error(node, resource.resource_name)
    new, changed = compute(node.storage.topic_configs(info), resource.configs)
    # Only what changes is checked: overrides already stored were accepted when they were set.
    why = check_topic_configs({name: new[name] for name in changed if name in new}, node.storage)
    if why is not None:
        raise ResourceError(ErrorCode.invalid_config, why)
    if validate_only:
        return
    try:
        await node.storage.set_topic_configs(info, new)
    except UnknownTopic as exc:
        raise ResourceError(ErrorCode.unknown_topic_or_partition, str(exc)) from exc
    except StorageError as exc:
        raise ResourceError(storage_error_code(exc), str(exc)) from exc


async def _alter(node, resource, validate_only: bool, compute: Compute, incremental: bool) -> None:
    kind = resource.resource_type
    if kind not in (ResourceType.TOPIC, ResourceType.BROKER):
        raise ResourceError(ErrorCode.invalid_request, f"Unknown resource type {kind}")
    # Only a DELETE of IncrementalAlterConfigs goes without a value.
    nulls = [c.name for c in resource.configs
             if c.value is None and not (incremental and c.config_operation == AlterOp.DELETE)]
    if nulls:
        raise ResourceError(ErrorCode.invalid_request, f"Null value not supported for : {', '.join(nulls)}")
    if kind == ResourceType.TOPIC:
        await _alter_topic(node, resource, validate_only, compute)
        return
    # Kafka: a cluster-wide default ("") only through IncrementalAlterConfigs.
    error = broker_id_error(node, resource.resource_name, allow_default=incremental)
    if error is not None:
        raise error
    if resource.configs:
        raise ResourceError(ErrorCode.invalid_request, "Cannot update these configs dynamically: "
                            f"{', '.join(c.name for c in resource.configs)} (kop_fast's broker settings are fixed "
                            "at start: flags, KOP_FAST_* variables or the config file)")


async def alter_resources(ctx, request, compute: Compute, incremental: bool):
    """The response to an AlterConfigs or IncrementalAlterConfigs request: one result per resource."""
    response_cls = sibling(ctx.response_schema, "AlterConfigsResourceResponse")
    seen = Counter((r.resource_type, r.resource_name) for r in request.resources)
    responses = []
    for resource in request.resources:
        code, message = ErrorCode.none, None
        try:
            if seen[(resource.resource_type, resource.resource_name)] > 1:
                raise ResourceError(ErrorCode.invalid_request, "Each resource must appear at most once.")
            await _alter(ctx.node, resource, request.validate_only, compute, incremental)
        except ResourceError as exc:
            code, message = exc.code, exc.message
        responses.append(make(response_cls, error_code=code, error_message=message,
                              resource_type=resource.resource_type, resource_name=resource.resource_name))
    return make(ctx.response_schema, throttle_time=_ZERO, responses=tuple(responses))


def error_response(ctx, request, error):
    response_cls = sibling(ctx.response_schema, "AlterConfigsResourceResponse")
    return make(ctx.response_schema, throttle_time=_ZERO, responses=tuple(
        make(response_cls, error_code=error, error_message=None, resource_type=r.resource_type,
             resource_name=r.resource_name) for r in request.resources))


def _replace(current: dict, configs: tuple) -> tuple[dict, list]:
    new = {c.name: c.value for c in configs}
    return new, list(new)


@api(API_KEY, 0, 2, error_response=error_response)
async def handle_alter_configs(ctx, request):
    return await alter_resources(ctx, request, _replace, incremental=False)
