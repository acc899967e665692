"""Command line: `kop-fast serve [options]`. Argument parsing only; the server lives in kop_fast.server."""

from __future__ import annotations

import argparse
import sys

from kop_fast.config import ConfigError, build_settings


class _OneLineErrorParser(argparse.ArgumentParser):
    """Unknown or invalid options give one line on stderr and exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrorParser(prog="kop-fast", description="Kafka-on-Pulsar as a fast proxy")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineErrorParser)
    serve = sub.add_parser("serve", help="serve Kafka clients, storing data in Pulsar",
                           description="Serve the Kafka protocol in front of Apache Pulsar. "
                                       "Every option can also be set as KOP_FAST_<OPTION> or in --config.")
    serve.add_argument("--listen", action="append", metavar="[PROTOCOL://]HOST:PORT",
                       help="address to accept Kafka clients on (repeatable; default 127.0.0.1:9092)")
    serve.add_argument("--advertised-listener", metavar="HOST:PORT",
                       help="address given to clients in Metadata (default: the first --listen)")
    serve.add_argument("--pulsar-url", metavar="URL",
                       help="Pulsar service URL, e.g. pulsar://host:6650 (absent: start the embedded pulsar-lite)")
    serve.add_argument("--pulsar-admin-url", metavar="URL",
                       help="Pulsar admin REST URL, used for partitioned-topic metadata when given")
    serve.add_argument("--data-dir", metavar="DIR", help="embedded broker data and logs (default ./kop-data)")
    serve.add_argument("--kafka-tenant", metavar="TENANT", help="Pulsar tenant of Kafka topics (default public)")
    serve.add_argument("--kafka-namespace", metavar="NS", help="Pulsar namespace of Kafka topics (default default)")
    serve.add_argument("--system-namespace", metavar="TENANT/NS",
                       help="Pulsar namespace of kop_fast system topics (default public/kafka)")
    serve.add_argument("--entry-format", metavar="kafka|pulsar",
                       help="how records are stored: one Pulsar message per Kafka batch (kafka, default) "
                            "or per record (pulsar)")
    serve.add_argument("--read-cache-mb", metavar="MB",
                       help="memory for entries this process stored, so fetches right behind the producer "
                            "skip the Pulsar read (kafka entry format; 0 disables; default 512)")
    serve.add_argument("--default-num-partitions", metavar="N",
                       help="partitions of auto-created topics (default 1)")
    serve.add_argument("--node-id", metavar="N", help="Kafka broker id of this process (default 0)")
    serve.add_argument("--cluster-id", metavar="ID", help="Kafka cluster id reported in Metadata")
    serve.add_argument("--max-request-size", metavar="BYTES",
                       help="largest request accepted; larger closes the connection (default 100 MiB)")
    serve.add_argument("--offsets-topic", metavar="TOPIC",
                       help="Pulsar topic of committed offsets and group state "
                            "(default persistent://public/kafka/__consumer_offsets)")
    serve.add_argument("--offsets-topic-num-partitions", metavar="N",
                       help="partitions of the offsets topic; fixed once groups exist (default 8)")
    serve.add_argument("--group-initial-rebalance-delay-ms", metavar="MS",
                       help="wait for more members before the first rebalance of a new group (default 3000)")
    serve.add_argument("--group-min-session-timeout-ms", metavar="MS",
                       help="smallest session timeout a consumer may ask for (default 6000)")
    serve.add_argument("--config", metavar="FILE", help="TOML file with the same keys as these options")
    serve.add_argument("--log-level", metavar="LEVEL", help="debug, info, warning, error (default info)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    flags = {k: v for k, v in vars(args).items() if k != "command"}
    try:
        settings = build_settings(flags)
    except ConfigError as exc:
        print(f"kop-fast: error: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        from kop_fast.server.app import run
        return run(settings)
    parser.error(f"unknown command {args.command}")
    return 2
