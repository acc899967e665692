"""One kop-fast per data directory: an advisory lock held for the whole run.

The data directory holds the embedded broker's database and pid file and the
pulsar-client log. A second server started on it (a second `make serve`) used to
find the first one's pid file and stop its broker; now it stops at once with a
clear message instead. `flock` locks go away with the process that holds them, so
a SIGKILLed server never leaves the directory locked.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "kop-fast.lock"


class DataDirInUse(RuntimeError):
    pass


def lock_data_dir(data_dir: Path):
    """Take the directory's lock (creating the directory); the returned file holds it.
    Raises DataDirInUse (naming the holder's pid) when another process has it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_NAME
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise DataDirInUse(f"data directory {data_dir} is in use by another kop-fast (pid {holder}); "
                           f"give this one its own --data-dir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
