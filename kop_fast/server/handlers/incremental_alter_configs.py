"""IncrementalAlterConfigs (key 44) v0-v1: SET, DELETE, APPEND, SUBTRACT merged into a topic's overrides.

APPEND and SUBTRACT apply to list-typed configs only (cleanup.policy); on any other
config Kafka answers INVALID_REQUEST, and so does kop_fast. Naming a config twice in
one resource refuses the resource (INVALID_REQUEST). What results is checked like
AlterConfigs (`alter_configs.alter_resources`) and stored with `set_topic_configs`.
"""

from __future__ import annotations

from collections import Counter

from kop_fast.protocol.errors import ErrorCode
from kop_fast.server.handlers.alter_configs import alter_resources, error_response
from kop_fast.server.registry import api
from kop_fast.server.topic_configs import CATALOGUE, AlterOp, ConfigType, ResourceError, list_items

API_KEY = 44


def _list_value(name: str, op: AlterOp, current: dict) -> list[str]:
    config = CATALOGUE.get(name)
    if config is None:
        raise ResourceError(ErrorCode.invalid_config, f"Unknown topic config name: {name}")
    if config.type != ConfigType.LIST:
        verb = "append" if op == AlterOp.APPEND else "subtract"
        raise ResourceError(ErrorCode.invalid_request, f"Config value {verb} is not allowed for config key: {name}")
    return list_items(current.get(name, config.default))


def merge(current: dict, configs: tuple) -> tuple[dict, list]:
    """The overrides after the operations, and the names they change."""
    if any(count > 1 for count in Counter(c.name for c in configs).values()):
        raise ResourceError(ErrorCode.invalid_request, "Error due to duplicate config keys")
    new = dict(current)
    for config in configs:
        name, value = config.name, config.value
        op = config.config_operation
        if op == AlterOp.SET:
            new[name] = value
        elif op == AlterOp.DELETE:
            new.pop(name, None)
        elif op in (AlterOp.APPEND, AlterOp.SUBTRACT):
            items = _list_value(name, AlterOp(op), new)
            given = list_items(value)
            if op == AlterOp.APPEND:
                items += [item for item in given if item not in items]
            else:
                items = [item for item in items if item not in given]
            new[name] = ",".join(items)
        else:
            raise ResourceError(ErrorCode.invalid_request, f"Unknown operations type {op}")
    return new, [c.name for c in configs]


@api(API_KEY, 0, 1, error_response=error_response)
async def handle_incremental_alter_configs(ctx, request):
    return await alter_resources(ctx, request, merge, incremental=True)
