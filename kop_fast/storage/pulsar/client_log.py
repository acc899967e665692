"""pulsar-client's own log: a file under the data directory, with the lines that matter surfaced.

pulsar-client logs through its C++ logger only (a Python logger deadlocks, see
`bridge.client_logger`). Printed to the console, that logger cannot be
filtered, and with pulsar-lite it prints WARN and ERROR lines for conditions
that are normal here (below). So the process's pulsar-client writes to
`<data-dir>/pulsar-client.log` (one logger for the whole process:
pulsar-client keeps the first one a client was given), and `ClientLogRelay`, on
the event loop, reads what was added twice a second and hands each WARN or ERROR
line to the logger `kop_fast.pulsar_client` at its level, so it reaches the
console (in `--log-format json` too); the normal ones go there at DEBUG. Lines
of other levels (INFO, and DEBUG at `--log-level debug`) stay in the file.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import re
from pathlib import Path

log = logging.getLogger("kop_fast.pulsar_client")

FILE_NAME = "pulsar-client.log"
POLL_S = 0.5
# At start a longer file is moved to pulsar-client.log.1 (the one before is dropped).
KEEP_BYTES = 16 << 20

# pulsar-client's line: "2026-12-01 20:17:33.957 WARN  [140336290592448] ClientConnection:1731 | text"
_LINE = re.compile(r"^\S+ \S+ (?P<level>[A-Z]+) +\[\d+\] (?P<where>\S+) \| (?P<text>.*)$")
_LEVELS = {"WARN": logging.WARNING, "ERROR": logging.ERROR, "FATAL": logging.CRITICAL}

# Normal conditions that pulsar-client logs at WARN or ERROR.
NORMAL = tuple(re.compile(p) for p in (
    # pulsar-lite answers getLastMessageId on a topic without messages with an error. kop_fast
    # asks on purpose (Reader.has_message_available, a partition's first load, the native-topic
    # probe) and takes UnknownError for "empty" (bridge.has_message_available, one_off.py). A
    # different reason has a ClientConnection line of its own, which is surfaced.
    r"Received error response from server: UnknownError \(Topic has no messages\)",
    r"Failed to getLastMessageId: UnknownError$",
    # A race in pulsar-client's HandlerBase::start: when the broker answers a new producer or
    # consumer before start() arms its creation timer (a local pulsar-lite often does), the
    # timer is armed after it was cancelled and fires operation_timeout later on a handler that
    # has long been connected; it changes nothing. (A handler that really cannot connect fails
    # its create call with Timeout, which kop_fast reports itself.)
    r"^Cancel the pending reconnection due to the start timeout$",
))


_path: Path | None = None  # the process's file, once `use_file` found it usable
_lock = None  # that file, open and flock-ed for the process's lifetime


def use_file(data_dir: Path) -> Path | None:
    """Send pulsar-client's log to the file in `data_dir` (made if need be; a long one set
    aside); returns its path, or None when it cannot be written (then: the console).

    Another live kop-fast on the same directory (with --pulsar-url) holds the file: this
    process then writes pulsar-client-<pid>.log instead of relaying the other's lines."""
    global _path, _lock
    path = Path(data_dir) / FILE_NAME
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(path, "ab")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            path = path.with_name(f"pulsar-client-{os.getpid()}.log")
            lock = open(path, "ab")
        if lock.tell() > KEEP_BYTES:
            os.replace(path, path.with_name(path.name + ".1"))  # the open file goes on as .1, unread
            lock.close()
            lock = open(path, "ab")
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        log.warning("cannot write %s (%s): pulsar-client logs to the console", path, exc.strerror)
        return None
    _path, _lock = path, lock
    return path


def current_file() -> Path | None:
    return _path


def classify(line: str) -> tuple[int, str] | None:
    """(logging level, message) for the relay, or None for a line that stays in the file."""
    m = _LINE.match(line)
    if m is None:
        return (logging.WARNING, line) if line.strip() else None
    level = _LEVELS.get(m["level"])
    if level is None:
        return None
    text = m["text"]
    message = f"{m['where']} | {text}"
    if any(p.search(text) for p in NORMAL):
        return logging.DEBUG, message
    return level, message


class ClientLogRelay:
    """Follows pulsar-client's log file from where it ends now; passes lines on (see `classify`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = None
        self._partial = b""
        self._timer: asyncio.TimerHandle | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._file = open(self.path, "rb")
        self._file.seek(0, os.SEEK_END)
        self._loop = loop
        self._timer = loop.call_later(POLL_S, self._tick)

    def _tick(self) -> None:
        self.poll()
        self._timer = self._loop.call_later(POLL_S, self._tick)

    def poll(self) -> None:
        """Pass on the complete lines written since the last poll (a read of a local file: microseconds)."""
        data = self._file.read()
        if not data:
            return
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for raw in lines:
            found = classify(raw.decode(errors="replace"))
            if found is not None and log.isEnabledFor(found[0]):
                log.log(found[0], "%s", found[1])

    def close(self) -> None:
        """After the clients are closed: what they wrote last is passed on too."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._file is not None:
            self.poll()
            self._file.close()
            self._file = None
