"""Schemas of old API versions that kio does not ship, written in kio's dataclass form.

kio's generated schemas start where Kafka 4's message definitions start; some
clients still send older versions (librdkafka uses ListOffsets v0 with old
`broker.version.fallback` settings). kio's reader and writer work on these
classes as on its own. Each module defines one (api_key, version) pair.
"""

from kop_fast.protocol.extra_schemas import list_offsets_v0

# (api_key, version) -> (request schema, response schema)
EXTRA_SCHEMAS = {
    (2, 0): (list_offsets_v0.ListOffsetsRequest, list_offsets_v0.ListOffsetsResponse),
}
