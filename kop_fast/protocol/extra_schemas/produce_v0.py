"""Produce v0 request and response (built in produce_legacy)."""

from kop_fast.protocol.extra_schemas.produce_legacy import classes

globals().update(classes(__name__, 0))
