"""OffsetCommit v1 request (built in offset_commit)."""

from kop_fast.protocol.extra_schemas.offset_commit import request_classes

OffsetCommitRequestPartition, OffsetCommitRequestTopic, OffsetCommitRequest = request_classes(__name__, 1)
