"""Keeps the embedded pulsar-lite running: restarts it on the same data and port when it dies on its own.

A thread blocks in waitpid on the child, so a death is seen at once and the
event loop pays nothing. pulsar-client reconnects to the same URL by itself and
resends what it had not had acknowledged; until then appends wait or fail with
retriable errors. If the broker cannot be brought back, `on_give_up(reason)`
is called (from this thread) so kop-fast exits instead of serving errors forever.

`up` (False from a death until the broker is back) and `restarts` are read by the
metrics (through the storage, `PulsarStorage.stats`); plain attributes, written by this
thread only.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from kop_fast.embedded import EmbeddedPulsar, EmbeddedPulsarError

log = logging.getLogger("kop_fast.embedded")

RESTART_TRIES = 5
FIRST_DELAY_S = 0.2  # a crash loop must not spin; a single crash should cost little
MAX_DELAY_S = 4.0
RESTART_TIMEOUT_S = 15.0  # one try: pulsar-lite opens its port in well under a second


class BrokerSupervisor:
    def __init__(self, broker: EmbeddedPulsar, on_give_up: Callable[[str], None], *,
                 tries: int = RESTART_TRIES, first_delay_s: float = FIRST_DELAY_S) -> None:
        self.broker = broker
        self.on_give_up = on_give_up
        self.tries = tries
        self.first_delay_s = first_delay_s
        self.restarts = 0  # restarts that brought the broker back
        self.up = broker.process is not None  # launched and ready before it is supervised
        self._closing = threading.Event()
        self._lock = threading.Lock()  # a restart in progress finishes before stop() goes on
        # Long-lived on purpose: a restarted child's PR_SET_PDEATHSIG fires when the thread that
        # spawned it ends, so the spawning thread must live as long as the broker should.
        self._thread = threading.Thread(target=self._watch, name="pulsar-lite-supervisor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """From now on an exit of the broker is expected (kop-fast stops it); call before broker.stop()."""
        self._closing.set()
        with self._lock:
            pass

    def _watch(self) -> None:
        while True:
            process = self.broker.process
            if process is None:
                return
            code = process.wait()
            if self._closing.is_set():
                return
            self.up = False
            log.warning("embedded pulsar-lite (pid %d) exited with code %s; restarting it on %s (see %s)",
                        process.pid, code, self.broker.url, self.broker.log_path)
            reason = self._restart()
            if reason is not None:
                if not self._closing.is_set():
                    self.on_give_up(reason)
                return

    def _restart(self) -> str | None:
        """Bring the broker back, with backoff; None when it is back (or kop-fast is stopping), else why not."""
        started = time.monotonic()
        delay = self.first_delay_s
        error = "unknown error"
        for attempt in range(1, self.tries + 1):
            if self._closing.wait(delay):
                return None
            with self._lock:
                if self._closing.is_set():
                    return None
                try:
                    self.broker.restart(RESTART_TIMEOUT_S)
                except (EmbeddedPulsarError, OSError) as exc:
                    error = str(exc)
                    log.warning("restarting the embedded pulsar-lite failed (try %d of %d): %s",
                                attempt, self.tries, error)
                else:
                    self.up = True  # first: a scrape that sees the restart counted sees the broker up
                    self.restarts += 1
                    log.warning("embedded pulsar-lite restarted at %s (pid %d) %.1f s after it died, try %d",
                                self.broker.url, self.broker.process.pid, time.monotonic() - started, attempt)
                    return None
            delay = min(delay * 2, MAX_DELAY_S)
        return f"the embedded pulsar-lite died and could not be restarted ({self.tries} tries): {error}"
