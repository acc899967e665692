"""Build kio entities of any version from one set of keyword arguments.

Kafka schemas gain and lose fields from version to version. Handlers pass
every field they know and `make` keeps those the chosen version has, so one
handler body serves the whole version range.
"""

from __future__ import annotations

import sys
from dataclasses import fields
from functools import lru_cache


@lru_cache(maxsize=None)
def field_names(schema) -> frozenset[str]:
    return frozenset(f.name for f in fields(schema))


def make(schema, **values):
    names = field_names(schema)
    return schema(**{k: v for k, v in values.items() if k in names})


@lru_cache(maxsize=None)
def sibling(schema, name: str):
    """The nested class `name` defined beside `schema` in its version's module."""
    return getattr(sys.modules[schema.__module__], name)


def has_field(schema, name: str) -> bool:
    return name in field_names(schema)
