"""DescribeCluster (key 60) v0-v2: every live proxy of the cluster as a broker; the lowest node id as controller.

Answered as a Kafka broker answers: brokers are its endpoint type (v1+); asking for the
controllers is MISMATCHED_ENDPOINT_TYPE, an unknown type UNSUPPORTED_ENDPOINT_TYPE. The
cluster's authorized operations, when asked for, are what Kafka gives without an
authorizer: every operation on a cluster.
"""

from __future__ import annotations

import datetime

from kop_fast.protocol.build import make, sibling
from kop_fast.protocol.errors import ErrorCode
from kop_fast.server.leaders import live_brokers
from kop_fast.server.registry import api

API_KEY = 60
BROKER_ENDPOINTS = 1
CONTROLLER_ENDPOINTS = 2
_ZERO = datetime.timedelta(0)
_OPERATIONS_NOT_ASKED = -(2**31)
# Kafka's operations on a cluster (AclOperation codes): CREATE, ALTER, DESCRIBE, CLUSTER_ACTION,
# DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE; one bit each.
CLUSTER_OPERATIONS = sum(1 << code for code in (5, 7, 8, 9, 10, 11, 12))


def _endpoint_error(endpoint_type: int) -> tuple[ErrorCode, str] | None:
    if endpoint_type == CONTROLLER_ENDPOINTS:
        return (ErrorCode.mismatched_endpoint_type,
                "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER")
    if endpoint_type != BROKER_ENDPOINTS:
        return ErrorCode.unsupported_endpoint_type, f"Unsupported endpoint type {endpoint_type}"
    return None


@api(API_KEY, 0, 2)
def handle_describe_cluster(ctx, request):
    node = ctx.node
    schema = ctx.response_schema
    refused = _endpoint_error(getattr(request, "endpoint_type", BROKER_ENDPOINTS))
    if refused is not None:
        error, message = refused
        return make(schema, throttle_time=_ZERO, error_code=error, error_message=message, cluster_id="",
                    controller_id=-1, brokers=(), cluster_authorized_operations=_OPERATIONS_NOT_ASKED)
    broker_cls = sibling(schema, "DescribeClusterBroker")
    members = live_brokers(node, ctx.connection.listener_name)
    brokers = tuple(make(broker_cls, broker_id=n, host=h, port=p, rack=None, is_fenced=False) for n, h, p in members)
    operations = CLUSTER_OPERATIONS if request.include_cluster_authorized_operations else _OPERATIONS_NOT_ASKED
    return make(schema, throttle_time=_ZERO, error_code=ErrorCode.none, error_message=None,
                endpoint_type=BROKER_ENDPOINTS, cluster_id=node.cluster_id, controller_id=members[0][0],
                brokers=brokers, cluster_authorized_operations=operations)
