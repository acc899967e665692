"""One module per Kafka API. Importing this package registers every handler in the registry."""

from kop_fast.server.handlers import (  # noqa: F401
    api_versions,
    fetch,
    init_producer_id,
    list_offsets,
    metadata,
    produce,
)
