"""Long fuzzing of the network decoders, outside CI: `python -m tests.fuzz_wire --minutes N`.

Runs the Hypothesis properties of tests/unit/test_wire_fuzz.py (request headers, every
API and version with random, truncated and lying bodies, the Produce decoder, the codec
entry points the server calls, consumer subscriptions) round-robin, in rounds of
--examples examples each, with fresh random seeds, until the time is up. A failing
property stops the run with Hypothesis' minimal failing input.
"""

from __future__ import annotations

import argparse
import importlib
import os
import time

PROPERTY_NAMES = [
    "test_request_headers",
    "test_every_api_random_body",
    "test_every_api_truncated_and_lying",
    "test_produce_batches_through_the_codec",
    "test_consumer_subscriptions",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--examples", type=int, default=2000, help="examples per property per round")
    args = parser.parse_args(argv)
    # The properties read their example count when their module is imported.
    os.environ["KOP_FAST_FUZZ_EXAMPLES"] = str(args.examples)
    properties = importlib.import_module("tests.unit.test_wire_fuzz")
    props = [getattr(properties, name) for name in PROPERTY_NAMES]
    deadline = time.monotonic() + args.minutes * 60
    examples: dict[str, int] = {p.__name__: 0 for p in props}
    rounds = 0
    while time.monotonic() < deadline:
        for prop in props:
            prop()
            examples[prop.__name__] += args.examples
            if time.monotonic() >= deadline:
                break
        rounds += 1
    for name, n in examples.items():
        print(f"{name}: {n} examples")
    print(f"{sum(examples.values())} examples in {args.minutes} min ({rounds} rounds), no failure")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
