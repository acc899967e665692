"""kop-fast with an injected per-request delay, for showing that the regression gate works.

    KOP_FAST_BENCH_INJECT_DELAY_MS=2 python -m bench.slow_kop_fast serve [kop-fast options]

Busy-waits KOP_FAST_BENCH_INJECT_DELAY_MS milliseconds (CPU, on the event loop,
like slower code would) before each Kafka request is dispatched, then runs
`kop_fast.cli.main`. Only the benchmark harness (bench/systems.py) starts
this; kop_fast itself knows nothing about the variable.
"""

from __future__ import annotations

import os
import sys
import time

from bench.systems import INJECT_DELAY_ENV


def install(delay_ms: float) -> None:
    from kop_fast.server.connection import KafkaConnection

    original = KafkaConnection._dispatch
    delay_s = delay_ms / 1000.0
    clock = time.perf_counter

    def slow_dispatch(self, frame):
        end = clock() + delay_s
        while clock() < end:
            pass
        return original(self, frame)

    KafkaConnection._dispatch = slow_dispatch


def main() -> int:
    delay_ms = float(os.environ.get(INJECT_DELAY_ENV) or 0)
    if delay_ms > 0:
        install(delay_ms)
        print(f"bench.slow_kop_fast: {delay_ms:g} ms busy-wait injected before every Kafka request",
              file=sys.stderr)
    from kop_fast.cli import main as kop_main
    return kop_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
