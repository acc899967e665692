"""Schema classes in the form of kio's generated ones, built from a list of fields.

kio's reader and writer take everything from the dataclass: frozen, with slots and
keyword-only fields; the class variables `__type__`, `__version__`, `__flexible__`,
`__api_key__` and `__header_schema__`; each field's wire type in its `kafka_type`
metadata, and an array of nested entities as a `tuple[Nested, ...]` field without
metadata. Handlers look a schema's nested classes up by name in the schema's module
(`kop_fast.protocol.build.sibling`), so every class belongs to the module that
assigns it to that name.

A field is `(name, type)` for an array of nested entities, otherwise
`(name, type, kafka_type)` or `(name, type, kafka_type, default)`.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, make_dataclass
from typing import Any, ClassVar

from kio.schema.types import TopicName
from kio.static.constants import EntityType
from kio.static.primitive import i16


@dataclass(frozen=True, slots=True)
class ApiVersion:
    """The classes of one side (request or response) of one non-flexible API version."""

    module: str
    api_key: int
    version: int
    header: type

    def nested(self, name: str, *fields: tuple) -> type:
        return self._entity(name, EntityType.nested, fields)

    def topic(self, name: str, partition: type) -> type:
        """The usual topic entity: its `name`, and its `partitions` of class `partition`."""
        return self.nested(name, ("name", TopicName, "string"), ("partitions", tuple[partition, ...]))

    def request(self, name: str, *fields: tuple) -> type:
        return self._entity(name, EntityType.request, fields)

    def response(self, name: str, *fields: tuple) -> type:
        return self._entity(name, EntityType.response, fields)

    def _entity(self, name: str, entity_type: EntityType, fields: tuple[tuple, ...]) -> type:
        class_vars: list[tuple[str, Any, Any]] = [
            ("__type__", ClassVar, entity_type),
            ("__version__", ClassVar[i16], i16(self.version)),
            ("__flexible__", ClassVar[bool], False),
            ("__api_key__", ClassVar[i16], i16(self.api_key)),
            ("__header_schema__", ClassVar[type[self.header]], self.header),
        ]
        return make_dataclass(name, [*class_vars, *map(_field, fields)], namespace={"__module__": self.module},
                              frozen=True, slots=True, kw_only=True)


def _field(spec: tuple) -> tuple:
    if len(spec) == 2:
        return spec
    name, type_, kafka_type, *default = spec
    return name, type_, field(metadata={"kafka_type": kafka_type}, default=default[0] if default else MISSING)
