"""The process's log: the standard logging module on stderr, as text or as one JSON object per line.

`--log-format text` (default): `time LEVEL logger: message`.
`--log-format json`: {"time", "level", "logger", "message", ...} with the record's
extra fields (`log.info(..., extra={"peer": ...})`) as keys of their own, for log
shippers. pulsar-client's own lines come through `kop_fast.pulsar_client`
(storage/pulsar/client_log.py), so both formats cover everything kop-fast prints.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime, timezone

import orjson

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Attributes every LogRecord has; anything else on a record came in through `extra`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (ISO 8601, UTC, ms), level, logger, message, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(out, default=str).decode()


def setup_logging(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper()))


def peer_text(peer) -> str:
    """A socket address as HOST:PORT ([HOST]:PORT for IPv6)."""
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peer)
