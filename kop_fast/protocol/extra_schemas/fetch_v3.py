"""Fetch v3 request and response (built in fetch_legacy)."""

from kop_fast.protocol.extra_schemas.fetch_legacy import classes

globals().update(classes(__name__, 3))
