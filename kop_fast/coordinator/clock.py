"""Time sources for the coordinator.

The state machine never reads a clock itself: every call takes ``now_ms``. These classes are
for the code that drives it (the asyncio layer uses :class:`SystemClock`, tests use
:class:`FakeClock`).

Times are wall-clock epoch milliseconds, not monotonic time, because some of them are persisted
(offset commit timestamps, the time a group became Empty) and compared again after a restart.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock", "FakeClock"]


@runtime_checkable
class Clock(Protocol):
    def now_ms(self) -> int:
        """Current wall-clock time in epoch milliseconds."""
        ...


class SystemClock:
    """The real wall clock."""

    __slots__ = ()

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class FakeClock:
    """A clock that only moves when told to; for deterministic tests."""

    __slots__ = ("_now_ms",)

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self._now_ms = int(start_ms)

    def now_ms(self) -> int:
        return self._now_ms

    def advance(self, delta_ms: int) -> int:
        """Move time forward by ``delta_ms`` and return the new time."""
        if delta_ms < 0:
            raise ValueError("a clock cannot go backwards")
        self._now_ms += int(delta_ms)
        return self._now_ms

    def set(self, now_ms: int) -> None:
        if now_ms < self._now_ms:
            raise ValueError("a clock cannot go backwards")
        self._now_ms = int(now_ms)
