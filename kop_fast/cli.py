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
    ("--listen", "[NAME://]HOST:PORT",
     "address to accept Kafka clients on; NAME is PLAINTEXT (default), SSL, SASL_PLAINTEXT, SASL_SSL "
     "or a name of --listener-security-protocol-map (repeatable; default 127.0.0.1:9092)"),
    ("--advertised-listener", "[NAME://]HOST:PORT",
     "address given in Metadata to clients of listener NAME (no NAME: the first --listen; "
     "repeatable; default: the listener's own address)"),
    ("--listener-security-protocol-map", "NAME:PROTOCOL,...",
     "security protocol of each listener name that is not one itself (Kafka's listener.security.protocol.map)"),
    ("--tls-cert", "FILE", "PEM certificate (chain) of SSL and SASL_SSL listeners; re-read on SIGHUP"),
    ("--tls-key", "FILE", "PEM private key of --tls-cert; re-read on SIGHUP"),
    ("--tls-ca", "FILE", "PEM CA certificates that client certificates are checked against"),
    ("--tls-client-auth", "none|requested|required",
     "ask TLS clients for a certificate (Kafka's ssl.client.auth; default none)"),
    ("--sasl-enabled-mechanisms", "LIST",
     "SASL mechanisms of SASL listeners (default PLAIN,OAUTHBEARER)"),
    ("--auth-token-secret-key", "KEY",
     "HS256 key of SASL tokens, as Pulsar's tokenSecretKey: file:/PATH, data:;base64,KEY or base64:KEY"),
    ("--auth-token-public-key", "KEY",
     "RS256/ES256 public key of SASL tokens (PEM or DER), as Pulsar's tokenPublicKey: file:/PATH or data:;base64,KEY"),
    ("--allowed-tenants", "LIST",
     "tenants SASL clients may authenticate as (default: any)"),
    ("--pulsar-url", "URL",
     "Pulsar service URL, e.g. pulsar://host:6650 (absent: start the embedded pulsar-lite)"),
    ("--pulsar-auth-token", "TOKEN",
     "this proxy's own token for an authenticating Pulsar: the JWT, token:JWT or file:PATH"),
    ("--pulsar-authorize-roles", "true|false",
     "let Pulsar authorize each SASL client's Produce and Fetch as the client's own role "
     "(a Pulsar client per token, cached; default false)"),
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
    ("--max-connections", "N",
     "open client connections at most; one more is closed at once (default 10000)"),
    ("--max-connections-per-ip", "N",
     "open client connections from one IP address at most (Kafka's max.connections.per.ip; default 1000)"),
    ("--connections-max-idle-ms", "MS",
     "close a connection that sends nothing for this long (Kafka's connections.max.idle.ms; "
     "0 never; default 600000)"),
    ("--max-pending-produce-bytes", "BYTES",
     "Produce bytes awaiting the storage across all connections; at the bound, producing "
     "connections stop being read until it drops (default 256 MiB)"),
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
_REPEATABLE = {"--listen", "--advertised-listener"}


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
