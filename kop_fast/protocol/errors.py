"""Kafka error codes, and the exceptions that carry them through handlers."""

from kio.schema.errors import ErrorCode

__all__ = ["ErrorCode", "KafkaError", "MalformedRequest"]


class KafkaError(Exception):
    """A request failed with a Kafka error code that the client must see."""

    def __init__(self, code: ErrorCode, message: str = "") -> None:
        super().__init__(message or code.name)
        self.code = code


class MalformedRequest(Exception):
    """The bytes on the wire are not a valid Kafka request: the connection is closed."""
