"""End-to-end benchmark: the same confluent-kafka (librdkafka) workload against
kop-fast (kafka and pulsar entry formats), Tansu, and pulsar-client writing
to pulsar-lite directly (the floor of the Pulsar path).

    python -m bench.e2e                 # full run (~7 min on 2 cores with 3 rounds)
    python -m bench.e2e --quick         # short run for the CI gate (~2 min)
    python -m bench.e2e --systems kop-fast-kafka tansu --records 50000 --out /tmp/b

Per system and round (systems alternate: A B C D A B C D ...; every system is
started fresh for each round and always stopped):

produce   N records of 100 B / 1 KiB into 1 / 8 partitions as fast as the
          client goes (acks=all, linger.ms=5, batch.num.messages default);
          records/s, MB/s of payload, server CPU seconds per million records
consume   the same N records back (assign-based consumer from the beginning,
          no group); records/s, MB/s, server CPU s per million records
default-consumer
          (Kafka systems) 300,000 records of 100 B into 1 partition, read back
          by a librdkafka consumer with its default settings (no
          CONSUMER_TUNING); records/s, the ratio to Tansu, server CPU, and
          the rounds whose read stalled for a fetch.queue.backoff.ms second
latency   100-byte records at a fixed rate (10,000 records/s) for a few
          seconds, linger.ms=1: the delivery-report latency of every record
          (produce latency) and, in a separate consumer process, the time from
          send to receipt (end-to-end latency); p50 / p99 / p99.9
steady    (Kafka systems) the same at 5,000 records/s for 60 s (10 s with
          --quick): end-to-end p50 / p99 / p99.9, and the p99 of the first
          and the last third of the run (growth = the system falls behind)
resources peak RSS of the server processes (VmHWM summed over the tree)

--phases picks some of throughput, default-consumer, latency, steady (default
all), e.g. `python -m bench.e2e --quick --phases steady default-consumer`.

Results (Markdown table, JSON, PNG chart) go to bench/results/ (or --out):
e2e-<timestamp>.{md,json,png} and copies named e2e-latest.*. The table is also
printed on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bench.config import PHASES, RESULTS_DIR, Config
from bench.latency import latency_consumer_main
from bench.orchestrate import run, run_system_main
from bench.systems import ALL_SYSTEMS, TREES_ENV, is_system


def parse_args(argv=None) -> tuple[Config, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m bench.e2e", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="short run for the CI gate: 300,000 records, 2 workloads, 2 s latency, "
                             "10 s steady rate, 3 rounds")
    parser.add_argument("--records", type=int,
                        help="records per 100-byte workload for kop-fast-kafka and tansu (1 KiB: a quarter)")
    parser.add_argument("--pulsar-path-records", type=int,
                        help="records per 100-byte workload for kop-fast-pulsar and pulsar-direct")
    parser.add_argument("--rounds", type=int, help="rounds per system (systems alternate within a round)")
    parser.add_argument("--systems", nargs="+", metavar="SYSTEM",
                        help=f"systems to run (default all: {' '.join(ALL_SYSTEMS)}); "
                             "kop-fast-kafka@LABEL runs the checkout named by --tree LABEL=PATH; "
                             "kop-fast-kafka@metrics runs this one with --metrics-listen, "
                             "kop-fast-kafka@packed with --offset-mode packed")
    parser.add_argument("--tree", action="append", default=[], metavar="LABEL=PATH",
                        help="another kop_fast checkout (its codec built in place), for before/after runs "
                             "side by side; each kop-fast-*@LABEL system is paired with kop-fast-* in the ratios")
    parser.add_argument("--latency-seconds", type=float, help="duration of the fixed-rate latency phase")
    parser.add_argument("--latency-rate", type=int, help="records/s of the latency phase (default 10000)")
    parser.add_argument("--latency-linger-ms", type=int, help="linger.ms of the latency phase (default 1)")
    parser.add_argument("--phases", nargs="+", choices=PHASES, metavar="PHASE",
                        help=f"what each round measures (default all: {' '.join(PHASES)})")
    parser.add_argument("--steady-seconds", type=float,
                        help="duration of the steady-rate probe (default 60, 10 with --quick)")
    parser.add_argument("--steady-rate", type=int, help="records/s of the steady-rate probe (default 5000)")
    parser.add_argument("--default-consumer-records", type=int,
                        help="records of the default-consumer workload (default 300000)")
    parser.add_argument("--librdkafka-defaults", action="store_true",
                        help="consume with librdkafka's default fetch.queue.backoff.ms (see CONSUMER_TUNING)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for the results (default bench/results)")
    parser.add_argument("--latency-consumer", help=argparse.SUPPRESS)
    parser.add_argument("--run-system", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tree:
        os.environ[TREES_ENV] = os.pathsep.join(
            f"{label}={Path(path).resolve()}" for label, path in (t.split("=", 1) for t in args.tree))
    unknown = [name for name in args.systems or () if not is_system(name)]
    if unknown:
        parser.error(f"unknown systems {' '.join(unknown)}; choose from {' '.join(ALL_SYSTEMS)} "
                     "(or kop-fast-*@LABEL with --tree LABEL=PATH)")
    cfg = Config.quick_config() if args.quick else Config()
    if args.records:
        cfg.records = args.records
    if args.pulsar_path_records:
        cfg.pulsar_path_records = args.pulsar_path_records
    if args.rounds:
        cfg.rounds = args.rounds
    if args.systems:
        cfg.systems = list(dict.fromkeys(args.systems))
    if args.latency_seconds:
        cfg.latency_seconds = args.latency_seconds
    if args.latency_rate:
        cfg.latency_rate = args.latency_rate
    if args.latency_linger_ms is not None:
        cfg.latency_linger_ms = args.latency_linger_ms
    if args.phases:
        cfg.phases = [p for p in PHASES if p in args.phases]
    if args.steady_seconds:
        cfg.steady_seconds = args.steady_seconds
    if args.steady_rate:
        cfg.steady_rate = args.steady_rate
    if args.default_consumer_records:
        cfg.default_consumer_records = args.default_consumer_records
    cfg.librdkafka_defaults = args.librdkafka_defaults
    return cfg, args


def main(argv=None) -> int:
    cfg, args = parse_args(argv)
    if args.latency_consumer:
        return latency_consumer_main(json.loads(args.latency_consumer))
    if args.run_system:
        return run_system_main(json.loads(args.run_system))
    result = run(cfg, args.out)
    return 1 if any(s["errors"] for s in result["systems"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
