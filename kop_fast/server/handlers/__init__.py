"""One module per Kafka API. Importing this package registers every handler in the registry."""

from kop_fast.server.handlers import api_versions, metadata  # noqa: F401
