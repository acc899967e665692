"""Command line: `kop-fast serve [options]`, `kop-fast --version`. Argument parsing only; the server lives in kop_fast.server."""

from __future__ import annotations

import argparse
import sys

from kop_fast.config import ConfigError, build_settings


class _OneLineErrorParser(argparse.ArgumentParser):
    """Unknown or invalid options give one line on stderr and exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


# (flag, metavar, help) of `serve`, in --help order; config.py parses and checks the values.
_SERVE_OPTIONS = (
    ("--listen", "[PROTOCOL://]HOST:PORT",
     "address to accept Kafka clients on (repeatable; default 127.0.0.1:9092)"),
    ("--advertised-listener", "HOST:PORT",
     "address given to clients in Metadata (default: the first --listen)"),
    ("--pulsar-url", "URL",
     "Pulsar service URL, e.g. pulsar://host:6650 (absent: start the embedded pulsar-lite)"),
    ("--pulsar-admin-url", "URL",
     "Pulsar admin REST URL, used for partitioned-topic metadata when given"),
    ("--data-dir", "DIR",
     "embedded broker data and logs (default ./kop-data)"),
    ("--kafka-tenant", "TENANT",
     "Pulsar tenant of Kafka topics (default public)"),
    ("--kafka-namespace", "NS",
     "Pulsar namespace of Kafka topics (default default)"),
    ("--system-namespace", "TENANT/NS",
     "Pulsar namespace of kop_fast system topics (default public/kafka)"),
    ("--entry-format", "kafka|pulsar",
     "how records are stored: one Pulsar message per Kafka batch (kafka, default) or per record (pulsar)"),
    ("--offset-mode", "consecutive|packed",
     "Kafka offsets: 0, 1, 2, ... per partition (consecutive) or packed Pulsar positions (packed); "
     "one mode per cluster, kept in Pulsar (default: the stored mode; consecutive for a new cluster)"),
    ("--read-cache-mb", "MB",
     "memory for entries this process stored, so fetches right behind the producer "
     "skip the Pulsar read (kafka entry format; 0 disables; default 512)"),
    ("--default-num-partitions", "N",
     "partitions of auto-created topics (default 1)"),
    ("--auto-create-topics", "true|false",
     "create a topic that does not exist when a producer, or a Metadata request that allows it, "
     "names it (Kafka's auto.create.topics.enable; default true)"),
    ("--node-id", "N",
     "Kafka broker id of this proxy, unique in its cluster (default: the lowest free id)"),
    ("--cluster-id", "ID",
     "Kafka cluster id; proxies on one Pulsar with the same id form one Kafka cluster "
     "(default: the id kept in Pulsar)"),
    ("--max-request-size", "BYTES",
     "largest request accepted; larger closes the connection (default 100 MiB)"),
    ("--offsets-topic", "TOPIC",
     "Pulsar topic of committed offsets and group state (default persistent://public/kafka/__consumer_offsets)"),
    ("--offsets-topic-num-partitions", "N",
     "partitions of the offsets topic; fixed once groups exist (default 8)"),
    ("--group-initial-rebalance-delay-ms", "MS",
     "wait for more members before the first rebalance of a new group (default 3000)"),
    ("--group-min-session-timeout-ms", "MS",
     "smallest session timeout a consumer may ask for (default 6000)"),
    ("--metrics-listen", "HOST:PORT",
     "serve Prometheus /metrics, /health and /ready on this address (default: off)"),
    ("--config", "FILE",
     "TOML file with the same keys as these options"),
    ("--log-level", "LEVEL",
     "debug, info, warning, error (default info)"),
    ("--log-format", "text|json",
     "log lines as text (default) or as one JSON object per line"),
)
_REPEATABLE = {"--listen"}


def version() -> str:
    """The installed distribution's version, else the one in the source (running from a checkout)."""
    from importlib import metadata
    try:
        return metadata.version("kop_fast")
    except metadata.PackageNotFoundError:
        from kop_fast import __version__
        return __version__


class _VersionAction(argparse.Action):
    """`--version`: looks the version up only when asked (package metadata costs a directory scan)."""

    def __init__(self, option_strings, dest, **kwargs) -> None:
        super().__init__(option_strings, argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0,
                         help="print the version and exit")

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"{parser.prog} {version()}")
        parser.exit(0)


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrorParser(prog="kop-fast", description="Kafka-on-Pulsar as a fast proxy")
    parser.add_argument("--version", action=_VersionAction)
    # Not `required=True`: a bare `kop-fast` gets the usage (see main), not just an error line.
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_OneLineErrorParser)
    serve = sub.add_parser("serve", help="serve Kafka clients, storing data in Pulsar",
                           description="Serve the Kafka protocol in front of Apache Pulsar. "
                                       "Every option can also be set as KOP_FAST_<OPTION> or in --config.")
    for flag, metavar, help_ in _SERVE_OPTIONS:
        serve.add_argument(flag, metavar=metavar, help=help_,
                           action="append" if flag in _REPEATABLE else "store")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        # argparse's convention for a missing argument: usage, the error, exit code 2.
        parser.print_usage(sys.stderr)
        parser.exit(2, f"{parser.prog}: error: a command is required (kop-fast serve --help lists its options)\n")
    flags = {k: v for k, v in vars(args).items() if k != "command"}
    try:
        settings = build_settings(flags)
    except ConfigError as exc:
        print(f"kop-fast: error: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        from kop_fast.app import run
        return run(settings)
    parser.error(f"unknown command {args.command}")
    return 2
